"""Validation of the independent float64 numpy oracle `tests/support/reference_numpy.py`.

The oracle must reproduce the original TF1 ALBERT (golden model_A, init and sharp weights)
and its unit functions, create exactly the variable names a config needs (including the
cross-layer sharing modes), and be invariant to appended padding.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import GOLDEN, MODEL_A, golden_arrays
from support import reference_numpy as ref

GOLDEN_ATOL = 2e-6
INPUT_KEYS = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
              "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")
OUTPUT_KEYS = ("word_embedding_output", "embedding_output", "encoder_input",
               "all_encoder_layers", "sequence_output", "pooled_output", "attention_probs",
               "mlm_transform_output", "mlm_logits", "mlm_log_probs", "mlm_per_example_loss",
               "mlm_loss", "sop_logits", "sop_log_probs", "sop_per_example_loss", "sop_loss",
               "total_loss")
PER_LAYER_NAMES = 16  # 4 attention denses x 2 + LayerNorm x 2 + 2 ffn denses x 2 + LayerNorm_1 x 2.


def golden_config():
  with open(os.path.join(MODEL_A, "albert_config.json")) as f:
    return json.load(f)


def small_config(**overrides):
  config = dict(golden_config())
  config.update(vocab_size=50, max_position_embeddings=40)
  config.update(overrides)
  return config


def golden_feeds(g):
  return {k: g["input/" + k] for k in INPUT_KEYS}


class RecordingDict(dict):
  """A dict that remembers which keys were read."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.used = set()

  def __getitem__(self, key):
    self.used.add(key)
    return super().__getitem__(key)


def group_scopes(names, part):
  """Distinct `group_g` indices whose inner groups hold `part` (e.g. 'attention_1', 'ffn_1')."""
  groups = set()
  for name in names:
    if name.startswith("bert/encoder/transformer/"):
      pieces = name.split("/")
      if pieces[5] == part:
        groups.add(pieces[3])
  return groups


# ----------------------------------------------------------------------------- golden


@pytest.mark.parametrize("variant", ["init", "sharp"])
def test_forward_reproduces_golden(variant):
  directory = MODEL_A if variant == "init" else os.path.join(MODEL_A, "sharp")
  weights = ref.load_checkpoint_weights(os.path.join(directory, "model.ckpt-0"))
  g = golden_arrays(variant)
  out = ref.forward(golden_config(), weights, **golden_feeds(g))
  golden_keys = {k[len("output/"):] for k in g if k.startswith("output/")}
  assert golden_keys == set(OUTPUT_KEYS)
  assert set(out) == golden_keys
  diffs = {}
  for key in OUTPUT_KEYS:
    expected = g["output/" + key]
    assert out[key].shape == expected.shape, key
    assert out[key].dtype == np.float64, key
    diffs[key] = float(np.max(np.abs(out[key] - expected)))
  print("\n%s max abs diffs: %s" % (variant, json.dumps(diffs, indent=1)))
  bad = {k: v for k, v in diffs.items() if not v <= GOLDEN_ATOL}
  assert not bad, bad


def test_load_checkpoint_weights_drops_optimizer_state():
  weights = ref.load_checkpoint_weights(os.path.join(MODEL_A, "model.ckpt-0"))
  assert not any(n.endswith(("/adam_m", "/adam_v")) for n in weights)
  assert "global_step" not in weights
  with open(os.path.join(MODEL_A, "variables.json")) as f:
    info = json.load(f)
  trainable = {n: tuple(s) for n, s in info["trainable_variables_in_creation_order"]}
  assert {n: w.shape for n, w in weights.items()} == trainable
  assert sum(w.size for w in weights.values()) == info["num_trainable_params"]
  # A directory works too (latest checkpoint).
  assert set(ref.load_checkpoint_weights(MODEL_A)) == set(weights)


# ----------------------------------------------------------------------------- units


def test_gelu_matches_original():
  with np.load(os.path.join(GOLDEN, "units.npz")) as u:
    x, y = u["gelu_x"], u["gelu_y"]
  np.testing.assert_allclose(ref.gelu(x), y, rtol=0, atol=2e-6)
  # The tanh approximation, not the exact erf GELU.
  assert ref.gelu(np.float64(1.0)) == pytest.approx(0.8411919906082768, abs=1e-12)


