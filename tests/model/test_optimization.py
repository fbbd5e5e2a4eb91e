"""The optimizers and schedule (albert/optimization.py) against the original's golden record.

Golden: tests/testdata/golden/lamb_golden.json (the original's create_optimizer + LAMB, and LAMB
alone). AdamW, the exclusions and start_warmup_step against a float64 numpy re-implementation of
the original's equations written here. Also: tf.function, XLA, MirroredStrategy (one and two
replicas), LossScaleOptimizer, global_clipnorm, TF1 slot names, config and checkpoint round trips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from albert import checkpoint, optimization
from albert.optimization import LAMB, AdamWeightDecay, PolynomialWarmup
from conftest import GOLDEN, MODEL_A, REPO_DIR

TOL = 1e-6
with open(os.path.join(GOLDEN, "lamb_golden.json")) as _f:
  GOLD = json.load(_f)
CREATE = GOLD["runs"]["V_create_optimizer"]
LAMB_ONLY = GOLD["runs"]["V_lamb_only"]
KERNEL, BIAS = "layer/kernel", "layer/LayerNorm/bias"
SLOTS = [f"{KERNEL}/adam_m", f"{KERNEL}/adam_v", f"{BIAS}/adam_m", f"{BIAS}/adam_v"]


def maxdiff(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ------------------------------------------------------------------ numpy float64 reference
def reference_lr(step, init_lr, num_train_steps, num_warmup_steps, poly_power=1.0,
                 start_warmup_step=0):
  """The original create_optimizer's learning rate, negative values included."""
  lr = init_lr * (1.0 - min(step, num_train_steps) / num_train_steps) ** poly_power
  if num_warmup_steps:
    shifted = step - start_warmup_step
    if shifted < num_warmup_steps:
      lr = init_lr * shifted / num_warmup_steps
  return lr


def reference_clip(grads, clip_norm=1.0):
  norm = np.sqrt(sum(np.sum(np.square(g)) for g in grads))
  return [g * clip_norm / max(norm, clip_norm) for g in grads], norm


def reference_update(params, grads, ms, vs, lr, decay, adapt, weight_decay_rate=0.01,
                     beta_1=0.9, beta_2=0.999, epsilon=1e-6):
  """One step of the original AdamWeightDecayOptimizer (adapt all False) or LAMBOptimizer."""
  out = []
  for p, g, m, v, d, a in zip(params, grads, ms, vs, decay, adapt):
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g * g
    update = m / (np.sqrt(v) + epsilon)
    if d:
      update = update + weight_decay_rate * p
    ratio = 1.0
    if a:
      w_norm, u_norm = np.linalg.norm(p), np.linalg.norm(update)
      ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
    out.append((p - ratio * lr * update, m, v))
  return [list(x) for x in zip(*out)]


# ------------------------------------------------------------------------- golden problem
def golden_data():
  x = np.array(GOLD["problem_data"]["X"], np.float32)
  y = np.array(GOLD["problem_data"]["Y"], np.float32)
  return x, y


def golden_variables(run=CREATE):
  return (tf.Variable(np.array(run["initial"]["kernel"], np.float32), name=KERNEL),
          tf.Variable(np.array(run["initial"]["bias"], np.float32), name=BIAS))


def golden_loss(kernel, bias, x, y, global_batch=4):
  """0.5 * mean over rows of sum over columns of the squared residual (this replica's rows)."""
  r = tf.matmul(x, kernel) + bias - y
  return 0.5 * tf.reduce_sum(tf.reduce_sum(r * r, axis=1)) / global_batch


def create_golden_optimizer(**kwargs):
  h = CREATE["hparams"]
  return optimization.create_optimizer(
      init_lr=h["init_lr"], num_train_steps=h["num_train_steps"],
      num_warmup_steps=h["num_warmup_steps"], optimizer=h["optimizer"],
      poly_power=h["poly_power"], start_warmup_step=h["start_warmup_step"], **kwargs)


