"""The lite encoder's building blocks, with the original's numerics and variable names.

Owns: activations (`gelu` is the original's tanh approximation), `SeededDropout` (dropout whose
random state is part of the checkpoint: a resumed run draws the masks an uninterrupted one
draws), `LayerNorm` (epsilon 1e-12,
variables `beta`/`gamma`), the factorized `Embeddings` (word [V,E], token type [T,E],
position [P,E], LayerNorm, dropout) and the two halves of a transformer block,
`AttentionSublayer` (`attention_1/...` + `LayerNorm`) and `FeedForwardSublayer`
(`ffn_1/...` + `LayerNorm_1`). The halves are separate objects so that a model can share one
half across layers and not the other (paper, Table 4).

Under a mixed precision policy the matmuls run in the compute dtype (bfloat16 or float16) while
the residual stream between sublayers stays float32: each sublayer takes its input in any float
dtype, adds the residual and normalises in float32 and returns float32 (the backbone casts its
outputs to the compute dtype). In float32 this is exactly the original's computation. It is also
what keeps XLA fast: with a low-precision residual, the backward pass becomes a chain of
elementwise ops and float conversions through every layer's LayerNorm gradient, which XLA's CPU
compiler fuses and recomputes once per consumer (a bfloat16 training step of the base model took
1.5x as long at 8x128).

Variable names come from the layer names and the `name_scope` blocks inside `call()`: a
sublayer created with an explicit `name=` and first called inside those blocks gets exactly the
original TF1 name, e.g. `.../inner_group_0/attention_1/self/query/kernel`.

Shapes: B batch, S sequence, H hidden, E embedding, N heads, D head size (H / N), I intermediate,
V vocabulary, T token types, P positions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import threading
from typing import Callable, Optional

import tensorflow as tf
import tf_keras

LAYER_NORM_EPSILON = 1e-12
MASK_ADDER = -10000.0


# ------------------------------------------------------------------------------- dropout
# Keras' `Dropout` draws from random ops whose state lives outside every checkpoint: a run that
# is killed and resumed would draw other masks than an uninterrupted one. Here each layer has a
# seed (from Python's `random` at construction, which `tf_keras.utils.set_random_seed` seeds:
# building the same model after the same seed gives the same seeds), and two ways to draw:
#
# * inside the Trainer's step (`dropout_context(step, first_row, rows)`): the keep mask of an
#   example is a hash of (layer seed, layer application, step, the example's position in the
#   global batch, the element's position in the example), nothing else. So a resumed run draws
#   the masks of an uninterrupted one, gradient accumulation on or off and any replica count
#   draw the same masks for the same example, and a recomputed forward pass (--recompute_grad)
#   draws the masks of the first one. A layer object applied several times (ALBERT's shared
#   block) is told which application it is by `dropout_salt(i)`.
# * elsewhere (a model called in a user's own loop, an exported encoder with training=True):
#   a seeded `tf.random.Generator` per layer, whose state is a variable tracked by
#   `tf.train.Checkpoint` (not one of the layer's `weights`: TF1-name checkpoints are unchanged).
_DROPOUT = threading.local()


@dataclasses.dataclass(frozen=True)
class _DropoutContext:
  step: tf.Tensor  # int64 scalar: the optimizer step being computed
  first_row: tf.Tensor  # int64 scalar: position in the global batch of the batch's first row
  rows: tf.Tensor  # int32 scalar: the batch's rows (an activation [B*S,H] is viewed as [B,S*H])
  salt: int = 0  # which application of a shared layer


def _dropout_context() -> Optional[_DropoutContext]:
  return getattr(_DROPOUT, "context", None)


@contextlib.contextmanager
def _use_dropout_context(context: Optional[_DropoutContext]):
  previous = _dropout_context()
  _DROPOUT.context = context
  try:
    yield
  finally:
    _DROPOUT.context = previous


def dropout_context(step, first_row, rows):
  """`with dropout_context(step, first_row, rows):` the masks SeededDropout draws in this thread
  depend only on (layer seed, application, `step`, example position = `first_row` + row)."""
  return _use_dropout_context(_DropoutContext(tf.cast(step, tf.int64),
                                              tf.cast(first_row, tf.int64),
                                              tf.cast(rows, tf.int32)))


def dropout_salt(salt: int):
  """`with dropout_salt(i):` the i-th application of shared layers (no-op outside a context)."""
  context = _dropout_context()
  return _use_dropout_context(context and dataclasses.replace(context, salt=int(salt)))


def keep_dropout_context(fn: Callable) -> Callable:
  """`fn` run in the dropout context current now, wherever it is called later (the forward pass
  that tf.recompute_grad runs again inside the gradient draws the first pass's masks)."""
  context = _dropout_context()

  def in_context(*args, **kwargs):
    with _use_dropout_context(context):
      return fn(*args, **kwargs)
  return in_context


def _mix32(x: tf.Tensor) -> tf.Tensor:
  """A 32-bit integer hash (Wellons' lowbias32), elementwise on uint32."""
  x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))
  x = x * tf.constant(0x7FEB352D, tf.uint32)
  x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(15, tf.uint32)))
  x = x * tf.constant(0x846CA68B, tf.uint32)
  return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))


