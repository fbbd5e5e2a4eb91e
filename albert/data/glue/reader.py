"""GLUE: the official TSV files -> the original's examples -> the original's features (TF-free).

This module owns what `run_classifier.py` of the original release reads and how it turns a row
into features:

* `get_processor(task_name)`: the processors of the original's `run_classifier.main` under the
  names it accepts (`cola, mnli, mismnli, mrpc, rte, sst-2, sts-b, qqp, qnli, wnli`, any case),
  plus `ax` (the diagnostic set, which the original has a processor for but does not map) and the
  alias `mnli-mm` for `mismnli`. A processor reads `<data_dir>/<task dir>/<file>` of the GLUE
  root as written by GLUE's download script (`SST-2/train.tsv`, `MNLI/dev_matched.tsv`,
  `diagnostic/diagnostic.tsv`, ...) and gives exactly the original's `(guid, text_a, text_b,
  label)`: `csv.reader(delimiter="\\t", quotechar=None)` (quotes are literal), lines split at
  "\\n" only (as `tf.gfile` reads them), CoLA train/dev keep line 0 (they have no header), every
  other file skips it; texts, processed guids and string labels go through
  `preprocess_text(lower=do_lower_case)`; test labels are the original's dummies (`"0"`,
  `"entailment"`, `"contradiction"`, int 0 for STS-B); STS-B labels are floats and its label
  list is `[None]` (one output).
* Where the original indexed blindly, a bad line is an error naming the file and the line: a
  wrong number of columns (every official file has the header's count on every line), a label
  outside the task's labels, an STS-B score that is not a finite number, text that is not UTF-8;
  a file without any example (0 bytes, or only its header) is an error naming it
  (`check_has_example`, which the classifier task runs before anything is written).
  The one known-ragged official file, QQP's train set (rows with missing fields, which the
  original skipped through an `IndexError`), keeps the original's behaviour for QQP train/dev:
  short rows are skipped, counted (`processor.skipped`) and reported.
* `convert_example`: the original's `convert_single_example`: `[CLS] A [SEP] B [SEP]` (an empty
  text_b makes a single sentence), its `_truncate_seq_pair` (pop from the end of the longer
  list, from B when equal; total L - 3), single sentences cut to L - 2, segment ids 1 from B
  through the last `[SEP]`, zero padding, the label's index (a float for STS-B),
  `is_real_example` 1, plus the unpadded length. `FeatureConverter` computes the same features
  faster (batched SentencePiece calls) and serializes them as the original's `tf.train.Example`
  (`input_ids, input_mask, segment_ids, label_ids, is_real_example`, int64 except STS-B's float
  label), byte for byte what `albert.data.records.encode_example` writes.

The parallel, cached conversion of a whole split is in `glue_features.py`.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import struct
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from albert import tokenization
from albert.data import records as records_lib
from albert.errors import DataError, FlagError, InputError

SPLITS = ("train", "dev", "test")
Label = Union[str, float, int, None]

_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")
_NLI3 = ("contradiction", "entailment", "neutral")


@dataclasses.dataclass
class InputExample:
  """One example, as the original's `InputExample`."""
  guid: str
  text_a: str
  text_b: Optional[str] = None
  label: Label = None


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where one split's file keeps each field (column indices; -1 = the last column).

  `guid_column` None means the original's `"<split>-<line index>"`; `label_column` None means a
  test split with the dummy `test_label`.
  """
  file: str
  columns: int  # tab-separated fields on every line (the header's count)
  text_a: int
  text_b: Optional[int]
  label_column: Optional[int]
  guid_column: Optional[int] = 0
  process_guid: bool = True
  has_header: bool = True
  test_label: Label = None


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """One GLUE task: the original's processor, as data."""
  name: str  # the name run_classifier uses (lower case)
  processor: str  # the original's class name
  task_dir: str
  labels: Tuple[Optional[str], ...]
  layouts: Dict[str, Layout]
  family: str  # tasks of one family read the same train file into the same features
  ragged_skip: Tuple[str, ...] = ()  # splits whose short rows are skipped, as the original

  @property
  def is_regression(self) -> bool:
    return self.labels == (None,)


def _pair(file: str, columns: int, a: int, b: int, test_label: Label = None,
          label: Optional[int] = -1, guid: Optional[int] = 0, process_guid: bool = True,
          header: bool = True) -> Layout:
  return Layout(file, columns, a, b, None if test_label is not None else label, guid,
                process_guid, header, test_label)


