"""The runnable example in the class docstring of the Task interface and of each task file runs,
as written, from the repository root (here: a scratch folder that sees the repository's tests/),
and gives what its comment says."""

from __future__ import annotations

import inspect
import os
import re
import textwrap

import numpy as np
import pytest

from albert.tasks.classifier import ClassifierTask
from albert.tasks.pretraining import PretrainingTask
from albert.tasks.race import RaceTask
from albert.tasks.squad import SquadTask
from albert.train.task import Task
from conftest import REPO_DIR
from support.records import write_records
from support.toy_task import write_toy_records


def example_of(cls) -> str:
  """The ```python block of a class docstring."""
  found = re.findall(r"```python\n(.*?)```", inspect.getdoc(cls), re.S)
  assert len(found) == 1, cls
  return textwrap.dedent(found[0])


@pytest.fixture
def at_root(tmp_path, monkeypatch):
  """A scratch working folder where `tests/testdata/...` is the repository's."""
  os.symlink(os.path.join(REPO_DIR, "tests"), tmp_path / "tests")
  monkeypatch.chdir(tmp_path)
  return tmp_path


def _run(cls) -> dict:
  namespace = {}
  code = compile(example_of(cls), f"<{cls.__name__} example>", "exec")
  exec(code, namespace)  # pylint: disable=exec-used
  return namespace["results"]


def test_the_task_interface_example(at_root):
  for split, seed in (("train", 1), ("eval", 2), ("predict", 3)):
    write_toy_records(str(at_root / f"{split}.tfrecord"), 20, seed=seed)
  results = _run(Task)
  assert results["global_step"] == 2 and np.isfinite(results["loss"])
  predictions = np.load(at_root / "out" / "predict_predictions.npz")
  assert predictions["logits"].shape == (20, 2)
  np.testing.assert_array_equal(predictions["row_index"], np.arange(20))


@pytest.mark.parametrize("cls, keys", [
    (ClassifierTask, ("eval_accuracy", "eval_loss")),
    (SquadTask, ("exact_match", "f1")),
    (RaceTask, ("eval_accuracy", "eval_loss", "middle_accuracy", "high_accuracy")),
], ids=["classifier", "squad", "race"])
def test_each_finetuning_task_example(at_root, cls, keys):
  results = _run(cls)
  assert results["global_step"] == 2
  assert all(np.isfinite(results[key]) for key in keys), results
  assert (at_root / "out" / "model.ckpt-best.index").exists()


def test_the_pretraining_example(at_root):
  for i in range(2):
    write_records(str(at_root / "records" / f"part-{i}.tfrecord"), 16, seq_length=64,
                  predictions=10, seed=i)
  results = _run(PretrainingTask)
  assert results["global_step"] == 2
  for key in ("masked_lm_accuracy", "masked_lm_loss", "sentence_order_accuracy",
              "sentence_order_loss", "loss"):
    assert np.isfinite(results[key]), key
