"""The Task interface: model, data, loss, metrics and initialisation of one job.

The trainer (albert/train/trainer.py) owns everything generic: strategy, steps per loop,
optimizer, clipping, checkpoints, resume, evaluation in one pass, prediction, scoring every
checkpoint and keeping the best, progress and summaries. A task owns what differs between
pretraining, GLUE, SQuAD and RACE. Beyond the abstract methods, a task may override hooks whose
defaults fit pretraining:

* `prepare(split)`: build the split's feature cache (called after every check, before the
  model is built);
* `num_train_examples()`: for runs whose length is given in epochs;
* `input_files(split)`: the record files of a split (named in errors about corrupted records);
* `eval_streams`: True when the eval input is endless (then `max_eval_steps` caps it), False
  for one pass over every example (`is_real_example` weights drop the padding);
* `eval_by_predict`: evaluate through `predict` + `postprocess` instead of streaming metrics
  (metrics that cannot stream, such as MCC or SQuAD's F1);
* `prediction_outputs(features, outputs)`: the tensors `predict` returns per example;
* `postprocess(split, predictions, output_dir)`: turns predictions into files and metrics;
* `predict_splits`, `extra_eval_splits`: more than one split to predict or to score (MNLI);
* `run_identity()`: what binds a run directory besides the albert config (a later run with
  other values is refused); `data_fingerprint(split)`: a digest of a split's content (results
  are keyed by the eval data's, a resume is refused on other training data).
"""

from __future__ import annotations

import abc
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from albert import checkpoint
from albert.config import AlbertConfig


class Task(abc.ABC):
  """One job. Subclasses set `name`, `best_metric` (and `best_metric_higher_is_better`)."""

  name: str = "task"
  best_metric: Optional[str] = None
  best_metric_higher_is_better: bool = True
  eval_streams: bool = False
  eval_by_predict: bool = False
  # Features `predict` passes through beside the model's outputs (ids that postprocess needs).
  passthrough_features: Tuple[str, ...] = ()
  # `--do_predict` predicts and postprocesses each of these splits (e.g. MNLI: also the
  # mismatched test set and the diagnostic set); `evaluate("eval")` also scores these (an
  # eval_by_predict task; their postprocess returns differently named keys).
  predict_splits: Tuple[str, ...] = ("predict",)
  # A train-only run keeps every checkpoint for a later eval-only run to score (as the
  # original's fine-tuning scripts, whose eval job chose the best); pretraining prunes.
  keep_unscored_checkpoints: bool = False
  extra_eval_splits: Tuple[str, ...] = ()
  # Set by the trainer when it predicts: the checkpoint the predictions come from (a TF1 prefix
  # or a directory), for a `postprocess` that reads what was stored with it.
  weights_source: Optional[str] = None

  @property
  def albert_config(self) -> Optional[AlbertConfig]:
    """The encoder's config (written to, and checked against, `output_dir/albert_config.json`)."""
    config = getattr(self, "config", None)
    return getattr(config, "albert_config", None)

  @abc.abstractmethod
  def build_model(self) -> tf_keras.Model:
    """The functional model (dict in, dict out), variables in the original TF1 names."""

  @abc.abstractmethod
  def check_inputs(self, split: str) -> None:
    """Raises a clear error (naming the file or flag) if `split` cannot run; writes nothing."""

  @abc.abstractmethod
  def build_dataset(self, split: str, batch_size: int,
                    input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
    """Batches of `batch_size` (per replica) feature dicts for `split`."""

  @abc.abstractmethod
  def compute_loss(self, features: Dict[str, tf.Tensor],
                   outputs: Dict[str, tf.Tensor]) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """(mean loss over the replica's batch, auxiliary tensors for `update_metrics`)."""

  @abc.abstractmethod
  def build_metrics(self) -> Dict[str, tf_keras.metrics.Metric]:
    """Fresh metric objects, keyed by the names written to eval_results.txt."""

  @abc.abstractmethod
  def update_metrics(self, metrics: Dict[str, tf_keras.metrics.Metric],
                     features: Dict[str, tf.Tensor], aux: Dict[str, tf.Tensor]) -> None:
    """Accumulates one batch into `metrics`."""

  # ----------------------------------------------------------------------- optional hooks
  def prepare(self, split: str) -> None:
    """Builds what `split` reads (e.g. a feature cache); the default has nothing to build."""

  def num_train_examples(self) -> Optional[int]:
    """The number of training examples (epoch-based runs); None when unknown."""
    return None

  def input_files(self, split: str) -> List[str]:
    """The record files `split` reads (to name a corrupted one); empty when unknown."""
    return []

  def run_identity(self) -> Dict[str, Any]:
    """The task and the settings that shape its model or data, keyed by flag name (JSON
    values), recorded in `output_dir/train_state/run_identity.json` by the first run: a later
    run with other values is refused, naming them. The default: the task's name."""
    return {"task": self.name}

  def data_fingerprint(self, split: str) -> Optional[str]:
    """A digest of the content `split` feeds the model (a feature cache's fingerprint), or None
    when the task has none (pretraining's records are not hashed: reading gigabytes would cost
    minutes; the Trainer keys their evaluations by the files' path, size and time instead).
    An empty string: the split is data of the run itself, not of what the user scores (it does
    not key the evaluations)."""
    return None

  def prediction_outputs(self, features: Dict[str, tf.Tensor],
                         outputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Per-example tensors `predict` returns: the model's outputs and `passthrough_features`."""
    result = {k: v for k, v in outputs.items() if not isinstance(v, (list, tuple))}
    result.update({k: features[k] for k in self.passthrough_features})
    return result

  def postprocess(self, split: str, predictions: Dict[str, np.ndarray],
                  output_dir: str) -> Dict[str, float]:
    """Turns the predictions of `split` into output files and metrics (eval_by_predict)."""
    raise NotImplementedError(f"task {self.name} has no postprocess for {split!r}")

  def initial_weights_note(self) -> Optional[str]:
    """Where the weights come from without a checkpoint (e.g. a hub module); None: at random."""
    return None

  def initialize(self, model: tf_keras.Model, init_checkpoint: str,
                 init_from_group0: bool = False) -> checkpoint.LoadReport:
    """Loads a TF1-name checkpoint (original or ours) into a model that starts from scratch."""
    return checkpoint.load_tf1_checkpoint(model, init_checkpoint,
                                          init_from_group0=init_from_group0)