def test_layer_norm_matches_original():
  with np.load(os.path.join(GOLDEN, "units.npz")) as u:
    x, y = u["layer_norm_x"], u["layer_norm_y"]
    xc, yc = u["layer_norm_nearconst_x"], u["layer_norm_nearconst_y"]
  np.testing.assert_allclose(ref.layer_norm(x), y, rtol=0, atol=1e-6)
  # Near-constant rows (variance ~1e-8): the golden values carry float32 rounding of TF's
  # variance (~1e-5); a wrong epsilon (1e-8) would be off by ~1.0.
  np.testing.assert_allclose(ref.layer_norm(xc), yc, rtol=0, atol=5e-5)
  assert np.max(np.abs(ref.layer_norm(xc, epsilon=1e-8) - yc)) > 0.1
  gamma, beta = np.linspace(0.5, 1.5, 8), np.linspace(-0.1, 0.1, 8)
  np.testing.assert_allclose(ref.layer_norm(x, gamma, beta), ref.layer_norm(x) * gamma + beta, atol=1e-12)


def test_activations():
  x = np.linspace(-3, 3, 13)
  np.testing.assert_array_equal(ref.activation("relu")(x), np.maximum(x, 0))
  np.testing.assert_array_equal(ref.activation("tanh")(x), np.tanh(x))
  np.testing.assert_array_equal(ref.activation("linear")(x), x)
  np.testing.assert_array_equal(ref.activation("GELU")(x), ref.gelu(x))
  with pytest.raises(ValueError):
    ref.activation("swish")


# ----------------------------------------------------------------------------- names


def test_init_weights_golden_names_and_shapes():
  config = golden_config()
  checkpoint = ref.load_checkpoint_weights(os.path.join(MODEL_A, "model.ckpt-0"))
  weights = ref.init_weights(config, seed=0)
  assert set(weights) == set(checkpoint)
  for name, value in weights.items():
    assert value.shape == checkpoint[name].shape, name
    assert value.dtype == np.float32, name


def test_init_weights_distribution_and_determinism():
  config = golden_config()
  a, b, c = (ref.init_weights(config, s) for s in (3, 3, 4))
  for name in a:
    np.testing.assert_array_equal(a[name], b[name])
  assert any(not np.array_equal(a[n], c[n]) for n in a)
  kernels = np.concatenate([v.ravel() for n, v in a.items() if not n.endswith(("bias", "beta", "gamma"))])
  biases = np.concatenate([v.ravel() for n, v in a.items() if n.endswith(("bias", "beta"))])
  gammas = np.concatenate([v.ravel() for n, v in a.items() if n.endswith("gamma")])
  assert abs(kernels.std() - 0.2) < 0.01
  assert abs(biases.std() - 0.05) < 0.01
  assert abs(gammas.mean() - 1.0) < 0.02 and abs(gammas.std() - 0.1) < 0.02


def test_init_weights_groups_and_inner_groups():
  config = small_config(num_hidden_layers=4, num_hidden_groups=2, inner_group_num=2)
  weights = ref.init_weights(config, seed=1)
  transformer = sorted(n for n in weights if n.startswith("bert/encoder/transformer/"))
  assert len(transformer) == 2 * 2 * PER_LAYER_NAMES
  assert len(weights) == 14 + 2 + 2 * 2 * PER_LAYER_NAMES
  scopes = {"/".join(n.split("/")[3:5]) for n in transformer}
  assert scopes == {"group_%d/inner_group_%d" % (g, i) for g in (0, 1) for i in (0, 1)}
  for g in (0, 1):
    for i in (0, 1):
      t = "bert/encoder/transformer/group_%d/inner_group_%d/" % (g, i)
      assert weights[t + "ffn_1/intermediate/dense/kernel"].shape == (32, 37)
      assert weights[t + "ffn_1/intermediate/output/dense/kernel"].shape == (37, 32)
      assert weights[t + "attention_1/self/query/kernel"].shape == (32, 32)
      assert weights[t + "LayerNorm_1/gamma"].shape == (32,)
  out = ref.forward(config, weights, np.array([[2, 7, 9, 3, 11, 3]]))
  assert out["all_encoder_layers"].shape == (8, 1, 6, 32)
  assert out["attention_probs"].shape == (8, 1, 4, 6, 6)
  np.testing.assert_array_equal(out["all_encoder_layers"][-1], out["sequence_output"])


