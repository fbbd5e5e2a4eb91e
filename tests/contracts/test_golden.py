"""Parity with the original TF1 release on the golden model_A (init and sharp weights), and units."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from albert import checkpoint, layers, losses
from albert.config import AlbertConfig
from albert.models import build_pretraining_model
from conftest import GOLDEN, MODEL_A, golden_arrays

TOLERANCE = {"init": 1e-5, "sharp": 5e-5}


def run_model_a(variant: str):
  """Loads the original checkpoint into our pretraining model and computes every golden output."""
  config = AlbertConfig.from_json_file(os.path.join(MODEL_A, "albert_config.json"))
  model = build_pretraining_model(config)
  bert = model.get_layer("bert")
  directory = MODEL_A if variant == "init" else os.path.join(MODEL_A, "sharp")
  report = checkpoint.load_tf1_checkpoint(model, directory, require_all=True)
  g = golden_arrays(variant)
  features = {k: g["input/" + k] for k in ("input_ids", "input_mask", "segment_ids")}
  encoded = bert(features, training=False, return_attention_probs=True)
  mlm_head = model.get_layer("cls/predictions")
  sop_head = model.get_layer("cls/seq_relationship")
  positions = g["input/masked_lm_positions"]
  mlm_logits = mlm_head(encoded["sequence_output"], positions)
  sop_logits = sop_head(encoded["pooled_output"])
  mlm = losses.masked_lm_loss(mlm_logits, g["input/masked_lm_ids"], g["input/masked_lm_weights"])
  sop = losses.sentence_order_loss(sop_logits, g["input/next_sentence_labels"])
  gathered = tf.gather(encoded["sequence_output"], positions, batch_dims=1)
  ours = {
      "word_embedding_output": encoded["word_embedding_output"],
      "embedding_output": encoded["embedding_output"],
      "encoder_input": encoded["encoder_input"],
      "all_encoder_layers": tf.stack(encoded["encoder_outputs"]),
      "sequence_output": encoded["sequence_output"],
      "pooled_output": encoded["pooled_output"],
      "attention_probs": tf.stack(encoded["attention_probs"]),
      "mlm_transform_output": mlm_head.transform(tf.reshape(gathered, [-1, config.hidden_size])),
      "mlm_logits": tf.reshape(mlm_logits, [-1, config.vocab_size]),
      "mlm_log_probs": mlm["log_probs"],
      "mlm_per_example_loss": mlm["per_example_loss"],
      "mlm_loss": mlm["loss"],
      "sop_logits": sop_logits,
      "sop_log_probs": sop["log_probs"],
      "sop_per_example_loss": sop["per_example_loss"],
      "sop_loss": sop["loss"],
      "total_loss": mlm["loss"] + sop["loss"],
      # The model's own forward pass (functional model) must agree with the layer calls above.
      "model_mlm_logits": model({**features, "masked_lm_positions": positions})["mlm_logits"],
  }
  return report, {k: np.asarray(v) for k, v in ours.items()}, g


@pytest.mark.parametrize("variant", ["init", "sharp"])
def test_every_golden_output_matches(variant):
  report, ours, g = run_model_a(variant)
  assert len(report.loaded) == 32 and not report.missing and not report.unused
  golden_keys = sorted(k[len("output/"):] for k in g if k.startswith("output/"))
  assert set(golden_keys) <= set(ours), "a golden output is not computed"
  for key in golden_keys:
    want = g["output/" + key]
    assert ours[key].shape == want.shape, key
    np.testing.assert_allclose(ours[key], want, rtol=1e-4, atol=TOLERANCE[variant], err_msg=key)
  np.testing.assert_allclose(ours["model_mlm_logits"].reshape(ours["mlm_logits"].shape),
                             ours["mlm_logits"], rtol=0, atol=1e-6)


def test_golden_scalars_to_six_digits():
  _, ours, g = run_model_a("init")
  assert ours["total_loss"] == pytest.approx(7.6152729988098145, abs=2e-6)
  assert ours["mlm_loss"] == pytest.approx(6.932796955108643, abs=2e-6)
  assert ours["sop_loss"] == pytest.approx(0.6824761033058167, abs=2e-6)


def test_gelu_is_the_original_tanh_approximation():
  with np.load(os.path.join(GOLDEN, "units.npz")) as u:
    x, y = u["gelu_x"], u["gelu_y"]
  np.testing.assert_allclose(layers.gelu(tf.constant(x, tf.float32)).numpy(), y, rtol=0, atol=1e-6)
  exact = 0.5 * x * (1 + np.vectorize(__import__("math").erf)(x / np.sqrt(2)))
  assert np.abs(exact - y).max() > 1e-4  # the exact GELU would not pass the line above


@pytest.mark.parametrize("key", ["layer_norm", "layer_norm_nearconst"])
def test_layer_norm_matches_the_original(key):
  with np.load(os.path.join(GOLDEN, "units.npz")) as u:
    x, y = u[key + "_x"], u[key + "_y"]
  ln = layers.LayerNorm()
  np.testing.assert_allclose(ln(tf.constant(x, tf.float32)).numpy(), y, rtol=1e-5, atol=1e-5)
  loose = layers.LayerNorm(epsilon=1e-3)  # Keras' default epsilon must differ on near-constant rows
  if key == "layer_norm_nearconst":
    assert np.abs(loose(tf.constant(x, tf.float32)).numpy() - y).max() > 0.5


def test_activation_names():
  assert layers.get_activation("linear") is None and layers.get_activation("") is None
  assert layers.get_activation("GELU") is layers.gelu
  assert layers.get_activation("relu") is tf.nn.relu
  with pytest.raises(ValueError, match="swish"):
    layers.get_activation("swish")
