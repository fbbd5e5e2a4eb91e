"""Your own data (TF-free): CSV, TSV and JSON Lines files -> a custom task's row and examples.

`run_classifier --task_name=custom` runs a row of the GLUE task table (`tasks.TaskSpec`) that
`custom_spec` builds for the run: its `source` (`tasks.CustomSource`) names the files and the
columns, its labels are the run's label list (`--labels`, else the training file's labels,
sorted), its `task_type` is classification (softmax over the labels, as SST-2), regression (one
output and squared error, as STS-B) or multi_label (one sigmoid per label). `CustomProcessor`
is the row's reader: it gives the `RawRow`s and `InputExample`s of GLUE's processors, so the
features, the cache, the model, the metrics and the export are GLUE's.

Formats (from the extension, `--input_format` overrides):
* `.csv`: RFC 4180 (quoted fields may hold commas, doubled quotes and line breaks); a header
  row names the columns; a row's line is the line it starts on.
* `.tsv`: tab-separated, quotes are literal (as in GLUE's files), a header row.
* `.jsonl`: one JSON object per line (blank lines are skipped); a multi-label row's labels are
  a list; numbers are accepted as labels and scores.

Columns: `text_a` (default: the first of sentence, text, sentence1, question found), `text_b`
(default: sentence2 where a file has it), `label` (default `label`; a test file may lack it),
`id` (optional; carried into the predictions; default: the row's line number). Multi-label
CSV/TSV cells hold the labels separated by `label_separator` (`|`).

Every bad input is a `DataError` / `InputError` / `FlagError` of one line naming the file, the
line and the column: a missing column (listing those found), an empty text, a label outside
the list, a regression label that is not a finite number, a multi-label row without a label,
malformed CSV quoting, invalid JSON, bytes that are not UTF-8, a file without rows.
`CustomProcessor.check_file` reads a whole file that way before anything is written.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from albert import files
from albert.data.glue import reader
from albert.data.glue.tasks import CustomSource, Layout, TaskSpec, TASKS
from albert.errors import DataError, FlagError, InputError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"}
TASK_TYPES = ("classification", "regression", "multi_label")
TEXT_A_COLUMNS = ("sentence", "text", "sentence1", "question")
TEXT_B_COLUMN = "sentence2"
DEFAULT_BEST = {"classification": "eval_accuracy", "regression": "pearson",
                "multi_label": "micro_f1"}
FILE_FLAGS = {"train": "--train_file", "dev": "--dev_file", "test": "--test_file"}
LABELS_FILE = "labels.txt"  # in the run directory: the label list, one a line


def file_format(path: str, input_format: Optional[str] = None) -> str:
  """csv, tsv or jsonl: `input_format` when given, else the file's extension."""
  if input_format:
    fmt = input_format.strip().lower().lstrip(".")
    if fmt not in FORMATS.values():
      raise FlagError(f"--input_format={input_format}: expected one of csv, tsv, jsonl")
    return fmt
  ext = os.path.splitext(path)[1].lower()
  if ext not in FORMATS:
    raise FlagError(f"{path}: cannot tell the format from the extension {ext or '(none)'!r}; "
                    "name the file .csv, .tsv or .jsonl, or give --input_format")
  return FORMATS[ext]


