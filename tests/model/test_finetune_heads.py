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
from albert.errors import FlagError, InputError
from albert.heads import MASKED_LOGIT
from conftest import GOLDEN, MODEL_A
from support.hub_modules import hub_handle

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


# ------------------------------------------------------------------------------- trajectory
class RecordedKeepMasks(tf_keras.layers.Layer):
  """Stands in for the head's dropout: the original's recorded keep masks, one per step."""

  def __init__(self, masks):
    super().__init__()
    self.masks = list(masks)
    self.step = 0

  def call(self, x, training=None):
    if not training:
      return x
    mask = self.masks[self.step]
    self.step += 1
    # tf.nn.dropout(keep_prob=0.9) multiplies by the float32 constant 1/0.9 (README).
    return tf.where(mask, x * tf.constant(1 / 0.9, tf.float32), tf.zeros_like(x))


def original_cpu_norm(grads) -> tf.Tensor:
  """The global norm the original computed on CPU: its word and token-type lookups are gathers,
  as ours, so their gradients are IndexedSlices with one slice per token, and
  `clip_by_global_norm` takes the norm of those slices (repeated tokens not summed)."""
  assert sum(isinstance(x, tf.IndexedSlices) for x in grads) == 2
  return tf.linalg.global_norm(grads)


def run_trajectory(optimizer_name: str):
  g = npz(os.path.join(CLASSIFIER, "model_A_trajectory.npz"))
  record = json.load(open(os.path.join(CLASSIFIER, "model_A_trajectory.json")))
  run = record["runs"][f"{optimizer_name}:init"]
  model = models.build_classifier_model(CONFIG_A, 2)
  checkpoint.load_tf1_checkpoint(model, os.path.join(CLASSIFIER, "model_A_cls2", "init"),
                                 require_all=True)
  prefix = f"{optimizer_name}_init/step"
  head = model.get_layer("")
  head.dropout = RecordedKeepMasks([g[f"{prefix}{k}/keep_mask"] for k in (1, 2, 3)])
  optimizer = optimization.create_optimizer(record["learning_rate"], record["num_train_steps"],
                                            record["num_warmup_steps"],
                                            optimizer=optimizer_name)
  variables = model.trainable_variables
  features = {k: g["input/" + k] for k in ENCODER_INPUTS}
  steps = []
  for step, want in enumerate(run["steps"], start=1):
    lr = float(optimizer.learning_rate_schedule(optimizer.iterations))
    with tf.GradientTape() as tape:
      out = model(features, training=True)
      loss = losses.classification_loss(out["logits"], g["input/label_ids"])
    grads = tape.gradient(loss["loss"], variables)
    clipped, norm = optimization.clip_gradients([tf.convert_to_tensor(x) for x in grads])
    optimizer.apply_gradients(zip(clipped, variables))
    steps.append({"step": step, "want": want, "lr": lr, "loss": float(loss["loss"]),
                  "norm": float(norm), "cpu_norm": float(original_cpu_norm(grads)),
                  "logits": out["logits"].numpy(),
                  "per_example_loss": loss["per_example_loss"].numpy(),
                  "slots": {n: s.numpy() for n, s in optimization.optimizer_slot_variables(
                      optimizer, variables).items()},
                  "weights": {checkpoint.variable_name(v): v.numpy() for v in variables},
                  "iterations": int(optimizer.iterations.numpy())})
  eval_out = model(features, training=False)
  eval_loss = float(losses.classification_loss(eval_out["logits"], g["input/label_ids"])["loss"])
  return g, steps, (eval_loss, run["eval_mode_loss_at_ckpt3"])