def run_create_optimizer(mode: str):
  """The golden 5-step create_optimizer run in one of our set-ups; a record per step."""
  x, y = golden_data()
  mirrored = mode.startswith("mirrored")
  strategy = (tf.distribute.MirroredStrategy(["/cpu:0"]) if mirrored
              else tf.distribute.get_strategy())
  with strategy.scope():
    kernel, bias = golden_variables()
    optimizer = create_golden_optimizer(
        global_clipnorm=1.0 if mode == "mirrored_global_clipnorm" else None)
    inner = optimizer
    if mode == "loss_scale":
      optimizer = tf_keras.mixed_precision.LossScaleOptimizer(inner)
    optimizer.build([kernel, bias])
  variables = [kernel, bias]

  def replica_step(x, y):
    with tf.GradientTape() as tape:
      loss = golden_loss(kernel, bias, x, y)
      scaled = optimizer.get_scaled_loss(loss) if mode == "loss_scale" else loss
    grads = tape.gradient(scaled, variables)
    if mode == "loss_scale":
      grads = optimizer.get_unscaled_gradients(grads)
    if mode == "mirrored_global_clipnorm":  # the optimizer all-reduces, then clips
      optimizer.apply_gradients(zip(grads, variables))
      clipped, norm = optimization.clip_gradients(grads)
    else:
      if mirrored:
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
      clipped, norm = optimization.clip_gradients(grads)
      optimizer.apply_gradients(zip(clipped, variables), skip_gradients_aggregation=True)
    return loss, grads, norm, clipped

  if mode in ("xla", "mirrored_xla"):
    replica_step = tf.function(replica_step, jit_compile=True)
  if mirrored:
    @tf.function
    def step(x, y):
      results = strategy.run(replica_step, args=(x, y))
      return tf.nest.map_structure(lambda t: strategy.experimental_local_results(t)[0], results)
  elif mode in ("function", "loss_scale"):
    step = tf.function(replica_step)
  else:
    step = replica_step

  records = []
  for _ in CREATE["steps"]:
    iterations_before = int(optimizer.iterations.numpy())
    loss, grads, norm, clipped = step(tf.constant(x), tf.constant(y))
    slots = optimization.optimizer_slot_variables(optimizer, variables)
    records.append({
        "global_step_before": iterations_before, "loss": loss.numpy(),
        "grad_kernel": grads[0].numpy(), "grad_bias": grads[1].numpy(),
        "global_norm": norm.numpy(),
        "clipped_grad_kernel": clipped[0].numpy(), "clipped_grad_bias": clipped[1].numpy(),
        # the learning rate the update used (the optimizer's current-learning-rate variable)
        "learning_rate": float(tf.convert_to_tensor(inner.learning_rate).numpy()),
        "kernel": kernel.numpy(), "bias": bias.numpy(),
        "global_step": int(optimizer.iterations.numpy()),
        **{name: slot.numpy() for name, slot in slots.items()}})
  return records


def assert_matches_golden_create_optimizer(records):
  errors = {}
  for record, gold in zip(records, CREATE["steps"], strict=True):
    before, after = gold["before"], gold["after"]
    assert record["global_step_before"] == before["global_step"]
    assert record["global_step"] == after["global_step"]
    for key in ("loss", "grad_kernel", "grad_bias", "global_norm", "clipped_grad_kernel",
                "clipped_grad_bias", "learning_rate"):
      errors[key] = max(errors.get(key, 0.0), maxdiff(record[key], before[key]))
    for key in ["kernel", "bias"] + SLOTS:
      errors[key] = max(errors.get(key, 0.0), maxdiff(record[key], after[key]))
  assert max(errors.values()) <= TOL, errors
  return errors


# -------------------------------------------------------------------------------- golden
def test_create_optimizer_trajectory_matches_golden():
  records = run_create_optimizer("eager")
  errors = assert_matches_golden_create_optimizer(records)
  print("max abs errors vs golden:", {k: f"{v:.1e}" for k, v in errors.items()})
  # Step 0 has learning rate 0: only m and v move.
  first = CREATE["steps"][0]
  assert records[0]["learning_rate"] == 0.0
  np.testing.assert_array_equal(records[0]["kernel"], np.float32(CREATE["initial"]["kernel"]))
  assert np.abs(records[0][SLOTS[0]]).max() > 0
  assert first["before"]["learning_rate"] == 0.0