def _u32(value: tf.Tensor) -> tf.Tensor:
  """The low 32 bits of an int64 tensor, as uint32."""
  return tf.cast(tf.bitwise.bitwise_and(value, 0xFFFFFFFF), tf.uint32)


def hashed_keep_mask(shape: tf.Tensor, rate: float, seed: int, context: _DropoutContext
                     ) -> tf.Tensor:
  """The keep mask (bool, `shape`) of a SeededDropout inside a dropout context: each element
  kept with probability 1 - rate, from a hash of (seed, salt, step, example, element)."""
  xor = tf.bitwise.bitwise_xor
  rows = context.rows
  per_row = tf.math.reduce_prod(tf.cast(shape, tf.int32)) // tf.maximum(rows, 1)
  key = _mix32(xor(tf.constant(seed & 0xFFFFFFFF, tf.uint32),
                   _mix32(tf.constant((context.salt * 0x9E3779B1) & 0xFFFFFFFF, tf.uint32))))
  key = _mix32(xor(xor(key, _mix32(_u32(context.step))),
                   _u32(tf.bitwise.right_shift(context.step, 32))))
  example = context.first_row + tf.range(tf.cast(rows, tf.int64), dtype=tf.int64)  # [B]
  row_key = _mix32(_mix32(xor(_u32(example), key)) + key)[:, None]  # [B,1]
  element = tf.cast(tf.range(per_row, dtype=tf.int32), tf.uint32)[None, :]  # [1,P]
  bits = _mix32(_mix32(xor(element, row_key)) + row_key)  # [B,P]
  threshold = min(int(round(rate * 2.0**32)), 2**32 - 1)
  return tf.reshape(bits >= tf.constant(threshold, tf.uint32), shape)


class SeededDropout(tf_keras.layers.Layer):
  """Inverted dropout with probability `rate` of dropping, active only when `training` is true.

  Example:
    >>> drop = SeededDropout(0.5, seed=1)
    >>> drop(tf.ones([2, 3]), training=False).numpy().tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
  """

  def __init__(self, rate: float, seed: Optional[int] = None, **kwargs):
    super().__init__(**kwargs)
    if not 0 <= rate < 1:
      raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    self.rate = float(rate)
    self.seed = random.randint(0, 2**31 - 1) if seed is None else int(seed)
    self.supports_masking = True

  def build(self, input_shape):
    if self.rate > 0:
      self.generator = tf.random.Generator.from_seed(self.seed)
    super().build(input_shape)

  def call(self, x, training=None):
    if not training or self.rate == 0:
      return x
    context = _dropout_context()
    if context is not None:
      keep = hashed_keep_mask(tf.shape(x), self.rate, self.seed, context)
    else:
      keep = self.generator.uniform(tf.shape(x), dtype=tf.float32) >= self.rate
    return tf.where(keep, x / tf.cast(1.0 - self.rate, x.dtype), tf.zeros_like(x))

  def get_config(self):
    return {**super().get_config(), "rate": self.rate, "seed": self.seed}


