"""Tests of albert/metrics.py: the original's eval metric_fn numbers, and the metrics it lacks.

`metric_fn.json` holds what the original's `metric_fn` (tasks sst-2, mrpc, mnli, cola, sts-b)
computed on the 45 rows of `metric_fn_inputs.npz` (rows 42-44 have is_real_example 0), in
float32 TF; `derived_reference` holds sklearn/scipy values on the 42 real rows.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from albert import metrics
from albert.errors import FlagError, InputError
from conftest import GOLDEN

CLASSIFIER = os.path.join(GOLDEN, "finetune", "classifier")
with open(os.path.join(CLASSIFIER, "metric_fn.json"), encoding="utf-8") as _f:
  GOLDEN_METRICS = json.load(_f)
with np.load(os.path.join(CLASSIFIER, "metric_fn_inputs.npz")) as _data:
  INPUTS = {k: _data[k] for k in _data.files}
WEIGHTS = INPUTS["is_real_example"]
CASES = sorted(GOLDEN_METRICS["results"])
EXTRA_KEYS = {"mrpc": {"f1"}, "sts-b": {"spearman"}}


@pytest.mark.parametrize("case", CASES)
def test_glue_metrics_equal_the_original_metric_fn(case):
  task, inputs = case.split("/")
  golden = GOLDEN_METRICS["results"][case]
  original = {k: v for k, v in golden["original_metric_fn"].items()
              if k not in ("pred", "label_ids")}  # STS-B's concatenated arrays: not metrics
  results = metrics.glue_metrics(task, INPUTS[f"{inputs}/logits"], INPUTS[f"{inputs}/label_ids"],
                                 INPUTS[f"{inputs}/per_example_loss"], WEIGHTS)
  assert set(results) == set(original) | EXTRA_KEYS.get(task, set())
  for key, value in original.items():
    assert results[key] == pytest.approx(value, abs=2e-7), key  # the original ran in float32
  derived = golden["derived_reference"]
  if "f1" in results:
    assert results["f1"] == pytest.approx(derived["f1_sklearn"], abs=1e-12)
  if "spearman" in results:
    assert results["spearman"] == pytest.approx(derived["spearman_scipy"], abs=1e-12)
  if "matthew_corr" in results:
    assert results["matthew_corr"] == pytest.approx(derived["mcc_sklearn"], abs=1e-12)
  if "eval_accuracy" in results:
    assert results["eval_accuracy"] == pytest.approx(derived["accuracy"], abs=1e-12)


def test_padding_rows_do_not_count():
  real = WEIGHTS == 1
  assert real.sum() == 42 and not WEIGHTS[42:].any()
  labels, logits = INPUTS["binary/label_ids"], INPUTS["binary/logits"]
  loss = INPUTS["binary/per_example_loss"]
  weighted = metrics.glue_metrics("cola", logits, labels, loss, WEIGHTS)
  dropped = metrics.glue_metrics("cola", logits[real], labels[real], loss[real])
  assert weighted == pytest.approx(dropped, abs=1e-12)
  everything = metrics.glue_metrics("cola", logits, labels, loss)
  assert everything["eval_loss"] == pytest.approx(float(np.mean(loss)), abs=1e-7)
  assert everything["eval_loss"] != pytest.approx(weighted["eval_loss"], abs=1e-4)
  scores = INPUTS["regression/logits"].astype(np.float64)
  targets = INPUTS["regression/label_ids"].astype(np.float64)
  stsb = metrics.glue_metrics("STS-B", scores, targets, INPUTS["regression/per_example_loss"],
                              WEIGHTS)
  assert stsb["pearson"] == pytest.approx(stats.pearsonr(scores[real], targets[real])[0],
                                          abs=1e-12)
  assert stsb["MSE"] == pytest.approx(sk.mean_squared_error(targets[real], scores[real]),
                                      abs=1e-12)


def test_binary_metrics_against_sklearn():
  rng = np.random.RandomState(0)
  for _ in range(20):
    labels, predictions = rng.randint(0, 2, 50), rng.randint(0, 2, 50)
    weights = rng.randint(0, 2, 50)
    keep = weights == 1
    assert metrics.f1(labels, predictions, weights) == pytest.approx(
        sk.f1_score(labels[keep], predictions[keep]), abs=1e-12)
    assert metrics.matthews_corrcoef(labels, predictions, weights) == pytest.approx(
        sk.matthews_corrcoef(labels[keep], predictions[keep]), abs=1e-12)
    assert metrics.accuracy(labels, predictions, weights) == pytest.approx(
        sk.accuracy_score(labels[keep], predictions[keep]), abs=1e-12)
    x, y = rng.normal(size=50), rng.normal(size=50).round(1)  # ties in y
    assert metrics.spearman(x, y, weights) == pytest.approx(
        stats.spearmanr(x[keep], y[keep])[0], abs=1e-12)


def test_custom_task_metrics_against_sklearn():
  """Issue 20: macro F1 and the multi-class Matthews correlation of classification, micro and
  macro F1 and subset accuracy of multi-label 0/1 matrices, padding rows weighed 0."""
  rng = np.random.RandomState(1)
  for _ in range(20):
    labels, predictions = rng.randint(0, 4, 60), rng.randint(0, 4, 60)
    weights = rng.randint(0, 2, 60)
    keep = weights == 1
    assert metrics.macro_f1(labels, predictions, weights) == pytest.approx(
        sk.f1_score(labels[keep], predictions[keep], average="macro"), abs=1e-12)
    assert metrics.multiclass_matthews_corrcoef(labels, predictions, weights) == pytest.approx(
        sk.matthews_corrcoef(labels[keep], predictions[keep]), abs=1e-12)
    hot, chosen = rng.randint(0, 2, (60, 5)), rng.randint(0, 2, (60, 5))
    assert metrics.micro_f1(hot, chosen, weights) == pytest.approx(
        sk.f1_score(hot[keep], chosen[keep], average="micro"), abs=1e-12)
    assert metrics.macro_f1(hot, chosen, weights) == pytest.approx(
        sk.f1_score(hot[keep], chosen[keep], average="macro", zero_division=0), abs=1e-12)
    assert metrics.subset_accuracy(hot, chosen, weights) == pytest.approx(
        sk.accuracy_score(hot[keep], chosen[keep]), abs=1e-12)
  binary = rng.randint(0, 2, 40), rng.randint(0, 2, 40)
  assert metrics.multiclass_matthews_corrcoef(*binary) == metrics.matthews_corrcoef(*binary)
  report = metrics.label_report([0, 0, 1, 2], [0, 1, 1, 2], ["neg", "pos", "mixed"])
  assert report.splitlines() == [
      "label  precision     recall         f1    support",
      "neg       1.0000     0.5000     0.6667          2",
      "pos       0.5000     1.0000     0.6667          1",
      "mixed     1.0000     1.0000     1.0000          1",
      "",
      "confusion matrix (rows: true label, columns: predicted label)",
      "         neg    pos  mixed",
      "neg        1      1      0",
      "pos        0      1      0",
      "mixed      0      0      1"]


def test_undefined_values_are_zero_as_in_the_original():
  labels = np.array([0, 1, 1, 0])
  ones = np.ones(4, dtype=int)
  assert metrics.matthews_corrcoef(labels, ones) == 0.0  # div_no_nan
  assert metrics.f1(np.zeros(4), np.zeros(4)) == 0.0
  assert metrics.pearson(np.ones(4), np.arange(4.0)) == 0.0
  assert metrics.accuracy(labels, labels, np.zeros(4)) == 0.0
  assert metrics.mean([1.0, 2.0], [0, 0]) == 0.0
  assert metrics.spearman([1.0, 2.0, 3.0], [3.0, 1.0, 2.0], [1, 0, 0]) == 0.0


def test_class_ids_or_logits_give_the_same_results():
  logits, labels = INPUTS["three_class/logits"], INPUTS["three_class/label_ids"]
  loss = INPUTS["three_class/per_example_loss"]
  assert metrics.glue_metrics("mnli", logits, labels, loss, WEIGHTS) == metrics.glue_metrics(
      "mnli", np.argmax(logits, -1), labels, loss, WEIGHTS)
  scores = INPUTS["regression/logits"]
  assert metrics.glue_metrics("sts-b", scores[:, None], INPUTS["regression/label_ids"],
                              INPUTS["regression/per_example_loss"]) == metrics.glue_metrics(
      "sts-b", scores, INPUTS["regression/label_ids"], INPUTS["regression/per_example_loss"])


def test_best_metric_keys_are_the_originals():
  assert metrics.best_metric_key("sts-b") == "pearson"
  assert metrics.best_metric_key("CoLA") == "matthew_corr"
  for task in ("sst-2", "mrpc", "qqp", "mnli", "mismnli", "mnli-mm", "qnli", "rte", "wnli"):
    assert metrics.best_metric_key(task) == "eval_accuracy"
  with pytest.raises(FlagError, match="known tasks"):
    metrics.best_metric_key("squad")


def test_bad_inputs_are_errors():
  with pytest.raises(InputError, match="no labels"):
    metrics.glue_metrics("ax", [0], [0], [0.0])
  with pytest.raises(InputError, match="non-negative"):
    metrics.accuracy([0, 1], [0, 1], [1, -1])
  with pytest.raises(InputError, match="3 values for 2 rows"):
    metrics.accuracy([0, 1], [0, 1], [1, 1, 1])
  with pytest.raises(InputError, match="different lengths"):
    metrics.f1([0, 1], [0, 1, 1])
  with pytest.raises(InputError, match="0 or 1"):
    metrics.spearman([1.0, 2.0], [1.0, 2.0], [0.5, 1.0])
  with pytest.raises(InputError, match="one value per row"):
    metrics.mse(np.zeros((2, 2)), np.zeros((2, 2)))