@pytest.mark.parametrize("optimizer_name", ["adamw", "lamb"])
def test_first_three_training_steps_match_the_original(optimizer_name):
  """run_classifier's train op: lr 1e-3, 3 steps, warmup 2, clip 1.0, the recorded masks."""
  g, steps, (eval_loss, want_eval_loss) = run_trajectory(optimizer_name)
  assert eval_loss == pytest.approx(want_eval_loss, abs=1e-6)  # EVAL mode after step 3
  for s in steps:
    want, tag = s["want"], f"{optimizer_name} step {s['step']}"
    assert s["lr"] == pytest.approx(want["learning_rate"], rel=1e-6, abs=0), tag
    assert s["loss"] == pytest.approx(want["loss"], abs=1e-6), tag
    prefix = f"{optimizer_name}_init/step{s['step']}/"
    assert_close(s["logits"], g[prefix + "logits"], tag + " logits")
    assert_close(s["per_example_loss"], g[prefix + "per_example_loss"], tag + " loss")
    # The original's figure counts each looked-up token's slice of the word-embedding
    # gradient separately (sparse gradients on CPU); ours clips with the true gradient's norm.
    assert s["cpu_norm"] == pytest.approx(want["global_norm_before_clipping"], rel=1e-5), tag
    assert s["norm"] < 1.0 and s["cpu_norm"] < 1.0  # no clipping in either: same updates
    assert s["iterations"] == want["global_step_after"]


def test_adamw_checkpoints_after_each_step_match_the_original():
  _, steps, _ = run_trajectory("adamw")
  initial = checkpoint.read_checkpoint(os.path.join(CLASSIFIER, "model_A_cls2", "init"))[1]
  for s in steps:
    prefix = os.path.join(CLASSIFIER, "model_A_adamw_init", f"model.ckpt-{s['step']}")
    reader = tf.train.load_checkpoint(prefix)
    stored = reader.get_variable_to_shape_map()
    ours = {**s["weights"], **s["slots"]}
    assert sorted([*ours, "global_step"]) == sorted(stored)  # 27 + 54 slots + global_step
    assert int(reader.get_tensor("global_step")) == s["step"]
    for name, value in ours.items():
      want = reader.get_tensor(name)
      if name.endswith(("/adam_m", "/adam_v")):
        # Relative to the slot's scale; absolute 1e-12 for attention_1/self/key/bias, whose
        # gradient is ~1e-14 (mathematically 0, README: compare it absolutely).
        bound = 1e-4 * float(np.abs(want).max()) + 1e-12
        assert float(np.abs(value - want).max()) <= bound, (s["step"], name)
      else:
        assert_close(value, want, name, atol=1e-6, rtol=0)
    if s["step"] == 1:  # lr 0 at global step 0: the weights do not move
      for name, value in s["weights"].items():
        np.testing.assert_array_equal(value, initial[name])


# ------------------------------------------------------------------------------------ SQuAD
def squad_model(version_2: bool, dropout_prob: float = 0.0):
  model = models.build_squad_model(CONFIG_A, version_2, start_n_top=5, end_n_top=5,
                                   dropout_prob=dropout_prob)
  ckpt = os.path.join(SQUAD, "v2" if version_2 else "v1")
  assert names(model) == checkpoint_names(ckpt)  # the original's names, nothing else
  report = checkpoint.load_tf1_checkpoint(model, ckpt, require_all=True)
  assert not report.unused and report.skipped == ["global_step"]
  return model


def squad_features(g, keys=("input_ids", "input_mask", "segment_ids", "p_mask")):
  return {k: g["input/" + k] for k in keys}


def test_squad_v1_head_matches_golden():
  g = npz(os.path.join(SQUAD, "outputs.npz"))
  model = squad_model(version_2=False)
  assert {n for n in names(model) if not n.startswith("bert/")} == {
      "cls/squad/output_weights", "cls/squad/output_bias"}
  for mode, training in (("predict", False), ("train", True)):
    out = model(squad_features(g), training=training)
    assert sorted(out) == ["end_logits", "start_logits"]
    for key in ("start_logits", "end_logits"):
      assert_close(out[key], g[f"v1/{mode}/{key}"], f"{mode} {key}")
  # The original's predict keys `start_log_prob`/`end_log_prob` hold the raw logits.
  assert_close(out["start_logits"], g["v1/predict/start_log_prob"], "start_log_prob")
  loss = losses.squad_v1_loss(out["start_logits"], out["end_logits"],
                              g["input/start_positions"], g["input/end_positions"])
  assert float(loss["loss"]) == pytest.approx(4.125861, abs=1e-5)
  assert float(loss["loss"]) == pytest.approx(float(g["v1/train/total_loss"]), abs=1e-6)
  assert float(loss["start_loss"]) == pytest.approx(float(g["v1/train/derived_start_loss"]),
                                                    abs=1e-5)
  assert float(loss["end_loss"]) == pytest.approx(float(g["v1/train/derived_end_loss"]),
                                                  abs=1e-5)
  # p_mask is accepted and ignored by v1 (the original's v1 masks nothing).
  other = dict(squad_features(g), p_mask=1 - g["input/p_mask"])
  np.testing.assert_array_equal(model(other)["start_logits"], out["start_logits"])


