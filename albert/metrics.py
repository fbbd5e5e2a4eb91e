"""Evaluation metrics in plain numpy (TF-free): GLUE's, with the original's keys and numbers.

Every metric takes optional per-row `weights` (the `is_real_example` column: 0 for the padding
rows of a one-pass evaluation, 1 otherwise; any non-negative weights where the metric has a
weighted form, as `tf.metrics` does):

* `accuracy`, `mean` (the weighted mean of e.g. per-example losses), `mse`;
* `f1` (binary, positive class 1: precision and recall of label 1, 0.0 when undefined);
* `matthews_corrcoef` (binary, from the weighted confusion counts as the original computes it:
  `(tp tn - fp fn) / sqrt((tp + fp)(tp + fn)(tn + fp)(tn + fn))`, 0.0 when the denominator is 0,
  as the original's `tf.div_no_nan`);
* `pearson` (weighted covariance over the square roots of the weighted variances, the
  streaming Pearson of the original's STS-B metric), `spearman` (Pearson of average ranks of the
  rows whose weight is not 0; weights must be 0 or 1).

`glue_metrics(task_name, predictions, labels, per_example_loss, weights)` returns the dict the
original's `metric_fn` puts into `eval_results.txt`, with the keys that the task's row of the
GLUE task table (`albert.data.glue.tasks`, its `scores`) names: `eval_accuracy` and `eval_loss`
for every classification task, `matthew_corr` for CoLA, `pearson`, `MSE` and `eval_loss` for
STS-B (the original has no accuracy there), plus what the original lacks: `f1` for MRPC and QQP,
`spearman` for STS-B. (The original's STS-B `pred` and `label_ids` arrays, every row concatenated,
are not metrics and are left out.) `best_metric_key(task_name)` is the key that picks
`model.ckpt-best` (the row's `metric`), as the original chooses it: `pearson` for STS-B,
`matthew_corr` for CoLA, `eval_accuracy` for every other task, MRPC and QQP included (GLUE
reports F1 and accuracy for those; `f1` is there to read). Higher is better for all three.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from albert.errors import InputError

ArrayLike = object


def _weights(weights: Optional[ArrayLike], n: int) -> np.ndarray:
  if weights is None:
    return np.ones(n, dtype=np.float64)
  w = np.asarray(weights, dtype=np.float64).reshape(-1)
  if w.shape[0] != n:
    raise InputError(f"weights: {w.shape[0]} values for {n} rows")
  if not np.all(np.isfinite(w)) or np.any(w < 0):
    raise InputError("weights must be finite and non-negative (is_real_example: 0 or 1)")
  return w


def _vector(values: ArrayLike, what: str, dtype=np.float64) -> np.ndarray:
  array = np.asarray(values)
  if array.ndim == 2 and array.shape[1] == 1:
    array = array[:, 0]
  if array.ndim != 1:
    raise InputError(f"{what}: expected one value per row, got shape {array.shape}")
  return array.astype(dtype)


def _same_length(*arrays: np.ndarray) -> int:
  n = arrays[0].shape[0]
  if any(a.shape[0] != n for a in arrays):
    raise InputError(f"metric inputs of different lengths: {[a.shape[0] for a in arrays]}")
  return n


def _ratio(numerator: float, denominator: float) -> float:
  return float(numerator / denominator) if denominator else 0.0


def mean(values: ArrayLike, weights: Optional[ArrayLike] = None) -> float:
  """Weighted mean (`tf.metrics.mean`); 0.0 when the weights sum to 0."""
  v = _vector(values, "values")
  w = _weights(weights, v.shape[0])
  return _ratio(np.sum(w * v), np.sum(w))


def accuracy(labels: ArrayLike, predictions: ArrayLike,
             weights: Optional[ArrayLike] = None) -> float:
  """Weighted fraction of rows where the prediction equals the label."""
  y, p = _vector(labels, "labels"), _vector(predictions, "predictions")
  w = _weights(weights, _same_length(y, p))
  return _ratio(np.sum(w * (y == p)), np.sum(w))


def _confusion(labels, predictions, weights):
  """Weighted tp, tn, fp, fn of a binary task (label 1 positive; any non-zero is 1)."""
  y = _vector(labels, "labels") != 0
  p = _vector(predictions, "predictions") != 0
  w = _weights(weights, _same_length(y, p))
  return (np.sum(w * (y & p)), np.sum(w * (~y & ~p)), np.sum(w * (~y & p)),
          np.sum(w * (y & ~p)))


def f1(labels: ArrayLike, predictions: ArrayLike, weights: Optional[ArrayLike] = None) -> float:
  """Binary F1 of class 1 (2 tp / (2 tp + fp + fn)); 0.0 when there is no positive at all."""
  tp, _, fp, fn = _confusion(labels, predictions, weights)
  return _ratio(2 * tp, 2 * tp + fp + fn)


def matthews_corrcoef(labels: ArrayLike, predictions: ArrayLike,
                      weights: Optional[ArrayLike] = None) -> float:
  """Binary Matthews correlation, 0.0 when undefined (one class predicted or present)."""
  tp, tn, fp, fn = _confusion(labels, predictions, weights)
  return _ratio(tp * tn - fp * fn, np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))


def mse(labels: ArrayLike, predictions: ArrayLike, weights: Optional[ArrayLike] = None) -> float:
  """Weighted mean squared error (`tf.metrics.mean_squared_error`)."""
  y, p = _vector(labels, "labels"), _vector(predictions, "predictions")
  w = _weights(weights, _same_length(y, p))
  return _ratio(np.sum(w * (y - p) ** 2), np.sum(w))


def pearson(x: ArrayLike, y: ArrayLike, weights: Optional[ArrayLike] = None) -> float:
  """Weighted Pearson correlation; 0.0 when either side has no variance."""
  a, b = _vector(x, "predictions"), _vector(y, "labels")
  w = _weights(weights, _same_length(a, b))
  total = np.sum(w)
  if not total:
    return 0.0
  da, db = a - np.sum(w * a) / total, b - np.sum(w * b) / total
  return _ratio(np.sum(w * da * db), np.sqrt(np.sum(w * da * da)) * np.sqrt(np.sum(w * db * db)))


def spearman(x: ArrayLike, y: ArrayLike, weights: Optional[ArrayLike] = None) -> float:
  """Spearman rank correlation of the rows with weight 1 (ties get their average rank)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  a, b = _vector(x, "predictions"), _vector(y, "labels")
  w = _weights(weights, _same_length(a, b))
  if not np.all((w == 0) | (w == 1)):
    raise InputError("spearman: weights must be 0 or 1 (is_real_example)")
  keep = w == 1
  if np.sum(keep) < 2:
    return 0.0
  return pearson(stats.rankdata(a[keep]), stats.rankdata(b[keep]))


