"""RACE for run_race.py: the reader, the original's four-choice features, the cache, accuracy.

TF-free. This module owns everything between the RACE files and the TFRecords the RACE task
reads, and the per-level scores and predictions file after evaluation.

Reader (`read_examples`). `<data_dir>/RACE/<split>/<level>/` in either layout:
* the official RACE release: one `<N>.txt` per passage, holding one JSON object
  `{"article", "questions", "options", "answers", "id"}` with several questions;
* the layout the original `run_race.py` reads (`all.txt`, one such object per line), used
  when present.
Levels come middle first, then high (`levels` selects them: the original's `--middle_only` /
`--high_only`), files in numeric order of N, then question order. Texts go through the
original's `process_text` (`preprocess_text(lower=do_lower_case)` with SentencePiece, only
`convert_to_unicode` with a WordPiece vocabulary); each ending is the question with every `_`
replaced by the option, or `question + " " + option` when it has no `_`; label
`ord(answer) - ord("A")`; `example_id` is the passage's JSON `id` (shared by its questions,
so a question is named `question_id` = `<id>-<question index>`). A file that is not RACE JSON,
a key missing, an answer outside A-D, a question without exactly four options, a missing
directory, a split without any question: a `DataError` naming the file or folder (and question)
and the expected layout.

Features (`convert_race_example`): the original's packing, per choice
`[CLS] context [SEP] ending [SEP]` with segment 1 = ending + the last `[SEP]`; the ending keeps
its last `max_qa_length` tokens, then the context is cut at its end to
`max_seq_length - 3 - len(ending)`; the four choices are flattened choice-major into
`[C * max_seq_length]` (C = 4). The original's front truncation can cut the option away and
leave four identical choices: `truncation="original"` (the default, for parity) keeps that;
`truncation="keep_option"` cuts the question's tokens first (from the front) and the option
only when it alone is longer than `max_qa_length` (then its first tokens are kept). It equals
the original whenever the ending fits. `truncation_report` counts how often each loses (part
of) the option.

Cache (`build_race_cache`): serialized `tf.train.Example`s with `input_ids, input_mask,
segment_ids` int64 [C * max_seq_length], `label_ids`, `is_real_example` int64 [1] in an
`albert.data.cache.FeatureCache` fingerprinted by the input files, the tokenizer model,
lower-casing, both lengths, the levels and the truncation; the metadata holds the question
count, per question its id, level, label and unpadded choice lengths.

Scores: `race_accuracy` (overall and per level, as RACE is reported), `write_predictions`
(per question id the predicted letter and the four probabilities, JSON, atomic).

Differences from the original (all where it crashes or is undefined): the official layout is
read without building `all.txt` (the final upstream version lists files in `os.listdir`
order; here numeric order, as the golden data was made); an ending longer than
`max_seq_length - 3` is cut to that length (the original's negative slice fails its length
assert); `max_qa_length < 1` is rejected (`[-0:]` keeps the whole ending in the original).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from albert import files
from albert import tokenization
from albert.data import cache as cache_lib
from albert.data import records as records_lib
from albert.errors import DataError, FlagError

SPLITS = ("train", "dev", "test")
LEVELS = ("middle", "high")  # the original's order
LABELS = ("A", "B", "C", "D")
NUM_CHOICES = 4
TRUNCATIONS = ("original", "keep_option")
ALL_TXT = "all.txt"
_KEYS = ("article", "questions", "options", "answers", "id")
_LAYOUTS = ("expected <data_dir>/RACE/<split>/{middle,high}/ holding <N>.txt files (one JSON "
            "passage each, the official RACE release) or all.txt (one JSON passage per line, "
            "the layout the original run_race.py reads)")


@dataclasses.dataclass(frozen=True)
class RaceExample:
  """One question with its four endings (the original's `InputExample`, plus where it is from)."""
  example_id: str  # the passage's JSON "id" (e.g. "middle13.txt"), shared by its questions
  question_index: int
  level: str  # "middle" or "high"
  context_sentence: str  # the processed article
  endings: Tuple[str, ...]  # [C] question with the option put in
  label: int
  question: str  # processed question, before the option is put in
  options: Tuple[str, ...]  # [C] processed options
  source: str  # "<file>" or "<all.txt>:<line>"
  start_ending: Optional[str] = None  # always None for RACE, as in the original

  @property
  def question_id(self) -> str:
    return f"{self.example_id}-{self.question_index}"


# ------------------------------------------------------------------------------------- reader
def levels_from_flags(high_only: bool = False, middle_only: bool = False) -> Tuple[str, ...]:
  """The original's `--high_only` / `--middle_only` as a tuple of levels."""
  if high_only and middle_only:
    raise FlagError("--high_only and --middle_only exclude each other (together they select "
                    "no question)")
  return ("high",) if high_only else ("middle",) if middle_only else LEVELS


def _check_levels(levels: Sequence[str]) -> Tuple[str, ...]:
  levels = tuple(levels)
  if not levels or any(level not in LEVELS for level in levels) or len(set(levels)) < len(levels):
    raise FlagError(f"RACE levels must be a non-empty selection of {LEVELS}, got {levels!r}")
  return tuple(level for level in LEVELS if level in levels)  # always middle first


def split_dir(data_dir: str, split: str) -> str:
  """`<data_dir>/RACE/<split>` (or `<data_dir>/<split>` when data_dir is the RACE folder)."""
  if split not in SPLITS:
    raise FlagError(f"RACE split must be one of {SPLITS}, got {split!r}")
  if not data_dir:
    raise FlagError("--data_dir is required: the folder holding RACE/{train,dev,test}")
  for candidate in (os.path.join(data_dir, "RACE", split), os.path.join(data_dir, split)):
    if files.isdir(candidate):
      return candidate
  raise DataError(f"RACE {split} split not found: {os.path.join(data_dir, 'RACE', split)} is "
                  f"not a directory; {_LAYOUTS}")


def _numeric_order(name: str) -> Tuple[int, int, str]:
  stem = name[:-len(".txt")]
  return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def input_files(data_dir: str, split: str, levels: Sequence[str] = LEVELS
                ) -> List[Tuple[str, str]]:
  """`(level, path)` of every file the split is read from, in the original's order."""
  root = split_dir(data_dir, split)
  found = []
  for level in _check_levels(levels):
    directory = os.path.join(root, level)
    if not files.isdir(directory):
      raise DataError(f"RACE {split}/{level} not found: {directory} is not a directory; "
                      f"{_LAYOUTS}")
    if files.isfile(os.path.join(directory, ALL_TXT)):
      found.append((level, os.path.join(directory, ALL_TXT)))
      continue
    names = sorted((n for n in files.listdir(directory) if n.endswith(".txt")
                    and files.isfile(os.path.join(directory, n))), key=_numeric_order)
    if not names:
      raise DataError(f"{directory} holds no .txt file; {_LAYOUTS}")
    found.extend((level, os.path.join(directory, n)) for n in names)
  return found


def _passages(path: str) -> List[Tuple[str, Any]]:
  """`(source, parsed JSON)` of a file: the whole file for `<N>.txt`, each line for all.txt."""
  try:
    with files.open_file(path, "rb") as f:
      text = f.read().decode("utf-8-sig")
  except UnicodeDecodeError as error:
    raise DataError(f"{path}: not RACE JSON (not UTF-8 text: byte {error.start})") from None
  except OSError as error:
    raise DataError(f"cannot read {path}: {error.strerror or error}") from None
  if os.path.basename(path) == ALL_TXT:
    chunks = [(f"{path}:{i}", line) for i, line in enumerate(text.split("\n"), 1)
              if line.strip()]
  else:
    chunks = [(path, text)]
  out = []
  for source, chunk in chunks:
    try:
      out.append((source, json.loads(chunk)))
    except json.JSONDecodeError as error:
      raise DataError(f"{source}: not RACE JSON ({error.msg} at line {error.lineno} column "
                      f"{error.colno}); expected one object with keys {', '.join(_KEYS)}"
                      ) from None
  if not out:
    raise DataError(f"{path}: not RACE JSON (the file is empty)")
  return out


def _check_passage(source: str, data: Any) -> None:
  if not isinstance(data, dict):
    raise DataError(f"{source}: not RACE JSON (a {type(data).__name__}, expected an object "
                    f"with keys {', '.join(_KEYS)})")
  missing = [key for key in _KEYS if key not in data]
  if missing:
    raise DataError(f"{source}: not RACE JSON (no key {', '.join(map(repr, missing))}; "
                    f"expected keys {', '.join(_KEYS)})")
  if not isinstance(data["article"], str) or not isinstance(data["id"], str):
    raise DataError(f"{source}: 'article' and 'id' must be strings")
  for key in ("questions", "options", "answers"):
    if not isinstance(data[key], list):
      raise DataError(f"{source}: {key!r} must be a list")
  questions, options, answers = data["questions"], data["options"], data["answers"]
  if not len(questions) == len(options) == len(answers):
    raise DataError(f"{source}: {len(questions)} questions, {len(options)} option lists and "
                    f"{len(answers)} answers; expected one option list and answer per question")
  for i, (question, choices, answer) in enumerate(zip(questions, options, answers)):
    if not isinstance(question, str):
      raise DataError(f"{source}: questions[{i}] must be a string")
    if not isinstance(choices, list) or len(choices) != NUM_CHOICES:
      count = len(choices) if isinstance(choices, list) else "no list of"
      raise DataError(f"{source}: questions[{i}] has {count} options, expected "
                      f"{NUM_CHOICES} (options[{i}])")
    if not all(isinstance(c, str) for c in choices):
      raise DataError(f"{source}: options[{i}] must hold strings")
    if answer not in LABELS:
      raise DataError(f"{source}: answers[{i}] is {answer!r}, expected one of "
                      f"{', '.join(LABELS)}")


def read_examples(data_dir: str, split: str, levels: Sequence[str] = LEVELS,
                  do_lower_case: bool = True, use_spm: bool = True) -> List[RaceExample]:
  """Every question of the split as the original's `RaceProcessor` gives them, in its order."""
  process = tokenization.text_processor(do_lower_case, use_spm)
  examples: List[RaceExample] = []
  seen: Dict[str, str] = {}
  for level, path in input_files(data_dir, split, levels):
    for source, data in _passages(path):
      _check_passage(source, data)
      if data["id"] in seen:
        raise DataError(f"{source}: passage id {data['id']!r} was already used by "
                        f"{seen[data['id']]}; question ids must be unique")
      seen[data["id"]] = source
      context = process(data["article"])
      for i, raw_question in enumerate(data["questions"]):
        question = process(raw_question)
        options = tuple(process(o) for o in data["options"][i])
        examples.append(RaceExample(
            example_id=data["id"], question_index=i, level=level, context_sentence=context,
            endings=tuple(make_ending(question, option) for option in options),
            label=ord(data["answers"][i]) - ord("A"), question=question, options=options,
            source=source))
  if not examples:
    raise DataError(f"{split_dir(data_dir, split)}: no question in the RACE {split} split "
                    f"({', '.join(_check_levels(levels))}): every passage's \"questions\" list "
                    "is empty")
  return examples


def make_ending(question: str, option: str) -> str:
  """The original's question + option text: every `_` replaced, else joined by a space."""
  return question.replace("_", option) if "_" in question else " ".join([question, option])


def _ending_segments(question: str, option: str) -> List[Tuple[str, bool]]:
  """The ending as `(text, is_option)` pieces that concatenate to `make_ending`'s text."""
  if "_" not in question:
    return [(question, False), (" " + option, True)]
  parts = question.split("_")
  segments = [(parts[0], False)]
  for part in parts[1:]:
    segments += [(option, True), (part, False)]
  return [s for s in segments if s[0]]


# ----------------------------------------------------------------------------------- features
@dataclasses.dataclass
class RaceFeature:
  """The four packed choices of one question (each list is [C][L] before flattening)."""
  input_ids: List[List[int]]
  input_mask: List[List[int]]
  segment_ids: List[List[int]]
  label_id: int
  lengths: List[int]  # [C] unpadded lengths
  ending_truncated: List[bool]  # [C] longer than min(max_qa_length, max_seq_length - 3)
  option_cut: List[bool]  # [C] the truncation removed (part of) the option
  context_truncated: List[bool]  # [C]

  @property
  def identical_choices(self) -> bool:
    """Whether the four choices are the same tokens (nothing left to choose from)."""
    return all(ids == self.input_ids[0] for ids in self.input_ids[1:])

  def count_into(self, counts: Dict[str, int]) -> None:
    """Adds this question's truncation counts to those of `counts`' keys."""
    found = {"endings_truncated": sum(self.ending_truncated), "option_cut": sum(self.option_cut),
             "questions_with_option_cut": int(any(self.option_cut)),
             "questions_with_identical_choices": int(self.identical_choices),
             "context_truncated": sum(self.context_truncated)}
    for key in counts:
      counts[key] += found[key]


class RaceFeatureConverter:
  """The original's `convert_single_example` for RACE (ids built once per passage)."""

  def __init__(self, tokenizer: tokenization.FullTokenizer, max_seq_length: int,
               max_qa_length: int, truncation: str = "original"):
    if max_seq_length < 4:
      raise FlagError(f"--max_seq_length={max_seq_length}: RACE needs at least 4 ([CLS], "
                      "[SEP], one ending token, [SEP])")
    if max_qa_length < 1:
      raise FlagError(f"--max_qa_length={max_qa_length}: must be at least 1")
    if truncation not in TRUNCATIONS:
      raise FlagError(f"RACE truncation must be one of {TRUNCATIONS}, got {truncation!r}")
    self.tokenizer, self.max_seq_length = tokenizer, max_seq_length
    self.max_qa_length, self.truncation = max_qa_length, truncation
    self._limit = min(max_qa_length, max_seq_length - 3)
    self._cls, self._sep = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    self._context: Tuple[Optional[str], List[int]] = (None, [])

  def _ids(self, tokens: Sequence[str]) -> List[int]:
    return self.tokenizer.convert_tokens_to_ids(tokens)

  def context_ids(self, context: str) -> List[int]:
    if self._context[0] != context:
      self._context = (context, self._ids(self.tokenizer.tokenize(context)))
    return self._context[1]

  def ending_ids(self, question: str, option: str) -> Tuple[List[int], bool, bool]:
    """`(ids, truncated, option_cut)` of one ending after the `max_qa_length` truncation.

    Only an ending that is too long is also tokenized piecewise (question parts, option) to
    know which tokens are the option's; on the 15 real files the pieces equal the whole-string
    tokens for all 244 endings (a blank glued to letters, as in `(_)`, could differ at its
    edges). `keep_option` packs those piecewise tokens; `original` the whole-string ones.
    `option_cut` is set when any option token is cut (with two blanks, either copy).
    """
    full = self.tokenizer.tokenize(make_ending(question, option))
    limit = self._limit
    if len(full) <= limit:
      return self._ids(full), False, False
    tokens: List[str] = []
    is_option: List[bool] = []
    for text, tag in _ending_segments(question, option):
      pieces = self.tokenizer.tokenize(text)
      tokens += pieces
      is_option += [tag] * len(pieces)
    if self.truncation == "original":  # the last `limit` tokens
      return self._ids(full[-limit:]), True, any(is_option[:len(full) - limit])
    excess = len(tokens) - limit
    kept = []
    for token, tag in zip(tokens, is_option):
      if not tag and excess > 0:
        excess -= 1  # a question token, from the front
      else:
        kept.append(token)
    return self._ids(kept[:limit]), True, len(kept) > limit

  def convert(self, example: RaceExample) -> RaceFeature:
    length = self.max_seq_length
    context = self.context_ids(example.context_sentence)
    feature = RaceFeature([], [], [], example.label, [], [], [], [])
    for option in example.options:
      ending, truncated, option_cut = self.ending_ids(example.question, option)
      room = length - 3 - len(ending)
      ctx = context[:room] if len(context) > room else context
      ids = [self._cls] + ctx + [self._sep] + ending + [self._sep]
      pad = [0] * (length - len(ids))
      feature.input_ids.append(ids + pad)
      feature.input_mask.append([1] * len(ids) + pad)
      feature.segment_ids.append([0] * (len(ctx) + 2) + [1] * (len(ending) + 1) + pad)
      feature.lengths.append(len(ids))
      feature.ending_truncated.append(truncated)
      feature.option_cut.append(option_cut)
      feature.context_truncated.append(len(ctx) < len(context))
    return feature


def convert_race_example(example: RaceExample, tokenizer: tokenization.FullTokenizer,
                    max_seq_length: int, max_qa_length: int,
                    truncation: str = "original") -> RaceFeature:
  """One question's features (see `RaceFeatureConverter` to convert many)."""
  return RaceFeatureConverter(tokenizer, max_seq_length, max_qa_length,
                              truncation).convert(example)


def truncation_report(examples: Sequence[RaceExample], tokenizer: tokenization.FullTokenizer,
                      max_seq_length: int, max_qa_length: int) -> Dict[str, Any]:
  """How often each truncation cuts the ending, the option and the context, on `examples`."""
  report: Dict[str, Any] = {"max_seq_length": max_seq_length, "max_qa_length": max_qa_length,
                            "questions": len(examples), "choices": NUM_CHOICES * len(examples)}
  for mode in TRUNCATIONS:
    converter = RaceFeatureConverter(tokenizer, max_seq_length, max_qa_length, mode)
    counts = dict.fromkeys(("endings_truncated", "option_cut", "questions_with_option_cut",
                            "questions_with_identical_choices", "context_truncated"), 0)
    for example in examples:
      converter.convert(example).count_into(counts)
    report[mode] = counts
  return report


def record_schema(max_seq_length: int) -> Dict[str, Tuple[str, int]]:
  """The cache's features: name -> (dtype, length), the original's TFRecord layout."""
  flat = NUM_CHOICES * max_seq_length
  return {"input_ids": ("int64", flat), "input_mask": ("int64", flat),
          "segment_ids": ("int64", flat), "label_ids": ("int64", 1),
          "is_real_example": ("int64", 1)}


def encode_feature(feature: RaceFeature) -> bytes:
  """The serialized `tf.train.Example` of one question, choices flattened choice-major."""
  flat = {name: ("int64", [i for row in getattr(feature, name) for i in row])
          for name in ("input_ids", "input_mask", "segment_ids")}
  return records_lib.encode_example(dict(flat, label_ids=("int64", [feature.label_id]),
                                         is_real_example=("int64", [1])))


# -------------------------------------------------------------------------------------- cache
def build_race_cache(data_dir: str, split: str, tokenizer_spec: Any, max_seq_length: int,
                     max_qa_length: int, levels: Sequence[str] = LEVELS,
                     truncation: str = "original", cache_dir: Optional[str] = None,
                     path_override: Optional[str] = None) -> Tuple[str, Dict[str, Any]]:
  """The split's features as a `FeatureCache` (reused when nothing changed); `(path, metadata)`.

  `tokenizer_spec`: an `albert.tokenization.TokenizerSpec` (spm_model_file, vocab_file,
  do_lower_case). `path_override` gives the cache a fixed file name (the original's
  `--train_file` / `--eval_file`); its metadata still decides whether it is reused.
  Metadata keys: `num_questions`, per question `question_ids`, `levels`, `label_ids`,
  `lengths` ([C] unpadded lengths), plus `level_counts`, `label_list`, `num_choices`,
  `settings`, `input_files`, `truncation_stats` (this truncation's counts).
  """
  levels = _check_levels(levels)
  use_spm = bool(tokenizer_spec.spm_model_file)
  files = input_files(data_dir, split, levels)
  settings = {"task": "race", "split": split, "do_lower_case": bool(tokenizer_spec.do_lower_case),
              "use_spm": use_spm, "max_seq_length": int(max_seq_length),
              "max_qa_length": int(max_qa_length), "levels": list(levels),
              "truncation": truncation,
              "files": [f"{level}/{os.path.basename(path)}" for level, path in files]}
  model_file = tokenizer_spec.spm_model_file if use_spm else tokenizer_spec.vocab_file
  key = cache_lib.fingerprint([path for _, path in files], settings, [model_file])
  if not cache_dir and not path_override:
    raise FlagError("build_race_cache needs a cache_dir (or a fixed path_override)")
  cache = cache_lib.FeatureCache(cache_dir or os.path.dirname(path_override), f"race_{split}",
                                 key, path_override=path_override)
  metadata = cache.metadata()
  if metadata is not None:
    return cache.path, metadata

  examples = read_examples(data_dir, split, levels, tokenizer_spec.do_lower_case, use_spm)
  converter = RaceFeatureConverter(tokenizer_spec.build(), max_seq_length, max_qa_length,
                                   truncation)
  # `lengths` and `stats` are filled while the records stream out; the metadata is written last.
  lengths: List[List[int]] = []
  stats = dict.fromkeys(("endings_truncated", "option_cut", "questions_with_identical_choices",
                         "context_truncated"), 0)

  def records():
    for example in examples:
      feature = converter.convert(example)
      lengths.append(feature.lengths)
      feature.count_into(stats)
      yield encode_feature(feature)

  if cache_dir:
    from albert import files as files_lib  # pylint: disable=g-import-not-at-top
    files_lib.make_dirs(cache_dir)
  metadata = cache.write(records(), dict(
      task="race", split=split, num_questions=len(examples),
      question_ids=[e.question_id for e in examples], levels=[e.level for e in examples],
      label_ids=[e.label for e in examples], lengths=lengths,
      level_counts={level: sum(e.level == level for e in examples) for level in levels},
      label_list=list(LABELS), num_choices=NUM_CHOICES, settings=settings,
      input_files=[path for _, path in files], truncation_stats=stats))
  return cache.path, metadata


# ------------------------------------------------------------------------------------- scores
def race_accuracy(predictions: Any, labels: Any, levels: Sequence[str]) -> Dict[str, float]:
  """`eval_accuracy` over all questions, `middle_accuracy` and `high_accuracy` per level.

  `predictions`: predicted choice indices [Q], or scores / probabilities [Q, C] (argmax).
  A level without questions (a `--high_only` run) has no key.
  """
  predictions = np.asarray(predictions)
  if predictions.ndim == 2:
    predictions = predictions.argmax(axis=-1)
  labels = np.asarray(labels)
  levels = np.asarray(levels)
  if predictions.ndim != 1 or predictions.shape != labels.shape or levels.shape != labels.shape:
    raise DataError(f"race_accuracy: predictions {predictions.shape}, labels {labels.shape} and "
                    f"levels {levels.shape} must have one entry per question")
  if not labels.size:
    raise DataError("race_accuracy: no questions to score")
  unknown = sorted(set(levels.tolist()) - set(LEVELS))
  if unknown:
    raise DataError(f"race_accuracy: unknown levels {unknown}, expected {LEVELS}")
  correct = predictions == labels
  metrics = {"eval_accuracy": float(correct.mean())}
  for level in LEVELS:
    chosen = levels == level
    if chosen.any():
      metrics[f"{level}_accuracy"] = float(correct[chosen].mean())
  return metrics


def write_predictions(path: str, question_ids: Sequence[str], probabilities: Any) -> str:
  """`{question_id: {"prediction": letter, "probabilities": [C]}}` as JSON, atomically."""
  from albert import files as files_lib  # pylint: disable=g-import-not-at-top
  probabilities = np.asarray(probabilities, dtype=np.float64)
  if probabilities.shape != (len(question_ids), NUM_CHOICES):
    raise DataError(f"write_predictions: probabilities {probabilities.shape}, expected "
                    f"({len(question_ids)}, {NUM_CHOICES}) for {len(question_ids)} questions")
  if len(set(question_ids)) != len(question_ids):
    raise DataError("write_predictions: question ids repeat")
  out = {qid: {"prediction": LABELS[int(row.argmax())], "probabilities": [float(p) for p in row]}
         for qid, row in zip(question_ids, probabilities)}
  return files_lib.write_text(path, json.dumps(out, indent=1) + "\n")
