"""Fine-tuning heads, task models and losses against the original release (golden model_A).

The goldens (tests/testdata/golden/finetune/, copied from shared/fixtures/golden/finetune/) were
recorded by running the original's `create_model` functions on model_A with seeded heads:
the GLUE classifier (2 and 3 labels, STS-B regression), the first three AdamW (and LAMB) steps
of run_classifier's train op, SQuAD v1 and ALBERT's SQuAD v2 head, and RACE's multiple-choice
head. Tolerance 1e-5 (absolute, plus 1e-5 relative for the larger STS-B losses).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from albert import checkpoint, losses, models, optimization
from albert.config import AlbertConfig
from albert.errors import FlagError
from albert.heads import MASKED_LOGIT
from conftest import GOLDEN, MODEL_A

FINETUNE = os.path.join(GOLDEN, "finetune")
CLASSIFIER = os.path.join(FINETUNE, "classifier")
SQUAD = os.path.join(FINETUNE, "squad", "heads", "model_A")
RACE = os.path.join(FINETUNE, "race")
CONFIG_A = AlbertConfig.from_json_file(os.path.join(MODEL_A, "albert_config.json"))
ENCODER_INPUTS = ("input_ids", "input_mask", "segment_ids")
BODY = {"init": MODEL_A, "sharp": os.path.join(MODEL_A, "sharp")}
HEADS = {"cls2": 2, "cls3": 3, "stsb": 1}


def npz(path: str):
  with np.load(path) as data:
    return {k: data[k] for k in data.files}


def assert_close(ours, want, name, atol=1e-5, rtol=1e-5):
  ours = np.asarray(ours)
  assert ours.shape == want.shape, (name, ours.shape, want.shape)
  np.testing.assert_allclose(ours, want, rtol=rtol, atol=atol, err_msg=name)


def names(model) -> list:
  return sorted(checkpoint.variable_name(v) for v in model.weights)


def checkpoint_names(path: str) -> list:
  return sorted(checkpoint.read_checkpoint(path)[1])


def load_body_and_head(model, variant: str, head_checkpoint: str, head_values: dict) -> None:
  """init: the golden head checkpoint (body + head); sharp: the sharp body + the same head."""
  report = checkpoint.load_tf1_checkpoint(model, head_checkpoint, require_all=True)
  assert not report.missing and not report.unused
  if variant == "sharp":
    checkpoint.load_tf1_checkpoint(model, BODY["sharp"])
  by_name = checkpoint.variables_by_name(model)
  for name, value in head_values.items():
    np.testing.assert_array_equal(by_name[name].numpy(), value)  # the checkpoint's head


# ------------------------------------------------------------------------------- classifier
@pytest.mark.parametrize("variant", ["init", "sharp"])
@pytest.mark.parametrize("head", sorted(HEADS))
def test_classifier_head_matches_golden(head, variant):
  g = npz(os.path.join(CLASSIFIER, "model_A_classifier_outputs.npz"))
  regression = head == "stsb"
  model = models.build_classifier_model(CONFIG_A, HEADS[head], regression=regression)
  ckpt = os.path.join(CLASSIFIER, f"model_A_{head}", "init")
  # The original's names: 25 `bert/...` and the root-level `output_weights`, `output_bias`.
  assert names(model) == checkpoint_names(ckpt)
  assert {n for n in names(model) if not n.startswith("bert/")} == {"output_weights",
                                                                     "output_bias"}
  prefix = f"{head}/{variant}/"
  load_body_and_head(model, variant, ckpt, {"output_weights": g[prefix + "output_weights"],
                                            "output_bias": g[prefix + "output_bias"]})
  features = {k: g["input/" + k] for k in ENCODER_INPUTS}
  out = model(features, training=False)
  labels = g[f"input/label_ids_{head}"]
  loss = (losses.regression_loss(out["predictions"], labels) if regression
          else losses.classification_loss(out["logits"], labels))
  ours = {**{k: out[k] for k in ("pooled_output", "logits", "probabilities", "predictions")},
          "per_example_loss": loss["per_example_loss"], "loss": loss["loss"]}
  for key, value in ours.items():
    assert value.dtype == (tf.int32 if key == "predictions" and not regression else tf.float32)
    assert_close(value, g[prefix + key], key)
  if not regression:
    assert_close(loss["log_probs"], np.log(g[prefix + "probabilities"]), "log_probs")
    assert_close(out["log_probs"], loss["log_probs"], "model log_probs", atol=1e-7)


def test_classifier_golden_losses_to_six_digits():
  g = npz(os.path.join(CLASSIFIER, "model_A_classifier_outputs.npz"))
  model = models.build_classifier_model(CONFIG_A, 3)
  checkpoint.load_tf1_checkpoint(model, os.path.join(CLASSIFIER, "model_A_cls3", "init"),
                                 require_all=True)
  out = model({k: g["input/" + k] for k in ENCODER_INPUTS})
  loss = losses.classification_loss(out["logits"], g["input/label_ids_cls3"])["loss"]
  assert float(loss) == pytest.approx(1.0988694, abs=1e-6)