# -------------------------------------------------------------------------------- name scopes
def name_scope(name: str):
  """A name scope nested in the current one, never renamed `name_1` on re-entry.

  `tf.name_scope("x")` in graph mode (functional model construction) makes a re-entered scope
  unique (`x_1`); Keras' own layer scopes avoid that with absolute scope names, and so does this.
  A shared sublayer is built in the first scope it is called in, so its variables keep the
  original names whatever the order of calls.
  """
  current = tf.get_current_name_scope()
  return tf.name_scope(f"{current}/{name}/" if current else f"{name}/")


# --------------------------------------------------------------------------------- activations
def gelu(x: tf.Tensor) -> tf.Tensor:
  """GELU, the tanh approximation used by the original (not the exact erf form).

  The original computes `x * (0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))))`;
  `tf.nn.gelu(approximate=True)` computes `(0.5 * x) * (1 + tanh(...))` with the same float32
  constants, which is bit-identical (scaling by 0.5 is exact), and is the subgraph that
  grappler's remapper fuses into oneDNN's MatMul + BiasAdd + GeluApproximate kernel.
  """
  return tf.nn.gelu(tf.convert_to_tensor(x), approximate=True)


def gelu_exact(x: tf.Tensor) -> tf.Tensor:
  """GELU in the exact erf form, `x * Phi(x)`: Hugging Face's "gelu" (not the original's)."""
  return tf.nn.gelu(tf.convert_to_tensor(x), approximate=False)


def get_activation(name: Optional[str]) -> Optional[Callable[[tf.Tensor], tf.Tensor]]:
  """The original's activation names: gelu, relu, tanh, linear (None, or "" = linear)."""
  if name is None or name == "":
    return None
  if not isinstance(name, str):
    return name
  act = name.lower()
  if act == "linear":
    return None
  if act == "relu":
    return tf.nn.relu
  if act == "gelu":
    return gelu
  if act == "tanh":
    return tf.tanh
  if act == "gelu_exact":  # not the original's: HF's "gelu" (erf), see albert/hf/names.py
    return gelu_exact
  raise ValueError(f"Unsupported activation {name!r}; expected one of gelu, relu, tanh, linear, "
                   "gelu_exact")


def truncated_normal(stddev: float) -> tf_keras.initializers.Initializer:
  """The original's `create_initializer`: truncated normal with the config's stddev."""
  return tf_keras.initializers.TruncatedNormal(stddev=stddev)


def dense(units: int, name: str, initializer_range: float, activation=None) -> tf_keras.layers.Dense:
  """A Dense layer with the original's initializers (kernel [in, units], bias zeros)."""
  return tf_keras.layers.Dense(
      units, activation=activation, name=name,
      kernel_initializer=truncated_normal(initializer_range), bias_initializer="zeros")


# ---------------------------------------------------------------------------------- LayerNorm
class LayerNorm(tf_keras.layers.Layer):
  """Layer normalisation over the last axis, as `tf.contrib.layers.layer_norm` computes it.

  Always computes in float32 (under a mixed policy too); variables `beta`, `gamma` [last dim].

  Example:
    >>> ln = LayerNorm(name="LayerNorm")
    >>> ln(tf.constant([[1.0, 2.0, 3.0]])).shape
    TensorShape([1, 3])
  """

  def __init__(self, epsilon: float = LAYER_NORM_EPSILON, name: str = "LayerNorm", **kwargs):
    kwargs["dtype"] = "float32"
    super().__init__(name=name, **kwargs)
    self.epsilon = epsilon

  def build(self, input_shape):
    width = int(input_shape[-1])
    self.beta = self.add_weight("beta", shape=[width], initializer="zeros")
    self.gamma = self.add_weight("gamma", shape=[width], initializer="ones")
    super().build(input_shape)

  def call(self, x):
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    inv = tf.math.rsqrt(variance + self.epsilon) * self.gamma
    return x * inv + (self.beta - mean * inv)

  def get_config(self):
    return {**super().get_config(), "epsilon": self.epsilon}