def _mnli(name: str, processor: str, dev: str, test: str) -> TaskSpec:
  return TaskSpec(name, processor, "MNLI", _NLI3, {
      "train": _pair("train.tsv", 12, 8, 9),
      "dev": _pair(dev, 16, 8, 9),
      "test": _pair(test, 10, 8, 9, test_label="contradiction"),
  }, family="mnli")


def _nli_pair(name: str, processor: str, task_dir: str, labels, test_label: str) -> TaskSpec:
  return TaskSpec(name, processor, task_dir, labels, {
      "train": _pair("train.tsv", 4, 1, 2),
      "dev": _pair("dev.tsv", 4, 1, 2),
      "test": _pair("test.tsv", 3, 1, 2, test_label=test_label),
  }, family=name)


TASKS: Dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec("cola", "ColaProcessor", "CoLA", _BINARY, {
        "train": Layout("train.tsv", 4, 3, None, 1, guid_column=None, has_header=False),
        "dev": Layout("dev.tsv", 4, 3, None, 1, guid_column=None, has_header=False),
        "test": Layout("test.tsv", 2, 1, None, None, process_guid=False, test_label="0"),
    }, family="cola"),
    _mnli("mnli", "MnliProcessor", "dev_matched.tsv", "test_matched.tsv"),
    _mnli("mismnli", "MisMnliProcessor", "dev_mismatched.tsv", "test_mismatched.tsv"),
    TaskSpec("mrpc", "MrpcProcessor", "MRPC", _BINARY, {
        "train": _pair("train.tsv", 5, 3, 4, label=0, guid=None),
        "dev": _pair("dev.tsv", 5, 3, 4, label=0, guid=None),
        "test": _pair("test.tsv", 5, 3, 4, test_label="0", process_guid=False),
    }, family="mrpc"),
    _nli_pair("rte", "RteProcessor", "RTE", _NLI2, "entailment"),
    TaskSpec("sst-2", "Sst2Processor", "SST-2", _BINARY, {
        "train": Layout("train.tsv", 2, 0, None, 1, guid_column=None),
        "dev": Layout("dev.tsv", 2, 0, None, 1, guid_column=None),
        "test": Layout("test.tsv", 2, 1, None, None, test_label="0"),
    }, family="sst-2"),
    TaskSpec("sts-b", "StsbProcessor", "STS-B", (None,), {
        "train": _pair("train.tsv", 10, 7, 8),
        "dev": _pair("dev.tsv", 10, 7, 8),
        "test": _pair("test.tsv", 9, 7, 8, test_label=0),
    }, family="sts-b"),
    TaskSpec("qqp", "QqpProcessor", "QQP", _BINARY, {
        "train": _pair("train.tsv", 6, 3, 4, label=5, process_guid=False),
        "dev": _pair("dev.tsv", 6, 3, 4, label=5, process_guid=False),
        "test": _pair("test.tsv", 3, 1, 2, test_label="0", process_guid=False),
    }, family="qqp", ragged_skip=("train", "dev")),
    _nli_pair("qnli", "QnliProcessor", "QNLI", _NLI2, "entailment"),
    _nli_pair("wnli", "WnliProcessor", "WNLI", _BINARY, "0"),
    TaskSpec("ax", "AXProcessor", "diagnostic", _NLI3, {
        "test": _pair("diagnostic.tsv", 3, 1, 2, test_label="contradiction"),
    }, family="ax"),
)}

ALIASES = {"mnli-mm": "mismnli", "mnli-m": "mnli"}


def canonical_task_name(task_name: str) -> str:
  """The original's (lower-case) name of a task; an error listing the known names otherwise."""
  name = (task_name or "").strip().lower()
  name = ALIASES.get(name, name)
  if name not in TASKS:
    known = []
    for task in TASKS:
      aliases = [alias for alias, target in ALIASES.items() if target == task]
      known.append(f"{task} (or {', '.join(aliases)})" if aliases else task)
    raise FlagError(f"unknown GLUE task {task_name!r} (--task_name); known tasks: "
                    f"{', '.join(known)}; any case")
  return name


def text_function(do_lower_case: bool = True, use_spm: bool = True) -> Callable[[str], str]:
  """The original's `process_text`: `preprocess_text(lower=...)` with a SentencePiece model.

  ASCII strings take a shortcut with the same result (NFKD and the accent filter leave ASCII
  unchanged); others go through `tokenization.preprocess_text`.
  """
  if not use_spm:
    return tokenization.convert_to_unicode

  def process(text: str) -> str:
    if text.isascii():
      text = " ".join(text.split())
      return text.lower() if do_lower_case else text
    return tokenization.preprocess_text(text, lower=do_lower_case)
  return process


