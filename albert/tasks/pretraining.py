"""Pretraining: MLM + SOP on the records of create_pretraining_data.py, as run_pretraining.py.

Loss = MLM (weights-normalised) + SOP, as the original's model_fn. Metrics are the original's
eval keys: `masked_lm_accuracy`, `masked_lm_loss` (weighted mean), `sentence_order_accuracy`,
`sentence_order_loss`, and `loss` (mean total loss per batch). The best checkpoint is chosen by
`masked_lm_accuracy`.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional

import tensorflow as tf
import tf_keras

from albert import losses
from albert.config import AlbertConfig
from albert.models import build_pretraining_model
from albert.pretraining_data import (InputError, PretrainingDataConfig, check_records,
                                     expand_files, make_dataset)
from albert.tasks.base import Task


@dataclasses.dataclass
class PretrainingTaskConfig:
  albert_config: AlbertConfig
  train_data: Optional[PretrainingDataConfig] = None
  eval_data: Optional[PretrainingDataConfig] = None


class PretrainingTask(Task):
  """Masked-LM and sentence-order prediction."""

  name = "pretraining"
  best_metric = "masked_lm_accuracy"

  def __init__(self, config: PretrainingTaskConfig):
    self.config = config

  def _data(self, split: str) -> PretrainingDataConfig:
    data = self.config.train_data if split == "train" else self.config.eval_data
    if data is None:
      raise InputError(f"no input files for {split}: set --input_file")
    return data

  def check_inputs(self, split: str) -> None:
    data = self._data(split)
    limit = self.config.albert_config.max_position_embeddings
    if data.max_seq_length > limit:
      raise InputError(f"--max_seq_length={data.max_seq_length} exceeds max_position_embeddings "
                       f"({limit}) of the albert config")
    if data.max_predictions_per_seq > data.max_seq_length:
      raise InputError(f"--max_predictions_per_seq={data.max_predictions_per_seq} exceeds "
                       f"--max_seq_length={data.max_seq_length}")
    check_records(expand_files(data.input_file), data)

  def build_model(self) -> tf_keras.Model:
    return build_pretraining_model(self.config.albert_config)

  def build_dataset(self, split, batch_size, input_context=None):
    data = self._data(split)
    return make_dataset(expand_files(data.input_file), data, batch_size,
                        is_training=(split == "train"), input_context=input_context)

  def compute_loss(self, features, outputs):
    mlm = losses.masked_lm_loss(outputs["mlm_logits"], features["masked_lm_ids"],
                                features["masked_lm_weights"])
    sop = losses.sentence_order_loss(outputs["sop_logits"], features["next_sentence_labels"])
    loss = mlm["loss"] + sop["loss"]
    return loss, {"loss": loss, "mlm_log_probs": mlm["log_probs"],
                  "mlm_per_example_loss": mlm["per_example_loss"],
                  "sop_log_probs": sop["log_probs"],
                  "sop_per_example_loss": sop["per_example_loss"]}

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
