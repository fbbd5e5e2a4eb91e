"""The original's losses: pretraining (MLM, SOP) and fine-tuning (GLUE, SQuAD v1/v2, RACE).

Each returns a dict with `loss` (scalar), `per_example_loss` and, where there is a softmax,
`log_probs` (and `probabilities`), in float32 whatever the compute dtype of the inputs.

The fine-tuning losses take an optional 0/1 weight per example (`is_real_example`), so that the
padding rows of a fixed-shape eval batch count zero: `loss = sum(w * l) / max(sum(w), 1)`. With
`weights=None` the loss is the original's plain mean (`tf.reduce_mean`); with every weight 1 it
is the same mean. `per_example_loss` is never weighted (the original's eval metrics weight it).
"""

from __future__ import annotations

from typing import Dict, Optional

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
  denominator = masked_lm_denominator(tf.reduce_sum(label_weights))
  return {"loss": numerator / denominator, "per_example_loss": per_example_loss,
          "log_probs": log_probs}


def masked_lm_denominator(weight_sum: tf.Tensor) -> tf.Tensor:
  """What the MLM loss divides its weighted sum by: sum(w) + 1e-5, the original's."""
  return weight_sum + 1e-5


def weighted_mean_denominator(weight_sum: tf.Tensor) -> tf.Tensor:
  """What `weighted_mean` divides its weighted sum by: max(sum(w), 1)."""
  return tf.maximum(weight_sum, 1.0)


def sentence_order_loss(logits: tf.Tensor, labels: tf.Tensor) -> Dict[str, tf.Tensor]:
  """SOP loss = mean cross-entropy; logits [B,2], labels [B] or [B,1] (0 = in order)."""
  log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
  labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
  one_hot = tf.one_hot(labels, depth=2, dtype=tf.float32)
  per_example_loss = -tf.reduce_sum(one_hot * log_probs, axis=-1)  # [B]
  return {"loss": tf.reduce_mean(per_example_loss), "per_example_loss": per_example_loss,
          "log_probs": log_probs}


# ------------------------------------------------------------------------------ fine-tuning
def weighted_mean(per_example_loss: tf.Tensor, weights: Optional[tf.Tensor] = None) -> tf.Tensor:
  """mean(l) without weights (the original's); sum(w * l) / max(sum(w), 1) with weights [B]."""
  per_example_loss = tf.cast(per_example_loss, tf.float32)
  if weights is None:
    return tf.reduce_mean(per_example_loss)
  weights = tf.reshape(tf.cast(weights, tf.float32), [-1])
  return (tf.reduce_sum(weights * per_example_loss)
          / weighted_mean_denominator(tf.reduce_sum(weights)))


