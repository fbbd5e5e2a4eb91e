"""Pretraining heads with the original names: MLM (`cls/predictions`) and SOP (`cls/seq_relationship`).

The MLM decoder is tied to `bert/embeddings/word_embeddings`; only its bias
`cls/predictions/output_bias` [V] is its own. The SOP head stores `output_weights` as [2,H]
(transposed with respect to a Dense kernel), as the original does.

Shapes: B batch, S sequence, H hidden, E embedding, P predictions per sequence, V vocabulary.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from albert import layers
from albert.config import AlbertConfig


class MaskedLMHead(tf_keras.layers.Layer):
  """MLM head: gather P positions, transform H->E (config activation) + LayerNorm, tied decoder.

  `call(sequence_output [B,S,H], masked_lm_positions [B,P])` returns `mlm_logits` [B,P,V].
  `embedding_layer` is the backbone's `Embeddings` layer, whose table [V,E] the decoder reuses.
  """

  def __init__(self, config: AlbertConfig, embedding_layer: layers.Embeddings,
               name: str = "cls/predictions", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config
    self.embedding_layer = embedding_layer
    self.dense = layers.dense(config.embedding_size, "dense", config.initializer_range,
                              activation=layers.get_activation(config.hidden_act))
    self.layer_norm = layers.LayerNorm(name="LayerNorm")

  def build(self, input_shape):
    self.output_bias = self.add_weight("output_bias", shape=[self.config.vocab_size],
                                       initializer="zeros")
    super().build(input_shape)

  def transform(self, x):
    """[..., H] -> [..., E]: the `cls/predictions/transform` dense + LayerNorm."""
    with layers.name_scope("transform"):
      return tf.cast(self.layer_norm(self.dense(x)), self.compute_dtype)

  def call(self, sequence_output, masked_lm_positions):
    positions = tf.cast(masked_lm_positions, tf.int32)
    gathered = tf.gather(sequence_output, positions, batch_dims=1)  # [B,P,H]
    batch, predictions = tf.shape(positions)[0], tf.shape(positions)[1]
    flat = tf.reshape(gathered, [-1, self.config.hidden_size])  # [B*P,H]
    transformed = self.transform(flat)  # [B*P,E]
    table = tf.cast(self.embedding_layer.word_embeddings, self.compute_dtype)
    logits = tf.matmul(transformed, table, transpose_b=True)  # [B*P,V]
    logits = tf.nn.bias_add(logits, tf.cast(self.output_bias, logits.dtype))
    return tf.reshape(logits, [batch, predictions, self.config.vocab_size])


class SentenceOrderHead(tf_keras.layers.Layer):
  """SOP head on the pooled output: `call(pooled_output [B,H])` returns logits [B,2].

  Label 0 means the two segments are in their original order, 1 that they are not.
  """

  def __init__(self, config: AlbertConfig, name: str = "cls/seq_relationship", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config

  def build(self, input_shape):
    self.output_weights = self.add_weight(
        "output_weights", shape=[2, self.config.hidden_size],
        initializer=layers.truncated_normal(self.config.initializer_range))
    self.output_bias = self.add_weight("output_bias", shape=[2], initializer="zeros")
    super().build(input_shape)

  def call(self, pooled_output):
    logits = tf.matmul(pooled_output, self.output_weights, transpose_b=True)  # [B,2]
    return tf.nn.bias_add(logits, self.output_bias)