@dataclasses.dataclass
class RawRow:
  """The fields of one line that an example needs, not yet processed (cheap to send)."""
  line: int  # 1-based line number in the file
  guid: str
  text_a: str
  text_b: Optional[str]
  label: Optional[str]


class Processor:
  """Reads one task's splits; `skipped` counts the ragged rows of the last read (QQP only)."""

  def __init__(self, spec: TaskSpec, do_lower_case: bool = True, use_spm: bool = True):
    self.spec = spec
    self.do_lower_case = do_lower_case
    self.use_spm = use_spm
    self.skipped = 0
    self.skipped_lines: List[int] = []
    self._text = text_function(do_lower_case, use_spm)

  name = property(lambda self: self.spec.name)
  task_dir = property(lambda self: self.spec.task_dir)
  is_regression = property(lambda self: self.spec.is_regression)
  splits = property(lambda self: tuple(self.spec.layouts))

  @property
  def labels(self) -> List[Optional[str]]:
    """The original's `get_labels()` (`[None]` for STS-B: one regression output)."""
    return list(self.spec.labels)

  @property
  def num_labels(self) -> int:
    return len(self.spec.labels)

  def layout(self, split: str) -> Layout:
    if split not in SPLITS:
      raise FlagError(f"GLUE split {split!r}: expected one of {', '.join(SPLITS)}")
    if split not in self.spec.layouts:
      raise InputError(f"GLUE task {self.name!r} has no {split} split (only "
                       f"{', '.join(self.spec.layouts)})")
    return self.spec.layouts[split]

  def file_path(self, data_dir: str, split: str) -> str:
    """`<data_dir>/<task dir>/<file>`; an error saying which layout is expected if missing."""
    layout = self.layout(split)
    relative = os.path.join(self.task_dir, layout.file)
    path = os.path.join(data_dir or "", relative)
    if os.path.isfile(path):
      return path
    hint = ""
    if data_dir and os.path.isfile(os.path.join(data_dir, layout.file)):
      hint = (f"; {data_dir} itself holds {layout.file}: --data_dir is the GLUE root, the "
              f"parent of the task folders, not the {self.task_dir} folder")
    elif data_dir and not os.path.isdir(data_dir):
      hint = f"; {data_dir} is not a directory"
    raise InputError(
        f"GLUE {self.name} {split} file not found: {path} (--data_dir={data_dir}). --data_dir "
        f"must be the GLUE root with the official task folders, as GLUE's download script "
        f"writes them ({relative}, e.g. SST-2/train.tsv, MNLI/dev_matched.tsv){hint}")

  # ------------------------------------------------------------------------------- reading
  def raw_rows(self, path: str, split: str) -> Iterator[RawRow]:
    """The needed fields of every line after the header; checks the column count."""
    layout = self.layout(split)
    self.skipped, self.skipped_lines = 0, []
    ragged_ok = split in self.spec.ragged_skip
    reader = None
    try:
      # newline="\n": lines end at "\n" only, as tf.gfile's reader splits them.
      with open(path, encoding="utf-8", newline="\n") as f:
        reader = csv.reader(f, delimiter="\t", quotechar=None)
        for index, fields in enumerate(reader):
          line = reader.line_num  # one line per row: quotes are literal
          if len(fields) != layout.columns:
            if ragged_ok and len(fields) < layout.columns and index > 0:
              self.skipped += 1
              if len(self.skipped_lines) < 20:
                self.skipped_lines.append(line)
              continue
            what = " (header)" if index == 0 and layout.has_header else ""
            raise DataError(f"{path}, line {line}{what}: {len(fields)} tab-separated columns, "
                            f"expected {layout.columns} ({self._expected(split)})")
          if index == 0 and layout.has_header:
            continue
          if layout.guid_column is None:
            guid = f"{split}-{index}"
          else:
            guid = fields[layout.guid_column]
          yield RawRow(line, guid, fields[layout.text_a],
                       None if layout.text_b is None else fields[layout.text_b],
                       None if layout.label_column is None else fields[layout.label_column])
    except UnicodeDecodeError as error:
      raise DataError(f"{path}, line {_first_bad_utf8_line(path)}: not valid UTF-8 "
                      f"({error.reason}); GLUE files are UTF-8 text") from None
    except csv.Error as error:
      line = reader.line_num if reader is not None else 1
      raise DataError(f"{path}, line {line}: {error}") from None

  def check_has_example(self, path: str, split: str) -> None:
    """An `InputError` naming `path` when it holds no example (0 bytes, or only its header):
    reads up to the first example line (and checks that line's columns)."""
    rows = self.raw_rows(path, split)
    try:
      found = next(rows, None) is not None
    finally:
      rows.close()
    if not found:
      what = ("the file is empty" if os.path.getsize(path) == 0 else
              "no line after the header" if self.layout(split).has_header and not self.skipped
              else "no complete line")
      raise InputError(f"{path}: no example ({what}); expected {self._expected(split)}")

  def _expected(self, split: str) -> str:
    layout = self.spec.layouts[split]
    header = "a header line, then " if layout.has_header else "no header; "
    return f"the official GLUE {self.task_dir}/{layout.file} layout: {header}one example a line"

  def make_example(self, row: RawRow, split: str, path: str) -> InputExample:
    """Processes one row as the original does and checks its label."""
    layout = self.spec.layouts[split]
    text = self._text
    guid = text(row.guid) if (layout.process_guid and layout.guid_column is not None) \
        else row.guid
    text_b = None if row.text_b is None else text(row.text_b)
    if row.label is None:
      label = layout.test_label
    elif self.is_regression:
      label = _score(row.label, path, row.line)
    else:
      label = text(row.label)
      if label not in self.spec.labels:
        raise DataError(f"{path}, line {row.line}: label {row.label!r} is not one of the "
                        f"{self.name} labels ({', '.join(self.spec.labels)})")
    return InputExample(guid=guid, text_a=text(row.text_a), text_b=text_b, label=label)

  def iter_examples(self, data_dir: str, split: str) -> Iterator[InputExample]:
    path = self.file_path(data_dir, split)
    for row in self.raw_rows(path, split):
      yield self.make_example(row, split, path)

  def get_examples(self, data_dir: str, split: str) -> List[InputExample]:
    """The original's `get_{train,dev,test}_examples(data_dir)` for `split`."""
    return list(self.iter_examples(data_dir, split))

  # The original's method names.
  def get_train_examples(self, data_dir: str) -> List[InputExample]:
    return self.get_examples(data_dir, "train")

  def get_dev_examples(self, data_dir: str) -> List[InputExample]:
    return self.get_examples(data_dir, "dev")

  def get_test_examples(self, data_dir: str) -> List[InputExample]:
    return self.get_examples(data_dir, "test")

  def get_labels(self) -> List[Optional[str]]:
    return self.labels


