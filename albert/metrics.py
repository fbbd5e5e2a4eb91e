"""Evaluation metrics in plain numpy (TF-free): GLUE's, with the original's keys and numbers.

Every metric takes optional per-row `weights` (the `is_real_example` column: 0 for the padding
rows of a one-pass evaluation, 1 otherwise; any non-negative weights where the metric has a
weighted form, as `tf.metrics` does):

* `accuracy`, `mean` (the weighted mean of e.g. per-example losses), `mse`;
* `f1` (binary, positive class 1: precision and recall of label 1, 0.0 when undefined);
* `matthews_corrcoef` (binary, from the weighted confusion counts as the original computes it:
  `(tp tn - fp fn) / sqrt((tp + fp)(tp + fn)(tn + fp)(tn + fn))`, 0.0 when the denominator is 0,
  as the original's `tf.div_no_nan`);
* `macro_f1` (the mean of the per-label F1 over the labels present in labels or predictions, as
  scikit-learn's default; for multi-label 0/1 matrices [N, L], over every label), `micro_f1`
  (multi-label: F1 of every (row, label) decision) and `subset_accuracy` (multi-label: rows
  whose labels are all right); `multiclass_matthews_corrcoef` (Gorodkin's R_K, the binary MCC
  for two labels);
* `label_report`: per label precision, recall, F1 and support, and for single-label
  classification the confusion matrix, as text a person reads;
* `pearson` (weighted covariance over the square roots of the weighted variances, the
  streaming Pearson of the original's STS-B metric), `spearman` (Pearson of average ranks of the
  rows whose weight is not 0; weights must be 0 or 1).

`glue_metrics(task_name, predictions, labels, per_example_loss, weights)` returns the dict the
original's `metric_fn` puts into `eval_results.txt`, with the keys that the task's row of the
GLUE task table (`albert.data.glue.tasks`, its `scores`) names: `eval_accuracy` and `eval_loss`
for every classification task, `matthew_corr` for CoLA, `pearson`, `MSE` and `eval_loss` for
STS-B (the original has no accuracy there), plus what the original lacks: `f1` for MRPC and QQP,
`spearman` for STS-B. (The original's STS-B `pred` and `label_ids` arrays, every row concatenated,
are not metrics and are left out.) A custom task (`run_classifier --task_name=custom`) passes
its row instead of a name: its `scores` are the task type's keys
(`albert.data.glue.custom.scores_of`); multi-label predictions are the 0/1 decisions over the
threshold. `best_metric_key(task_name)` is the key that picks `model.ckpt-best` (the row's
`metric`), as the original chooses it: `pearson` for STS-B, `matthew_corr` for CoLA,
`eval_accuracy` for every other task, MRPC and QQP included (GLUE reports F1 and accuracy for
those; `f1` is there to read). Higher is better for all three.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

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


def _per_label_counts(labels: np.ndarray, predictions: np.ndarray, w: np.ndarray,
                      classes: Sequence[int]):
  """Weighted tp, fp, fn per class: class ids [N] (single label) or 0/1 matrices [N, L]."""
  counts = []
  for k in classes:
    y = labels[:, k] != 0 if labels.ndim == 2 else labels == k
    p = predictions[:, k] != 0 if predictions.ndim == 2 else predictions == k
    counts.append((np.sum(w * (y & p)), np.sum(w * (~y & p)), np.sum(w * (y & ~p))))
  return counts


def _matrices(labels, predictions, weights):
  y, p = np.asarray(labels), np.asarray(predictions)
  if y.ndim == 2 and y.shape[1] == 1 and p.ndim == 1:
    y = y[:, 0]
  if y.ndim == 1:
    y, p = _vector(y, "labels", np.int64), _vector(p, "predictions", np.int64)
  elif y.shape != p.shape:
    raise InputError(f"labels {y.shape} and predictions {p.shape} differ in shape")
  return y, p, _weights(weights, _same_length(y, p))


def macro_f1(labels: ArrayLike, predictions: ArrayLike,
             weights: Optional[ArrayLike] = None) -> float:
  """The mean per-label F1: class ids [N] (labels present in either) or 0/1 matrices [N, L]."""
  y, p, w = _matrices(labels, predictions, weights)
  classes = range(y.shape[1]) if y.ndim == 2 else sorted(set(y.tolist()) | set(p.tolist()))
  counts = _per_label_counts(y, p, w, classes)
  return float(np.mean([_ratio(2 * tp, 2 * tp + fp + fn) for tp, fp, fn in counts])) \
      if counts else 0.0


def micro_f1(labels: ArrayLike, predictions: ArrayLike,
             weights: Optional[ArrayLike] = None) -> float:
  """F1 of every (row, label) decision of 0/1 matrices [N, L]."""
  y, p, w = _matrices(labels, predictions, weights)
  tp, fp, fn = (sum(c) for c in zip(*_per_label_counts(y, p, w, range(y.shape[1])))) \
      if y.ndim == 2 else (0, 0, 0)
  return _ratio(2 * tp, 2 * tp + fp + fn)


def subset_accuracy(labels: ArrayLike, predictions: ArrayLike,
                    weights: Optional[ArrayLike] = None) -> float:
  """The weighted fraction of rows of 0/1 matrices [N, L] whose every label is right."""
  y, p, w = _matrices(labels, predictions, weights)
  right = np.all((y != 0) == (p != 0), axis=-1) if y.ndim == 2 else y == p
  return _ratio(np.sum(w * right), np.sum(w))


def multiclass_matthews_corrcoef(labels: ArrayLike, predictions: ArrayLike,
                                 weights: Optional[ArrayLike] = None) -> float:
  """Matthews correlation of class ids (R_K): the binary MCC's value for two classes; 0.0
  when undefined. Binary ids (0 and 1 only) go through `matthews_corrcoef`, as CoLA's."""
  y, p, w = _matrices(labels, predictions, weights)
  if set(y.tolist()) | set(p.tolist()) <= {0, 1}:
    return matthews_corrcoef(y, p, w)
  classes = sorted(set(y.tolist()) | set(p.tolist()))
  t = np.array([np.sum(w * (y == k)) for k in classes])
  q = np.array([np.sum(w * (p == k)) for k in classes])
  c, total = np.sum(w * (y == p)), np.sum(w)
  return _ratio(c * total - np.sum(t * q),
                np.sqrt(total ** 2 - np.sum(q * q)) * np.sqrt(total ** 2 - np.sum(t * t)))


