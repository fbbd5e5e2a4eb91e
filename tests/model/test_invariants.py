"""Invariants of the encoder: padding, sharing, determinism, dropout, shapes, mixed precision."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from albert import checkpoint, layers
from albert.config import AlbertConfig
from albert.modeling import build_backbone
from albert.models import build_encoder_model, build_pretraining_model
from conftest import CONFIGS, randomize

TINY = AlbertConfig.from_json_file(os.path.join(CONFIGS, "tiny", "albert_config.json"))


def features(batch=2, seq=9, lengths=(9, 5), seed=0, vocab=1000):
  rng = np.random.RandomState(seed)
  ids = rng.randint(5, vocab, size=(batch, seq)).astype(np.int32)
  mask = np.zeros((batch, seq), np.int32)
  segments = np.zeros((batch, seq), np.int32)
  for b, n in enumerate(lengths):
    mask[b, :n] = 1
    segments[b, n // 2:n] = 1
    ids[b, n:] = 0
  return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


@pytest.mark.parametrize("mode", ["all", "attention", "ffn", "none"])
def test_padding_invariance(mode):
  model = build_encoder_model(TINY.replace(cross_layer_sharing=mode, num_hidden_groups=2))
  randomize(model, seed=3)
  short = features(batch=2, seq=6, lengths=(6, 4))
  padded = {k: np.pad(v, [(0, 0), (0, 7)]) for k, v in short.items()}  # 7 more padded positions
  a, b = model(short), model(padded)
  # Float32 matmuls of other shapes round differently (~3e-6); a masking error would be O(1).
  tol = 1e-5
  np.testing.assert_allclose(b["sequence_output"][0, :6], a["sequence_output"][0], atol=tol)
  np.testing.assert_allclose(b["sequence_output"][1, :4], a["sequence_output"][1, :4], atol=tol)
  np.testing.assert_allclose(b["pooled_output"], a["pooled_output"], atol=tol)
  # The same row alone, and in a batch of any size, gives the same result.
  single = model({k: v[1:] for k, v in short.items()})
  np.testing.assert_allclose(single["pooled_output"][0], a["pooled_output"][1], atol=tol)
  # Without the mask, the padded positions would change the result.
  unmasked = model({**padded, "input_mask": np.ones_like(padded["input_mask"])})
  assert np.abs(unmasked["pooled_output"].numpy() - a["pooled_output"].numpy()).max() > 1e-2


@pytest.mark.parametrize("mode, attention_groups, ffn_groups", [
    ("all", 2, 2), ("attention", 2, 6), ("ffn", 6, 2), ("none", 6, 6)])
def test_sharing_modes_create_the_expected_variables(mode, attention_groups, ffn_groups):
  config = TINY.replace(num_hidden_layers=6, num_hidden_groups=2, inner_group_num=2,
                        cross_layer_sharing=mode)
  names = [checkpoint.variable_name(v) for v in build_backbone(config).weights]
  def groups(part):
    return {re.search(r"/group_(\d+)/", n).group(1) for n in names
            if part in n and "/transformer/" in n}
  assert len(groups("/attention_1/")) == attention_groups
  assert len(groups("/LayerNorm/")) == attention_groups
  assert len(groups("/ffn_1/")) == ffn_groups
  assert len(groups("/LayerNorm_1/")) == ffn_groups
  inner = {re.search(r"/inner_group_(\d+)/", n).group(1) for n in names if "inner_group" in n}
  assert inner == {"0", "1"}
  # Each (group, inner group) has one attention half (10 variables) and/or one FFN half (6).
  per_scope = 10 * attention_groups * 2 + 6 * ffn_groups * 2
  assert sum("/transformer/" in n for n in names) == per_scope


def test_parameter_count_does_not_grow_with_depth_when_shared():
  counts = {}
  for layers in (1, 3, 12):
    bert = build_backbone(TINY.replace(num_hidden_layers=layers))
    counts[layers] = (len(bert.weights), int(sum(np.prod(v.shape) for v in bert.weights)))
  assert counts[1] == counts[3] == counts[12]
  unshared = [int(sum(np.prod(v.shape) for v in build_backbone(
      TINY.replace(num_hidden_layers=n, cross_layer_sharing="none")).weights)) for n in (1, 3)]
  per_layer = 4 * (64 * 64 + 64) + 2 * 64 + (64 * 256 + 256) + (256 * 64 + 64) + 2 * 64
  assert unshared[1] - unshared[0] == 2 * per_layer


def test_shared_layers_reuse_one_object():
  config = TINY.replace(num_hidden_layers=4, num_hidden_groups=1)
  bert = build_backbone(config)
  assert len(bert.attention_sublayers) == 1 and len(bert.ffn_sublayers) == 1
  out = bert(features())
  assert len(out["encoder_outputs"]) == 4
  # Layers differ although their parameters are shared.
  assert not np.allclose(out["encoder_outputs"][0], out["encoder_outputs"][1])


def test_encoder_outputs_one_per_inner_group_per_layer():
  config = TINY.replace(num_hidden_layers=3, num_hidden_groups=1, inner_group_num=3)
  out = build_backbone(config)(features())
  assert len(out["encoder_outputs"]) == 9
  np.testing.assert_array_equal(out["encoder_outputs"][-1], out["sequence_output"])


def test_deterministic_and_dropout_only_in_training():
  model = build_encoder_model(TINY)  # dropout 0.1 in the tiny config
  feats = features()
  a = model(feats)["sequence_output"].numpy()
  b = model(feats, training=False)["sequence_output"].numpy()
  np.testing.assert_array_equal(a, b)
  c = model(feats, training=True)["sequence_output"].numpy()
  d = model(feats, training=True)["sequence_output"].numpy()
  assert np.abs(c - a).max() > 1e-3 and np.abs(c - d).max() > 1e-3


def test_same_seed_same_initial_weights():
  def weights():
    tf_keras.utils.set_random_seed(5)
    return [v.numpy() for v in sorted(build_backbone(TINY).weights, key=lambda v: v.name)]
  for a, b in zip(weights(), weights()):
    np.testing.assert_array_equal(a, b)


def test_initializers_follow_the_original():
  bert = build_backbone(TINY.replace(initializer_range=0.02, vocab_size=5000))
  table = bert.get_embedding_table().numpy()
  assert table.shape == (5000, 32)
  assert abs(table.std() - 0.02 * 0.8796) < 1e-3  # truncated at 2 stddev
  assert np.abs(table).max() <= 0.04 + 1e-6
  values = {checkpoint.variable_name(v): v.numpy() for v in bert.weights}
  assert all(np.all(values[n] == 0) for n in values if n.endswith(("/bias", "/beta")))
  assert all(np.all(values[n] == 1) for n in values if n.endswith("/gamma"))


@pytest.mark.parametrize("batch, seq", [(1, 1), (3, 17), (5, 128)])
def test_any_batch_and_sequence_length(batch, seq):
  model = build_encoder_model(TINY)
  out = model(features(batch, seq, lengths=[seq] * batch))
  assert out["sequence_output"].shape == (batch, seq, 64)
  assert out["pooled_output"].shape == (batch, 64)
  assert out["embedding_output"].shape == (batch, seq, 32)


def test_sequence_longer_than_positions_is_refused():
  bert = build_backbone(TINY)
  with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="max_position_embeddings"):
    bert({"input_ids": tf.zeros([1, 129], tf.int32)})


def test_inputs_accept_hub_names_and_defaults():
  bert = build_backbone(TINY)
  feats = features(lengths=(9, 9))
  a = bert(feats)["pooled_output"]
  b = bert({"input_word_ids": feats["input_ids"], "input_type_ids": feats["segment_ids"]})
  np.testing.assert_array_equal(a, b["pooled_output"])
  c = bert(feats["input_ids"])  # a bare tensor: mask of ones, segment 0
  d = bert({"input_ids": feats["input_ids"], "input_mask": np.ones_like(feats["input_ids"])})
  np.testing.assert_array_equal(c["pooled_output"], d["pooled_output"])
  with pytest.raises(ValueError, match="input_ids"):
    bert({"segment_ids": feats["segment_ids"]})


def test_mixed_bfloat16_runs_close_to_float32():
  model = build_encoder_model(TINY)
  randomize(model, seed=1, scale=0.05)
  feats = features()
  reference = model(feats)["sequence_output"].numpy()
  values = {checkpoint.variable_name(v): v.numpy() for v in model.weights}
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  bf16 = build_encoder_model(TINY)
  for v in bf16.weights:
    assert v.dtype == tf.float32  # variables stay float32
    v.assign(values[checkpoint.variable_name(v)])
  out = bf16(feats)["sequence_output"]
  assert out.dtype == tf.bfloat16
  drift = np.abs(out.numpy().astype(np.float32) - reference).max()
  assert 0 < drift < 0.15


def test_mixed_precision_keeps_the_residual_stream_in_float32():
  """Sublayers add the residual and normalise in float32 (no autocast of their input)."""
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  attention = layers.AttentionSublayer(16, 2, name="inner_group_0")
  ffn = layers.FeedForwardSublayer(16, 32, name="inner_group_0")
  adder = layers.attention_mask_adder(tf.constant([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]))
  rounded = tf.cast(tf.cast(tf.random.stateless_normal([2, 5, 16], [1, 2]), tf.bfloat16),
                    tf.float32)  # float32 values that bfloat16 represents exactly
  fine = rounded * (1.0 + 2.0 ** -12)  # float32 values that bfloat16 does not represent
  for sublayer in (lambda t: attention(t, adder)[0], ffn):
    from_float32 = sublayer(rounded)
    assert from_float32.dtype == tf.float32
    np.testing.assert_array_equal(from_float32, sublayer(tf.cast(rounded, tf.bfloat16)))
    # The residual keeps the input's float32 precision: the outputs differ, by about the
    # residual's share of the rounding the input would have had.
    diff = np.abs(sublayer(fine).numpy() - from_float32.numpy()).max()
    assert 0 < diff < 1e-2
  # The backbone returns the compute dtype.
  bert = build_backbone(TINY)
  out = bert({"input_ids": tf.constant([[2, 7, 3]])})
  assert out["sequence_output"].dtype == tf.bfloat16
  assert all(t.dtype == tf.bfloat16 for t in out["encoder_outputs"])


def test_pretraining_model_heads_are_tied_and_named():
  model = build_pretraining_model(TINY)
  names = sorted(checkpoint.variable_name(v) for v in model.weights)
  assert "cls/predictions/output_bias" in names
  assert not any(n.startswith("cls/predictions") and "embedding" in n for n in names)
  assert model.get_layer("cls/predictions").embedding_layer.word_embeddings is \
      model.get_layer("bert").get_embedding_table()
  out = model({**features(), "masked_lm_positions": np.array([[1, 2], [3, 0]], np.int32)})
  assert out["mlm_logits"].shape == (2, 2, 1000) and out["sop_logits"].shape == (2, 2)