@pytest.mark.parametrize("mode", ["function", "xla", "mirrored", "mirrored_xla",
                                  "mirrored_global_clipnorm", "loss_scale"])
def test_same_trajectory_under_tf_function_xla_mirrored_and_loss_scaling(mode):
  records = run_create_optimizer(mode)
  assert_matches_golden_create_optimizer(records)
  eager = run_create_optimizer("eager")
  for ours, reference in zip(records, eager):
    for key in ["kernel", "bias"] + SLOTS:
      assert maxdiff(ours[key], reference[key]) <= 1e-7, (mode, key)


def test_lamb_alone_with_constant_learning_rate_matches_golden():
  h = LAMB_ONLY["hparams"]
  kernel, bias = golden_variables(LAMB_ONLY)
  optimizer = LAMB(learning_rate=h["learning_rate"], weight_decay_rate=h["weight_decay_rate"],
                   beta_1=h["beta_1"], beta_2=h["beta_2"], epsilon=h["epsilon"],
                   exclude_from_weight_decay=h["exclude_from_weight_decay"])
  x, y = golden_data()
  worst = 0.0
  for gold in LAMB_ONLY["steps"]:
    with tf.GradientTape() as tape:
      loss = golden_loss(kernel, bias, x, y)
    grads = tape.gradient(loss, [kernel, bias])
    worst = max(worst, maxdiff(loss, gold["before"]["loss"]),
                maxdiff(grads[0], gold["before"]["grad_kernel"]),
                maxdiff(grads[1], gold["before"]["grad_bias"]))
    optimizer.apply_gradients(zip(grads, [kernel, bias]))  # raw gradients, no clipping
    after = gold["after"]
    slots = optimization.optimizer_slot_variables(optimizer, [kernel, bias])
    worst = max(worst, maxdiff(kernel, after["kernel"]), maxdiff(bias, after["bias"]),
                *(maxdiff(slots[n], after[n]) for n in SLOTS))
  assert worst <= TOL


def test_schedule_matches_golden_table():
  (table,) = GOLD["lr_schedule_tables"]
  schedule = PolynomialWarmup(table["init_lr"], table["num_train_steps"],
                              table["num_warmup_steps"], table["poly_power"],
                              table["start_warmup_step"])
  steps, expected = zip(*table["learning_rate_by_global_step"])
  assert list(steps) == list(range(13))
  ours = [float(schedule(tf.constant(s, tf.int64)).numpy()) for s in steps]
  assert maxdiff(ours, expected) <= 1e-7
  assert ours[0] == 0.0 and ours[10:] == [0.0, 0.0, 0.0]
  # The same values for Python ints, int32 and in an XLA-compiled function (to an ulp).
  compiled = tf.function(lambda s: schedule(s), jit_compile=True)
  assert maxdiff([compiled(tf.constant(s, tf.int32)) for s in steps], ours) <= 1e-8
  assert maxdiff([schedule(s) for s in steps], ours) == 0.0


@pytest.mark.parametrize("poly_power", [1.0, 0.5, 2.0])
def test_schedule_equals_the_original_formula(poly_power):
  schedule = PolynomialWarmup(0.00176, 1000, 30, poly_power, start_warmup_step=0)
  for step in [0, 1, 15, 29, 30, 31, 500, 999, 1000, 1500]:
    expected = reference_lr(step, 0.00176, 1000, 30, poly_power)
    assert abs(float(schedule(step).numpy()) - expected) <= 1e-9 + 1e-6 * expected
  no_warmup = PolynomialWarmup(0.1, 10, 0, start_warmup_step=5)  # start ignored without warmup
  assert maxdiff([no_warmup(s) for s in range(12)],
                 [reference_lr(s, 0.1, 10, 0) for s in range(12)]) <= 1e-7


