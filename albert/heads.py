"""The heads on the encoder, with the original's variable names and numerics.

Pretraining: MLM (`cls/predictions`) and SOP (`cls/seq_relationship`). The MLM decoder is tied
to `bert/embeddings/word_embeddings`; only its bias `cls/predictions/output_bias` [V] is its
own. The SOP head stores `output_weights` as [2,H] (transposed with respect to a Dense kernel),
as the original does.

Fine-tuning: the GLUE classifier and the RACE multiple-choice head (root-level
`output_weights` / `output_bias`: their layers are named ""), SQuAD v1 (`cls/squad/...`) and
ALBERT's own SQuAD v2 head (`start_logits/...`, `end_logits/...`, `answer_class/...`, three
layers). The fine-tuning heads compute in float32 by default (also under a mixed precision
policy: their matmuls are small) and return float32 tensors.

Shapes: B batch, S sequence, H hidden, E embedding, P predictions per sequence, V vocabulary,
L labels, C choices, K starts per example.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from albert import layers
from albert.config import AlbertConfig
from albert.errors import InputError
from albert.layers import SeededDropout


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


# ------------------------------------------------------------------------ fine-tuning heads
# The original's fine-tuning heads initialise `output_weights` with a hard-coded stddev of 0.02,
# whatever the config's `initializer_range` (the SQuAD v2 head uses the config's).
ORIGINAL_OUTPUT_STDDEV = 0.02
# run_classifier's head applies `tf.nn.dropout(pooled, keep_prob=0.9)` in training, hard-coded.
CLASSIFIER_DROPOUT = 0.1
MASKED_LOGIT = -1e30  # SQuAD v2: logits at positions with p_mask = 1


def _float32_by_default(kwargs) -> dict:
  """Heads compute in float32 under a mixed policy too (small matmuls; outputs float32)."""
  kwargs.setdefault("dtype", "float32")
  return kwargs


def _dense(layer: tf_keras.layers.Layer, units: int, name: str, stddev: float,
           activation=None, use_bias: bool = True) -> tf_keras.layers.Dense:
  """A Dense sublayer with the original initialisers and the dtype policy of its parent."""
  return tf_keras.layers.Dense(
      units, activation=activation, use_bias=use_bias, name=name,
      kernel_initializer=layers.truncated_normal(stddev), bias_initializer="zeros",
      dtype=layer.dtype_policy)


class ClassifierHead(tf_keras.layers.Layer):
  """The GLUE head of `run_classifier.py` on the pooled output [B,H].

  Variables at the root of the checkpoint (the layer is named ""): `output_weights` [L,H]
  (transposed with respect to a Dense kernel; truncated normal 0.02) and `output_bias` [L].
  In training, dropout `dropout_rate` on the pooled output first: the original's is hard-coded
  (keep_prob 0.9), whatever the config's dropout says.

  `call(pooled_output [B,H])` returns float32 tensors:
  - classification: `logits` [B,L], `probabilities` (softmax), `log_probs`, `predictions` [B]
    (argmax, int32);
  - `regression=True` (STS-B, L = 1): `logits` [B] (squeezed), `probabilities` [B,1] (the
    unsqueezed logits, as the original names them), `predictions` = `logits`;
  - `multi_label=True` (a custom task whose rows may have several labels): `logits` [B,L],
    `probabilities` (sigmoid, one per label), `log_probs` (log sigmoid), `predictions` [B]
    (the most probable label; the labels over the threshold are chosen after the model).

  Example:
    >>> head = ClassifierHead(num_labels=3)
    >>> sorted(head(tf.zeros([2, 8])))
    ['log_probs', 'logits', 'predictions', 'probabilities']
    >>> [v.name for v in head.weights]
    ['output_weights:0', 'output_bias:0']
  """

  def __init__(self, num_labels: int, regression: bool = False,
               dropout_rate: float = CLASSIFIER_DROPOUT,
               initializer_range: float = ORIGINAL_OUTPUT_STDDEV, name: str = "",
               multi_label: bool = False, **kwargs):
    super().__init__(name=name, **_float32_by_default(kwargs))
    self.num_labels = int(num_labels)
    self.regression = bool(regression)
    self.multi_label = bool(multi_label)
    self.dropout_rate = float(dropout_rate)
    self.initializer_range = float(initializer_range)
    self.dropout = SeededDropout(dropout_rate)

  def build(self, input_shape):
    self.output_weights = self.add_weight(
        "output_weights", shape=[self.num_labels, int(input_shape[-1])],
        initializer=layers.truncated_normal(self.initializer_range))
    self.output_bias = self.add_weight("output_bias", shape=[self.num_labels],
                                       initializer="zeros")
    super().build(input_shape)

  def project(self, pooled_output, training=None) -> tf.Tensor:
    """Dropout (training only), then [B,H] -> logits [B,L] (float32, unsqueezed)."""
    x = self.dropout(pooled_output, training=training)
    logits = tf.matmul(x, self.output_weights, transpose_b=True)  # [B,L]
    return tf.cast(tf.nn.bias_add(logits, self.output_bias), tf.float32)

  def call(self, pooled_output, training=None):
    logits = self.project(pooled_output, training=training)
    if self.regression:
      squeezed = tf.squeeze(logits, [-1])  # [B]
      return {"logits": squeezed, "probabilities": logits, "predictions": squeezed}
    if self.multi_label:
      return {"logits": logits, "probabilities": tf.nn.sigmoid(logits),
              "log_probs": tf.math.log_sigmoid(logits),
              "predictions": tf.argmax(logits, axis=-1, output_type=tf.int32)}
    return _softmax_outputs(logits)

  def get_config(self):
    return {**super().get_config(), "num_labels": self.num_labels,
            "regression": self.regression, "multi_label": self.multi_label,
            "dropout_rate": self.dropout_rate,
            "initializer_range": self.initializer_range}


def _softmax_outputs(logits: tf.Tensor) -> dict:
  probabilities = tf.nn.softmax(logits, axis=-1)
  return {"logits": logits, "probabilities": probabilities,
          "log_probs": tf.nn.log_softmax(logits, axis=-1),
          "predictions": tf.argmax(probabilities, axis=-1, output_type=tf.int32)}


class MultipleChoiceHead(ClassifierHead):
  """The RACE head of `run_race.py`: one score per choice, softmax over the C choices.

  Root-level `output_weights` [1,H], `output_bias` [1] (the layer is named ""); dropout
  `dropout_rate` (the original's `--dropout_prob`, default 0.1) on the pooled output in training.
  `call(pooled_output [B*C,H])` (choice-major rows: example b, choice c is row b*C + c) returns
  float32 `logits` [B,C], `probabilities`, `log_probs` and `predictions` [B] (int32). The bias
  adds the same value to every choice, so it cancels in the softmax (as in the original).
  """

  def __init__(self, num_choices: int = 4, dropout_rate: float = 0.1,
               initializer_range: float = ORIGINAL_OUTPUT_STDDEV, name: str = "", **kwargs):
    super().__init__(num_labels=1, dropout_rate=dropout_rate,
                     initializer_range=initializer_range, name=name, **kwargs)
    self.num_choices = int(num_choices)

  def call(self, pooled_output, training=None):
    logits = self.project(pooled_output, training=training)  # [B*C,1]
    return _softmax_outputs(tf.reshape(logits, [-1, self.num_choices]))  # [B,C]

  def get_config(self):
    config = super().get_config()
    for key in ("num_labels", "regression", "multi_label"):
      config.pop(key)
    return {**config, "num_choices": self.num_choices}


class SquadV1Head(tf_keras.layers.Layer):
  """The SQuAD v1.1 head of `run_squad_v1.py`: start and end logits per position.

  Variables `cls/squad/output_weights` [2,H] (truncated normal 0.02) and `cls/squad/output_bias`
  [2]. `call(sequence_output [B,S,H])` returns float32 `start_logits`, `end_logits` [B,S]: raw
  logits, no p_mask (the original's v1 masks nothing; its decoding skips positions outside the
  document).
  """

  def __init__(self, initializer_range: float = ORIGINAL_OUTPUT_STDDEV,
               name: str = "cls/squad", **kwargs):
    super().__init__(name=name, **_float32_by_default(kwargs))
    self.initializer_range = float(initializer_range)

  def build(self, input_shape):
    self.output_weights = self.add_weight(
        "output_weights", shape=[2, int(input_shape[-1])],
        initializer=layers.truncated_normal(self.initializer_range))
    self.output_bias = self.add_weight("output_bias", shape=[2], initializer="zeros")
    super().build(input_shape)

  def call(self, sequence_output):
    batch, seq = tf.shape(sequence_output)[0], tf.shape(sequence_output)[1]
    rows = tf.reshape(sequence_output, [-1, self.output_weights.shape[-1]])  # [B*S,H]
    logits = tf.nn.bias_add(tf.matmul(rows, self.output_weights, transpose_b=True),
                            self.output_bias)  # [B*S,2]
    logits = tf.cast(tf.reshape(logits, [batch, seq, 2]), tf.float32)
    return {"start_logits": logits[:, :, 0], "end_logits": logits[:, :, 1]}

  def get_config(self):
    return {**super().get_config(), "initializer_range": self.initializer_range}


# ----------------------------------------------------------------------------- SQuAD v2
def mask_logits(logits: tf.Tensor, p_mask: tf.Tensor) -> tf.Tensor:
  """The original's `logits * (1 - p_mask) - 1e30 * p_mask` (p_mask 1 = not a legal position)."""
  p_mask = tf.cast(p_mask, tf.float32)
  return logits * (1 - p_mask) + MASKED_LOGIT * p_mask


class SquadV2StartHead(tf_keras.layers.Layer):
  """ALBERT's SQuAD v2 start logits: `start_logits/dense` (H -> 1), masked by p_mask.

  `call(sequence_output [B,S,H], p_mask [B,S])` returns float32 `masked_logits` [B,S] (exactly
  -1e30 where p_mask is 1) and `log_probs` [B,S] (log-softmax over positions; -1e30 there too).
  """

  def __init__(self, initializer_range: float = 0.02, name: str = "start_logits", **kwargs):
    super().__init__(name=name, **_float32_by_default(kwargs))
    self.initializer_range = float(initializer_range)
    self.dense = _dense(self, 1, "dense", initializer_range)

  def call(self, sequence_output, p_mask):
    logits = tf.squeeze(self.dense(sequence_output), -1)  # [B,S]
    masked = mask_logits(tf.cast(logits, tf.float32), p_mask)
    return {"masked_logits": masked, "log_probs": tf.nn.log_softmax(masked, axis=-1)}

  def get_config(self):
    return {**super().get_config(), "initializer_range": self.initializer_range}


class SquadV2EndHead(tf_keras.layers.Layer):
  """ALBERT's SQuAD v2 end logits, conditioned on a start position.

  For a start state s (the sequence output at the start) and every position t:
  `end_logits/dense_0` (tanh) on concat(h_t, s) [2H -> H], `end_logits/LayerNorm`,
  `end_logits/dense_1` [H -> 1], masked by p_mask, log-softmax over t.

  Two ways to call it (one layer object, so both share the variables):
  - `call(sequence_output, p_mask, start_positions=[B])`: conditioned on the given start (the
    original's training path, with the gold start); returns `end_log_probs` [B,S].
  - `call(sequence_output, p_mask, start_log_probs=[B,S])`: the original's beam search: the
    `start_n_top` best starts, for each the `end_n_top` best ends; returns
    `start_top_log_probs`, `start_top_index` [B,start_n_top], `end_top_log_probs`,
    `end_top_index` [B,start_n_top*end_n_top] (start-major) and `end_log_probs_full`
    [B,start_n_top,S].

  `dense_0` is applied as h_t @ W[:H] + (s @ W[H:] + b): the same variable [2H,H] and the same
  values as the original's concat (up to float rounding), without materialising the
  [B,K,S,2H] concatenation; the H x H product over the sequence is done once per call.
  """

  def __init__(self, start_n_top: int = 5, end_n_top: int = 5, initializer_range: float = 0.02,
               name: str = "end_logits", **kwargs):
    super().__init__(name=name, **_float32_by_default(kwargs))
    self.start_n_top = int(start_n_top)
    self.end_n_top = int(end_n_top)
    self.initializer_range = float(initializer_range)
    self.layer_norm = layers.LayerNorm(name="LayerNorm")
    self.dense_1 = _dense(self, 1, "dense_1", initializer_range)

  def build(self, input_shape):
    hidden = int(input_shape[-1])
    with layers.name_scope("dense_0"):
      self.kernel_0 = self.add_weight(
          "kernel", shape=[2 * hidden, hidden],
          initializer=layers.truncated_normal(self.initializer_range))
      self.bias_0 = self.add_weight("bias", shape=[hidden], initializer="zeros")
    super().build(input_shape)

  def end_log_probs(self, sequence_output, p_mask, start_index):
    """Log-probs [B,K,S] of the end given the starts `start_index` [B,K]."""
    hidden = self.kernel_0.shape[-1]
    batch, seq = tf.shape(sequence_output)[0], tf.shape(sequence_output)[1]
    start_states = tf.gather(sequence_output, start_index, batch_dims=1)  # [B,K,H]
    tokens = tf.matmul(tf.reshape(sequence_output, [-1, hidden]), self.kernel_0[:hidden])
    tokens = tf.reshape(tokens, [batch, 1, seq, hidden])  # [B,1,S,H]
    starts = tf.einsum("bkh,hd->bkd", start_states, self.kernel_0[hidden:]) + self.bias_0
    x = tf.tanh(tokens + starts[:, :, None, :])  # [B,K,S,H]
    x = self.layer_norm(x)
    logits = tf.cast(tf.squeeze(self.dense_1(x), -1), tf.float32)  # [B,K,S]
    masked = mask_logits(logits, tf.cast(p_mask, tf.float32)[:, None, :])
    return tf.nn.log_softmax(masked, axis=-1)

  def call(self, sequence_output, p_mask, start_positions=None, start_log_probs=None):
    if (start_positions is None) == (start_log_probs is None):
      raise InputError("SquadV2EndHead takes either start_positions (conditioned on them) or "
                       "start_log_probs (beam search), not both or neither")
    if start_positions is not None:
      start_index = tf.reshape(tf.cast(start_positions, tf.int32), [-1, 1])  # [B,1]
      return self.end_log_probs(sequence_output, p_mask, start_index)[:, 0, :]  # [B,S]
    start_top_log_probs, start_top_index = tf.math.top_k(start_log_probs, k=self.start_n_top)
    full = self.end_log_probs(sequence_output, p_mask, start_top_index)  # [B,k,S]
    end_top_log_probs, end_top_index = tf.math.top_k(full, k=self.end_n_top)  # [B,k,k']
    beam = self.start_n_top * self.end_n_top
    return {"start_top_log_probs": start_top_log_probs, "start_top_index": start_top_index,
            "end_top_log_probs": tf.reshape(end_top_log_probs, [-1, beam]),
            "end_top_index": tf.reshape(end_top_index, [-1, beam]),
            "end_log_probs_full": full}

  def get_config(self):
    return {**super().get_config(), "start_n_top": self.start_n_top,
            "end_n_top": self.end_n_top, "initializer_range": self.initializer_range}


class SquadV2AnswerClassHead(tf_keras.layers.Layer):
  """ALBERT's SQuAD v2 answerability verifier: one logit per example (> 0 leans to no answer).

  Input: concat(start state, [CLS] state), the start state being the sequence output weighted by
  softmax(masked start logits). `answer_class/dense_0` (tanh) [2H -> H], dropout
  `dropout_rate` in training (the original's `--dropout_prob`, applied to the output of
  `dense_0`), `answer_class/dense_1` [H -> 1] without bias.
  `call(sequence_output [B,S,H], start_masked_logits [B,S])` returns `cls_logits` [B] (float32).
  """

  def __init__(self, dropout_rate: float = 0.1, initializer_range: float = 0.02,
               name: str = "answer_class", **kwargs):
    super().__init__(name=name, **_float32_by_default(kwargs))
    self.dropout_rate = float(dropout_rate)
    self.initializer_range = float(initializer_range)
    self.dropout = SeededDropout(dropout_rate)

  def build(self, input_shape):
    hidden = int(input_shape[-1])
    self.dense_0 = _dense(self, hidden, "dense_0", self.initializer_range, activation=tf.tanh)
    self.dense_1 = _dense(self, 1, "dense_1", self.initializer_range, use_bias=False)
    super().build(input_shape)

  def call(self, sequence_output, start_masked_logits, training=None):
    start_p = tf.nn.softmax(tf.cast(start_masked_logits, tf.float32), axis=-1)  # [B,S]
    start_feature = tf.einsum("bs,bsh->bh", tf.cast(start_p, sequence_output.dtype),
                              sequence_output)  # [B,H]
    cls_feature = sequence_output[:, 0, :]  # [B,H]
    x = self.dense_0(tf.concat([start_feature, cls_feature], axis=-1))  # [B,H]
    x = self.dropout(x, training=training)
    return tf.cast(tf.squeeze(self.dense_1(x), -1), tf.float32)  # [B]

  def get_config(self):
    return {**super().get_config(), "dropout_rate": self.dropout_rate,
            "initializer_range": self.initializer_range}
