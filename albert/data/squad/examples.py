"""SQuAD v1.1 / v2.0 examples: the original's reader with clear errors; (question, context) pairs.

This module owns turning a SQuAD JSON file into `SquadExample`s, as the original
`squad_utils.read_squad_examples` does (google-research/albert):

* One example per question, in file order; `paragraph_text` is the context unchanged (no
  whitespace splitting: ALBERT aligns SentencePiece pieces to characters later, in
  `squad_features.py`). `start_position` is the answer's *character* offset and
  `end_position` is always None, as in the original.
* Evaluation mode (`is_training=False`) reads no answers: `orig_answer_text` and
  `start_position` are None and `is_impossible` is False even in a v2.0 file (the original
  reads `is_impossible` only when training).
* Training mode reads `is_impossible` (v2.0); an impossible question gets
  `orig_answer_text=""`, `start_position=-1`; any other question must have exactly one answer.

Where the original fails obscurely or silently, this reader says what is wrong:

* a missing file, malformed JSON (file, line, column) or a missing / mistyped key (file, and
  the article, paragraph and question id) is a `DataError`;
* training on a question with several answers (the dev sets) raises a `DataError` naming the
  file and question, like the original's ValueError; `multiple_answers="first"` uses the first
  answer instead (how the golden training-mode records of dev were made);
* an answer whose `answer_start` does not point at its `text` in the context (or an empty
  answer) is skipped in training, reported (`ReadReport.skipped`) and counted; the original
  trained on whatever span the offset gave. `check_answers=False` keeps the original's
  behaviour;
* a question id used twice is an error naming the file and the id (predictions, scores and
  held-out splits are keyed by id: one of the two would be lost silently);
* a SQuAD 2.0 file (one with `is_impossible` keys or unanswerable questions) read without
  `version_2_with_negative`, and a SQuAD 1.1 file read with it, are errors that say which flag
  to change.

Every example also carries `title` (its article, for `squad_metrics.split_held_out`) and
`answers` (all gold texts, for scoring held-out slices); the original had neither.
`examples_from_pairs` builds evaluation examples from (question, context) pairs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from absl import logging

from albert import files
from albert.errors import DataError

MULTIPLE_ANSWERS = ("error", "first")


@dataclasses.dataclass
class SquadExample:
  """One question: the original's fields, plus `title` and every gold `answers` text."""

  qas_id: str
  question_text: str
  paragraph_text: str
  orig_answer_text: Optional[str] = None
  start_position: Optional[int] = None  # character offset into paragraph_text
  end_position: Optional[int] = None  # always None, as in the original
  is_impossible: bool = False
  title: str = ""
  answers: List[str] = dataclasses.field(default_factory=list)

  def original_fields(self) -> Dict[str, Any]:
    """The fields of the original `SquadExample` (what the golden records hold)."""
    return {"qas_id": self.qas_id, "question_text": self.question_text,
            "paragraph_text": self.paragraph_text, "orig_answer_text": self.orig_answer_text,
            "start_position": self.start_position, "end_position": self.end_position,
            "is_impossible": self.is_impossible}


@dataclasses.dataclass
class ReadReport:
  """What reading a file found: counts and the questions skipped, with the reason."""

  path: str
  num_questions: int = 0
  num_impossible: int = 0
  skipped: List[Tuple[str, str]] = dataclasses.field(default_factory=list)  # (qas_id, reason)
  version: str = ""

  def format(self) -> str:
    text = (f"{self.path}: {self.num_questions} questions, {self.num_impossible} impossible, "
            f"{len(self.skipped)} skipped")
    for qas_id, reason in self.skipped[:10]:
      text += f"\n  skipped {qas_id}: {reason}"
    if len(self.skipped) > 10:
      text += f"\n  ... and {len(self.skipped) - 10} more"
    return text


# ---------------------------------------------------------------------------------------------
# Files.


def load_squad_json(input_file: str) -> Dict[str, Any]:
  """The parsed JSON of a SQuAD file; DataError for a missing file or bad JSON."""
  path = os.fspath(input_file)
  try:
    if "://" in path:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    else:
      with files.open_file(path, "rb") as f:
        raw = f.read()
  except FileNotFoundError:
    raise DataError(f"SQuAD file not found: {path}") from None
  except OSError as error:
    raise DataError(f"cannot read the SQuAD file {path}: {error.strerror or error}") from None
  try:
    data = json.loads(raw.decode("utf-8"))
  except UnicodeDecodeError as error:
    raise DataError(f"{path}: not UTF-8 text (byte {error.start}); a SQuAD file is JSON"
                    ) from None
  except json.JSONDecodeError as error:
    raise DataError(f"{path}: malformed JSON at line {error.lineno}, column {error.colno}: "
                    f"{error.msg}") from None
  if not isinstance(data, dict) or not isinstance(data.get("data"), list):
    raise DataError(f"{path}: expected a JSON object with a \"data\" list of articles "
                    "(the SQuAD format)")
  return data


