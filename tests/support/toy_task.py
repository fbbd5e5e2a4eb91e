"""A tiny classification task on the Trainer, for tests of its generic seams (not a real task).

Records: `input_ids` [4] (int64), `input_mask` [4], `label_ids` [1], `example_id` [1]; the model is
an embedding bag and a dense layer (2 classes). Eval streams nothing: one pass, with the padding
rows of the last batch weighted 0. `eval_by_predict=True` scores through predict + postprocess.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras

from albert import files
from albert.train import input_pipeline
from albert.data import records
from albert.train.task import Task

SCHEMA = {"input_ids": ("int64", 4), "input_mask": ("int64", 4), "label_ids": ("int64", 1),
          "example_id": ("int64", 1)}


def write_toy_records(path: str, count: int, seed: int = 0) -> str:
  """`count` records; the label is whether the first id is even (learnable)."""
  rng = np.random.RandomState(seed)
  serialized = []
  for i in range(count):
    ids = rng.randint(1, 20, size=4)
    length = rng.randint(1, 5)
    ids[length:] = 0
    mask = (np.arange(4) < length).astype(int)
    serialized.append(records.encode_example({
        "input_ids": ("int64", ids.tolist()), "input_mask": ("int64", mask.tolist()),
        "label_ids": ("int64", [int(ids[0] % 2 == 0)]), "example_id": ("int64", [i])}))
  with records.AtomicRecordFile(path) as out:
    for framed in records.frame_records(serialized):
      out.write_framed(framed)
    out.commit()
  return path


class ToyTask(Task):
  name = "toy"
  best_metric = "eval_accuracy"

  def __init__(self, train_file: str, eval_file: str, by_predict: bool = False,
               num_examples: Optional[int] = None):
    super().__init__()
    self.files = {"train": train_file, "eval": eval_file, "predict": eval_file}
    self.eval_by_predict = by_predict
    self._num_examples = num_examples

  def input_files(self, split):
    return [self.files[split]]

  def schema(self, split):  # the default prepare checks the first record against it
    return SCHEMA

  def num_train_examples(self):
    return self._num_examples

  def build_model(self):
    inputs = {"input_ids": tf_keras.Input([4], dtype=tf.int32, name="input_ids"),
              "input_mask": tf_keras.Input([4], dtype=tf.int32, name="input_mask")}
    embedded = tf_keras.layers.Embedding(20, 8, name="embed")(inputs["input_ids"])
    mask = tf.cast(inputs["input_mask"], tf.float32)[:, :, None]
    pooled = tf.reduce_sum(embedded * mask, axis=1)
    logits = tf_keras.layers.Dense(2, name="out")(pooled)
    return tf_keras.Model(inputs, {"logits": logits}, name="toy")

  def build_dataset(self, split, batch_size, input_context=None):
    mode = "train" if split == "train" else "one_pass"
    return input_pipeline.make_dataset([self.files[split]], SCHEMA, batch_size, mode,
                                       input_context, seed=3)

  def compute_loss(self, features, outputs):
    labels = tf.reshape(features["label_ids"], [-1])
    weights = tf.cast(tf.reshape(features.get("is_real_example", tf.ones_like(labels)), [-1]),
                      tf.float32)
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, outputs["logits"])
    loss = tf.reduce_sum(per_example * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
    return loss, {"per_example_loss": per_example, "weights": weights, "labels": labels,
                  "predictions": tf.argmax(outputs["logits"], -1, output_type=tf.int32)}

  def build_metrics(self):
    return {"eval_accuracy": tf_keras.metrics.Accuracy("eval_accuracy"),
            "eval_loss": tf_keras.metrics.Mean("eval_loss"),
            "count": tf_keras.metrics.Sum("count")}

  def update_metrics(self, metrics, features, aux):
    metrics["eval_accuracy"].update_state(aux["labels"], aux["predictions"],
                                          sample_weight=aux["weights"])
    metrics["eval_loss"].update_state(aux["per_example_loss"], sample_weight=aux["weights"])
    metrics["count"].update_state(aux["weights"])

  def prediction_outputs(self, features, outputs):
    return dict(outputs, example_id=features["example_id"], label_ids=features["label_ids"])

  def postprocess(self, split, predictions, output_dir):
    labels = predictions["label_ids"].reshape(-1)
    correct = predictions["logits"].argmax(-1) == labels
    files.write_text(os.path.join(output_dir, f"{split}_predictions.json"),
                     json.dumps(predictions["example_id"].reshape(-1).tolist()))
    return {"eval_accuracy": float(correct.mean()), "count": float(len(labels))}