def _first_bad_utf8_line(path: str) -> int:
  with open(path, "rb") as f:
    for number, raw in enumerate(f, start=1):
      try:
        raw.decode("utf-8")
      except UnicodeDecodeError:
        return number
  return 0


def _score(value: str, path: str, line: int) -> float:
  try:
    score = float(value)
  except ValueError:
    score = math.nan
  if not math.isfinite(score):
    raise DataError(f"{path}, line {line}: STS-B score {value!r} is not a number (expected a "
                    "similarity score such as 3.8 in the last column)")
  return score


def get_processor(task_name: str, do_lower_case: bool = True, use_spm: bool = True
                  ) -> Processor:
  """The processor of a task name as `run_classifier --task_name` accepts it (or `ax`)."""
  return Processor(TASKS[canonical_task_name(task_name)], do_lower_case, use_spm)


# ---------------------------------------------------------------------------------- features
FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids", "label_ids", "is_real_example")


def feature_schema(max_seq_length: int, is_regression: bool = False
                   ) -> Dict[str, Tuple[str, int]]:
  """The original's record features: name -> (dtype name, length), for the input pipeline."""
  return {"input_ids": ("int64", max_seq_length), "input_mask": ("int64", max_seq_length),
          "segment_ids": ("int64", max_seq_length),
          "label_ids": ("float32" if is_regression else "int64", 1),
          "is_real_example": ("int64", 1)}


