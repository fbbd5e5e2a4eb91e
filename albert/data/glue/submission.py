"""Prediction files: the original's test_results.tsv / submit_results.tsv and GLUE server files.

* `write_test_results(path, probabilities)`: the original's `test_results.tsv`, one line per
  example, its class probabilities joined by tabs (`str` of each float32, as the original
  printed them; STS-B: the one predicted score).
* `write_submit_results(path, task_name, guids, predictions)`: the original's
  `submit_results.tsv`: `index\\tprediction`, then `<guid>\\t<label name>` per example (STS-B:
  `str` of the float32 score, unclipped, as the original wrote it).
* `write_submission_file(directory, task_name, guids, predictions)`: one file of a GLUE
  submission folder, named (the task row's `submission_file`) and formatted as the GLUE server
  (gluebenchmark.com) expects it: `CoLA.tsv, SST-2.tsv, MRPC.tsv, STS-B.tsv, QQP.tsv,
  MNLI-m.tsv, MNLI-mm.tsv, QNLI.tsv, RTE.tsv, WNLI.tsv, AX.tsv` (AX: the diagnostic set,
  predicted by the MNLI model); a header
  `index\\tprediction`, then the test file's index column and the prediction: `0`/`1` for CoLA,
  SST-2, MRPC, QQP and WNLI, `entailment`/`not_entailment` for QNLI and RTE,
  `entailment`/`neutral`/`contradiction` for MNLI and AX (the task's label names, which is what the
  processors' label lists hold), and for STS-B the score clipped to [0, 5]. File names and header
  as in jiant's GLUE submission formatter and the GLUE baselines' prediction writer (which also
  clips STS-B to [0, 5] and writes the labels above).
* `check_submission(directory)` lists what is missing or malformed (the row counts of the
  official test sets, the rows' `test_rows`); `zip_submission(directory, zip_path)` packs the
  files at the archive's root, as the server wants them.

Every file is written atomically (`albert.files`).
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from typing import Dict, List, Sequence

import numpy as np

from albert import files
from albert.data.glue import tasks as glue
from albert.errors import InputError

HEADER = "index\tprediction\n"

# The tasks' GLUE server files and the official test sets' row counts, from the task table.
SUBMISSION_FILES: Dict[str, str] = {name: spec.submission_file
                                    for name, spec in glue.TASKS.items()}
TEST_ROWS: Dict[str, int] = {name: spec.test_rows for name, spec in glue.TASKS.items()}

STSB_RANGE = (0.0, 5.0)


def _check_rows(task: str, guids: Sequence[str], predictions: Sequence) -> None:
  if len(guids) != len(predictions):
    raise InputError(f"{task} predictions: {len(predictions)} predictions for {len(guids)} "
                     "examples")
  for guid in guids:
    if not isinstance(guid, str) or not guid or any(c in guid for c in "\t\r\n"):
      raise InputError(f"{task} predictions: guid {guid!r} cannot be an index column value")


def label_names(task_name: str, predictions: Sequence) -> List[str]:
  """Predicted class ids -> the task's label names (STS-B: the scores as text, unclipped)."""
  spec = glue.task_spec(task_name)
  task = spec.name
  values = np.asarray(predictions)
  if spec.is_regression:
    values = values.reshape(-1).astype(np.float32)
    if not np.all(np.isfinite(values)):
      raise InputError(f"{task} predictions: a predicted score is not finite")
    return [str(v) for v in values]
  ids = values.reshape(-1)
  if ids.size and (not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0
                   or ids.max() >= len(spec.labels)):
    raise InputError(f"{task} predictions: class ids must be integers in [0, "
                     f"{len(spec.labels)}), got {ids.dtype} values {ids.min()}..{ids.max()}")
  return [spec.labels[int(i)] for i in ids]


def write_test_results(path: str, probabilities: Sequence) -> str:
  """The original's `test_results.tsv`: tab-joined float32 probabilities, one line per example."""
  rows = np.asarray(probabilities, dtype=np.float32)
  if rows.ndim == 1:
    rows = rows[:, None]
  text = "".join("\t".join(str(p) for p in row) + "\n" for row in rows)
  return files.write_text(path, text)


def write_submit_results(path: str, task_name: str, guids: Sequence[str],
                         predictions: Sequence) -> str:
  """The original's `submit_results.tsv`: header, then `<guid>\\t<label>` per example."""
  task = glue.canonical_task_name(task_name)
  names = label_names(task, predictions)
  _check_rows(task, guids, names)
  return files.write_text(path, HEADER + "".join(f"{g}\t{n}\n" for g, n in zip(guids, names)))


def submission_text(task_name: str, guids: Sequence[str], predictions: Sequence) -> str:
  """The contents of a task's GLUE server file (STS-B scores clipped to [0, 5])."""
  task = glue.canonical_task_name(task_name)
  if glue.TASKS[task].is_regression:
    scores = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(scores)):
      raise InputError(f"{task} predictions: a predicted score is not finite")
    names = [str(s) for s in np.clip(scores, *STSB_RANGE).astype(np.float32)]
  else:
    names = label_names(task, predictions)
  _check_rows(task, guids, names)
  return HEADER + "".join(f"{g}\t{n}\n" for g, n in zip(guids, names))


def write_submission_file(directory: str, task_name: str, guids: Sequence[str],
                          predictions: Sequence) -> str:
  """Writes `<directory>/<GLUE file name>` for a task's test predictions; returns its path."""
  spec = glue.task_spec(task_name)
  path = os.path.join(directory, spec.submission_file)
  return files.write_text(path, submission_text(spec.name, guids, predictions))


def check_submission(directory: str, tasks: Sequence[str] = tuple(SUBMISSION_FILES)
                     ) -> List[str]:
  """Problems of a submission folder (missing files, headers, row counts); [] when complete."""
  problems = []
  for task in tasks:
    spec = glue.task_spec(task)
    name = spec.submission_file
    path = os.path.join(directory, name)
    if not files.isfile(path):
      problems.append(f"{name} is missing")
      continue
    with files.open_file(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
    if not lines or lines[0] + "\n" != HEADER:
      problems.append(f"{name}: the first line must be {HEADER.strip()!r}")
    elif len(lines) - 1 != spec.test_rows:
      problems.append(f"{name}: {len(lines) - 1} predictions, the GLUE test set has "
                      f"{spec.test_rows}")
    elif spec.is_regression and not all(_in_range(line.split("\t")[-1]) for line in lines[1:]):
      problems.append(f"{name}: scores must be numbers in [0, 5]")
  return problems


def _in_range(text: str) -> bool:
  try:
    value = float(text)
  except ValueError:
    return False
  return math.isfinite(value) and STSB_RANGE[0] <= value <= STSB_RANGE[1]


def zip_submission(directory: str, zip_path: str) -> str:
  """Packs the folder's GLUE files (those present) at the root of a zip file, atomically."""
  present = [name for name in SUBMISSION_FILES.values()
             if files.isfile(os.path.join(directory, name))]
  if not present:
    raise InputError(f"{directory}: no GLUE submission file to pack "
                     f"({', '.join(SUBMISSION_FILES.values())})")
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
    for name in present:
      archive.write(os.path.join(directory, name), arcname=name)
  return files.write_bytes(zip_path, buffer.getvalue())