# --------------------------------------------------------------------------------- Embeddings
class Embeddings(tf_keras.layers.Layer):
  """Factorized embeddings: word [V,E] + token type [T,E] + position [P,E], LayerNorm, dropout.

  `call(input_ids, segment_ids)` returns `(word_embedding_output, embedding_output)`, both
  [B,S,E]: the raw lookup and the normalised sum (the input of the E->H mapping).
  """

  def __init__(self, vocab_size: int, embedding_size: int, type_vocab_size: int,
               max_position_embeddings: int, initializer_range: float = 0.02,
               dropout_rate: float = 0.0, name: str = "embeddings", **kwargs):
    super().__init__(name=name, **kwargs)
    self.vocab_size = vocab_size
    self.embedding_size = embedding_size
    self.type_vocab_size = type_vocab_size
    self.max_position_embeddings = max_position_embeddings
    self.initializer_range = initializer_range
    self.dropout_rate = dropout_rate
    self.layer_norm = LayerNorm(name="LayerNorm")
    self.dropout = SeededDropout(dropout_rate)

  def build(self, input_shape):
    init = lambda: truncated_normal(self.initializer_range)  # a fresh instance per weight
    self.word_embeddings = self.add_weight(
        "word_embeddings", shape=[self.vocab_size, self.embedding_size], initializer=init())
    self.token_type_embeddings = self.add_weight(
        "token_type_embeddings", shape=[self.type_vocab_size, self.embedding_size],
        initializer=init())
    self.position_embeddings = self.add_weight(
        "position_embeddings", shape=[self.max_position_embeddings, self.embedding_size],
        initializer=init())
    super().build(input_shape)

  def call(self, input_ids, segment_ids, training=None):
    seq_length = tf.shape(input_ids)[1]
    static_length = input_ids.shape[1]
    if static_length is not None and static_length > self.max_position_embeddings:
      raise ValueError(f"sequence length {static_length} exceeds max_position_embeddings "
                       f"({self.max_position_embeddings}) of the albert config")
    word = tf.gather(self.word_embeddings, input_ids)  # [B,S,E]
    output = word + tf.gather(self.token_type_embeddings, segment_ids)
    if static_length is None:
      tf.debugging.assert_less_equal(
          seq_length, self.max_position_embeddings,
          message="sequence length exceeds max_position_embeddings of the albert config")
    output = output + self.position_embeddings[None, :seq_length, :]
    output = self.layer_norm(output)
    output = tf.cast(output, self.compute_dtype)
    return word, self.dropout(output, training=training)

  def get_config(self):
    return {**super().get_config(), "vocab_size": self.vocab_size,
            "embedding_size": self.embedding_size, "type_vocab_size": self.type_vocab_size,
            "max_position_embeddings": self.max_position_embeddings,
            "initializer_range": self.initializer_range, "dropout_rate": self.dropout_rate}


# ------------------------------------------------------------------------------ the sublayers
def attention_mask_adder(input_mask: tf.Tensor) -> tf.Tensor:
  """[B,S] mask (1 = attend) -> [B,1,1,S] float32 adder: 0 where attended, -10000 elsewhere."""
  # expand_dims, not new-axis slicing: the latter is a StridedSlice that TFLite's builtin ops
  # cannot run with a dynamic sequence length.
  mask = tf.expand_dims(tf.expand_dims(tf.cast(input_mask, tf.float32), 1), 1)
  return (1.0 - mask) * MASK_ADDER