class Table:
  """The rows of one file as `(line, {column: value})`; `columns` is known after the first row
  (the header of CSV/TSV, the first object's keys in JSON Lines)."""

  def __init__(self, path: str, fmt: str):
    self.path, self.fmt = path, fmt
    self.columns: Optional[List[str]] = None

  def rows(self) -> Iterator[Tuple[int, Dict[str, Any]]]:
    try:
      yield from (self._json_rows() if self.fmt == "jsonl" else self._delimited_rows())
    except UnicodeDecodeError as error:
      raise DataError(f"{self.path}, line {reader.first_bad_utf8_line(self.path)}: not valid "
                      f"UTF-8 ({error.reason}); save the file as UTF-8 text") from None

  def _delimited_rows(self):
    csv_format = self.fmt == "csv"
    # CSV: newline="" lets quoted fields hold line breaks (RFC 4180); TSV: lines end at "\n"
    # and quotes are literal, as GLUE's reader reads its files.
    with files.open_file(self.path, encoding="utf-8-sig",
                         newline="" if csv_format else "\n") as f:
      rows = (csv.reader(f, strict=True) if csv_format else
              csv.reader(f, delimiter="\t", quotechar=None))
      what = "comma-separated fields" if csv_format else "tab-separated columns"
      last = 0
      try:
        for fields in rows:
          line, last = last + 1, rows.line_num
          if not csv_format and fields:
            fields[-1] = fields[-1].rstrip("\r")
          if not fields or fields == [""]:
            continue  # a blank line
          if self.columns is None:
            self._header([c.strip() for c in fields], line)
            continue
          if len(fields) != len(self.columns):
            raise DataError(f"{self.path}, line {line}: {len(fields)} {what}, expected "
                            f"{len(self.columns)} as in the header ({', '.join(self.columns)})")
          yield line, dict(zip(self.columns, fields))
      except csv.Error as error:
        raise DataError(f"{self.path}, line {rows.line_num}: malformed CSV ({error}); a field "
                        "that holds commas, quotes or line breaks is quoted \"...\" with its "
                        "quotes doubled (RFC 4180)") from None

  def _header(self, columns: List[str], line: int) -> None:
    seen = set()
    for column in columns:
      if not column or column in seen:
        raise DataError(f"{self.path}, line {line} (header): "
                        f"{'an empty' if not column else 'a repeated'} column name "
                        f"{column!r}; the first row names the columns")
      seen.add(column)
    self.columns = columns

  def _json_rows(self):
    with files.open_file(self.path, encoding="utf-8-sig") as f:
      for number, text in enumerate(f, start=1):
        if not text.strip():
          continue
        try:
          record = json.loads(text)
        except json.JSONDecodeError as error:
          raise DataError(f"{self.path}, line {number}, column {error.colno}: invalid JSON "
                          f"({error.msg}); JSON Lines hold one object per line") from None
        if not isinstance(record, dict):
          raise DataError(f"{self.path}, line {number}: a JSON {type(record).__name__}, "
                          "expected an object such as {\"text\": \"...\", \"label\": \"...\"}")
        if self.columns is None:
          self.columns = list(record)
        yield number, record


@dataclasses.dataclass(frozen=True)
class Columns:
  """The columns one file is read by."""
  text_a: str
  text_b: Optional[str]
  label: Optional[str]  # None: a test file without labels
  id: Optional[str]


def resolve_columns(source: CustomSource, found: Sequence[str], path: str, split: str
                    ) -> Columns:
  """The columns of a file with the columns `found`, or an error listing them."""
  shown = ", ".join(found)

  def need(column: str, flag: str) -> str:
    if column not in found:
      raise InputError(f"{path}: no column {column!r} ({flag}); the columns found: {shown}")
    return column

  if source.text_a_column:
    text_a = need(source.text_a_column, "--text_a_column")
  else:
    text_a = next((c for c in TEXT_A_COLUMNS if c in found), None)
    if text_a is None:
      raise InputError(f"{path}: no text column: expected one of {', '.join(TEXT_A_COLUMNS)} "
                       f"or --text_a_column; the columns found: {shown}")
  if source.text_b_column:
    text_b = need(source.text_b_column, "--text_b_column")
  else:
    text_b = TEXT_B_COLUMN if TEXT_B_COLUMN in found and text_a != TEXT_B_COLUMN else None
  if split == "test":
    label = None  # predicted, not read
  else:
    label = need(source.label_column, "--label_column")
  identifier = source.id_column if source.id_column in found else None
  if source.id_column and split == "test" and identifier is None:
    need(source.id_column, "--id_column")
  return Columns(text_a, text_b, label, identifier)