def test_squad_v2_predict_matches_golden():
  g = npz(os.path.join(SQUAD, "outputs.npz"))
  model = squad_model(version_2=True)
  head_names = {n.split("/")[0] for n in names(model) if not n.startswith("bert/")}
  assert head_names == {"start_logits", "end_logits", "answer_class"}
  predict = models.output_subset(model, models.SQUAD_V2_PREDICT_OUTPUTS)
  assert sorted(predict.input) == ["input_ids", "input_mask", "p_mask", "segment_ids"]
  out = predict(squad_features(g), training=False)
  for key in models.SQUAD_V2_PREDICT_OUTPUTS:
    want = g["v2/predict/" + key]
    if key.endswith("_index"):
      assert out[key].dtype == tf.int32
      np.testing.assert_array_equal(out[key], want, err_msg=key)
    else:
      assert_close(out[key], want, key)
  # Graph tensors of the original: full log-probs, the softmax over starts.
  start = model.get_layer("start_logits")
  end = model.get_layer("end_logits")
  encoded = model.get_layer("bert")(squad_features(g, ENCODER_INPUTS))["sequence_output"]
  start_out = start(encoded, g["input/p_mask"])
  beam = end(encoded, g["input/p_mask"], start_log_probs=start_out["log_probs"])
  assert_close(start_out["log_probs"], g["v2/predict/start_log_probs_full"], "start full")
  assert_close(beam["end_log_probs_full"], g["v2/predict/end_log_probs_full"], "end full")
  assert_close(tf.nn.softmax(start_out["masked_logits"]), g["v2/predict/start_p"], "start_p")
  # Masked positions are exactly -1e30, as the original's; [CLS] (p_mask 0) is a legal start.
  masked = g["input/p_mask"] == 1
  assert np.all(start_out["log_probs"].numpy()[masked] == np.float32(MASKED_LOGIT))
  assert np.all(g["v2/predict/start_log_probs_full"][masked] == np.float32(MASKED_LOGIT))
  end_masked = np.broadcast_to(masked[:, None, :], beam["end_log_probs_full"].shape)
  assert np.all(beam["end_log_probs_full"].numpy()[end_masked] == np.float32(MASKED_LOGIT))
  assert np.all(g["input/p_mask"][:, 0] == 0)
  # The full model gives the same predictions, whatever start_positions holds.
  for starts in (np.zeros(4, np.int32), g["input/start_positions"]):
    full = model(dict(squad_features(g), start_positions=starts), training=False)
    for key in models.SQUAD_V2_PREDICT_OUTPUTS:
      np.testing.assert_array_equal(full[key], out[key], err_msg=key)