def is_v2_dataset(data: Dict[str, Any]) -> Tuple[bool, str]:
  """(whether the file is SQuAD 2.0, why): any `is_impossible` key or an empty answer list."""
  version = str(data.get("version", ""))
  for article in data["data"]:
    for paragraph in _list(article, "paragraphs"):
      for qa in _list(paragraph, "qas"):
        if isinstance(qa, dict) and "is_impossible" in qa:
          return True, f"question {qa.get('id')!r} has an \"is_impossible\" key"
        if isinstance(qa, dict) and qa.get("answers") == [] and "plausible_answers" in qa:
          return True, f"question {qa.get('id')!r} is unanswerable"
  if version.lstrip("v").startswith("2"):
    return True, f"its version is {version!r}"
  return False, f"no question has an \"is_impossible\" key (version {version!r})"


def check_unique_ids(data: Dict[str, Any], path: str) -> None:
  """A DataError naming the file and the first question id that occurs twice."""
  seen = set()
  for article in data["data"]:
    for paragraph in _list(article, "paragraphs"):
      for qa in _list(paragraph, "qas"):
        qas_id = qa.get("id") if isinstance(qa, dict) else None
        if not isinstance(qas_id, str):
          continue  # the reader names a missing or mistyped id
        if qas_id in seen:
          raise DataError(f"{path}: question id {qas_id!r} is used twice (ids must be unique: "
                          "predictions are keyed by id)")
        seen.add(qas_id)


def _list(parent: Any, key: str) -> list:
  value = parent.get(key) if isinstance(parent, dict) else None
  return value if isinstance(value, list) else []


# ---------------------------------------------------------------------------------------------
# The reader.


def read_squad_examples(input_file: str, is_training: bool,
                        version_2_with_negative: bool = False,
                        multiple_answers: str = "error",
                        check_answers: bool = True,
                        report: Optional[ReadReport] = None,
                        data: Optional[Dict[str, Any]] = None) -> List[SquadExample]:
  """The original's `read_squad_examples`, with the checks of the module docstring.

  Args:
    input_file: a SQuAD v1.1 or v2.0 JSON file (local or a tf.io.gfile URL).
    is_training: read answers (and `is_impossible`) as the original's training mode does.
    version_2_with_negative: the file is SQuAD 2.0 (the original's flag); a mismatch with the
      file is an error.
    multiple_answers: training mode, a question with several answers: "error" (the original
      raises) or "first" (use the first answer).
    check_answers: training mode: skip (and report) answers whose offset does not match their
      text. False trains on the offset regardless, as the original.
    report: filled with counts and skipped questions when given.
    data: the already parsed JSON of `input_file` (to avoid reading it twice).
  """
  if multiple_answers not in MULTIPLE_ANSWERS:
    raise DataError(f"multiple_answers must be one of {MULTIPLE_ANSWERS}, "
                    f"got {multiple_answers!r}")
  path = os.fspath(input_file)
  data = load_squad_json(path) if data is None else data
  report = report if report is not None else ReadReport(path)
  report.path, report.version = path, str(data.get("version", ""))
  is_v2, why = is_v2_dataset(data)
  if is_v2 and not version_2_with_negative:
    raise DataError(f"{path} is a SQuAD 2.0 file ({why}); pass --version_2_with_negative "
                    "to read it (its unanswerable questions need the v2 model)")
  if version_2_with_negative and not is_v2:
    raise DataError(f"{path} looks like a SQuAD 1.1 file ({why}); drop "
                    "--version_2_with_negative, or use a SQuAD 2.0 file")
  check_unique_ids(data, path)
  examples: List[SquadExample] = []
  for a, article in enumerate(data["data"]):
    where = f"{path}: article {a}"
    if not isinstance(article, dict):
      raise DataError(f"{where}: expected an object with \"paragraphs\"")
    title = article.get("title", "")
    title = title if isinstance(title, str) else str(title)
    for p, paragraph in enumerate(_member(article, "paragraphs", list, where)):
      where_p = f"{where} ({title!r}), paragraph {p}"
      context = _member(paragraph, "context", str, where_p)
      for q, qa in enumerate(_member(paragraph, "qas", list, where_p)):
        example = _read_question(qa, context, title, f"{where_p}, question {q}", is_training,
                                 multiple_answers, check_answers, report)
        if example is not None:
          examples.append(example)
  report.num_questions = len(examples)
  report.num_impossible = sum(e.is_impossible for e in examples)
  if report.skipped:
    logging.warning("%s", report.format())
  return examples


