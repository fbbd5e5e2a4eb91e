"""The Task interface: model, data, loss, metrics and initialisation of one job.

The trainer (albert/training.py) owns everything generic: strategy, steps per loop,
optimizer, clipping, checkpoints, resume, evaluation, best-checkpoint selection, progress and
summaries. A task owns what differs between pretraining, GLUE, SQuAD and RACE.
"""

from __future__ import annotations

import abc
from typing import Dict, Optional, Tuple

import tensorflow as tf
import tf_keras

from albert import checkpoint


class Task(abc.ABC):
  """One job. Subclasses set `name`, `best_metric` (and `best_metric_higher_is_better`)."""

  name: str = "task"
  best_metric: Optional[str] = None
  best_metric_higher_is_better: bool = True

  @abc.abstractmethod
  def build_model(self) -> tf_keras.Model:
    """The functional model (dict in, dict out), variables in the original TF1 names."""

  @abc.abstractmethod
  def check_inputs(self, split: str) -> None:
    """Raises a clear error (naming the file or flag) if `split` ("train"/"eval") cannot run."""

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

  def initialize(self, model: tf_keras.Model, init_checkpoint: str,
                 init_from_group0: bool = False) -> checkpoint.LoadReport:
    """Loads a TF1-name checkpoint (original or ours) into a model that starts from scratch."""
    return checkpoint.load_tf1_checkpoint(model, init_checkpoint,
                                          init_from_group0=init_from_group0)
