"""The GLUE task table (TF-free): a task is a row of data, and nothing else asks which task runs.

A row (`TaskSpec`) carries everything about one task of the original's `run_classifier.py`:

* its files: the task folder under the GLUE root, each split's file and columns (`Layout`), the
  delimiter, the splits whose ragged rows the original skipped (QQP);
* its labels (`[None]` for STS-B: one regression output) and the family whose train file it
  shares (`mnli` and `mismnli` read one);
* its metrics: `scores`, the `eval_results.txt` keys that `albert.metrics.glue_metrics` gives
  (the original's `metric_fn` plus `f1` for MRPC/QQP and `spearman` for STS-B; none for AX,
  which has no labels), and `metric`, the one that picks `model.ckpt-best` as the original
  chooses it;
* its GLUE server file (`submission_file`) and the row count of the official test set;
* `extra_splits`: other tasks' splits its model also scores or predicts (an MNLI model scores
  MNLI-mm's dev set and predicts MNLI-mm's and the diagnostic set's test files).

A custom task (`run_classifier --task_name=custom`, your own CSV, TSV or JSON Lines files) is a
row too, built per run by `albert.data.glue.custom.custom_spec`: its `source` (`CustomSource`)
names the files and columns its reader (`albert.data.glue.custom`) reads, its labels are the
run's label list, `task_type` says classification, regression (`[None]`, as STS-B) or
multi-label (sigmoid outputs, one 0/1 target per label).

`TASKS` maps the names `run_classifier --task_name` accepts (`cola, mnli, mismnli, mrpc, rte,
sst-2, sts-b, qqp, qnli, wnli`, any case) plus `ax` (the diagnostic set, which the original has
a processor for but does not map) to their rows; `ALIASES` adds `mnli-mm` and `mnli-m`;
`canonical_task_name` resolves a name or says which are known.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple, Union

from albert.errors import FlagError

SPLITS = ("train", "dev", "test")
Label = Union[str, float, int, None]

_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")
_NLI3 = ("contradiction", "entailment", "neutral")
_ACCURACY = ("eval_accuracy", "eval_loss")  # every classification task's eval_results keys


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where one split's file keeps each field (column indices; -1 = the last column).

  `guid_column` None means the original's `"<split>-<line index>"`; `label_column` None means a
  test split with the dummy `test_label`.
  """
  file: str
  columns: int  # fields on every line (the header's count)
  text_a: int
  text_b: Optional[int]
  label_column: Optional[int]
  guid_column: Optional[int] = 0
  process_guid: bool = True
  has_header: bool = True
  test_label: Label = None


@dataclasses.dataclass(frozen=True)
class ExtraSplit:
  """A split of another task that a task's model also scores or predicts."""
  name: str  # the Trainer's split: "eval_..." (scored beside dev) or "predict_..."
  task: str  # the other task's row
  split: str  # its GLUE split: "dev" or "test"
  key_suffix: str = ""  # appended to the result keys of a scored split (MNLI-mm: "_mm")


@dataclasses.dataclass(frozen=True)
class CustomSource:
  """Where a custom task's rows are: the files of its splits and the columns to read."""
  files: Tuple[Tuple[str, str], ...]  # (split, path) of the splits given
  input_format: Optional[str] = None  # csv, tsv or jsonl; None: each file's extension
  text_a_column: Optional[str] = None  # None: the first of sentence, text, sentence1, question
  text_b_column: Optional[str] = None  # None: sentence2 where a file has it
  label_column: str = "label"
  id_column: Optional[str] = None
  label_separator: str = "|"  # multi-label CSV/TSV: labels of one row

  def file(self, split: str) -> Optional[str]:
    return dict(self.files).get(split)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """One GLUE task: the original's processor, its metrics and its submission file, as data."""
  name: str  # the name run_classifier uses (lower case)
  processor: str  # the original's class name
  task_dir: str
  labels: Tuple[Optional[str], ...]
  layouts: Dict[str, Layout]
  family: str  # tasks of one family read the same train file into the same features
  submission_file: str  # the GLUE server's file name (gluebenchmark.com)
  test_rows: int  # rows of the official test set
  metric: str = "eval_accuracy"  # the eval_results key that picks model.ckpt-best
  scores: Tuple[str, ...] = _ACCURACY  # the eval_results keys, in order; () = not scored
  extra_splits: Tuple[ExtraSplit, ...] = ()
  ragged_skip: Tuple[str, ...] = ()  # splits whose short rows are skipped, as the original
  delimiter: str = "\t"
  task_type: str = "classification"  # or "regression" (labels [None]), "multi_label"
  source: Optional[CustomSource] = None  # a custom task's files and columns

  @property
  def is_regression(self) -> bool:
    return self.labels == (None,)

  @property
  def multi_label(self) -> bool:
    return self.task_type == "multi_label"


def _pair(file: str, columns: int, a: int, b: int, test_label: Label = None,
          label: Optional[int] = -1, guid: Optional[int] = 0, process_guid: bool = True,
          header: bool = True) -> Layout:
  return Layout(file, columns, a, b, None if test_label is not None else label, guid,
                process_guid, header, test_label)