class AttentionSublayer(tf_keras.layers.Layer):
  """Self-attention, output projection, dropout, residual and `LayerNorm` (post-LN).

  Variables (relative to the scope it is first called in, `.../inner_group_i`):
  `attention_1/self/{query,key,value}/{kernel [H,H],bias [H]}`,
  `attention_1/output/dense/{kernel [H,H],bias}`, `LayerNorm/{beta,gamma}`.
  `call(x [B,S,H], adder [B,1,1,S])` returns `(output [B,S,H] float32, attention_probs
  [B,N,S,S])`; `x` may be float32 or the compute dtype (no autocast, see the module docstring).
  """

  def __init__(self, hidden_size: int, num_attention_heads: int,
               initializer_range: float = 0.02, hidden_dropout_prob: float = 0.0,
               attention_probs_dropout_prob: float = 0.0, name: str = "inner_group_0",
               **kwargs):
    kwargs.setdefault("autocast", False)  # the float32 residual stream comes in as it is
    super().__init__(name=name, **kwargs)
    if hidden_size % num_attention_heads:
      raise ValueError(f"hidden_size {hidden_size} is not divisible by num_attention_heads "
                       f"{num_attention_heads}")
    self.hidden_size = hidden_size
    self.num_attention_heads = num_attention_heads
    self.head_size = hidden_size // num_attention_heads
    self.initializer_range = initializer_range
    self.hidden_dropout_prob = hidden_dropout_prob
    self.attention_probs_dropout_prob = attention_probs_dropout_prob
    self.query = dense(hidden_size, "query", initializer_range)
    self.key = dense(hidden_size, "key", initializer_range)
    self.value = dense(hidden_size, "value", initializer_range)
    self.output_dense = dense(hidden_size, "dense", initializer_range)
    self.layer_norm = LayerNorm(name="LayerNorm")
    self.probs_dropout = SeededDropout(attention_probs_dropout_prob)
    self.output_dropout = SeededDropout(hidden_dropout_prob)

  def _build_projections(self, input_shape) -> None:
    """Builds query/key/value in their own scopes (`.../self/query/kernel`, ...).

    `call()` does not call these Dense layers (it multiplies by their concatenated kernels), so
    they are built here, inside the `attention_1/self` scope, exactly as a call would build them.
    """
    for layer in (self.query, self.key, self.value):
      if not layer.built:
        with name_scope(layer.name):
          layer.build(input_shape)

  def call(self, x, adder, training=None):
    h, n, d = self.hidden_size, self.num_attention_heads, self.head_size
    batch, seq = tf.shape(x)[0], tf.shape(x)[1]
    dtype = self.compute_dtype
    # The projections act on a [B*S,H] matrix: a plain MatMul + BiasAdd, which grappler fuses
    # (oneDNN _FusedMatMul) and which is cheaper than Dense's tensordot on a rank-3 input.
    rows = tf.reshape(x, [-1, h])  # [B*S,H]
    residual, x2 = tf.cast(rows, tf.float32), tf.cast(rows, dtype)

    with name_scope("attention_1"):
      with name_scope("self"):
        self._build_projections(x2.shape)
        # One [H,3H] matmul instead of three [H,H] ones: larger, so more efficient (notably
        # for few tokens), and one gradient matmul instead of three plus a sum. The variables
        # stay separate; only their values are concatenated.
        kernel = tf.concat([tf.cast(self.query.kernel, dtype),
                            tf.cast(self.key.kernel, dtype),
                            tf.cast(self.value.kernel, dtype)], axis=1)  # [H,3H]
        bias = tf.concat([tf.cast(self.query.bias, dtype),
                          tf.cast(self.key.bias, dtype),
                          tf.cast(self.value.bias, dtype)], axis=0)  # [3H]
        qkv = tf.nn.bias_add(tf.matmul(x2, kernel), bias)  # [B*S,3H]
        # One transpose for the three: [B,S,3,N,D] -> [3,B,N,S,D].
        qkv = tf.transpose(tf.reshape(qkv, [batch, seq, 3, n, d]), [2, 0, 3, 1, 4])
        q, k, v = tf.unstack(qkv, num=3, axis=0)  # [B,N,S,D] each
        # 1/sqrt(D) scales q [B,N,S,D] rather than the scores [B,N,S,S]: a smaller tensor
        # (for S > D), and oneDNN then fuses the mask addition into the batched matmul. Exact
        # when 1/sqrt(D) is a power of two (D = 64: 1/8), else within one rounding.
        scale = tf.cast(1.0 / math.sqrt(float(d)), dtype)
        scores = tf.matmul(q * scale, k, transpose_b=True)  # [B,N,S,S]
        probs = tf.nn.softmax(tf.cast(scores, tf.float32) + adder)
        probs = tf.cast(probs, dtype)
        context = tf.matmul(self.probs_dropout(probs, training=training), v)  # [B,N,S,D]
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, h])  # [B*S,H]
      with name_scope("output"):
        attention_output = self.output_dense(context)
    attention_output = self.output_dropout(attention_output, training=training)
    output = self.layer_norm(tf.cast(attention_output, tf.float32) + residual)
    return tf.reshape(output, [batch, seq, h]), probs

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "num_attention_heads": self.num_attention_heads,
            "initializer_range": self.initializer_range,
            "hidden_dropout_prob": self.hidden_dropout_prob,
            "attention_probs_dropout_prob": self.attention_probs_dropout_prob}


