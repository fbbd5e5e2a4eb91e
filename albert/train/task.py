"""The Task interface: what one job on the Trainer owns; the Trainer owns everything generic.

The Trainer (albert/train/trainer.py) owns the strategy, steps per loop, optimizer, clipping,
checkpoints, resume, one-pass evaluation, prediction, scoring every checkpoint and keeping the
best, progress and summaries. A task owns what differs between pretraining, GLUE, SQuAD and
RACE. `build_model` is its one abstract method; every other hook below has a working default,
which fits a classifier over TFRecords of fixed-length features (`input_files` + `schema`,
`logits` against `label_ids`). The Trainer calls the hooks in this order:

  prepare(split, check_only=True)   every split of the run, before anything is written
  prepare(split)                    checks (remembered), then builds what the split reads
  build_model, build_metrics        inside the strategy's scope
  initialize                        from --init_checkpoint when there is no resume state
  build_dataset                     per input pipeline
  compute_loss, update_metrics      per replica and step (training and evaluation)
  prediction_outputs, postprocess   predict; and evaluate, for an `eval_by_predict` task

Class attributes a task may change: `name`, `best_metric` (the result that picks
`model.ckpt-best`; None: no best) and `best_metric_higher_is_better`; `eval_streams` (the eval
input is endless: `max_eval_steps` batches are scored; else one pass over every example, padding
rows weighed 0); `eval_by_predict` (evaluate through predict + postprocess: metrics that cannot
stream, such as MCC or SQuAD's F1); `predict_splits` and `extra_eval_splits` (more than one split
to predict or score: MNLI's mismatched and diagnostic sets); `keep_unscored_checkpoints` (a
train-only run keeps every checkpoint for a later eval-only run to score).
"""

from __future__ import annotations

import abc
import io
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from albert import checkpoint, files, losses
from albert.config import AlbertConfig
from albert.train import input_pipeline


def print_line(line: str) -> None:
  """The default `log` of tasks and the Trainer: one flushed line on stdout."""
  print(line, flush=True)