# --------------------------------------------------------------------- start_warmup_step
def test_before_start_warmup_step_the_learning_rate_is_zero_not_negative():
  """The original's rate is negative before start_warmup_step; ours is 0, and equal from then on."""
  start, args = 3, (0.1, 10, 2, 1.0)
  schedule = PolynomialWarmup(*args, start_warmup_step=start)
  original = [reference_lr(s, *args, start_warmup_step=start) for s in range(13)]
  ours = [float(schedule(s).numpy()) for s in range(13)]
  np.testing.assert_allclose(original[:start], [-0.15, -0.1, -0.05])  # the original: negative
  assert ours[:start + 1] == [0.0] * (start + 1)  # ours: no update before the warmup starts
  assert maxdiff(ours[start:], original[start:]) <= 1e-7  # identical from start_warmup_step
  np.testing.assert_allclose(ours[start + 1], 0.05)  # warmup: 1/2 of init_lr, then the decay
  assert maxdiff(ours, np.maximum(original, 0.0)) <= 1e-7


def test_training_before_start_warmup_step_only_fills_m_and_v():
  start = 2
  kernel, bias = golden_variables()
  optimizer = optimization.create_optimizer(0.1, 10, 2, start_warmup_step=start)
  x, y = golden_data()
  params = [np.float64(CREATE["initial"]["kernel"]), np.float64(CREATE["initial"]["bias"])]
  ms = [np.zeros_like(p) for p in params]
  vs = [np.zeros_like(p) for p in params]
  for step in range(6):
    with tf.GradientTape() as tape:
      loss = golden_loss(kernel, bias, x, y)
    grads, _ = optimization.clip_gradients(tape.gradient(loss, [kernel, bias]))
    optimizer.apply_gradients(zip(grads, [kernel, bias]))
    lr = max(reference_lr(step, 0.1, 10, 2, start_warmup_step=start), 0.0)
    params, ms, vs = reference_update(params, [g.numpy().astype(np.float64) for g in grads],
                                      ms, vs, lr, decay=[True, False], adapt=[True, False])
    slots = optimization.optimizer_slot_variables(optimizer, [kernel, bias])
    if step <= start:
      np.testing.assert_array_equal(kernel.numpy(), np.float32(CREATE["initial"]["kernel"]))
      np.testing.assert_array_equal(bias.numpy(), np.float32(CREATE["initial"]["bias"]))
    assert maxdiff(kernel, params[0]) <= TOL and maxdiff(bias, params[1]) <= TOL
    assert maxdiff(slots[SLOTS[0]], ms[0]) <= TOL and maxdiff(slots[SLOTS[3]], vs[1]) <= TOL
  assert int(optimizer.iterations.numpy()) == 6
  assert maxdiff(kernel, CREATE["initial"]["kernel"]) > 1e-3  # it trains after the warmup starts


# ----------------------------------------------------------------- AdamW and the exclusions
MIXED_NAMES = ["enc/dense/kernel", "enc/dense/bias", "enc/LayerNorm/gamma", "enc/LayerNorm/beta",
               "enc/attention/layer_norm/scale", "cls/predictions/output_bias",
               "cls/seq_relationship/output_weights", "bert/embeddings/word_embeddings"]


def mixed_problem(seed=0, steps=8):
  rng = np.random.RandomState(seed)
  shapes = [(4, 3), (3,), (3,), (3,), (5,), (7,), (2, 3), (6, 4)]
  initial = [rng.normal(0, 0.5, s).astype(np.float32) for s in shapes]
  initial[3][:] = 0.0  # a zero variable: trust ratio 1.0 (w_norm = 0)
  grads = [[(rng.normal(0, 1.0, s) * (3.0 if step % 2 else 0.2)).astype(np.float32)
            for s in shapes] for step in range(steps)]  # global norm above and below 1
  return initial, grads


def run_mixed(optimizer, initial, grads_per_step, clip=True):
  variables = [tf.Variable(v, name=n) for v, n in zip(initial, MIXED_NAMES)]

  @tf.function
  def step(grads):
    if clip:
      grads, _ = optimization.clip_gradients(grads)
    optimizer.apply_gradients(zip(grads, variables))

  trajectory = []
  for grads in grads_per_step:
    step([tf.constant(g) for g in grads])
    slots = optimization.optimizer_slot_variables(optimizer, variables)
    trajectory.append(([v.numpy() for v in variables],
                       [slots[f"{n}/adam_m"].numpy() for n in MIXED_NAMES],
                       [slots[f"{n}/adam_v"].numpy() for n in MIXED_NAMES]))
  return trajectory