# ------------------------------------------------------------------------------------- GLUE
# An eval_results key -> its value from (labels, predictions, weights): class ids for the
# classification keys, scores for the regression ones. A task's row names the keys it reports.
_GLUE_SCORES = {
    "eval_accuracy": accuracy,
    "matthew_corr": matthews_corrcoef,
    "f1": f1,
    "MSE": mse,
    "pearson": lambda labels, predictions, weights: pearson(predictions, labels, weights),
    "spearman": lambda labels, predictions, weights: spearman(predictions, labels, weights),
}


def _task(task_name: str):
  from albert.data.glue.tasks import task_spec  # pylint: disable=g-import-not-at-top
  return task_spec(task_name)


def best_metric_key(task_name: str) -> str:
  """The `eval_results` key that picks the best checkpoint, as the original chooses it."""
  return _task(task_name).metric


def glue_metrics(task_name: str, predictions: ArrayLike, labels: ArrayLike,
                 per_example_loss: ArrayLike, weights: Optional[ArrayLike] = None
                 ) -> Dict[str, float]:
  """The original's `metric_fn` results (plus `f1` / `spearman`) for one task: the keys of its
  row in the GLUE task table (`albert.data.glue.tasks`), in that order.

  Args:
    task_name: a GLUE task name (`tasks.canonical_task_name`).
    predictions: class ids [N], or logits / probabilities [N, C] (their argmax is used);
      STS-B: the predicted scores [N] (or [N, 1]).
    labels: label ids [N] (STS-B: scores).
    per_example_loss: [N]; `eval_loss` is its weighted mean.
    weights: `is_real_example` [N] (None: every row counts).
  """
  spec = _task(task_name)
  if not spec.scores:
    raise InputError(f"GLUE {spec.name} ({spec.task_dir}) has no labels to score; its "
                     f"predictions go to the submission file {spec.submission_file}")
  predicted = np.asarray(predictions)
  if predicted.ndim == 2 and not spec.is_regression:
    predicted = np.argmax(predicted, axis=-1)
  return {key: mean(per_example_loss, weights) if key == "eval_loss" else
          _GLUE_SCORES[key](labels, predicted, weights) for key in spec.scores}