class FeedForwardSublayer(tf_keras.layers.Layer):
  """FFN (H -> I with the activation -> H), dropout, residual and `LayerNorm_1` (post-LN).

  Variables: `ffn_1/intermediate/dense/{kernel [H,I],bias}`,
  `ffn_1/intermediate/output/dense/{kernel [I,H],bias}` (the output layer is nested inside
  `intermediate`, as in the original), `LayerNorm_1/{beta,gamma}`. `call(x [B,S,H])` returns
  [B,S,H] float32; `x` may be float32 or the compute dtype (see the module docstring).
  """

  def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str = "gelu",
               initializer_range: float = 0.02, hidden_dropout_prob: float = 0.0,
               name: str = "inner_group_0", **kwargs):
    kwargs.setdefault("autocast", False)  # the float32 residual stream comes in as it is
    super().__init__(name=name, **kwargs)
    self.hidden_size = hidden_size
    self.intermediate_size = intermediate_size
    self.hidden_act = hidden_act
    self.initializer_range = initializer_range
    self.hidden_dropout_prob = hidden_dropout_prob
    self.intermediate_dense = dense(intermediate_size, "dense", initializer_range,
                                    activation=get_activation(hidden_act))
    self.output_dense = dense(hidden_size, "dense", initializer_range)
    self.layer_norm = LayerNorm(name="LayerNorm_1")
    self.output_dropout = SeededDropout(hidden_dropout_prob)

  def call(self, x, training=None):
    h = self.hidden_size
    batch, seq = tf.shape(x)[0], tf.shape(x)[1]
    # On a [B*S,H] matrix: MatMul + BiasAdd + gelu, one fused oneDNN kernel under grappler.
    rows = tf.reshape(x, [-1, h])  # [B*S,H]
    residual, x2 = tf.cast(rows, tf.float32), tf.cast(rows, self.compute_dtype)
    with name_scope("ffn_1"):
      with name_scope("intermediate"):
        intermediate = self.intermediate_dense(x2)  # [B*S,I]
        with name_scope("output"):
          ffn_output = self.output_dense(intermediate)  # [B*S,H]
    ffn_output = self.output_dropout(ffn_output, training=training)
    output = self.layer_norm(tf.cast(ffn_output, tf.float32) + residual)
    return tf.reshape(output, [batch, seq, h])

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size, "hidden_act": self.hidden_act,
            "initializer_range": self.initializer_range,
            "hidden_dropout_prob": self.hidden_dropout_prob}