def reference_mixed(initial, grads_per_step, lrs, decay, adapt, clip=True, **hparams):
  params = [v.astype(np.float64) for v in initial]
  ms = [np.zeros_like(p) for p in params]
  vs = [np.zeros_like(p) for p in params]
  trajectory = []
  for grads, lr in zip(grads_per_step, lrs):
    grads = [g.astype(np.float64) for g in grads]
    if clip:
      grads, _ = reference_clip(grads)
    params, ms, vs = reference_update(params, grads, ms, vs, lr, decay, adapt, **hparams)
    trajectory.append((params, ms, vs))
  return trajectory


def assert_trajectories_close(ours, reference, tol=TOL):
  for step, (a, b) in enumerate(zip(ours, reference, strict=True)):
    for kind, xs, ys in zip(("variables", "adam_m", "adam_v"), a, b):
      for name, x, y in zip(MIXED_NAMES, xs, ys):
        assert maxdiff(x, y) <= tol, (step, kind, name, maxdiff(x, y))


def test_adamw_trajectory_matches_numpy_reference_of_the_original():
  initial, grads = mixed_problem()
  optimizer = optimization.create_optimizer(0.05, num_train_steps=8, num_warmup_steps=3,
                                            optimizer="adamw", poly_power=1.0)
  assert isinstance(optimizer, AdamWeightDecay)
  ours = run_mixed(optimizer, initial, grads)
  lrs = [reference_lr(s, 0.05, 8, 3) for s in range(8)]
  decay = [not any(p in n for p in ("LayerNorm", "layer_norm", "bias")) for n in MIXED_NAMES]
  assert decay == [True, False, False, False, False, False, True, True]
  assert_trajectories_close(ours, reference_mixed(initial, grads, lrs, decay, [False] * 8))
  # Without the weight decay the trajectory differs (the decay is really applied).
  plain = reference_mixed(initial, grads, lrs, [False] * 8, [False] * 8)
  assert maxdiff(ours[-1][0][0], plain[-1][0][0]) > 1e-5


def test_lamb_trajectory_with_schedule_matches_numpy_reference():
  initial, grads = mixed_problem(seed=1)
  optimizer = optimization.create_optimizer(0.05, num_train_steps=8, num_warmup_steps=3)
  ours = run_mixed(optimizer, initial, grads)
  lrs = [reference_lr(s, 0.05, 8, 3) for s in range(8)]
  flags = [optimizer.uses_weight_decay(n) for n in MIXED_NAMES]
  assert flags == [True, False, False, False, False, False, True, True]
  assert [optimizer.uses_layer_adaptation(n) for n in MIXED_NAMES] == flags
  assert_trajectories_close(ours, reference_mixed(initial, grads, lrs, flags, flags))


def test_exclusion_by_name():
  adamw = optimization.create_optimizer(0.1, 10, 1, optimizer="adamw")
  lamb = optimization.create_optimizer(0.1, 10, 1)
  for name, excluded in [("bert/encoder/transformer/group_0/inner_group_0/LayerNorm/gamma:0", True),
                         ("bert/embeddings/LayerNorm/beta", True),
                         ("x/layer_norm/scale:0", True),
                         ("bert/pooler/dense/bias:0", True),
                         ("cls/predictions/output_bias", True),
                         ("bert/pooler/dense/kernel:0", False),
                         ("cls/seq_relationship/output_weights", False),
                         ("bert/embeddings/word_embeddings:0", False),
                         ("bert/encoder/embedding_hidden_mapping_in/kernel", False)]:
    assert adamw.uses_weight_decay(name) is not excluded, name
    assert lamb.uses_weight_decay(name) is not excluded, name
    assert lamb.uses_layer_adaptation(name) is not excluded, name
    assert adamw.uses_layer_adaptation(name) is False
  # Case-sensitive re.search, as the original: "Bias" or "layernorm" are not excluded.
  assert lamb.uses_weight_decay("a/Bias") and lamb.uses_weight_decay("a/layernorm/gamma")
  # weight_decay_rate 0: no decay anywhere; the trust ratio still follows its own list.
  no_decay = LAMB(0.1, weight_decay_rate=0.0, exclude_from_weight_decay=["bias"])
  assert not no_decay.uses_weight_decay("a/kernel") and no_decay.uses_layer_adaptation("a/kernel")
  assert not no_decay.uses_layer_adaptation("a/bias")