def test_layer_to_group_assignment():
  config = small_config(num_hidden_layers=12, num_hidden_groups=3)
  assert [ref.layer_groups(config, l)[0] for l in range(12)] == [0] * 4 + [1] * 4 + [2] * 4
  config = small_config(num_hidden_layers=4, num_hidden_groups=3)
  assert [ref.layer_groups(config, l)[0] for l in range(4)] == [0, 0, 1, 2]


def test_init_weights_without_embedding_projection():
  config = small_config(embedding_size=32)
  weights = ref.init_weights(config, seed=2)
  assert not any("embedding_hidden_mapping_in" in n for n in weights)
  assert weights["cls/predictions/transform/dense/kernel"].shape == (32, 32)
  out = ref.forward(config, weights, np.array([[2, 7, 9, 3, 0]]), input_mask=np.array([[1, 1, 1, 1, 0]]))
  np.testing.assert_array_equal(out["encoder_input"], out["embedding_output"])


@pytest.mark.parametrize("mode,attention_groups,ffn_groups", [
    ("all", 2, 2), ("attention", 2, 4), ("ffn", 4, 2), ("none", 4, 4)])
def test_init_weights_sharing_modes(mode, attention_groups, ffn_groups):
  config = small_config(num_hidden_layers=4, num_hidden_groups=2, cross_layer_sharing=mode)
  weights = ref.init_weights(config, seed=3)
  assert len(group_scopes(weights, "attention_1")) == attention_groups
  assert len(group_scopes(weights, "ffn_1")) == ffn_groups
  layer_norms = {n.split("/")[3] for n in weights if n.endswith("/LayerNorm/gamma") and "transformer" in n}
  layer_norms_1 = {n.split("/")[3] for n in weights if n.endswith("/LayerNorm_1/gamma")}
  assert layer_norms == group_scopes(weights, "attention_1")
  assert layer_norms_1 == group_scopes(weights, "ffn_1")
  assert len(weights) == 16 + attention_groups * 10 + ffn_groups * 6
  # forward reads exactly the variables init_weights created.
  recording = RecordingDict(weights)
  ids = np.array([[2, 5, 6, 3, 8, 3], [2, 9, 3, 4, 3, 0]])
  ref.forward(config, recording, ids, input_mask=(ids > 0).astype(np.int32),
              masked_lm_positions=[[1], [3]], masked_lm_ids=[[5], [4]], masked_lm_weights=[[1.0], [1.0]],
              next_sentence_labels=[[0], [1]])
  assert recording.used == set(weights)


def test_unknown_sharing_mode_rejected():
  with pytest.raises(ValueError):
    ref.init_weights(small_config(cross_layer_sharing="some"), seed=0)


@pytest.mark.parametrize("mode", ["attention", "ffn", "none"])
def test_sharing_modes_equal_all_when_weights_are_tied(mode):
  """Copying the shared group into every per-layer scope reproduces the 'all' model."""
  base = small_config(num_hidden_layers=4, num_hidden_groups=1)
  shared = ref.init_weights(base, seed=4)
  config = dict(base, cross_layer_sharing=mode)
  untied = {}
  for name in ref.variable_shapes(config):
    source = name
    if name.startswith("bert/encoder/transformer/"):
      pieces = name.split("/")
      pieces[3] = "group_0"
      source = "/".join(pieces)
    untied[name] = shared[source]
  ids = np.array([[2, 5, 6, 3, 8, 3, 0, 0]])
  mask = (ids > 0).astype(np.int32)
  expected = ref.forward(base, shared, ids, input_mask=mask)
  actual = ref.forward(config, untied, ids, input_mask=mask)
  for key in expected:
    np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
  # And the untied model really depends on the per-layer copies.
  # (Only the last layer's own, unshared part: attention LayerNorm in "ffn" mode, else LayerNorm_1.)
  per_layer = "bert/encoder/transformer/group_3/inner_group_0/%s/beta" % (
      "LayerNorm" if mode == "ffn" else "LayerNorm_1")
  untied[per_layer] = untied[per_layer] + 1.0
  changed = ref.forward(config, untied, ids, input_mask=mask)
  np.testing.assert_array_equal(changed["all_encoder_layers"][:3], expected["all_encoder_layers"][:3])
  assert np.max(np.abs(changed["sequence_output"] - expected["sequence_output"])) > 0.5


# ----------------------------------------------------------------------------- behaviour