def test_squad_v2_training_outputs_and_loss_match_golden():
  """TRAIN mode (golden dropout_prob 0.0): the end conditioned on the gold start."""
  g = npz(os.path.join(SQUAD, "outputs.npz"))
  model = squad_model(version_2=True, dropout_prob=0.0)
  features = squad_features(g, ("input_ids", "input_mask", "segment_ids", "p_mask",
                                "start_positions"))
  train = models.output_subset(model, models.SQUAD_V2_TRAIN_OUTPUTS)
  assert sorted(train.input) == sorted(features)
  # The training view skips the beam search (no top-k in its graph); the full model has it.
  specs = {k: tf.TensorSpec([None] if k == "start_positions" else [None, None], tf.int32)
           for k in features}
  for view, has_beam in ((train, False), (model, True)):
    graph = tf.function(lambda f, m=view: m(f, training=True)).get_concrete_function(specs).graph
    assert ("TopKV2" in {op.type for op in graph.get_operations()}) == has_beam
  for out in (train(features, training=True), model(features, training=True)):
    for key in models.SQUAD_V2_TRAIN_OUTPUTS:
      assert_close(out[key], g["v2/train/" + key], key)
    loss = losses.squad_v2_loss(out["start_log_probs"], out["end_log_probs"],
                                out["cls_logits"], g["input/start_positions"],
                                g["input/end_positions"], g["input/is_impossible"])
    assert float(loss["loss"]) == pytest.approx(4.216304, abs=1e-5)
    assert float(loss["loss"]) == pytest.approx(float(g["v2/train/total_loss"]), abs=1e-6)
    for part, key in (("start_loss", "derived_start_loss"), ("end_loss", "derived_end_loss"),
                      ("answer_class_loss", "derived_regression_loss")):
      assert float(loss[part]) == pytest.approx(float(g["v2/train/" + key]), abs=1e-5), part
    # The original's combination: (start + end) / 2 + answer-class loss / 2.
    assert float(loss["loss"]) == pytest.approx(
        (float(loss["start_loss"]) + float(loss["end_loss"])) / 2
        + float(loss["answer_class_loss"]) / 2, abs=1e-6)
    np.testing.assert_allclose(float(tf.reduce_mean(loss["per_example_loss"])),
                               float(loss["loss"]), rtol=1e-6)


# ------------------------------------------------------------------------------------- RACE
@pytest.mark.parametrize("variant", ["init", "sharp"])
def test_race_head_matches_golden(variant):
  g = npz(os.path.join(RACE, "model_A_race_outputs.npz"))
  model = models.build_race_model(CONFIG_A, num_choices=4, max_seq_length=32, dropout_prob=0.1)
  ckpt = os.path.join(RACE, "model_A_race", "init")
  assert names(model) == checkpoint_names(ckpt)
  prefix = f"{variant}/"
  load_body_and_head(model, variant, ckpt, {"output_weights": g[prefix + "output_weights"],
                                            "output_bias": g[prefix + "output_bias"]})
  features = {k: g["input/" + k] for k in ENCODER_INPUTS}  # [4, 4 x 32], choice-major
  out = model(features, training=False)
  loss = losses.multiple_choice_loss(out["logits"], g["input/label_ids"])
  ours = {**{k: out[k] for k in ("pooled_output", "logits", "probabilities", "predictions")},
          "per_example_loss": loss["per_example_loss"], "loss": loss["loss"]}
  for key, value in ours.items():
    assert_close(value, g[prefix + key], key)
  assert float(loss["loss"]) == pytest.approx({"init": 1.3862935, "sharp": 1.3863897}[variant],
                                              abs=1e-6)
  # Row 3 lost its option to the front truncation: four identical choices, equal logits.
  assert np.ptp(out["logits"].numpy()[3]) == 0
  # S inferred from the width when max_seq_length is None.
  free = models.build_race_model(CONFIG_A, num_choices=4, encoder=model.get_layer("bert"))
  free.get_layer("").set_weights(model.get_layer("").get_weights())
  np.testing.assert_array_equal(free(features)["logits"], out["logits"])