def _mnli(name: str, processor: str, dev: str, test: str, submission_file: str, test_rows: int,
          extra_splits: Tuple[ExtraSplit, ...] = ()) -> TaskSpec:
  return TaskSpec(name, processor, "MNLI", _NLI3, {
      "train": _pair("train.tsv", 12, 8, 9),
      "dev": _pair(dev, 16, 8, 9),
      "test": _pair(test, 10, 8, 9, test_label="contradiction"),
  }, family="mnli", submission_file=submission_file, test_rows=test_rows,
                  extra_splits=extra_splits)


def _nli_pair(name: str, processor: str, task_dir: str, labels, test_label: str,
              test_rows: int) -> TaskSpec:
  return TaskSpec(name, processor, task_dir, labels, {
      "train": _pair("train.tsv", 4, 1, 2),
      "dev": _pair("dev.tsv", 4, 1, 2),
      "test": _pair("test.tsv", 3, 1, 2, test_label=test_label),
  }, family=name, submission_file=f"{task_dir}.tsv", test_rows=test_rows)


# Submission files and test rows: as the GLUE server expects them (jiant's GLUE submission
# formatter, the GLUE baselines' prediction writer); AX is predicted by the MNLI model.
TASKS: Dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec("cola", "ColaProcessor", "CoLA", _BINARY, {
        "train": Layout("train.tsv", 4, 3, None, 1, guid_column=None, has_header=False),
        "dev": Layout("dev.tsv", 4, 3, None, 1, guid_column=None, has_header=False),
        "test": Layout("test.tsv", 2, 1, None, None, process_guid=False, test_label="0"),
    }, family="cola", submission_file="CoLA.tsv", test_rows=1063, metric="matthew_corr",
             scores=_ACCURACY + ("matthew_corr",)),
    _mnli("mnli", "MnliProcessor", "dev_matched.tsv", "test_matched.tsv", "MNLI-m.tsv", 9796,
          extra_splits=(ExtraSplit("predict_mismatched", "mismnli", "test"),
                        ExtraSplit("predict_ax", "ax", "test"),
                        ExtraSplit("eval_mismatched", "mismnli", "dev", key_suffix="_mm"))),
    _mnli("mismnli", "MisMnliProcessor", "dev_mismatched.tsv", "test_mismatched.tsv",
          "MNLI-mm.tsv", 9847),
    TaskSpec("mrpc", "MrpcProcessor", "MRPC", _BINARY, {
        "train": _pair("train.tsv", 5, 3, 4, label=0, guid=None),
        "dev": _pair("dev.tsv", 5, 3, 4, label=0, guid=None),
        "test": _pair("test.tsv", 5, 3, 4, test_label="0", process_guid=False),
    }, family="mrpc", submission_file="MRPC.tsv", test_rows=1725, scores=_ACCURACY + ("f1",)),
    _nli_pair("rte", "RteProcessor", "RTE", _NLI2, "entailment", 3000),
    TaskSpec("sst-2", "Sst2Processor", "SST-2", _BINARY, {
        "train": Layout("train.tsv", 2, 0, None, 1, guid_column=None),
        "dev": Layout("dev.tsv", 2, 0, None, 1, guid_column=None),
        "test": Layout("test.tsv", 2, 1, None, None, test_label="0"),
    }, family="sst-2", submission_file="SST-2.tsv", test_rows=1821),
    TaskSpec("sts-b", "StsbProcessor", "STS-B", (None,), {
        "train": _pair("train.tsv", 10, 7, 8),
        "dev": _pair("dev.tsv", 10, 7, 8),
        "test": _pair("test.tsv", 9, 7, 8, test_label=0),
    }, family="sts-b", submission_file="STS-B.tsv", test_rows=1379, metric="pearson",
             scores=("MSE", "eval_loss", "pearson", "spearman")),
    TaskSpec("qqp", "QqpProcessor", "QQP", _BINARY, {
        "train": _pair("train.tsv", 6, 3, 4, label=5, process_guid=False),
        "dev": _pair("dev.tsv", 6, 3, 4, label=5, process_guid=False),
        "test": _pair("test.tsv", 3, 1, 2, test_label="0", process_guid=False),
    }, family="qqp", submission_file="QQP.tsv", test_rows=390965, scores=_ACCURACY + ("f1",),
             ragged_skip=("train", "dev")),
    _nli_pair("qnli", "QnliProcessor", "QNLI", _NLI2, "entailment", 5463),
    _nli_pair("wnli", "WnliProcessor", "WNLI", _BINARY, "0", 146),
    TaskSpec("ax", "AXProcessor", "diagnostic", _NLI3, {
        "test": _pair("diagnostic.tsv", 3, 1, 2, test_label="contradiction"),
    }, family="ax", submission_file="AX.tsv", test_rows=1104, scores=()),
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
                    f"{', '.join(known)}; any case; or custom (your own files: --train_file, "
                    "--dev_file, --test_file)")
  return name


def task_spec(task_name: str) -> TaskSpec:
  """The row of a task name as `--task_name` accepts it (any case, aliases)."""
  return TASKS[canonical_task_name(task_name)]
