"""GLUE: the official TSV files -> the original's examples (TF-free).

This module owns what `run_classifier.py` of the original release reads from a task's files
(the task's row in `tasks.py` says which files and columns):

* `get_processor(task_name)`: the processors of the original's `run_classifier.main` under the
  names it accepts, plus `ax` and the alias `mnli-mm` (`tasks.TASKS`). A processor reads
  `<data_dir>/<task dir>/<file>` of the GLUE root as written by GLUE's download script
  (`SST-2/train.tsv`, `MNLI/dev_matched.tsv`, `diagnostic/diagnostic.tsv`, ...) and gives
  exactly the original's `(guid, text_a, text_b, label)`: `csv.reader(delimiter="\\t",
  quotechar=None)` (quotes are literal), lines split at "\\n" only (as `tf.gfile` reads them),
  CoLA train/dev keep line 0 (they have no header), every other file skips it; texts, processed
  guids and string labels go through `preprocess_text(lower=do_lower_case)`; test labels are
  the original's dummies (`"0"`, `"entailment"`, `"contradiction"`, int 0 for STS-B); STS-B
  labels are floats and its label list is `[None]` (one output).
* Where the original indexed blindly, a bad line is an error naming the file and the line: a
  wrong number of columns (every official file has the header's count on every line), a label
  outside the task's labels, an STS-B score that is not a finite number, text that is not UTF-8;
  a file without any example (0 bytes, or only its header) is an error naming it
  (`check_has_example`, which the classifier task runs before anything is written).
  The one known-ragged official file, QQP's train set (rows with missing fields, which the
  original skipped through an `IndexError`), keeps the original's behaviour for QQP train/dev:
  short rows are skipped, counted (`processor.skipped`) and reported.

Examples become features in `features.py`; a whole split becomes a feature cache in `cache.py`.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from typing import Iterator, List, Optional

from albert import files
from albert import tokenization
from albert.data.glue.tasks import SPLITS, Label, Layout, TaskSpec, TASKS, canonical_task_name
from albert.errors import DataError, FlagError, InputError


@dataclasses.dataclass
class InputExample:
  """One example, as the original's `InputExample`."""
  guid: str
  text_a: str
  text_b: Optional[str] = None
  label: Label = None


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
    self._text = tokenization.text_processor(do_lower_case, use_spm)

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
    if files.isfile(path):
      return path
    hint = ""
    if data_dir and files.isfile(os.path.join(data_dir, layout.file)):
      hint = (f"; {data_dir} itself holds {layout.file}: --data_dir is the GLUE root, the "
              f"parent of the task folders, not the {self.task_dir} folder")
    elif data_dir and not files.isdir(data_dir):
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
      with files.open_file(path, encoding="utf-8", newline="\n") as f:
        reader = csv.reader(f, delimiter=self.spec.delimiter, quotechar=None)
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
      raise DataError(f"{path}, line {first_bad_utf8_line(path)}: not valid UTF-8 "
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
      what = ("the file is empty" if files.size(path) == 0 else
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


def first_bad_utf8_line(path: str) -> int:
  with files.open_file(path, "rb") as f:
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