class CustomProcessor(reader.Processor):
  """The reader of a custom task's row (`TaskSpec.source`); GLUE's `Processor` otherwise."""

  @property
  def source(self) -> CustomSource:
    return self.spec.source

  def file_path(self, data_dir: str, split: str) -> str:
    del data_dir
    path = self.source.file(split)
    if not path:
      raise FlagError(f"{FILE_FLAGS[split]} is required with --task_name=custom for the "
                      f"{dict(train='training', dev='evaluation', test='prediction')[split]}")
    if not files.isfile(path):
      raise InputError(f"{FILE_FLAGS[split]}={path}: no such file")
    return path

  def raw_rows(self, path: str, split: str) -> Iterator[reader.RawRow]:
    """The rows of `path`, their texts and labels checked (labels against the list when the
    list is known), not yet processed."""
    table = Table(path, file_format(path, self.source.input_format))
    columns: Optional[Columns] = None
    for line, record in table.rows():
      if columns is None:
        columns = resolve_columns(self.source, table.columns, path, split)
      at = lambda column: f"{path}, line {line}, column {column!r}"  # noqa: E731

      def value(column: str) -> Any:
        if column not in record:
          raise DataError(f"{at(column)}: missing (the row's columns: {', '.join(record)})")
        return record[column]

      text_a = _text(value(columns.text_a), at(columns.text_a))
      text_b = (None if columns.text_b is None else
                _text(value(columns.text_b), at(columns.text_b)))
      label = None
      if columns.label is not None:
        label = self._label(value(columns.label), at(columns.label))
      guid = str(value(columns.id)) if columns.id else str(line)
      yield reader.RawRow(line, guid, text_a, text_b, label)

  def _label(self, raw: Any, where: str) -> Union[str, Tuple[str, ...]]:
    spec = self.spec
    if spec.is_regression:
      score = math.nan
      if isinstance(raw, (int, float, str)) and not isinstance(raw, bool):
        try:
          score = float(raw)
        except ValueError:
          pass
      if not math.isfinite(score):
        raise DataError(f"{where}: regression label {raw!r} is not a finite number")
      return repr(score)
    if spec.multi_label:
      if isinstance(raw, list):
        names = [_scalar(v, where) for v in raw]
      else:
        names = _scalar(raw, where).split(self.source.label_separator)
      names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
      if not names:
        how = ("a JSON list" if isinstance(raw, list) else
               f"separated by {self.source.label_separator!r}")
        raise DataError(f"{where}: no label (a multi-label row needs at least one; {how})")
    else:
      names = [_scalar(raw, where).strip()]
      if not names[0]:
        raise DataError(f"{where}: no label")
    if spec.labels:
      for name in names:
        if name not in spec.labels:
          raise DataError(f"{where}: label {name!r} is not one of the task's labels "
                          f"({', '.join(spec.labels)}: --labels, else the training file's)")
    return tuple(names) if spec.multi_label else names[0]

  def check_file(self, path: str, split: str) -> int:
    """Reads and checks every row of `path`; returns the count; a file without rows is an
    error naming it."""
    count = sum(1 for _ in self.raw_rows(path, split))
    if not count:
      what = "the file is empty" if os.path.getsize(path) == 0 else "no row after the header" \
          if file_format(path, self.source.input_format) != "jsonl" else "no JSON object"
      raise InputError(f"{path}: no rows ({what}; {FILE_FLAGS[split]})")
    return count

  def check_has_example(self, path: str, split: str) -> None:
    self.check_file(path, split)

  def make_example(self, row: reader.RawRow, split: str, path: str) -> reader.InputExample:
    del split, path
    text = self._text
    spec = self.spec
    if row.label is None:  # a test row: a dummy label, as GLUE's test sets
      label = 0.0 if spec.is_regression else () if spec.multi_label else spec.labels[0]
    elif spec.is_regression:
      label = float(row.label)
    else:
      label = row.label
    return reader.InputExample(guid=row.guid, text_a=text(row.text_a),
                               text_b=None if row.text_b is None else text(row.text_b),
                               label=label)


def _scalar(raw: Any, where: str) -> str:
  if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
    raise DataError(f"{where}: label {raw!r} is not a string or a number")
  return str(raw)


