"""Our encoder and heads against the independent float64 numpy reference, on many configurations.

The golden data covers one configuration of the original; the reference (tests/support/reference_numpy.py,
itself checked against the golden data to 1.6e-6) extends the check to several groups and inner
groups, E == H, other activations and every sharing mode, with "sharp" weights (kernels
N(0, 0.2^2)) so that attention is far from uniform.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from albert import checkpoint, losses
from albert.config import AlbertConfig
from albert.models import build_pretraining_model
from support import reference_numpy as ref

BASE = {"vocab_size": 300, "embedding_size": 16, "hidden_size": 24, "num_hidden_layers": 5,
        "num_hidden_groups": 1, "num_attention_heads": 3, "intermediate_size": 40,
        "inner_group_num": 1, "hidden_act": "gelu", "max_position_embeddings": 40,
        "type_vocab_size": 3, "initializer_range": 0.02}

CASES = {
    "groups3_inner2": {"num_hidden_groups": 3, "inner_group_num": 2},
    "e_equals_h": {"embedding_size": 24},
    "relu": {"hidden_act": "relu", "num_hidden_groups": 2},
    "tanh": {"hidden_act": "tanh"},
    "linear": {"hidden_act": "linear"},
    "share_attention": {"cross_layer_sharing": "attention", "num_hidden_groups": 2},
    "share_ffn": {"cross_layer_sharing": "ffn", "inner_group_num": 2},
    "not_shared": {"cross_layer_sharing": "none"},
}


def make_inputs(seed=5, batch=3, seq=13, predictions=4, vocab=300):
  rng = np.random.RandomState(seed)
  lengths = [seq, 9, 4]
  ids = rng.randint(5, vocab, (batch, seq)).astype(np.int32)
  mask = np.zeros((batch, seq), np.int32)
  segments = np.zeros((batch, seq), np.int32)
  for b, n in enumerate(lengths):
    ids[b, n:] = 0
    mask[b, :n] = 1
    segments[b, n // 2:n] = rng.randint(1, 3)
  positions = np.stack([np.sort(rng.choice(n, predictions, replace=False)) for n in lengths])
  positions = positions.astype(np.int32)
  weights = np.ones((batch, predictions), np.float32)
  weights[2, 2:] = 0
  return {"input_ids": ids, "input_mask": mask, "segment_ids": segments,
          "masked_lm_positions": positions,
          "masked_lm_ids": rng.randint(0, vocab, (batch, predictions)).astype(np.int32),
          "masked_lm_weights": weights,
          "next_sentence_labels": np.array([[0], [1], [1]], np.int32)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_float64_reference(case):
  values = {**BASE, **CASES[case]}
  config = AlbertConfig.from_dict(values)
  weights = ref.init_weights(values, seed=11)
  model = build_pretraining_model(config)
  names = {checkpoint.variable_name(v): v for v in model.weights}
  assert set(names) == set(weights), "our variables differ from the reference's names"
  for name, var in names.items():
    assert list(var.shape) == list(weights[name].shape), name
    var.assign(weights[name])

  x = make_inputs()
  want = ref.forward(values, weights, **x)
  bert = model.get_layer("bert")
  enc = bert({k: x[k] for k in ("input_ids", "input_mask", "segment_ids")},
             return_attention_probs=True)
  mlm_logits = model.get_layer("cls/predictions")(enc["sequence_output"], x["masked_lm_positions"])
  sop_logits = model.get_layer("cls/seq_relationship")(enc["pooled_output"])
  mlm = losses.masked_lm_loss(mlm_logits, x["masked_lm_ids"], x["masked_lm_weights"])
  sop = losses.sentence_order_loss(sop_logits, x["next_sentence_labels"])
  ours = {
      "embedding_output": enc["embedding_output"], "encoder_input": enc["encoder_input"],
      "all_encoder_layers": tf.stack(enc["encoder_outputs"]),
      "sequence_output": enc["sequence_output"], "pooled_output": enc["pooled_output"],
      "attention_probs": tf.stack(enc["attention_probs"]),
      "mlm_logits": tf.reshape(mlm_logits, [-1, config.vocab_size]),
      "mlm_per_example_loss": mlm["per_example_loss"], "mlm_loss": mlm["loss"],
      "sop_logits": sop_logits, "sop_loss": sop["loss"], "total_loss": mlm["loss"] + sop["loss"],
  }
  layers_expected = config.num_hidden_layers * config.inner_group_num
  assert len(enc["encoder_outputs"]) == layers_expected
  for key, value in ours.items():
    np.testing.assert_allclose(np.asarray(value), want[key], rtol=1e-4, atol=5e-5, err_msg=key)