def _cross_entropy(log_probs: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
  """-sum(one_hot(labels) * log_probs) over the last axis, as the original: [B,N] -> [B]."""
  labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
  one_hot = tf.one_hot(labels, depth=tf.shape(log_probs)[-1], dtype=tf.float32)
  return -tf.reduce_sum(one_hot * log_probs, axis=-1)


def classification_loss(logits: tf.Tensor, labels: tf.Tensor,
                        weights: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
  """Softmax cross-entropy of `run_classifier.py`: logits [B,L], labels [B] (or [B,1]) int."""
  logits = tf.cast(logits, tf.float32)
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  per_example_loss = _cross_entropy(log_probs, labels)  # [B]
  return {"loss": weighted_mean(per_example_loss, weights),
          "per_example_loss": per_example_loss, "log_probs": log_probs,
          "probabilities": tf.nn.softmax(logits, axis=-1)}


def regression_loss(predictions: tf.Tensor, labels: tf.Tensor,
                    weights: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
  """STS-B's squared error: per example (prediction - label)^2; predictions, labels [B] float."""
  predictions = tf.reshape(tf.cast(predictions, tf.float32), [-1])
  per_example_loss = tf.square(predictions - tf.reshape(tf.cast(labels, tf.float32), [-1]))
  return {"loss": weighted_mean(per_example_loss, weights),
          "per_example_loss": per_example_loss}


def multi_label_loss(logits: tf.Tensor, labels: tf.Tensor,
                     weights: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
  """Binary cross-entropy of one sigmoid per label: logits [B,L], labels [B,L] 0/1; the loss of
  an example is the mean over its labels."""
  logits = tf.cast(logits, tf.float32)
  labels = tf.cast(tf.reshape(labels, tf.shape(logits)), tf.float32)
  per_example_loss = tf.reduce_mean(
      tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), axis=-1)
  return {"loss": weighted_mean(per_example_loss, weights),
          "per_example_loss": per_example_loss, "probabilities": tf.nn.sigmoid(logits)}


def multiple_choice_loss(logits: tf.Tensor, labels: tf.Tensor,
                         weights: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
  """RACE: cross-entropy of the softmax over choices; logits [B,C], labels [B] (choice index)."""
  return classification_loss(logits, labels, weights)


def _position_loss(log_probs: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
  """-log p(position) per example: log_probs [B,S], positions [B] -> [B]."""
  return _cross_entropy(tf.cast(log_probs, tf.float32), positions)


def squad_v1_loss(start_logits: tf.Tensor, end_logits: tf.Tensor, start_positions: tf.Tensor,
                  end_positions: tf.Tensor,
                  weights: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
  """`run_squad_v1.py`: (start + end) / 2, each the mean softmax cross-entropy over positions.

  start_logits, end_logits [B,S] (raw, no p_mask); positions [B] (or [B,1]). Also returns
  `start_loss`, `end_loss`, `per_example_loss` [B] ((start + end) / 2 per example) and the
  `start_log_probs`, `end_log_probs`.
  """
  start_log_probs = tf.nn.log_softmax(tf.cast(start_logits, tf.float32), axis=-1)
  end_log_probs = tf.nn.log_softmax(tf.cast(end_logits, tf.float32), axis=-1)
  start = _position_loss(start_log_probs, start_positions)
  end = _position_loss(end_log_probs, end_positions)
  start_loss, end_loss = weighted_mean(start, weights), weighted_mean(end, weights)
  return {"loss": (start_loss + end_loss) * 0.5, "start_loss": start_loss,
          "end_loss": end_loss, "per_example_loss": (start + end) * 0.5,
          "start_log_probs": start_log_probs, "end_log_probs": end_log_probs}


def squad_v2_loss(start_log_probs: tf.Tensor, end_log_probs: tf.Tensor, cls_logits: tf.Tensor,
                  start_positions: tf.Tensor, end_positions: tf.Tensor,
                  is_impossible: tf.Tensor,
                  weights: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
  """`run_squad_v2.py`: (start + end) / 2 + answer-class loss / 2, as the original.

  start_log_probs, end_log_probs [B,S] (the model's masked log-probs; the end given the gold
  start), cls_logits [B], positions and is_impossible [B]. The answer-class loss is the mean
  sigmoid cross-entropy of `cls_logits` against `is_impossible` (1 = no answer); the original
  halves it "so that the scale is comparable to start_loss and end_loss". Also returns
  `start_loss`, `end_loss`, `answer_class_loss` (unhalved) and `per_example_loss` [B].
  """
  start = _position_loss(start_log_probs, start_positions)
  end = _position_loss(end_log_probs, end_positions)
  labels = tf.reshape(tf.cast(is_impossible, tf.float32), [-1])
  answer = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=labels, logits=tf.reshape(tf.cast(cls_logits, tf.float32), [-1]))
  start_loss, end_loss = weighted_mean(start, weights), weighted_mean(end, weights)
  answer_loss = weighted_mean(answer, weights)
  return {"loss": (start_loss + end_loss) * 0.5 + answer_loss * 0.5,
          "start_loss": start_loss, "end_loss": end_loss, "answer_class_loss": answer_loss,
          "per_example_loss": (start + end) * 0.5 + answer * 0.5}