def test_separate_layer_adaptation_list_matches_numpy_reference():
  """Decay and trust ratio excluded by different lists; exclusions decided on the names."""
  initial, grads = mixed_problem(seed=2, steps=4)
  optimizer = LAMB(learning_rate=0.02, weight_decay_rate=0.1,
                   exclude_from_weight_decay=["bias", "LayerNorm"],
                   exclude_from_layer_adaptation=["kernel", "layer_norm"])
  ours = run_mixed(optimizer, initial, grads, clip=False)
  decay = [optimizer.uses_weight_decay(n) for n in MIXED_NAMES]
  adapt = [optimizer.uses_layer_adaptation(n) for n in MIXED_NAMES]
  assert decay == [True, False, False, False, True, False, True, True]
  assert adapt == [False, True, True, True, False, True, True, True]
  reference = reference_mixed(initial, grads, [0.02] * 4, decay, adapt, clip=False,
                              weight_decay_rate=0.1)
  assert_trajectories_close(ours, reference)


# ---------------------------------------------------------------- slots and TF1 checkpoints
def test_slot_variables_carry_the_original_tf1_names():
  kernel, bias = golden_variables()
  optimizer = create_golden_optimizer()
  slots = optimization.optimizer_slot_variables(optimizer, [kernel, bias])
  assert sorted(slots) == sorted(SLOTS)
  assert {v.name for v in optimizer.variables} == {"iteration:0"} | {f"{n}:0" for n in SLOTS}
  assert slots[f"{KERNEL}/adam_m"] is optimizer.slots(kernel)["adam_m"]
  assert all(s.shape == kernel.shape for n, s in slots.items() if n.startswith(KERNEL))
  # The names do not depend on the name scope the optimizer is built in.
  other = create_golden_optimizer()
  with tf.name_scope("outer"):
    other.apply_gradients(zip([tf.zeros_like(kernel), tf.zeros_like(bias)], [kernel, bias]))
  assert {v.name for v in other.variables} == {"iteration:0"} | {f"{n}:0" for n in SLOTS}


def test_full_original_style_checkpoint_and_slot_restore(tmp_path):
  """Model + slots + global_step saved under exactly the names of the original's model.ckpt-0."""
  from albert.config import AlbertConfig
  from albert.models import build_pretraining_model
  config = AlbertConfig.from_json_file(os.path.join(MODEL_A, "albert_config.json"))
  model = build_pretraining_model(config)
  optimizer = optimization.create_optimizer(0.00176, 125000, 3125)
  wrapped = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)  # works through the wrapper
  wrapped.build(model.trainable_variables)
  slots = optimization.optimizer_slot_variables(wrapped, model.trainable_variables)
  golden_names = {n for n, _ in tf.train.list_variables(os.path.join(MODEL_A, "model.ckpt-0"))}
  golden_slots = {n for n in golden_names if n.endswith(("/adam_m", "/adam_v"))}
  assert set(slots) == golden_slots and len(slots) == 64

  # Restore adam_m / adam_v from the original checkpoint (zeros there).
  for slot in slots.values():
    slot.assign(tf.ones_like(slot))
  loaded = optimization.load_optimizer_slots(optimizer, model.trainable_variables, MODEL_A,
                                             require_all=True)
  assert sorted(loaded) == sorted(golden_slots)
  assert all(not np.any(s.numpy()) for s in slots.values())

  # Save model + slots + global_step: the original's full name set; read back into fresh slots.
  rng = np.random.RandomState(0)
  for slot in slots.values():
    slot.assign(rng.normal(size=slot.shape).astype(np.float32))
  prefix = checkpoint.save_tf1_checkpoint(list(model.weights) + list(slots.values()),
                                          str(tmp_path / "model.ckpt"), global_step=7)
  assert {n for n, _ in tf.train.list_variables(prefix)} == golden_names
  fresh = optimization.create_optimizer(0.00176, 125000, 3125)
  fresh_slots = optimization.optimizer_slot_variables(fresh, model.trainable_variables)
  assert len(optimization.load_optimizer_slots(fresh, model.trainable_variables, prefix)) == 64
  for name, slot in slots.items():
    np.testing.assert_array_equal(fresh_slots[name].numpy(), slot.numpy())
  with pytest.raises(ValueError, match="lacks"):
    extra = tf.Variable(tf.zeros([2]), name="not/in/the/checkpoint")
    lonely = optimization.create_optimizer(0.1, 10, 1)
    optimization.load_optimizer_slots(lonely, [extra], prefix, require_all=True)