@dataclasses.dataclass
class InputFeatures:
  """The original's `InputFeatures`, plus `length` (tokens before padding)."""
  input_ids: List[int]
  input_mask: List[int]
  segment_ids: List[int]
  label_id: Union[int, float]
  is_real_example: bool = True
  length: int = 0

  def as_record_features(self, is_regression: bool) -> Dict[str, Tuple[str, Sequence]]:
    """`{name: (kind, values)}` for `records.encode_example`, in the original's order."""
    return {"input_ids": ("int64", self.input_ids), "input_mask": ("int64", self.input_mask),
            "segment_ids": ("int64", self.segment_ids),
            "label_ids": ("float32" if is_regression else "int64", [self.label_id]),
            "is_real_example": ("int64", [int(self.is_real_example)])}


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_length: int) -> None:
  """The original's `_truncate_seq_pair`: pops from the longer list (B when equal), in place."""
  while len(tokens_a) + len(tokens_b) > max_length:
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def _assemble(ids_a: List[int], ids_b: Optional[List[int]], cls_id: int, sep_id: int,
              max_seq_length: int) -> Tuple[List[int], int]:
  """Truncated `[CLS] A [SEP] (B [SEP])` ids and the number of segment-0 positions."""
  if ids_b:
    truncate_seq_pair(ids_a, ids_b, max_seq_length - 3)
    ids = [cls_id] + ids_a + [sep_id]
    first = len(ids)
    return ids + ids_b + [sep_id], first
  ids = [cls_id] + ids_a[:max_seq_length - 2] + [sep_id]
  return ids, len(ids)


def label_id(example: InputExample, label_map: Optional[Dict[str, int]]) -> Union[int, float]:
  """The label's index (the original's `label_map[label]`), or the STS-B score as a float."""
  if label_map is None:
    return float(example.label)
  if example.label not in label_map:
    raise DataError(f"example {example.guid!r}: label {example.label!r} is not one of "
                    f"{', '.join(map(str, label_map))}")
  return label_map[example.label]


def _label_map(label_list: Sequence[Optional[str]], is_regression: bool):
  return None if is_regression else {label: i for i, label in enumerate(label_list)}


def convert_example(example: InputExample, label_list: Sequence[Optional[str]],
                    max_seq_length: int, tokenizer: tokenization.FullTokenizer,
                    is_regression: bool = False) -> InputFeatures:
  """The original's `convert_single_example`, through `tokenizer.tokenize` (reference path)."""
  if max_seq_length < 3:
    raise FlagError(f"--max_seq_length={max_seq_length}: needs room for [CLS], [SEP], [SEP]")
  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = tokenizer.tokenize(example.text_b) if example.text_b else None
  if tokens_b:
    truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"] + tokens_b + ["[SEP]"]
    segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
  else:
    tokens = ["[CLS]"] + tokens_a[:max_seq_length - 2] + ["[SEP]"]
    segment_ids = [0] * len(tokens)
  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  length = len(input_ids)
  pad = max_seq_length - length
  return InputFeatures(input_ids=input_ids + [0] * pad, input_mask=[1] * length + [0] * pad,
                       segment_ids=segment_ids + [0] * pad,
                       label_id=label_id(example, _label_map(label_list, is_regression)),
                       is_real_example=True, length=length)


_SMALL_VARINTS = records_lib.varint_table(1 << 14)


def _field(tag: bytes, payload: bytes) -> bytes:
  """A length-delimited protobuf field (tag, varint length, payload)."""
  size = len(payload)
  return tag + (_SMALL_VARINTS[size] if size < 16384 else records_lib.varint(size)) + payload