# ---------------------------------------------------------------------------------- losses
def test_weighted_losses_ignore_padding_rows():
  logits = tf.constant([[2.0, -1.0], [0.5, 0.5], [-3.0, 1.0], [9.0, 9.0]])
  labels = tf.constant([0, 1, 1, 0])
  plain = losses.classification_loss(logits, labels)
  per_example = plain["per_example_loss"].numpy()
  ones = losses.classification_loss(logits, labels, weights=tf.ones([4]))
  assert float(ones["loss"]) == pytest.approx(float(plain["loss"]), abs=1e-7)
  assert float(plain["loss"]) == pytest.approx(per_example.mean(), abs=1e-7)
  padded = losses.classification_loss(logits, labels, weights=tf.constant([1, 1, 1, 0]))
  assert float(padded["loss"]) == pytest.approx(per_example[:3].mean(), abs=1e-7)
  np.testing.assert_array_equal(padded["per_example_loss"], per_example)  # never weighted
  empty = losses.classification_loss(logits, labels, weights=tf.zeros([4]))
  assert float(empty["loss"]) == 0.0  # max(sum(w), 1): an all-padding batch counts zero

  predictions, targets = tf.constant([1.0, 2.0, 3.0]), tf.constant([1.5, 2.0, 0.0])
  reg = losses.regression_loss(predictions, targets, weights=tf.constant([1.0, 0.0, 1.0]))
  np.testing.assert_allclose(reg["per_example_loss"], [0.25, 0.0, 9.0])
  assert float(reg["loss"]) == pytest.approx(4.625)

  g = npz(os.path.join(SQUAD, "outputs.npz"))
  args = (g["v2/train/start_log_probs"], g["v2/train/end_log_probs"], g["v2/train/cls_logits"],
          g["input/start_positions"], g["input/end_positions"], g["input/is_impossible"])
  full = losses.squad_v2_loss(*args)
  first3 = losses.squad_v2_loss(*(a[:3] for a in args))
  weighted = losses.squad_v2_loss(*args, weights=[1, 1, 1, 0])
  for key in ("loss", "start_loss", "end_loss", "answer_class_loss"):
    assert float(weighted[key]) == pytest.approx(float(first3[key]), abs=1e-6), key
  assert float(losses.squad_v2_loss(*args, weights=np.ones(4))["loss"]) == pytest.approx(
      float(full["loss"]), abs=1e-6)
  v1 = losses.squad_v1_loss(g["v1/train/start_logits"], g["v1/train/end_logits"],
                            g["input/start_positions"], g["input/end_positions"],
                            weights=[0, 1, 1, 1])
  v1_last3 = losses.squad_v1_loss(g["v1/train/start_logits"][1:], g["v1/train/end_logits"][1:],
                                  g["input/start_positions"][1:], g["input/end_positions"][1:])
  assert float(v1["loss"]) == pytest.approx(float(v1_last3["loss"]), abs=1e-6)


