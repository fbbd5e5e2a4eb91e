"""The ALBERT backbone, the layer named `bert`: embeddings -> E->H mapping -> shared groups -> pooler.

Cross-layer sharing is object sharing: the sublayer of group g is one Keras layer object, called
by every layer that uses group g (layer l uses group `int(l / L * G)`, as in the original). Its
variables are created on the first call, inside the `bert/encoder/transformer/group_g` name
scope, so that they carry the original TF1 names. The `cross_layer_sharing` config key chooses
which half of a block follows the groups (see `AlbertConfig`).

Shapes: B batch, S sequence, E embedding, H hidden, N heads, L layers.
"""

from __future__ import annotations

from typing import Dict, Mapping, Union

import tensorflow as tf
import tf_keras

from albert.config import AlbertConfig
from albert import layers

# Input names: the original's feature names, and the TF-Hub names accepted as aliases.
INPUT_ALIASES = {"input_word_ids": "input_ids", "input_type_ids": "segment_ids"}


def normalize_inputs(inputs: Union[tf.Tensor, Mapping[str, tf.Tensor]]) -> Dict[str, tf.Tensor]:
  """Accepts a tensor of ids or a dict with original (or TF-Hub) names; fills the defaults."""
  if not isinstance(inputs, Mapping):
    inputs = {"input_ids": inputs}
  features = {INPUT_ALIASES.get(key, key): value for key, value in inputs.items()}
  if "input_ids" not in features:
    raise ValueError(f"the encoder needs `input_ids` (or `input_word_ids`); got keys "
                     f"{sorted(inputs)}")
  input_ids = features["input_ids"]
  if features.get("input_mask") is None:
    features["input_mask"] = tf.ones_like(input_ids)
  if features.get("segment_ids") is None:
    features["segment_ids"] = tf.zeros_like(input_ids)
  return features