def label_report(labels: ArrayLike, predictions: ArrayLike, names: Sequence[str],
                 weights: Optional[ArrayLike] = None) -> str:
  """Per label precision, recall, F1 and support (and for class ids the confusion matrix, rows
  the true labels, columns the predicted ones) as aligned text."""
  y, p, w = _matrices(labels, predictions, weights)
  counts = _per_label_counts(y, p, w, range(len(names)))
  width = max([len("label")] + [len(str(n)) for n in names])
  lines = [f"{'label':<{width}}  precision     recall         f1    support"]
  for name, (tp, fp, fn) in zip(names, counts):
    lines.append(f"{name:<{width}}  {_ratio(tp, tp + fp):9.4f}  {_ratio(tp, tp + fn):9.4f}  "
                 f"{_ratio(2 * tp, 2 * tp + fp + fn):9.4f}  {int(round(tp + fn)):9d}")
  if y.ndim == 1:
    lines += ["", "confusion matrix (rows: true label, columns: predicted label)"]
    cell = max([width] + [len(str(int(np.sum(w)))) + 1])
    lines.append(" " * width + "".join(f"  {str(n):>{cell}}" for n in names))
    for i, name in enumerate(names):
      row = [int(round(np.sum(w * ((y == i) & (p == j))))) for j in range(len(names))]
      lines.append(f"{name:<{width}}" + "".join(f"  {v:>{cell}d}" for v in row))
  return "\n".join(lines) + "\n"


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
    "matthew_corr": multiclass_matthews_corrcoef,
    "macro_f1": macro_f1,
    "micro_f1": micro_f1,
    "subset_accuracy": subset_accuracy,
    "f1": f1,
    "MSE": mse,
    "pearson": lambda labels, predictions, weights: pearson(predictions, labels, weights),
    "spearman": lambda labels, predictions, weights: spearman(predictions, labels, weights),
}


def _task(task_name):
  """The row of a task name, or the row itself (a custom task's)."""
  if not isinstance(task_name, str):
    return task_name
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
    task_name: a GLUE task name (`tasks.canonical_task_name`), or a task's row.
    predictions: class ids [N], or logits / probabilities [N, C] (their argmax is used);
      STS-B: the predicted scores [N] (or [N, 1]); multi-label: 0/1 decisions [N, L].
    labels: label ids [N] (STS-B: scores; multi-label: 0/1 [N, L]).
    per_example_loss: [N]; `eval_loss` is its weighted mean.
    weights: `is_real_example` [N] (None: every row counts).
  """
  spec = _task(task_name)
  if not spec.scores:
    raise InputError(f"GLUE {spec.name} ({spec.task_dir}) has no labels to score; its "
                     f"predictions go to the submission file {spec.submission_file}")
  predicted = np.asarray(predictions)
  if predicted.ndim == 2 and not spec.is_regression and not spec.multi_label:
    predicted = np.argmax(predicted, axis=-1)
  return {key: mean(per_example_loss, weights) if key == "eval_loss" else
          _GLUE_SCORES[key](labels, predicted, weights) for key in spec.scores}
