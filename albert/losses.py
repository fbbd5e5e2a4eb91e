"""The original's pretraining losses: weight-normalised MLM cross-entropy and mean SOP cross-entropy.

Each returns a dict with `loss` (scalar), `per_example_loss` and `log_probs`, in float32
whatever the compute dtype of the logits.
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf


def masked_lm_loss(logits: tf.Tensor, label_ids: tf.Tensor,
                   label_weights: tf.Tensor) -> Dict[str, tf.Tensor]:
  """MLM loss = sum(w * loss) / (sum(w) + 1e-5) over the B*P flattened predictions.

  logits [B,P,V], label_ids [B,P], label_weights [B,P] (0 for padded predictions). The
  per-example loss has one entry per prediction [B*P], padded ones included, as the original.
  """
  vocab_size = tf.shape(logits)[-1]
  log_probs = tf.nn.log_softmax(tf.reshape(tf.cast(logits, tf.float32), [-1, vocab_size]))
  label_ids = tf.reshape(tf.cast(label_ids, tf.int32), [-1])
  label_weights = tf.reshape(tf.cast(label_weights, tf.float32), [-1])
  one_hot = tf.one_hot(label_ids, depth=vocab_size, dtype=tf.float32)
  per_example_loss = -tf.reduce_sum(log_probs * one_hot, axis=-1)  # [B*P]
  numerator = tf.reduce_sum(label_weights * per_example_loss)
  denominator = tf.reduce_sum(label_weights) + 1e-5
  return {"loss": numerator / denominator, "per_example_loss": per_example_loss,
          "log_probs": log_probs}


def sentence_order_loss(logits: tf.Tensor, labels: tf.Tensor) -> Dict[str, tf.Tensor]:
  """SOP loss = mean cross-entropy; logits [B,2], labels [B] or [B,1] (0 = in order)."""
  log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
  labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
  one_hot = tf.one_hot(labels, depth=2, dtype=tf.float32)
  per_example_loss = -tf.reduce_sum(one_hot * log_probs, axis=-1)  # [B]
  return {"loss": tf.reduce_mean(per_example_loss), "per_example_loss": per_example_loss,
          "log_probs": log_probs}