def _member(parent: Any, key: str, kind: type, where: str) -> Any:
  if not isinstance(parent, dict) or key not in parent:
    raise DataError(f"{where}: missing \"{key}\"")
  value = parent[key]
  if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
    raise DataError(f"{where}: \"{key}\" must be a {kind.__name__}, got "
                    f"{type(value).__name__}")
  return value


def _read_question(qa: Any, context: str, title: str, where: str, is_training: bool,
                   multiple_answers: str, check_answers: bool,
                   report: ReadReport) -> Optional[SquadExample]:
  """One question -> an example, or None when its answer is skipped (reported)."""
  qas_id = _member(qa, "id", str, where)
  where = f"{where} (id {qas_id})"
  question = _member(qa, "question", str, where)
  answers = qa.get("answers", [])
  if not isinstance(answers, list):
    raise DataError(f"{where}: \"answers\" must be a list")
  texts = [_member(ans, "text", str, f"{where}, answer {k}") for k, ans in enumerate(answers)]
  example = SquadExample(qas_id=qas_id, question_text=question, paragraph_text=context,
                         title=title, answers=texts)
  if not is_training:
    return example
  is_impossible = qa.get("is_impossible", False)
  if not isinstance(is_impossible, bool):
    raise DataError(f"{where}: \"is_impossible\" must be true or false")
  if is_impossible:
    example.is_impossible, example.orig_answer_text, example.start_position = True, "", -1
    return example
  if not answers:
    raise DataError(f"{where}: a question to train on needs its answer, found none (\"answers\" "
                    "is missing or empty; an unanswerable SQuAD 2.0 question has "
                    "\"is_impossible\": true)")
  if len(answers) != 1 and multiple_answers != "first":
    raise DataError(
        f"{where}: for training, each question should have exactly 1 answer, found "
        f"{len(answers)} (the original's rule; a dev file has several: read it with "
        "is_training=False, or pass multiple_answers='first' to train on the first)")
  text = texts[0]
  start = _member(answers[0], "answer_start", int, f"{where}, answer 0")
  if check_answers:
    if not text:
      report.skipped.append((qas_id, "empty answer text"))
      return None
    if context[start:start + len(text)] != text or start < 0:
      found = context[max(start, 0):max(start, 0) + len(text)]
      report.skipped.append((qas_id, f"answer {text!r} is not at answer_start {start} "
                                      f"(the context has {found!r} there)"))
      return None
  example.orig_answer_text, example.start_position = text, start
  return example


# ---------------------------------------------------------------------------------------------
# (question, context) pairs.


def examples_from_pairs(pairs: Iterable[Union[Tuple[str, str], Dict[str, str]]],
                        id_prefix: str = "q") -> List[SquadExample]:
  """Evaluation examples from (question, context) pairs or {"question", "context"[, "id"]} dicts.

  Ids are the dicts' "id" when given, else `<id_prefix><index>`; they must be unique.
  """
  examples: List[SquadExample] = []
  seen = set()
  for index, pair in enumerate(pairs):
    if isinstance(pair, dict):
      question, context = pair.get("question"), pair.get("context")
      qas_id = pair.get("id", f"{id_prefix}{index}")
    elif isinstance(pair, Sequence) and len(pair) == 2:
      (question, context), qas_id = pair, f"{id_prefix}{index}"
    else:
      raise DataError(f"pair {index}: expected (question, context) or a dict with "
                      "\"question\" and \"context\"")
    if not isinstance(question, str) or not isinstance(context, str):
      raise DataError(f"pair {index}: question and context must be strings")
    if not question.strip() or not context.strip():
      raise DataError(f"pair {index}: empty {'question' if not question.strip() else 'context'}")
    if qas_id in seen:
      raise DataError(f"pair {index}: id {qas_id!r} is used twice")
    seen.add(qas_id)
    examples.append(SquadExample(qas_id=str(qas_id), question_text=question,
                                 paragraph_text=context))
  return examples


def dataset_from_examples(examples: Sequence[SquadExample]) -> List[Dict[str, Any]]:
  """A SQuAD-shaped `data` list (one article per title) for scoring examples' `answers`."""
  articles: Dict[str, Dict[str, Any]] = {}
  for example in examples:
    article = articles.setdefault(example.title, {"title": example.title, "paragraphs": []})
    article["paragraphs"].append({"context": example.paragraph_text, "qas": [
        {"id": example.qas_id, "question": example.question_text,
         "answers": [{"text": t} for t in ([] if example.is_impossible else example.answers)]}]})
  return list(articles.values())