class AlbertBackbone(tf_keras.layers.Layer):
  """The ALBERT encoder with the original's variable names (`bert/...`).

  `call(inputs)` takes `input_ids` [B,S] (and optionally `input_mask`, `segment_ids`; TF-Hub
  names `input_word_ids`, `input_type_ids` are accepted too) and returns a dict:
  `word_embedding_output` [B,S,E] (raw lookup), `embedding_output` [B,S,E] (after the embedding
  LayerNorm), `encoder_input` [B,S,H] (after `embedding_hidden_mapping_in`, or the embedding
  output when E == H), `encoder_outputs` (list of L * inner_group_num tensors [B,S,H], one per
  inner group per layer as in the original), `sequence_output` [B,S,H], `pooled_output` [B,H],
  and with `return_attention_probs=True` (constructor default, or per call), `attention_probs`
  (list of [B,N,S,S]).

  Example:
    >>> config = AlbertConfig(vocab_size=100, embedding_size=8, hidden_size=16,
    ...                       num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    >>> bert = AlbertBackbone(config)
    >>> out = bert({"input_ids": tf.constant([[2, 10, 3]])})
    >>> out["sequence_output"].shape, len(out["encoder_outputs"])
    (TensorShape([1, 3, 16]), 2)
  """

  def __init__(self, config: Union[AlbertConfig, dict], return_attention_probs: bool = False,
               name: str = "bert", **kwargs):
    super().__init__(name=name, **kwargs)
    if isinstance(config, dict):
      config = AlbertConfig.from_dict(config)
    self.config = config
    self.return_attention_probs = return_attention_probs
    c = config
    self.embeddings = layers.Embeddings(
        c.vocab_size, c.embedding_size, c.type_vocab_size, c.max_position_embeddings,
        c.initializer_range, c.hidden_dropout_prob, name="embeddings")
    self.embedding_hidden_mapping_in = None
    if c.embedding_size != c.hidden_size:
      self.embedding_hidden_mapping_in = layers.dense(
          c.hidden_size, "embedding_hidden_mapping_in", c.initializer_range)
    # One sublayer object per (group, inner group), keyed "g/i"; layers of a group call it.
    self.attention_sublayers = {}
    self.ffn_sublayers = {}
    for layer_index in range(c.num_hidden_layers):
      ag, fg = c.attention_group(layer_index), c.ffn_group(layer_index)
      for i in range(c.inner_group_num):
        if f"{ag}/{i}" not in self.attention_sublayers:
          self.attention_sublayers[f"{ag}/{i}"] = layers.AttentionSublayer(
              c.hidden_size, c.num_attention_heads, c.initializer_range,
              c.hidden_dropout_prob, c.attention_probs_dropout_prob, name=f"inner_group_{i}")
        if f"{fg}/{i}" not in self.ffn_sublayers:
          self.ffn_sublayers[f"{fg}/{i}"] = layers.FeedForwardSublayer(
              c.hidden_size, c.intermediate_size, c.hidden_act, c.initializer_range,
              c.hidden_dropout_prob, name=f"inner_group_{i}")
    self.pooler_dense = layers.dense(c.hidden_size, "dense", c.initializer_range,
                                     activation=tf.tanh)
    # --recompute_grad (set by the Trainer): in training, each layer's activations are
    # recomputed in the backward pass (tf.recompute_grad) instead of kept; same gradients.
    self.recompute_grad = False

  def call(self, inputs, training=None, return_attention_probs=None):
    c = self.config
    features = normalize_inputs(inputs)
    input_ids = tf.cast(features["input_ids"], tf.int32)
    segment_ids = tf.cast(features["segment_ids"], tf.int32)
    adder = layers.attention_mask_adder(features["input_mask"])  # [B,1,1,S]

    word_output, embedding_output = self.embeddings(input_ids, segment_ids, training=training)
    if return_attention_probs is None:
      return_attention_probs = self.return_attention_probs
    # Only where it saves memory: a training pass whose attention probabilities are not kept.
    recompute = self.recompute_grad and training is True and not return_attention_probs

    all_layers, all_probs = [], []
    with layers.name_scope("encoder"):
      x = embedding_output
      if self.embedding_hidden_mapping_in is not None:
        x = self.embedding_hidden_mapping_in(x)  # [B,S,H]
      encoder_input = x
      with layers.name_scope("transformer"):
        for layer_index in range(c.num_hidden_layers):
          ag, fg = c.attention_group(layer_index), c.ffn_group(layer_index)
          for i in range(c.inner_group_num):
            block = self._block(ag, fg, i, adder, training,
                                salt=1 + layer_index * c.inner_group_num + i)
            if recompute:
              x = tf.recompute_grad(layers.keep_dropout_context(_output_of(block)))(x)
              probs = None
            else:
              x, probs = block(x)
            all_layers.append(x)
            all_probs.append(probs)
    # The residual stream is float32 (see albert.layers); outputs are in the compute dtype.
    all_layers = [tf.cast(t, self.compute_dtype) for t in all_layers]
    sequence_output = all_layers[-1]
    with layers.name_scope("pooler"):
      pooled_output = self.pooler_dense(sequence_output[:, 0, :])  # [B,H]

    outputs = {
        "word_embedding_output": word_output,
        "embedding_output": embedding_output,
        "encoder_input": encoder_input,
        "encoder_outputs": all_layers,
        "sequence_output": sequence_output,
        "pooled_output": pooled_output,
    }
    if return_attention_probs:
      outputs["attention_probs"] = all_probs
    return outputs

  def _block(self, ag: int, fg: int, i: int, adder: tf.Tensor, training, salt: int):
    """One application of inner group `i` (attention sublayer of group `ag`, feed-forward of
    `fg`): `block(x) -> (x, attention_probs)`; its dropout draws as application `salt`."""
    def block(x):
      with layers.dropout_salt(salt):
        with layers.name_scope(f"group_{ag}"):
          x, probs = self.attention_sublayers[f"{ag}/{i}"](x, adder, training=training)
        with layers.name_scope(f"group_{fg}"):
          x = self.ffn_sublayers[f"{fg}/{i}"](x, training=training)
      return x, probs
    return block

  def get_embedding_table(self) -> tf.Variable:
    """The word embedding table [V,E] (`bert/embeddings/word_embeddings`)."""
    return self.embeddings.word_embeddings

  def get_config(self):
    return {**super().get_config(), "config": self.config.to_dict(),
            "return_attention_probs": self.return_attention_probs}


def _output_of(block):
  """`block` without its attention probabilities (what a recomputed layer returns)."""
  return lambda x: block(x)[0]


def build_backbone(config: AlbertConfig, seq_length: int = 2, **kwargs) -> AlbertBackbone:
  """A backbone with its variables created (called once on a [1, seq_length] dummy batch)."""
  bert = AlbertBackbone(config, **kwargs)
  bert({"input_ids": tf.zeros([1, seq_length], tf.int32)})
  return bert