def test_tf2_checkpoint_resume_continues_the_same_trajectory(tmp_path):
  """tf.train.Checkpoint(optimizer) saves iterations and slots; resuming equals not stopping."""
  x, y = golden_data()

  def train(kernel, bias, optimizer, steps):
    for _ in range(steps):
      with tf.GradientTape() as tape:
        loss = golden_loss(kernel, bias, x, y)
      grads, _ = optimization.clip_gradients(tape.gradient(loss, [kernel, bias]))
      optimizer.apply_gradients(zip(grads, [kernel, bias]))

  kernel, bias = golden_variables()
  optimizer = create_golden_optimizer()
  optimizer.build([kernel, bias])
  train(kernel, bias, optimizer, 3)
  path = tf.train.Checkpoint(kernel=kernel, bias=bias, optimizer=optimizer).save(
      str(tmp_path / "ckpt"))
  train(kernel, bias, optimizer, 2)

  kernel2, bias2 = golden_variables()
  resumed = create_golden_optimizer()
  resumed.build([kernel2, bias2])
  tf.train.Checkpoint(kernel=kernel2, bias=bias2, optimizer=resumed).restore(
      path).assert_existing_objects_matched()
  assert int(resumed.iterations.numpy()) == 3
  train(kernel2, bias2, resumed, 2)
  np.testing.assert_array_equal(kernel2.numpy(), kernel.numpy())
  np.testing.assert_array_equal(bias2.numpy(), bias.numpy())
  assert maxdiff(kernel.numpy(), CREATE["steps"][-1]["after"]["kernel"]) <= TOL


# ------------------------------------------------------------------------ config, errors
def test_get_config_round_trip():
  schedule = PolynomialWarmup(0.00176, 125000, 3125, poly_power=0.5, start_warmup_step=10)
  config = schedule.get_config()
  assert config == {"init_lr": 0.00176, "num_train_steps": 125000, "num_warmup_steps": 3125,
                    "poly_power": 0.5, "start_warmup_step": 10, "name": None}
  again = PolynomialWarmup.from_config(config)
  serialized = tf_keras.optimizers.schedules.serialize(schedule)
  revived = tf_keras.optimizers.schedules.deserialize(json.loads(json.dumps(serialized)))
  assert isinstance(revived, PolynomialWarmup) and revived.get_config() == config
  steps = [0, 5, 3125, 3135, 3200, 60000, 125000, 130000]
  assert maxdiff([again(s) for s in steps], [schedule(s) for s in steps]) == 0.0
  assert maxdiff([revived(s) for s in steps], [schedule(s) for s in steps]) == 0.0

  for kind in ("lamb", "adamw"):
    optimizer = optimization.create_optimizer(0.00176, 125000, 3125, optimizer=kind,
                                              poly_power=0.5, start_warmup_step=10,
                                              weight_decay_rate=0.02, epsilon=1e-7)
    config = optimizer.get_config()
    assert config["weight_decay_rate"] == 0.02 and config["epsilon"] == 1e-7
    assert config["exclude_from_weight_decay"] == ["LayerNorm", "layer_norm", "bias"]
    clone = type(optimizer).from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    assert clone.learning_rate_schedule.get_config() == schedule.get_config()
    revived = tf_keras.optimizers.deserialize(
        json.loads(json.dumps(tf_keras.optimizers.serialize(optimizer))))
    assert type(revived) is type(optimizer) and revived.get_config() == config
  lamb = LAMB(0.01, exclude_from_layer_adaptation=["kernel"])
  assert LAMB.from_config(lamb.get_config()).exclude_from_layer_adaptation == ["kernel"]
  assert LAMB(0.01).learning_rate_schedule is None


