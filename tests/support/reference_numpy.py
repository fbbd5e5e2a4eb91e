"""Independent float64 numpy reference of the original ALBERT equations (the test oracle).

This module owns a from-scratch, pure-numpy (float64) forward pass of the original TF1
google-research/albert `modeling.AlbertModel` plus the pretraining heads of
`run_pretraining.py` (`get_masked_lm_output`, `get_sentence_order_output`), a reader for
TF1 checkpoints and a seeded random initialiser producing exactly the variable names a
config needs. It deliberately imports nothing from the `albert` package: the TF2
implementation is checked against it, so it must not share code with it. TensorFlow is
only used (lazily) to read checkpoint files.

Variable names are the original's (`bert/embeddings/...`, `bert/encoder/transformer/
group_g/inner_group_i/...`, `cls/...`). Dropout is off (inference). The optional config
key `cross_layer_sharing` in {"all" (default, the original), "attention", "ffn", "none"}
selects which parts of a layer are shared across the layers of a group.
"""

from __future__ import annotations

import math

import numpy as np

LAYER_NORM_EPSILON = 1e-12
MASK_ADDER = -10000.0
MLM_LOSS_EPSILON = 1e-5
SHARING_MODES = ("all", "attention", "ffn", "none")

_ATTENTION_PARTS = (
    "attention_1/self/query",
    "attention_1/self/key",
    "attention_1/self/value",
    "attention_1/output/dense",
)


# ----------------------------------------------------------------------------- helpers


def gelu(x):
  """The original `modeling.gelu`: the tanh approximation of GELU."""
  x = np.asarray(x, np.float64)
  cdf = 0.5 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
  return x * cdf


def layer_norm(x, gamma=None, beta=None, epsilon=LAYER_NORM_EPSILON):
  """Normalisation over the last axis (biased variance, epsilon 1e-12), then * gamma + beta."""
  x = np.asarray(x, np.float64)
  mean = x.mean(axis=-1, keepdims=True)
  var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
  y = (x - mean) / np.sqrt(var + epsilon)
  if gamma is not None:
    y = y * np.asarray(gamma, np.float64)
  if beta is not None:
    y = y + np.asarray(beta, np.float64)
  return y


def activation(name):
  """The original `modeling.get_activation`: gelu (tanh approx.), relu, tanh, linear/None."""
  if name is None:
    return lambda x: x
  if not isinstance(name, str):
    raise ValueError("hidden_act must be a string, got %r" % (name,))
  key = name.lower()
  if key in ("", "linear"):
    return lambda x: x
  if key == "gelu":
    return gelu
  if key == "relu":
    return lambda x: np.maximum(x, 0.0)
  if key == "tanh":
    return np.tanh
  raise ValueError("Unsupported activation: %s" % name)