def _text(raw: Any, where: str) -> str:
  if raw is None:
    raw = ""
  if not isinstance(raw, str):
    raise DataError(f"{where}: expected a text, got {json.dumps(raw)}")
  if not raw.strip():
    raise DataError(f"{where}: empty text")
  return raw


# ----------------------------------------------------------------------------- the task row
def scores_of(task_type: str, num_labels: int) -> Tuple[str, ...]:
  """The eval_results keys of a custom task."""
  if task_type == "regression":
    return TASKS["sts-b"].scores
  if task_type == "multi_label":
    return ("micro_f1", "macro_f1", "subset_accuracy", "eval_loss")
  return ("eval_accuracy", "eval_loss", "macro_f1") + (("f1",) if num_labels == 2 else ()) + (
      "matthew_corr",)


def training_labels(source: CustomSource, task_type: str) -> List[str]:
  """The sorted labels of the training file (`--train_file`)."""
  spec = _task_row(source, task_type, (), "")
  processor = CustomProcessor(spec)
  path = processor.file_path("", "train")
  found = set()
  for row in processor.raw_rows(path, "train"):
    found.update(row.label if isinstance(row.label, tuple) else (row.label,))
  return sorted(found)


def _task_row(source, task_type, labels, metric) -> TaskSpec:
  layouts = {split: Layout(path, 0, 0, None, None) for split, path in source.files}
  return TaskSpec("custom", "CustomProcessor", "", tuple(labels), layouts, family="custom",
                  submission_file="", test_rows=0, metric=metric,
                  scores=scores_of(task_type, len(labels)), task_type=task_type, source=source)


def custom_spec(source: CustomSource, task_type: str = "classification",
                labels: Optional[Sequence[str]] = None, best_metric: Optional[str] = None
                ) -> TaskSpec:
  """The row of a custom task: its label list (`labels`, else the training file's, sorted),
  its metrics and the key that picks `model.ckpt-best` (`best_metric`, else the task type's)."""
  if task_type not in TASK_TYPES:
    raise FlagError(f"--task_type={task_type}: expected one of {', '.join(TASK_TYPES)}")
  if task_type == "regression":
    if labels:
      raise FlagError("--labels is for classification and multi_label tasks; a regression "
                      "task has one output (its label column holds numbers)")
    labels = (None,)
  elif labels:
    labels = tuple(labels)
    bad = [l for l in labels if not l or l != l.strip() or labels.count(l) > 1]
    if bad:
      raise FlagError(f"--labels={','.join(labels)}: label {bad[0]!r} is empty, padded or "
                      "repeated")
  elif source.file("train"):
    labels = tuple(training_labels(source, task_type))
  else:
    raise FlagError("--task_name=custom needs its label list: --labels, or --train_file, or "
                    f"an --output_dir whose {LABELS_FILE} a training run wrote")
  if task_type == "classification" and len(labels) < 2:
    raise InputError(f"a classification task needs at least two labels, found "
                     f"{', '.join(labels)} ({source.file('train') or '--labels'}); "
                     "use --task_type=regression for scores")
  metric = best_metric or DEFAULT_BEST[task_type]
  scores = scores_of(task_type, len(labels))
  if metric not in scores:
    raise FlagError(f"--best_metric={metric}: a {task_type} task reports "
                    f"{', '.join(scores)}")
  return _task_row(source, task_type, labels, metric)


def processor_for(task: Union[str, TaskSpec], do_lower_case: bool = True,
                  use_spm: bool = True) -> reader.Processor:
  """The processor of a task name (`reader.get_processor`) or of a row (a custom task's row
  gets a `CustomProcessor`)."""
  if isinstance(task, str):
    return reader.get_processor(task, do_lower_case, use_spm)
  if task.source is not None:
    return CustomProcessor(task, do_lower_case, use_spm)
  return reader.Processor(task, do_lower_case, use_spm)


def read_labels(path: str) -> Optional[List[str]]:
  """The label list of a run directory's labels.txt (None when there is none)."""
  if not files.isfile(path):
    return None
  with files.open_file(path, encoding="utf-8") as f:
    return [line.rstrip("\n") for line in f if line.rstrip("\n")]