def test_bad_arguments():
  with pytest.raises(ValueError, match="Not supported optimizer"):
    optimization.create_optimizer(0.1, 10, 1, optimizer="sgd")
  with pytest.raises(ValueError, match="negative"):
    PolynomialWarmup(0.1, -1, 0)
  with pytest.raises(ValueError, match="negative"):
    PolynomialWarmup(0.1, 10, 0, start_warmup_step=-2)
  with pytest.raises(ValueError, match="weight_decay_rate"):
    LAMB(0.1, weight_decay=0.01)
  with pytest.raises(ValueError, match="lamb"):
    optimization.create_optimizer(0.1, 10, 1, optimizer="adamw",
                                  exclude_from_layer_adaptation=["x"])
  # num_train_steps 0 (nothing to train): a rate of 0, not NaN.
  assert float(PolynomialWarmup(0.1, 0, 0)(3).numpy()) == 0.0


def test_two_replicas_sum_before_clipping():
  """Two MirroredStrategy replicas (two logical CPUs, so a fresh process): each gets 2 of the 4
  rows; the all-reduced, clipped update equals the golden one-device trajectory, with the
  training loop's recipe and with the optimizer's own global_clipnorm."""
  script = textwrap.dedent("""
      import json, sys
      import numpy as np
      import tensorflow as tf
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      from albert import optimization
      gold = json.load(open(sys.argv[1]))
      run = gold["runs"]["V_create_optimizer"]
      x = np.array(gold["problem_data"]["X"], np.float32)
      y = np.array(gold["problem_data"]["Y"], np.float32)
      worst = {}
      for mode in ("recipe", "global_clipnorm"):
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
          kernel = tf.Variable(np.float32(run["initial"]["kernel"]), name="layer/kernel")
          bias = tf.Variable(np.float32(run["initial"]["bias"]), name="layer/LayerNorm/bias")
          opt = optimization.create_optimizer(
              0.1, 10, 2, global_clipnorm=1.0 if mode == "global_clipnorm" else None)
          opt.build([kernel, bias])
        rows = strategy.experimental_distribute_values_from_function(
            lambda ctx: (x[2 * ctx.replica_id_in_sync_group:][:2],
                         y[2 * ctx.replica_id_in_sync_group:][:2]))
        def replica_step(xy):
          with tf.GradientTape() as tape:
            r = tf.matmul(xy[0], kernel) + bias - xy[1]
            loss = 0.5 * tf.reduce_sum(r * r) / 4.0
          grads = tape.gradient(loss, [kernel, bias])
          if mode == "recipe":
            grads = tf.distribute.get_replica_context().all_reduce("sum", grads)
            grads, _ = optimization.clip_gradients(grads)
            opt.apply_gradients(zip(grads, [kernel, bias]), skip_gradients_aggregation=True)
          else:
            opt.apply_gradients(zip(grads, [kernel, bias]))
        step = tf.function(lambda: strategy.run(replica_step, args=(rows,)))
        err = 0.0
        for gold_step in run["steps"]:
          step()
          slots = optimization.optimizer_slot_variables(opt, [kernel, bias])
          after = gold_step["after"]
          values = {"kernel": kernel, "bias": bias, **slots}
          for name, var in values.items():
            for component in var.values:  # both replicas hold the same values
              err = max(err, float(np.max(np.abs(component.numpy() - np.array(after[name])))))
          assert int(opt.iterations.numpy()) == after["global_step"]
        worst[mode] = err
      print(json.dumps(worst))
  """)
  env = dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run([sys.executable, "-c", script, os.path.join(GOLDEN, "lamb_golden.json")],
                          capture_output=True, text=True, env=env, cwd=REPO_DIR, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  worst = json.loads(result.stdout.strip().splitlines()[-1])
  assert set(worst) == {"recipe", "global_clipnorm"}
  assert max(worst.values()) <= TOL, worst