def softmax(x, axis=-1):
  """Numerically stable softmax in float64."""
  x = np.asarray(x, np.float64)
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
  """Numerically stable log-softmax in float64."""
  x = np.asarray(x, np.float64)
  shifted = x - x.max(axis=axis, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# ----------------------------------------------------------------------------- naming


def sharing_mode(config):
  """The cross-layer sharing mode of a config ("all" when the key is absent)."""
  mode = config.get("cross_layer_sharing", "all") or "all"
  if mode not in SHARING_MODES:
    raise ValueError("cross_layer_sharing must be one of %s, got %r" % (SHARING_MODES, mode))
  return mode


def layer_groups(config, layer):
  """(attention group, ffn group) indices used by layer `layer`."""
  num_layers = config["num_hidden_layers"]
  group = int(layer / num_layers * config["num_hidden_groups"])
  mode = sharing_mode(config)
  attention_group = group if mode in ("all", "attention") else layer
  ffn_group = group if mode in ("all", "ffn") else layer
  return attention_group, ffn_group


def _scope(group, inner):
  return "bert/encoder/transformer/group_%d/inner_group_%d" % (group, inner)


def variable_shapes(config):
  """Every trainable variable name the config needs, mapped to its shape (sorted by name)."""
  V, E, H = config["vocab_size"], config["embedding_size"], config["hidden_size"]
  I, T, P = config["intermediate_size"], config["type_vocab_size"], config["max_position_embeddings"]
  shapes = {
      "bert/embeddings/word_embeddings": (V, E),
      "bert/embeddings/token_type_embeddings": (T, E),
      "bert/embeddings/position_embeddings": (P, E),
      "bert/embeddings/LayerNorm/beta": (E,),
      "bert/embeddings/LayerNorm/gamma": (E,),
      "bert/pooler/dense/kernel": (H, H),
      "bert/pooler/dense/bias": (H,),
      "cls/predictions/transform/dense/kernel": (H, E),
      "cls/predictions/transform/dense/bias": (E,),
      "cls/predictions/transform/LayerNorm/beta": (E,),
      "cls/predictions/transform/LayerNorm/gamma": (E,),
      "cls/predictions/output_bias": (V,),
      "cls/seq_relationship/output_weights": (2, H),
      "cls/seq_relationship/output_bias": (2,),
  }
  if E != H:
    shapes["bert/encoder/embedding_hidden_mapping_in/kernel"] = (E, H)
    shapes["bert/encoder/embedding_hidden_mapping_in/bias"] = (H,)
  for layer in range(config["num_hidden_layers"]):
    attention_group, ffn_group = layer_groups(config, layer)
    for inner in range(config["inner_group_num"]):
      a = _scope(attention_group, inner)
      for part in _ATTENTION_PARTS:
        shapes[a + "/" + part + "/kernel"] = (H, H)
        shapes[a + "/" + part + "/bias"] = (H,)
      shapes[a + "/LayerNorm/beta"] = (H,)
      shapes[a + "/LayerNorm/gamma"] = (H,)
      f = _scope(ffn_group, inner)
      shapes[f + "/ffn_1/intermediate/dense/kernel"] = (H, I)
      shapes[f + "/ffn_1/intermediate/dense/bias"] = (I,)
      shapes[f + "/ffn_1/intermediate/output/dense/kernel"] = (I, H)
      shapes[f + "/ffn_1/intermediate/output/dense/bias"] = (H,)
      shapes[f + "/LayerNorm_1/beta"] = (H,)
      shapes[f + "/LayerNorm_1/gamma"] = (H,)
  return dict(sorted(shapes.items()))


# ----------------------------------------------------------------------------- weights


def init_weights(config, seed):
  """Seeded random float32 weights for every variable the config needs.

  Kernels, embedding tables and `output_weights` ~ N(0, 0.2^2) (so that attention is far
  from uniform), biases/betas ~ N(0, 0.05^2), gammas ~ 1 + N(0, 0.1^2).
  """
  rng = np.random.RandomState(seed)
  weights = {}
  for name, shape in variable_shapes(config).items():
    if name.endswith(("bias", "beta")):
      value = rng.normal(0.0, 0.05, shape)
    elif name.endswith("gamma"):
      value = 1.0 + rng.normal(0.0, 0.1, shape)
    else:
      value = rng.normal(0.0, 0.2, shape)
    weights[name] = value.astype(np.float32)
  return weights


def load_checkpoint_weights(prefix):
  """Reads a TF1 checkpoint (prefix or directory) into name -> numpy array.

  Optimizer slots (`*/adam_m`, `*/adam_v`) and `global_step` are dropped.
  """
  import tensorflow as tf  # Only for reading the checkpoint file format.

  reader = tf.train.load_checkpoint(prefix)
  weights = {}
  for name in sorted(reader.get_variable_to_shape_map()):
    if name.endswith(("/adam_m", "/adam_v")) or name == "global_step":
      continue
    weights[name] = np.asarray(reader.get_tensor(name))
  return weights


# ----------------------------------------------------------------------------- forward


def _dense(x, weights, scope):
  kernel = np.asarray(weights[scope + "/kernel"], np.float64)
  bias = np.asarray(weights[scope + "/bias"], np.float64)
  return x @ kernel + bias


def _ln(x, weights, scope):
  return layer_norm(x, weights[scope + "/gamma"], weights[scope + "/beta"])


def _attention(x, adder, weights, scope, num_heads):
  """Self-attention of the original `attention_layer` + output dense. Returns (out, probs)."""
  batch, seq, hidden = x.shape
  head = hidden // num_heads

  def split(t):  # [B,S,H] -> [B,N,S,D]
    return t.reshape(batch, seq, num_heads, head).transpose(0, 2, 1, 3)

  q = split(_dense(x, weights, scope + "/self/query"))
  k = split(_dense(x, weights, scope + "/self/key"))
  v = split(_dense(x, weights, scope + "/self/value"))
  scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(float(head)) + adder
  probs = softmax(scores, axis=-1)
  context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
  return _dense(context, weights, scope + "/output/dense"), probs


def forward(config, weights, input_ids, input_mask=None, segment_ids=None,
            masked_lm_positions=None, masked_lm_ids=None, masked_lm_weights=None,
            next_sentence_labels=None):
  """The original ALBERT forward pass (inference, no dropout) in float64.

  Returns a dict of float64 arrays: word_embedding_output, embedding_output,
  encoder_input, all_encoder_layers, sequence_output, pooled_output, attention_probs;
  with masked_lm_* also mlm_transform_output, mlm_logits, mlm_log_probs,
  mlm_per_example_loss, mlm_loss; with next_sentence_labels also sop_logits,
  sop_log_probs, sop_per_example_loss, sop_loss; total_loss when both heads ran.
  """
  input_ids = np.asarray(input_ids, np.int64)
  batch, seq = input_ids.shape
  input_mask = (np.ones((batch, seq)) if input_mask is None
                else np.asarray(input_mask)).astype(np.float64)
  segment_ids = (np.zeros((batch, seq), np.int64) if segment_ids is None
                 else np.asarray(segment_ids, np.int64))
  act = activation(config.get("hidden_act", "gelu"))
  hidden = config["hidden_size"]
  num_heads = config["num_attention_heads"]
  if hidden % num_heads:
    raise ValueError("hidden_size %d is not a multiple of num_attention_heads %d" % (hidden, num_heads))
  if seq > config["max_position_embeddings"]:
    raise ValueError("sequence length %d > max_position_embeddings" % seq)
  out = {}

  # Embeddings.
  word_table = np.asarray(weights["bert/embeddings/word_embeddings"], np.float64)
  word = word_table[input_ids]
  out["word_embedding_output"] = word
  token_type = np.asarray(weights["bert/embeddings/token_type_embeddings"], np.float64)[segment_ids]
  position = np.asarray(weights["bert/embeddings/position_embeddings"], np.float64)[:seq]
  embedded = _ln(word + token_type + position[None], weights, "bert/embeddings/LayerNorm")
  out["embedding_output"] = embedded

  # Encoder.
  if config["embedding_size"] != hidden:
    x = _dense(embedded, weights, "bert/encoder/embedding_hidden_mapping_in")
  else:
    x = embedded
  out["encoder_input"] = x
  adder = ((1.0 - input_mask) * MASK_ADDER)[:, None, None, :]  # [B,1,1,S_to]
  all_layers, all_probs = [], []
  for layer in range(config["num_hidden_layers"]):
    attention_group, ffn_group = layer_groups(config, layer)
    for inner in range(config["inner_group_num"]):
      a = _scope(attention_group, inner)
      f = _scope(ffn_group, inner)
      attended, probs = _attention(x, adder, weights, a + "/attention_1", num_heads)
      h = _ln(attended + x, weights, a + "/LayerNorm")
      intermediate = act(_dense(h, weights, f + "/ffn_1/intermediate/dense"))
      ffn = _dense(intermediate, weights, f + "/ffn_1/intermediate/output/dense")
      x = _ln(ffn + h, weights, f + "/LayerNorm_1")
      all_layers.append(x)
      all_probs.append(probs)
  out["all_encoder_layers"] = np.stack(all_layers)
  out["attention_probs"] = np.stack(all_probs)
  out["sequence_output"] = x
  out["pooled_output"] = np.tanh(_dense(x[:, 0], weights, "bert/pooler/dense"))

  # Masked LM head.
  if masked_lm_positions is not None:
    positions = np.asarray(masked_lm_positions, np.int64)
    flat = (positions + np.arange(batch)[:, None] * seq).reshape(-1)
    gathered = x.reshape(batch * seq, hidden)[flat]
    t = act(_dense(gathered, weights, "cls/predictions/transform/dense"))
    t = _ln(t, weights, "cls/predictions/transform/LayerNorm")
    out["mlm_transform_output"] = t
    logits = t @ word_table.T + np.asarray(weights["cls/predictions/output_bias"], np.float64)
    out["mlm_logits"] = logits
    log_probs = log_softmax(logits)
    out["mlm_log_probs"] = log_probs
    if masked_lm_ids is not None:
      labels = np.asarray(masked_lm_ids, np.int64).reshape(-1)
      per_example = -log_probs[np.arange(labels.size), labels]
      out["mlm_per_example_loss"] = per_example
      w = (np.ones(labels.size) if masked_lm_weights is None
           else np.asarray(masked_lm_weights, np.float64).reshape(-1))
      out["mlm_loss"] = np.float64(np.sum(w * per_example) / (np.sum(w) + MLM_LOSS_EPSILON))

  # Sentence-order head.
  pooled = out["pooled_output"]
  if next_sentence_labels is not None:
    output_weights = np.asarray(weights["cls/seq_relationship/output_weights"], np.float64)
    logits = pooled @ output_weights.T + np.asarray(weights["cls/seq_relationship/output_bias"], np.float64)
    out["sop_logits"] = logits
    log_probs = log_softmax(logits)
    out["sop_log_probs"] = log_probs
    labels = np.asarray(next_sentence_labels, np.int64).reshape(-1)
    per_example = -log_probs[np.arange(labels.size), labels]
    out["sop_per_example_loss"] = per_example
    out["sop_loss"] = np.float64(per_example.mean())

  if "mlm_loss" in out and "sop_loss" in out:
    out["total_loss"] = out["mlm_loss"] + out["sop_loss"]
  return out