def test_default_mask_and_segments():
  config = golden_config()
  weights = ref.init_weights(config, seed=5)
  ids = np.array([[2, 5, 6, 3, 8, 3], [2, 9, 3, 4, 3, 7]])
  implicit = ref.forward(config, weights, ids)
  explicit = ref.forward(config, weights, ids, input_mask=np.ones_like(ids), segment_ids=np.zeros_like(ids))
  for key in implicit:
    np.testing.assert_array_equal(implicit[key], explicit[key], err_msg=key)
  assert set(implicit) == {"word_embedding_output", "embedding_output", "encoder_input",
                           "all_encoder_layers", "sequence_output", "pooled_output", "attention_probs"}
  # Sharp random weights: attention is far from uniform (1/6 for these rows).
  assert implicit["attention_probs"].max() > 0.6


@pytest.mark.parametrize("hidden_act", ["gelu", "relu", "tanh", "linear"])
def test_hidden_act_is_used(hidden_act):
  config = small_config(hidden_act=hidden_act)
  weights = ref.init_weights(config, seed=6)
  ids = np.array([[2, 5, 6, 3, 8, 3]])
  out = ref.forward(config, weights, ids, masked_lm_positions=[[1, 2]], masked_lm_ids=[[5, 6]])
  other = ref.forward(dict(config, hidden_act="relu" if hidden_act != "relu" else "tanh"), weights, ids,
                      masked_lm_positions=[[1, 2]], masked_lm_ids=[[5, 6]])
  assert np.max(np.abs(out["mlm_transform_output"] - other["mlm_transform_output"])) > 1e-3
  assert np.all(np.isfinite(out["mlm_loss"]))
  # Unit weights: the MLM loss is the plain mean of per-example losses (up to the 1e-5).
  assert out["mlm_loss"] == pytest.approx(out["mlm_per_example_loss"].sum() / (2 + 1e-5), rel=1e-12)


PADDING_CONFIGS = {
    "golden": {},
    "groups_inner": dict(num_hidden_groups=2, inner_group_num=2),
    "none_relu": dict(cross_layer_sharing="none", hidden_act="relu"),
}


@pytest.mark.parametrize("name", sorted(PADDING_CONFIGS))
def test_padding_invariance(name):
  config = dict(golden_config(), **PADDING_CONFIGS[name])
  weights = ref.init_weights(config, seed=7)
  g = golden_arrays("init")
  feeds = golden_feeds(g)
  extra = 9
  padded = dict(feeds)
  for key in ("input_ids", "input_mask", "segment_ids"):
    padded[key] = np.concatenate([feeds[key], np.zeros((feeds[key].shape[0], extra), feeds[key].dtype)], axis=1)
  base = ref.forward(config, weights, **feeds)
  longer = ref.forward(config, weights, **padded)
  seq = feeds["input_ids"].shape[1]
  atol = 1e-10
  for key in ("word_embedding_output", "embedding_output", "encoder_input", "sequence_output"):
    np.testing.assert_allclose(longer[key][:, :seq], base[key], rtol=0, atol=atol, err_msg=key)
  np.testing.assert_allclose(longer["all_encoder_layers"][:, :, :seq], base["all_encoder_layers"], rtol=0, atol=atol)
  probs = longer["attention_probs"]
  np.testing.assert_allclose(probs[..., :seq, :seq], base["attention_probs"], rtol=0, atol=atol)
  np.testing.assert_array_equal(probs[..., seq:], 0.0)
  for key in ("pooled_output", "mlm_transform_output", "mlm_logits", "mlm_log_probs", "mlm_per_example_loss",
              "mlm_loss", "sop_logits", "sop_log_probs", "sop_per_example_loss", "sop_loss", "total_loss"):
    np.testing.assert_allclose(longer[key], base[key], rtol=0, atol=atol, err_msg=key)
  # The padded positions of the golden feeds are themselves masked out of every attention row.
  mask = feeds["input_mask"].astype(bool)
  for b in range(mask.shape[0]):
    assert np.all(base["attention_probs"][:, b][..., ~mask[b]] < 1e-300)


def test_oracle_is_independent_of_the_albert_package():
  import ast
  with open(ref.__file__) as f:
    tree = ast.parse(f.read())
  modules = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      modules.update(alias.name.split(".")[0] for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      modules.add((node.module or "").split(".")[0])
  assert modules <= {"__future__", "math", "numpy", "tensorflow"}, modules