class Task(abc.ABC):
  """One job on the Trainer; subclasses implement `build_model` and override what differs.

  Args:
    config: the task's one config (a dataclass of its settings; None for a task without any).
    log: where the task's progress lines go; default: printed.

  Example (a classifier over `{train,eval,predict}.tfrecord` whose records hold `input_ids` [4]
  and `label_ids` [1]: the default hooks read, batch, score and predict them):

  ```python
  import tensorflow as tf
  import tf_keras
  from albert.train.task import Task
  from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig

  class BagOfWords(Task):
    best_metric, best_metric_higher_is_better = "loss", False

    def input_files(self, split):
      return [f"{split}.tfrecord"]

    def build_model(self):
      ids = tf_keras.Input([4], dtype=tf.int32, name="input_ids")
      pooled = tf.reduce_mean(tf_keras.layers.Embedding(20, 8)(ids), axis=1)
      return tf_keras.Model({"input_ids": ids}, {"logits": tf_keras.layers.Dense(2)(pooled)})

  trainer = Trainer(BagOfWords(), TrainerConfig("out", train_batch_size=8, eval_batch_size=8,
                                                num_train_steps=2, save_checkpoints_steps=2),
                    OptimizerConfig(optimizer="adamw", learning_rate=1e-3))
  results = trainer.run(do_train=True, do_eval=True, do_predict=True)  # loss, global_step 2
  # and out/predict_predictions.npz: each example's logits, in input order
  ```
  """

  name: str = "task"
  best_metric: Optional[str] = None
  best_metric_higher_is_better: bool = True
  eval_streams: bool = False
  eval_by_predict: bool = False
  predict_splits: Tuple[str, ...] = ("predict",)
  extra_eval_splits: Tuple[str, ...] = ()
  keep_unscored_checkpoints: bool = False

  def __init__(self, config: Any = None, log: Optional[Callable[[str], None]] = None):
    self.config = config
    self.log = log or print_line
    # Set by the Trainer when it predicts: the checkpoint the predictions come from (a TF1
    # prefix or a directory), for a `postprocess` that reads what was stored with it.
    self.weights_source: Optional[str] = None

  @property
  def albert_config(self) -> Optional[AlbertConfig]:
    """The encoder's config (written to, and checked against, `output_dir/albert_config.json`);
    None when the task has none."""
    return getattr(self.config, "albert_config", None)

  # ------------------------------------------------------------------------------- the model
  @abc.abstractmethod
  def build_model(self) -> tf_keras.Model:
    """The task's functional model.

    Returns:
      A model taking a dict of the features it names as inputs and returning a dict of
      outputs; its variables in the original TF1 names (they are what checkpoints hold).
    """

  def initialize(self, model: tf_keras.Model, init_checkpoint: str,
                 init_from_group0: bool = False) -> checkpoint.LoadReport:
    """Loads `--init_checkpoint` into a model that starts without a resume state.

    Args:
      model: the model `build_model` returned.
      init_checkpoint: a TF1-name checkpoint (the original's or ours), prefix or directory.
      init_from_group0: read every transformer group from the checkpoint's `group_0`.

    Returns:
      The load report (what was loaded, what is new), which the Trainer prints.
    """
    return checkpoint.load_tf1_checkpoint(model, init_checkpoint,
                                          init_from_group0=init_from_group0)

  def head_labels(self) -> Optional[List[str]]:
    """The labels the head's output rows stand for, in order (a classifier's), else None: a
    Hugging Face folder's classifier rows are matched to them by its id2label."""
    return None

  def initial_weights_note(self) -> Optional[str]:
    """Where the weights come from without any checkpoint.

    Returns:
      A line for the log (e.g. "Encoder weights from the hub module ..."), or None: the
      Trainer says the model trains from scratch.
    """
    return None

  # -------------------------------------------------------------------------------- the data
  def prepare(self, split: str, check_only: bool = False) -> None:
    """Checks that `split` can run, then builds what it reads (e.g. a feature cache).

    The Trainer calls it with `check_only=True` for every split of a run before it writes
    anything, then without before it builds the model. A task remembers what it checked and
    built: a second call does no work twice. The default checks the first record of the
    split's first input file against `schema(split)` and has nothing to build.

    Args:
      split: "train", "eval", "predict", or one of `extra_eval_splits` / `predict_splits`.
      check_only: only check, writing nothing; a bad input raises an error of
        `albert.errors` naming the file or flag and what was expected.
    """
    del check_only  # the default builds nothing
    paths = self.input_files(split)
    if paths:
      input_pipeline.check_first_record(paths[0], self.schema(split))

  def input_files(self, split: str) -> List[str]:
    """The record files of `split` (read by the default `build_dataset`, named in errors about
    corrupted records).

    Returns:
      The paths (after `prepare(split)` for a task that builds them); the default: none.
    """
    del split
    return []

  def schema(self, split: str) -> input_pipeline.Schema:
    """The features of `split`'s records.

    Returns:
      `{name: ("int64" | "float32", length)}`; the default: every feature of the first
      record of the split's first input file.
    """
    paths = self.input_files(split)
    if not paths:
      raise NotImplementedError(f"task {self.name} has no input files for {split!r}: "
                                "override input_files (or build_dataset)")
    return input_pipeline.schema_of_first_record(paths[0])

  def build_dataset(self, split: str, batch_size: int,
                    input_context: Optional[tf.distribute.InputContext] = None
                    ) -> tf.data.Dataset:
    """The batches of `split` on one input pipeline.

    Args:
      split: a prepared split.
      batch_size: the batch size per replica.
      input_context: the pipeline's place among all (None: the only one).

    Returns:
      Feature dicts: training batches shuffled and repeated; evaluation and prediction batches
      one pass over every example (padding rows have `is_real_example` 0; every row carries
      `row_index`), or an endless stream for an `eval_streams` task. The default reads
      `input_files(split)` with `schema(split)` (`input_pipeline.make_dataset`).
    """
    mode = "train" if split == "train" else "stream" if self.eval_streams else "one_pass"
    return input_pipeline.make_dataset(self.input_files(split), self.schema(split), batch_size,
                                       mode, input_context)

  def num_train_examples(self) -> Optional[int]:
    """The number of training examples, for runs whose length is given in epochs.

    Returns:
      The count, or None when unknown; the default counts the records of the train split.
    """
    paths = self.input_files("train")
    return input_pipeline.count_records(paths) if paths else None

  def data_fingerprint(self, split: str) -> Optional[str]:
    """A digest of the content `split` feeds the model (results are keyed by the eval data's; a
    resume is refused on other training data).

    Returns:
      A prepared split's digest (e.g. its feature cache's fingerprint), or None: the Trainer
      then keys the split by its files' path, size and time (the default: pretraining's
      records are not hashed, reading gigabytes would cost minutes); or "": the split is data
      of the run itself, not of what the user scores, and does not key the evaluations
      (SQuAD's held-out training articles).
    """
    del split
    return None

  def run_identity(self) -> Dict[str, Any]:
    """What binds a run directory besides the albert config: recorded in
    `output_dir/train_state/run_identity.json` by the first run; a later run with other values
    is refused, naming them.

    Returns:
      The task and the settings that shape its model or data, keyed by flag name (JSON
      values); the default: the task's name.
    """
    return {"task": self.name}

  # ------------------------------------------------------------------------ loss and metrics
  def compute_loss(self, features: Dict[str, tf.Tensor], outputs: Dict[str, tf.Tensor]
                   ) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """The loss of one replica's batch.

    Args:
      features: the batch (with `is_real_example`, 0 for padding rows, in evaluation).
      outputs: the model's outputs on it.

    Returns:
      (the mean loss over the batch's real rows, auxiliary tensors for `update_metrics`); the
      default: softmax cross-entropy of `outputs["logits"]` against `features["label_ids"]`,
      auxiliaries `loss`, `per_example_loss`, `log_probs`, `probabilities`, `logits`.
    """
    result = losses.classification_loss(outputs["logits"], features["label_ids"],
                                        features.get("is_real_example"))
    return result["loss"], dict(result, logits=outputs["logits"])

  def loss_weights(self, features: Dict[str, tf.Tensor]
                   ) -> Dict[str, Tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]]:
    """How the training loss of a batch is normalised, so that the Trainer can normalise the
    loss of a micro-batch (gradient accumulation) or of a replica by the global batch's.

    Args:
      features: a training batch (only its weights are read; no forward pass).

    Returns:
      `{term: (weight_sum, denominator)}` for the terms of `loss_terms`: the term is
      `sum(w * l) / denominator(weight_sum)` over the batch, and weight sums add up over
      batches. The default, for a loss that is a mean over the batch's rows (weighted by
      `is_real_example` when present): `{"loss": (rows or sum(w), max(., 1))}`.
    """
    first = next(iter(features.values()))
    weights = features.get(input_pipeline.IS_REAL)
    total = (tf.reduce_sum(tf.cast(weights, tf.float32)) if weights is not None
             else tf.cast(tf.shape(first)[0], tf.float32))
    return {"loss": (total, losses.weighted_mean_denominator)}

  def loss_terms(self, loss: tf.Tensor, aux: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """`compute_loss`'s loss as the sum of the terms `loss_weights` describes (best made so
    that they add up to `loss` by construction: one term is the loss minus the others); the
    default: one term, `{"loss": loss}`."""
    del aux
    return {"loss": loss}

  def build_metrics(self) -> Dict[str, tf_keras.metrics.Metric]:
    """Fresh streaming metrics (called inside the strategy's scope).

    Returns:
      Metrics keyed by the names shown in progress lines and written to eval_results.txt;
      the default: `loss` (a mean).
    """
    return {"loss": tf_keras.metrics.Mean("loss")}

  def update_metrics(self, metrics: Dict[str, tf_keras.metrics.Metric],
                     features: Dict[str, tf.Tensor], aux: Dict[str, tf.Tensor]) -> None:
    """Accumulates one batch into `metrics`.

    Args:
      metrics: what `build_metrics` returned.
      features: the batch.
      aux: the auxiliary tensors `compute_loss` returned (the default reads `aux["loss"]`).
    """
    del features
    metrics["loss"].update_state(aux["loss"])

  # ------------------------------------------------------------------------------ prediction
  def prediction_outputs(self, features: Dict[str, tf.Tensor],
                         outputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """The per-example tensors `predict` returns (the one place that names them).

    Args:
      features: one replica's batch.
      outputs: the model's outputs on it.

    Returns:
      Tensors whose first axis is the batch: model outputs, and features that `postprocess`
      needs (ids, labels); the default: every model output that is one tensor.
    """
    del features
    return {k: v for k, v in outputs.items() if not isinstance(v, (list, tuple))}

  def postprocess(self, split: str, predictions: Dict[str, np.ndarray],
                  output_dir: str) -> Dict[str, float]:
    """Turns the predictions of `split` into output files and metrics.

    Args:
      split: the predicted split.
      predictions: `prediction_outputs` of every real example, in input order, plus
        `row_index` and `is_real_example`.
      output_dir: the run's output directory.

    Returns:
      Metrics (an `eval_by_predict` task's evaluation results); the default writes the
      predictions to `<output_dir>/<split>_predictions.npz` and returns none.
    """
    buffer = io.BytesIO()
    np.savez(buffer, **predictions)
    files.write_bytes(os.path.join(output_dir, f"{split}_predictions.npz"), buffer.getvalue())
    return {}