def test_multi_label_head_and_loss():
  """Issue 20: one sigmoid per label; the loss of a row is the mean binary cross-entropy over its
  labels, padding rows weighed 0."""
  from albert.heads import ClassifierHead
  head = ClassifierHead(3, multi_label=True)
  outputs = head(tf.constant(np.random.RandomState(0).normal(size=(4, 8)), tf.float32))
  logits = outputs["logits"].numpy().astype(np.float64)
  np.testing.assert_allclose(outputs["probabilities"], 1 / (1 + np.exp(-logits)), atol=1e-6)
  np.testing.assert_array_equal(outputs["predictions"], logits.argmax(-1))
  labels = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1], [0, 1, 0]])
  p = 1 / (1 + np.exp(-logits))
  want = -(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean(-1)
  result = losses.multi_label_loss(outputs["logits"], labels, weights=tf.constant([1, 1, 1, 0]))
  np.testing.assert_allclose(result["per_example_loss"], want, atol=1e-6)
  assert float(result["loss"]) == pytest.approx(want[:3].mean(), abs=1e-6)
  model = models.build_classifier_model(AlbertConfig.from_json_file(
      os.path.join(MODEL_A, "albert_config.json")), 1, multi_label=True)  # one label is fine
  assert model.output["probabilities"].shape[-1] == 1


def test_losses_are_float32_for_low_precision_inputs():
  logits = tf.constant([[1.0, 2.0, 0.5]], tf.bfloat16)
  out = losses.classification_loss(logits, [1])
  assert {v.dtype for v in out.values()} == {tf.float32}
  assert losses.regression_loss(tf.constant([1.0], tf.float16), [0.0])["loss"].dtype == tf.float32


# ------------------------------------------------------------- every builder, every encoder
BUILDERS = {
    "classifier": lambda c, e, p: models.build_classifier_model(c, 3, encoder=e),
    "regression": lambda c, e, p: models.build_classifier_model(c, 1, regression=True,
                                                                encoder=e),
    "squad_v1": lambda c, e, p: models.build_squad_model(c, False, encoder=e),
    "squad_v2": lambda c, e, p: models.build_squad_model(c, True, start_n_top=3, end_n_top=2,
                                                         dropout_prob=p, encoder=e),
    "race": lambda c, e, p: models.build_race_model(c, 4, max_seq_length=8, dropout_prob=p,
                                                    encoder=e),
}
ORIGINAL_HEAD_NAMES = {
    "classifier": ["output_bias", "output_weights"],
    "regression": ["output_bias", "output_weights"],
    "race": ["output_bias", "output_weights"],
    "squad_v1": ["cls/squad/output_bias", "cls/squad/output_weights"],
    "squad_v2": ["answer_class/dense_0/bias", "answer_class/dense_0/kernel",
                 "answer_class/dense_1/kernel", "end_logits/LayerNorm/beta",
                 "end_logits/LayerNorm/gamma", "end_logits/dense_0/bias",
                 "end_logits/dense_0/kernel", "end_logits/dense_1/bias",
                 "end_logits/dense_1/kernel", "start_logits/dense/bias",
                 "start_logits/dense/kernel"],
}


def build(kind: str, config=CONFIG_A, encoder=None, dropout_prob: float = 0.1):
  return BUILDERS[kind](config, encoder, dropout_prob)


def build_all(config=CONFIG_A, encoder=None, dropout_prob: float = 0.1):
  return {kind: build(kind, config, encoder, dropout_prob) for kind in BUILDERS}


def sample_features(model, batch: int = 3, seq: int = 12, seed: int = 0):
  """Random valid features and labels for the model's inputs (RACE: 4 choices x 8)."""
  rng = np.random.RandomState(seed)
  width = model.input["input_ids"].shape[1] or seq
  lengths = rng.randint(width // 2, width + 1, size=batch)
  mask = (np.arange(width)[None] < lengths[:, None]).astype(np.int32)
  features = {"input_ids": rng.randint(5, CONFIG_A.vocab_size, (batch, width)) * mask,
              "input_mask": mask, "segment_ids": (np.arange(width)[None] >= 4) * mask}
  if "p_mask" in model.input:
    p_mask = 1 - mask
    p_mask[:, 1:4] = 1  # the "question"
    features["p_mask"] = p_mask
  if "start_positions" in model.input:
    features["start_positions"] = rng.randint(4, width // 2, size=batch)
  return {k: np.asarray(v, np.int32) for k, v in features.items()}


def task_loss(kind: str, out, features, seed: int = 0) -> tf.Tensor:
  """The task's loss on random labels (the loss of each kind, as a training step computes it)."""
  rng = np.random.RandomState(seed)
  batch = features["input_ids"].shape[0]
  if kind in ("classifier", "race"):
    return losses.classification_loss(out["logits"], rng.randint(0, 3, batch))["loss"]
  if kind == "regression":
    return losses.regression_loss(out["predictions"], rng.uniform(0, 5, batch))["loss"]
  ends = rng.randint(4, features["input_ids"].shape[1] // 2, batch)
  if kind == "squad_v1":
    return losses.squad_v1_loss(out["start_logits"], out["end_logits"], ends - 1, ends)["loss"]
  return losses.squad_v2_loss(out["start_log_probs"], out["end_log_probs"], out["cls_logits"],
                              features["start_positions"], ends, rng.randint(0, 2, batch)
                              )["loss"]


def test_every_model_saves_and_loads_tf1_names(tmp_path):
  from conftest import randomize
  body = [n for n in checkpoint_names(MODEL_A) if n.startswith("bert/")]
  fresh = build_all()
  for kind, model in build_all().items():
    assert [n for n in names(model) if not n.startswith("bert/")] == ORIGINAL_HEAD_NAMES[kind]
    assert [n for n in names(model) if n.startswith("bert/")] == body, kind
    randomize(model, seed=len(kind))
    features = sample_features(model)
    want = model(features, training=False)
    prefix = checkpoint.save_tf1_checkpoint(model, str(tmp_path / kind / "model.ckpt"),
                                            global_step=7)
    assert checkpoint_names(prefix) == names(model)
    report = checkpoint.load_tf1_checkpoint(fresh[kind], prefix, require_all=True)
    assert not report.unused and report.skipped == ["global_step"]
    saved = checkpoint.variables_by_name(model)
    for name, var in checkpoint.variables_by_name(fresh[kind]).items():
      np.testing.assert_array_equal(var.numpy(), saved[name].numpy())
    got = fresh[kind](features, training=False)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key], err_msg=f"{kind} {key}")


@pytest.mark.parametrize("handle_kind", ["tf2_export", "tf1_module"])
def test_models_on_a_hub_encoder_equal_models_from_the_checkpoint(handle_kind,
                                                                   tmp_path_factory):
  """The same task code on `hub.load_encoder(handle)`: same names, same outputs, TF1 saves."""
  from albert import hub
  handle, body_checkpoint = hub_handle(handle_kind, tmp_path_factory)
  encoder = hub.load_encoder(handle, trainable=True)
  config = hub.inspect_handle(handle).albert_config
  for kind in ("classifier", "squad_v2", "race"):  # the three builders
    model, on_hub = build(kind, config), build(kind, config, encoder=encoder)
    checkpoint.load_tf1_checkpoint(model, body_checkpoint)
    assert names(on_hub) == names(model), kind
    reference = checkpoint.variables_by_name(model)
    for name, var in checkpoint.variables_by_name(on_hub).items():
      if name.startswith("bert/"):  # the hub's weights are the checkpoint's
        np.testing.assert_array_equal(var.numpy(), reference[name].numpy())
      else:  # the heads are fresh: give both the same
        var.assign(reference[name])
    features = sample_features(model, seed=3)
    want, got = model(features, training=False), on_hub(features, training=False)
    for key in want:
      if want[key].dtype.is_integer:
        np.testing.assert_array_equal(got[key], want[key], err_msg=f"{kind} {key}")
      else:
        assert_close(got[key], want[key], f"{kind} {key}", atol=1e-5, rtol=0)
  # Fine-tuning moves the hub encoder's weights, and saves them in TF1 names.
  features = sample_features(on_hub)
  before = [v.numpy() for v in encoder.trainable_variables]
  with tf.GradientTape() as tape:
    loss = task_loss(kind, on_hub(features, training=True), features)
  grads = tape.gradient(loss, on_hub.trainable_variables)
  tf_keras.optimizers.SGD(0.5).apply_gradients(zip(grads, on_hub.trainable_variables))
  assert any(not np.array_equal(b, v.numpy())
             for b, v in zip(before, encoder.trainable_variables))
  prefix = checkpoint.save_tf1_checkpoint(
      on_hub, str(tmp_path_factory.mktemp("fine_tuned") / "model.ckpt"))
  assert checkpoint_names(prefix) == names(model)


# ------------------------------------------------------------------------- dropout, dtypes
def test_dropout_where_the_original_has_it():
  """Config A has no encoder dropout: only the heads' dropout can differ train vs eval."""
  for kind, model in build_all(dropout_prob=0.1).items():
    checkpoint.load_tf1_checkpoint(model, BODY["sharp"])
    features = sample_features(model, batch=16)
    train, infer = model(features, training=True), model(features, training=False)
    for key, value in model(features, training=False).items():
      np.testing.assert_array_equal(value, infer[key])  # eval is deterministic
    if kind == "squad_v1":  # the original's v1 head has no dropout
      changed = []
    elif kind == "squad_v2":  # v2: only the answer class has dropout
      changed = ["cls_logits"]
    else:  # on the pooled output, after the encoder
      changed = ["logits", "probabilities", "log_probs", "predictions"]
    for key in infer:
      if key in changed and key != "predictions":
        assert not np.allclose(train[key], infer[key]), (kind, key)
      elif key not in changed:
        np.testing.assert_array_equal(train[key], infer[key], err_msg=f"{kind} {key}")
    if kind == "classifier":  # the original's hard-coded rate, whatever the config says
      head = model.get_layer("")
      dropped = head.dropout(tf.ones([200, 50]), training=True).numpy() == 0
      assert head.dropout.rate == 0.1 and 0.08 < dropped.mean() < 0.12
  config = CONFIG_A.replace(hidden_dropout_prob=0.3)
  assert models.build_classifier_model(config, 2).get_layer("").dropout.rate == 0.1
  # RACE and SQuAD v2 follow their dropout_prob flag; 0 switches it off.
  for kind, key in (("race", "logits"), ("squad_v2", "cls_logits")):
    model = build(kind, dropout_prob=0.0)
    features = sample_features(model)
    np.testing.assert_array_equal(model(features, training=True)[key],
                                  model(features, training=False)[key])


def test_mixed_bfloat16_runs_with_float32_outputs():
  reference = build_all()
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  for kind, model in build_all().items():
    checkpoint.load_tf1_checkpoint(reference[kind], MODEL_A)
    model.set_weights(reference[kind].get_weights())
    features = sample_features(model)
    want, got = reference[kind](features, training=False), model(features, training=False)
    assert {v.dtype for v in got.values()} <= {tf.float32, tf.int32}, kind
    for key in want:
      if want[key].dtype.is_integer:
        continue  # an argmax or top-k may flip on a near-tie in bfloat16
      legal = np.asarray(want[key]) > MASKED_LOGIT / 2
      assert np.array_equal(np.asarray(got[key]) > MASKED_LOGIT / 2, legal)
      np.testing.assert_allclose(np.asarray(got[key])[legal], np.asarray(want[key])[legal],
                                 atol=0.05, rtol=0.02, err_msg=f"{kind} {key}")
    with tf.GradientTape() as tape:  # a training step runs
      loss = task_loss(kind, model(features, training=True), features)
    assert loss.dtype == tf.float32
    grads = tape.gradient(loss, model.trainable_variables)
    unused = sorted(checkpoint.variable_name(v)
                    for g, v in zip(grads, model.trainable_variables) if g is None)
    # SQuAD reads the sequence output only: the pooler gets no gradient (as in the original,
    # whose optimizer skips variables without one).
    assert unused == (["bert/pooler/dense/bias", "bert/pooler/dense/kernel"]
                      if kind.startswith("squad") else []), kind
    assert all(np.all(np.isfinite(tf.convert_to_tensor(g).numpy()))
               for g in grads if g is not None), kind


# ---------------------------------------------------------------------------------- errors
def test_builder_arguments_are_checked():
  with pytest.raises(FlagError, match="regression=True"):
    models.build_classifier_model(CONFIG_A, 1)
  with pytest.raises(FlagError, match="num_labels 1"):
    models.build_classifier_model(CONFIG_A, 3, regression=True)
  with pytest.raises(FlagError, match="num_labels"):
    models.build_classifier_model(CONFIG_A, 0)
  with pytest.raises(FlagError, match="start_n_top"):
    models.build_squad_model(CONFIG_A, True, start_n_top=0)
  with pytest.raises(FlagError, match="dropout_prob"):
    models.build_race_model(CONFIG_A, dropout_prob=1.0)
  with pytest.raises(FlagError, match="albert config"):
    models.build_classifier_model(None, 2)
  with pytest.raises(FlagError, match="no output start_logits"):
    models.output_subset(models.build_squad_model(CONFIG_A, True), ["start_logits"])
  race = models.build_race_model(CONFIG_A, num_choices=4)
  with pytest.raises(InputError, match="num_choices"):
    race({k: np.ones([2, 30], np.int32) for k in ENCODER_INPUTS})
