"""Pretraining: MLM + SOP on the records of create_pretraining_data.py, as run_pretraining.py.

Loss = MLM (weights-normalised) + SOP, as the original's model_fn. Metrics are the original's
eval keys: `masked_lm_accuracy`, `masked_lm_loss` (weighted mean), `sentence_order_accuracy`,
`sentence_order_loss`, and `loss` (mean total loss per batch). The best checkpoint is chosen by
`masked_lm_accuracy`. The eval input streams (the original's `max_eval_steps` batches).

Records: the schema is owned by `albert.data.records` (the original's names, types and
lengths); the task reads the `FEATURES` the original's `input_fn` reads (not `token_boundary`),
ids as int32, and `next_sentence_labels` holds the SOP label. `prepare` reads the first
record before any work, so that a `max_seq_length` or `max_predictions_per_seq` that does not
match the files is a clear error, and every record's ids are checked against the config's
`vocab_size` as it is read (an id out of range is an error naming the files: on GPU an
out-of-range embedding lookup would silently give zeros); the first file's first 200 records
are checked up front, and a corrupted one there is named with its file and byte.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Dict, List, Optional, Tuple

import tensorflow as tf
import tf_keras

from albert import losses
from albert.train import input_pipeline
from albert.config import AlbertConfig
from albert.data import records as records_lib
from albert.errors import InputError
from albert.models import build_pretraining_model
from albert.train.task import Task

# The features pretraining reads, in the record's order.
FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
            "masked_lm_weights", "next_sentence_labels")
# The flag that sets each feature's length.
_LENGTH_FLAGS = {"input_ids": "--max_seq_length", "input_mask": "--max_seq_length",
                 "segment_ids": "--max_seq_length",
                 "masked_lm_positions": "--max_predictions_per_seq",
                 "masked_lm_ids": "--max_predictions_per_seq",
                 "masked_lm_weights": "--max_predictions_per_seq"}


@dataclasses.dataclass
class PretrainingDataConfig:
  input_file: str  # comma-separated globs
  max_seq_length: int = 512
  max_predictions_per_seq: int = 20
  shuffle_buffer_size: int = 100  # records, after interleaving (the original's 100)
  cycle_length: int = 4  # files read at once
  seed: int = 12345

  def schema(self) -> input_pipeline.Schema:
    spec = records_lib.feature_spec(self.max_seq_length, self.max_predictions_per_seq)
    return {name: spec[name] for name in FEATURES}


@dataclasses.dataclass
class PretrainingTaskConfig:
  albert_config: AlbertConfig
  train_data: Optional[PretrainingDataConfig] = None
  eval_data: Optional[PretrainingDataConfig] = None


class PretrainingTask(Task):
  """Masked-LM and sentence-order prediction; see the module docstring.

  Args:
    config: the task's settings (the albert config, the train and eval records).
    log: where the task's lines go; default: printed.

  Example (two steps of a tiny model on records of create_pretraining_data.py):

  ```python
  from albert.config import AlbertConfig
  from albert.tasks.pretraining import (PretrainingDataConfig, PretrainingTask,
                                        PretrainingTaskConfig)
  from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig

  tiny = AlbertConfig(vocab_size=30000, embedding_size=8, hidden_size=16, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=32)
  records = PretrainingDataConfig("records/*.tfrecord", max_seq_length=64,
                                  max_predictions_per_seq=10)
  task = PretrainingTask(PretrainingTaskConfig(tiny, train_data=records, eval_data=records))
  trainer = Trainer(task, TrainerConfig("out", train_batch_size=8, eval_batch_size=8,
                                        num_train_steps=2, save_checkpoints_steps=2,
                                        max_eval_steps=2),
                    OptimizerConfig(learning_rate=1e-4, num_warmup_steps=0))
  results = trainer.run(do_train=True, do_eval=True)  # masked_lm_accuracy, ..., global_step 2
  ```
  """

  name = "pretraining"
  best_metric = "masked_lm_accuracy"
  eval_streams = True

  def __init__(self, config: PretrainingTaskConfig, log=None):
    super().__init__(config, log)
    self._checked = set()

  def _data(self, split: str) -> PretrainingDataConfig:
    data = self.config.train_data if split == "train" else self.config.eval_data
    if data is None:
      raise InputError(f"no input files for {split}: set --input_file")
    return data

  def prepare(self, split: str, check_only: bool = False) -> None:
    """Checks the flags against the records (nothing to build: the records are the input)."""
    if split not in self._checked:
      self._check(split)
      self._checked.add(split)

  def _check(self, split: str) -> None:
    data = self._data(split)
    self.config.albert_config.check_sequence_length(data.max_seq_length, error=InputError)
    if data.max_predictions_per_seq > data.max_seq_length:
      raise InputError(f"--max_predictions_per_seq={data.max_predictions_per_seq} exceeds "
                       f"--max_seq_length={data.max_seq_length}")
    files = input_pipeline.expand_files(data.input_file)
    input_pipeline.check_first_record(files[0], data.schema(), _LENGTH_FLAGS,
                                      written_by="create_pretraining_data.py")
    self._check_vocabulary(files[0], data)

  def _check_vocabulary(self, path: str, data: PretrainingDataConfig, records: int = 200) -> None:
    """The ids of the first records must fit the config's vocabulary (all are checked as read)."""
    vocab_size = self.config.albert_config.vocab_size
    spec = input_pipeline.parse_spec(data.schema())
    largest = 0
    try:
      for record in tf.data.TFRecordDataset(path).take(records):
        example = tf.io.parse_single_example(record, spec)
        largest = max(largest, int(tf.reduce_max(example["input_ids"])),
                      int(tf.reduce_max(example["masked_lm_ids"])))
    except tf.errors.DataLossError as error:
      raise input_pipeline.corrupted_records_error(
          path, error, "; replace the file (nothing was written)") from None
    if largest >= vocab_size:
      raise InputError(f"{path}: the records hold token id {largest}, but the albert config's "
                       f"vocab_size is {vocab_size}: were they made with another vocabulary? "
                       "Use the config of the model the records were made for (vocab_size = the "
                       "SentencePiece model's size)")

  def input_files(self, split):
    return input_pipeline.expand_files(self._data(split).input_file)

  def build_model(self) -> tf_keras.Model:
    return build_pretraining_model(self.config.albert_config)

  def build_dataset(self, split, batch_size, input_context=None):
    data = self._data(split)
    vocab_size = self.config.albert_config.vocab_size
    files = input_pipeline.expand_files(data.input_file)

    def check_ids(features):
      return input_pipeline.check_ids_below(
          features, ("input_ids", "masked_lm_ids"), vocab_size,
          f"{', '.join(files)[:300]}: the {split} records hold a token id >= vocab_size "
          f"({vocab_size}) of the albert config; were they made with another vocabulary?")

    return input_pipeline.make_dataset(
        files, data.schema(), batch_size, "train" if split == "train" else "stream",
        input_context, seed=data.seed, shuffle_buffer_size=data.shuffle_buffer_size,
        cycle_length=data.cycle_length, decode=check_ids)

  def compute_loss(self, features, outputs):
    mlm = losses.masked_lm_loss(outputs["mlm_logits"], features["masked_lm_ids"],
                                features["masked_lm_weights"])
    sop = losses.sentence_order_loss(outputs["sop_logits"], features["next_sentence_labels"])
    loss = mlm["loss"] + sop["loss"]
    return loss, {"loss": loss, "mlm_loss": mlm["loss"], "mlm_log_probs": mlm["log_probs"],
                  "mlm_per_example_loss": mlm["per_example_loss"],
                  "sop_log_probs": sop["log_probs"],
                  "sop_per_example_loss": sop["per_example_loss"]}

  def loss_weights(self, features):
    """MLM: a mean over the real masked positions; SOP: a mean over the rows."""
    masked = tf.reduce_sum(tf.cast(features["masked_lm_weights"], tf.float32))
    rows = tf.cast(tf.shape(features["next_sentence_labels"])[0], tf.float32)
    return {"masked_lm": (masked, losses.masked_lm_denominator),
            "sentence_order": (rows, lambda total: total)}

  def loss_terms(self, loss, aux):
    # SOP as the rest of the loss: the terms add up to the loss whatever a subclass adds to it.
    return {"masked_lm": aux["mlm_loss"], "sentence_order": loss - aux["mlm_loss"]}

  def build_metrics(self) -> Dict[str, tf_keras.metrics.Metric]:
    return {"loss": tf_keras.metrics.Mean("loss"),
            "masked_lm_accuracy": tf_keras.metrics.Accuracy("masked_lm_accuracy"),
            "masked_lm_loss": tf_keras.metrics.Mean("masked_lm_loss"),
            "sentence_order_accuracy": tf_keras.metrics.Accuracy("sentence_order_accuracy"),
            "sentence_order_loss": tf_keras.metrics.Mean("sentence_order_loss")}

  def update_metrics(self, metrics, features, aux):
    ids = tf.reshape(features["masked_lm_ids"], [-1])
    weights = tf.reshape(tf.cast(features["masked_lm_weights"], tf.float32), [-1])
    predictions = tf.argmax(aux["mlm_log_probs"], axis=-1, output_type=tf.int32)
    metrics["masked_lm_accuracy"].update_state(ids, predictions, sample_weight=weights)
    metrics["masked_lm_loss"].update_state(aux["mlm_per_example_loss"], sample_weight=weights)
    labels = tf.reshape(features["next_sentence_labels"], [-1])
    sop_predictions = tf.argmax(aux["sop_log_probs"], axis=-1, output_type=tf.int32)
    metrics["sentence_order_accuracy"].update_state(labels, sop_predictions)
    metrics["sentence_order_loss"].update_state(aux["sop_per_example_loss"])
    metrics["loss"].update_state(aux["loss"])


def masked_lm_frequency_baseline(train_files: List[str], eval_files: List[str],
                                 max_seq_length: int, max_predictions_per_seq: int
                                 ) -> Tuple[int, float]:
  """(most frequent masked id in training, its share of the eval masked ids): the MLM accuracy
  of always predicting that one token, the floor a pretrained model must beat."""
  spec = records_lib.parse_spec(records_lib.feature_spec(max_seq_length, max_predictions_per_seq))

  def masked(files):
    for record in tf.data.TFRecordDataset(files):
      example = tf.io.parse_single_example(record, spec)
      for token, weight in zip(example["masked_lm_ids"].numpy(),
                               example["masked_lm_weights"].numpy()):
        if weight > 0:
          yield int(token)

  most = collections.Counter(masked(train_files)).most_common(1)[0][0]
  eval_ids = list(masked(eval_files))
  return most, sum(t == most for t in eval_ids) / max(len(eval_ids), 1)