class FeatureConverter:
  """`convert_example` for many examples at once, and their serialized records.

  With a SentencePiece model the texts of a batch are encoded by one `encode` call; a text with a
  piece that ends in `<digit>,` (the original's re-split quirk) is encoded again by
  `tokenization.encode_ids`, so that ids always equal `convert_tokens_to_ids(tokenize(text))`.
  Records are built from precomputed varints; `encode_features` gives the bytes of
  `records.encode_example(features.as_record_features(...))`.
  """

  def __init__(self, tokenizer: tokenization.FullTokenizer, label_list: Sequence[Optional[str]],
               max_seq_length: int, is_regression: bool = False):
    if max_seq_length < 3:
      raise FlagError(f"--max_seq_length={max_seq_length}: needs room for [CLS], [SEP], [SEP]")
    self.tokenizer = tokenizer
    self.max_seq_length = max_seq_length
    self.is_regression = is_regression
    self.label_map = _label_map(label_list, is_regression)
    self.cls_id, self.sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    self._varints = records_lib.varint_table(max(len(tokenizer.vocab), 128) + 1)
    self._keys = {name: _field(b"\x0a", name.encode()) for name in FEATURE_NAMES}
    sp = tokenizer.sp_model
    self._unk = sp.unk_id() if sp is not None else None

  # ---------------------------------------------------------------------------- tokenizing
  def encode_texts(self, texts: Sequence[str]) -> List[List[int]]:
    """`convert_tokens_to_ids(tokenize(text))` for each text."""
    tok = self.tokenizer
    sp = tok.sp_model
    if sp is None or tok.fix_digit_comma_split:
      return [tok.convert_tokens_to_ids(tok.tokenize(t)) for t in texts]
    vocab, unk = tok.vocab, self._unk
    out = []
    for text, pieces in zip(texts, sp.encode(list(texts), out_type=str, num_threads=1)):
      if "," in "".join(pieces) and any(len(p) > 1 and p[-1] == "," and p[-2].isdigit()
                                        for p in pieces):
        out.append(tokenization.encode_ids(sp, text))
      else:
        out.append([vocab.get(p, unk) for p in pieces])
    return out

  # ------------------------------------------------------------------------------- features
  def features(self, examples: Sequence[InputExample]) -> List[InputFeatures]:
    """`convert_example` of each example."""
    return [self._features(ex, ids_a, ids_b) for ex, ids_a, ids_b in self._ids(examples)]

  def _ids(self, examples: Sequence[InputExample]):
    texts_a = self.encode_texts([ex.text_a for ex in examples])
    pairs = [i for i, ex in enumerate(examples) if ex.text_b]
    texts_b = self.encode_texts([examples[i].text_b for i in pairs])
    ids_b: List[Optional[List[int]]] = [None] * len(examples)
    for i, ids in zip(pairs, texts_b):
      ids_b[i] = ids
    return zip(examples, texts_a, ids_b)

  def _features(self, example, ids_a, ids_b) -> InputFeatures:
    ids, first = _assemble(ids_a, ids_b, self.cls_id, self.sep_id, self.max_seq_length)
    length = len(ids)
    pad = self.max_seq_length - length
    return InputFeatures(ids + [0] * pad, [1] * length + [0] * pad,
                         [0] * first + [1] * (length - first) + [0] * pad,
                         label_id(example, self.label_map), True, length)

  # -------------------------------------------------------------------------------- records
  def records(self, examples: Sequence[InputExample]) -> Tuple[List[bytes], List[int]]:
    """Serialized records of the examples and their unpadded lengths."""
    out, lengths = [], []
    for example, ids_a, ids_b in self._ids(examples):
      ids, first = _assemble(ids_a, ids_b, self.cls_id, self.sep_id, self.max_seq_length)
      out.append(self._encode(ids, first, label_id(example, self.label_map)))
      lengths.append(len(ids))
    return out, lengths

  def encode_features(self, features: InputFeatures) -> bytes:
    """The record of `features` (equal to `records.encode_example` of them)."""
    length = features.length or sum(features.input_mask)
    first = length - sum(features.segment_ids)
    return self._encode(features.input_ids[:length], first, features.label_id)

  def _int64(self, name: str, packed: bytes) -> bytes:
    return _field(b"\x0a", self._keys[name] + _field(b"\x12", _field(b"\x1a",
                                                                     _field(b"\x0a", packed))))

  def _constant_entries(self) -> None:
    """Entries that depend only on the length (mask), the label or nothing (is_real_example)."""
    seq = self.max_seq_length
    self._masks = [self._int64("input_mask", b"\x01" * n + b"\x00" * (seq - n))
                   for n in range(seq + 1)]
    self._zeros = [b"\x00" * n for n in range(seq + 1)]
    self._labels = {} if self.is_regression else {
        i: self._int64("label_ids", self._varints[i]) for i in self.label_map.values()}
    self._real = self._int64("is_real_example", b"\x01")

  def _encode(self, ids: List[int], first: int, label: Union[int, float]) -> bytes:
    if not hasattr(self, "_real"):
      self._constant_entries()
    length = len(ids)
    zeros = self._zeros[self.max_seq_length - length]
    table = self._varints
    if self.is_regression:
      value = _field(b"\x12", _field(b"\x0a", struct.pack("<f", label)))
      label_entry = _field(b"\x0a", self._keys["label_ids"] + _field(b"\x12", value))
    else:
      label_entry = self._labels[label]
    return _field(b"\x0a", b"".join((
        self._int64("input_ids", b"".join([table[i] for i in ids]) + zeros),
        self._masks[length],
        self._int64("segment_ids", b"\x00" * first + b"\x01" * (length - first) + zeros),
        label_entry,
        self._real,
    )))
