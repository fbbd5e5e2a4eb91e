"""The original's optimizers and learning-rate schedule, as tf_keras optimizers.

This module owns the weight-update numerics of every task: what google-research/albert computes
in `optimization.create_optimizer`, `AdamWeightDecayOptimizer` and `lamb_optimizer.LAMBOptimizer`.

- `PolynomialWarmup`: polynomial decay from `init_lr` to 0 over `num_train_steps`, replaced by
  a linear warmup for the `num_warmup_steps` steps after `start_warmup_step` (the original's
  formula, float32, see the class). One deliberate difference: before `start_warmup_step` the
  original's learning rate is negative; ours is 0 there (see "start_warmup_step" below).
- `LAMB` and `AdamWeightDecay`: tf_keras (2.11+ API, `build`/`update_step`) optimizers computing
  exactly the original's update: no Adam bias correction, decoupled weight decay added to the
  update for variables whose name matches none of `exclude_from_weight_decay`, and for LAMB the
  layer-wise trust ratio `||w|| / ||update||` (1.0 if either norm is 0) for variables whose name
  matches none of `exclude_from_layer_adaptation` (by default the weight-decay list, as in the
  original). Names are matched with `re.search` on the variable name without `:0`.
- `create_optimizer(...)`: the optimizer of `create_optimizer` with the schedule attached.
- `clip_gradients(grads)`: the original's `tf.clip_by_global_norm(grads, 1.0)`.
- `optimizer_slot_variables` / `load_optimizer_slots`: the `m`/`v` slots under the original's
  TF1 names `<var>/adam_m`, `<var>/adam_v`, to save them in, and read them from, TF1 checkpoints.

The learning rate of an update is the schedule at `optimizer.iterations` *before* the update
increments it: the optimizer's `iterations` plays the original's `global_step`, which the
original's train op read before its `global_step.assign(global_step + 1)` (the golden record,
made with TPUEstimator's resource-variable global step). The learning rate at step 0 is 0, so
the first update only fills `m` and `v`.

Gradient clipping. The optimizers do not clip unless asked (`global_clipnorm`): the training
loop clips, because it needs the global norm for its logs and must clip the gradient of the
whole global batch. The recipe, under any tf.distribute strategy, in replica context:

    grads = replica_ctx.all_reduce(SUM, grads)        # the global batch's gradient, first
    grads, norm = optimization.clip_gradients(grads)  # = tf.clip_by_global_norm(grads, 1.0)
    optimizer.apply_gradients(zip(grads, variables), skip_gradients_aggregation=True)

(The original clipped per TPU core before CrossShardOptimizer averaged; with one core, which is
what the golden record is, the two are the same.) Alternatively `global_clipnorm=1.0`: the
tf_keras base then calls exactly `tf.clip_by_global_norm(grads, 1.0)` inside `apply_gradients`,
after its own all-reduce (when `skip_gradients_aggregation` is False) - the same numbers, but
the norm is not returned.

start_warmup_step. The original computes the warmup from `global_step - start_warmup_step`, so
for `global_step < start_warmup_step` its learning rate is `init_lr * (global_step -
start_warmup_step) / num_warmup_steps < 0`: the model is trained *against* its gradient until
the warmup starts. Ours is 0 there: no weight changes before `start_warmup_step` (Adam's `m` and
`v` still accumulate, as at step 0). From `start_warmup_step` on both are identical (0 at
`start_warmup_step` itself). Without warmup (`num_warmup_steps=0`) `start_warmup_step` has no
effect, as in the original.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf
import tf_keras

from albert.checkpoint import variable_name

DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")
SLOT_SUFFIXES = ("adam_m", "adam_v")  # the original's slot names: `<var>/adam_m`, `<var>/adam_v`
OPTIMIZERS = ("lamb", "adamw")
LearningRateSchedule = tf_keras.optimizers.schedules.LearningRateSchedule


def _matches_any(patterns: Optional[Sequence[str]], name: str) -> bool:
  return any(re.search(p, name) is not None for p in (patterns or ()))


# ------------------------------------------------------------------------------------ schedule
@tf_keras.utils.register_keras_serializable(package="albert")
class PolynomialWarmup(LearningRateSchedule):
  """The original's learning rate at a global step (float32, op for op).

      decayed = init_lr * (1 - min(step, num_train_steps) / num_train_steps) ** poly_power
      s = step - start_warmup_step
      warmup  = init_lr * s / num_warmup_steps
      lr      = warmup if s < num_warmup_steps else decayed     (only if num_warmup_steps > 0)
      lr      = 0 if s < 0                                      (ours; the original: negative)

  The decay uses the raw step, the warmup the shifted one, as in the original. With
  `num_train_steps=0` the decayed rate is 0 (the original divides by zero).
  """

  def __init__(self, init_lr: float, num_train_steps: int, num_warmup_steps: int = 0,
               poly_power: float = 1.0, start_warmup_step: int = 0,
               name: Optional[str] = None):
    super().__init__()
    if num_train_steps < 0:
      raise ValueError(f"num_train_steps must not be negative, got {num_train_steps}")
    if num_warmup_steps < 0:
      raise ValueError(f"num_warmup_steps must not be negative, got {num_warmup_steps}")
    if start_warmup_step < 0:
      raise ValueError(f"start_warmup_step must not be negative, got {start_warmup_step}")
    self.init_lr = float(init_lr)
    self.num_train_steps = int(num_train_steps)
    self.num_warmup_steps = int(num_warmup_steps)
    self.poly_power = float(poly_power)
    self.start_warmup_step = int(start_warmup_step)
    self.name = name

  def __call__(self, step):
    with tf.name_scope(self.name or "PolynomialWarmup"):
      step = tf.convert_to_tensor(step)
      init_lr = tf.constant(self.init_lr, tf.float32)
      # tf.compat.v1.train.polynomial_decay(init_lr, step, num_train_steps, 0.0, poly_power,
      # cycle=False), with its float32 arithmetic.
      if self.num_train_steps > 0:
        end_lr = tf.constant(0.0, tf.float32)
        decay_steps = tf.cast(self.num_train_steps, tf.float32)
        p = tf.minimum(tf.cast(step, tf.float32), decay_steps) / decay_steps
        learning_rate = (init_lr - end_lr) * tf.pow(1 - p, self.poly_power) + end_lr
      else:
        learning_rate = tf.constant(0.0, tf.float32)
      if self.num_warmup_steps:
        steps_int = tf.cast(step, tf.int64) - self.start_warmup_step
        warmup_steps_int = tf.constant(self.num_warmup_steps, tf.int64)
        warmup_percent_done = (tf.cast(steps_int, tf.float32)
                               / tf.cast(warmup_steps_int, tf.float32))
        warmup_learning_rate = self.init_lr * warmup_percent_done
        is_warmup = tf.cast(steps_int < warmup_steps_int, tf.float32)
        learning_rate = (1.0 - is_warmup) * learning_rate + is_warmup * warmup_learning_rate
        # Ours: 0 instead of the original's negative rate before start_warmup_step.
        learning_rate = tf.where(steps_int < 0, tf.zeros_like(learning_rate), learning_rate)
      return learning_rate

  def get_config(self):
    return {"init_lr": self.init_lr, "num_train_steps": self.num_train_steps,
            "num_warmup_steps": self.num_warmup_steps, "poly_power": self.poly_power,
            "start_warmup_step": self.start_warmup_step, "name": self.name}


# ---------------------------------------------------------------------------------- optimizers
class _AdamFamily(tf_keras.optimizers.Optimizer):
  """Shared machinery: `adam_m`/`adam_v` slots with TF1 names, exclusion by name, the update."""

  def __init__(self, learning_rate: Union[float, LearningRateSchedule] = 0.001,
               weight_decay_rate: float = 0.0, beta_1: float = 0.9, beta_2: float = 0.999,
               epsilon: float = 1e-6,
               exclude_from_weight_decay: Optional[Sequence[str]] = None,
               name: str = "AdamWeightDecay", **kwargs):
    # The base class's own decoupled weight decay (`weight_decay`) stays off: ours is the
    # original's, added to the update before the learning rate (and trust ratio) is applied.
    if kwargs.get("weight_decay"):
      raise ValueError("use weight_decay_rate (the original's decay), not weight_decay")
    kwargs["weight_decay"] = None
    super().__init__(name=name, **kwargs)
    self._learning_rate = self._build_learning_rate(learning_rate)
    self.weight_decay_rate = float(weight_decay_rate)
    self.beta_1 = float(beta_1)
    self.beta_2 = float(beta_2)
    self.epsilon = float(epsilon)
    self.exclude_from_weight_decay = (None if exclude_from_weight_decay is None
                                      else list(exclude_from_weight_decay))

  # -- the schedule the training loop logs
  @property
  def learning_rate_schedule(self) -> Optional[LearningRateSchedule]:
    """The `LearningRateSchedule` (None when the learning rate is a constant)."""
    lr = self._learning_rate
    return lr if isinstance(lr, LearningRateSchedule) else None

  # -- exclusion by name, as the original (`re.search` on the name without `:0`)
  def uses_weight_decay(self, variable) -> bool:
    """Whether the original's `_do_use_weight_decay` is true for this variable (or name)."""
    if not self.weight_decay_rate:
      return False
    return not _matches_any(self.exclude_from_weight_decay, variable_name(variable))

  def uses_layer_adaptation(self, variable) -> bool:
    """Whether the trust ratio is applied (always False for AdamWeightDecay)."""
    return False

  # -- slots
  def _add_slot(self, variable, suffix: str) -> tf.Variable:
    if getattr(self, "_mesh", None) or hasattr(variable, "_sharded_container"):
      # DTensor / sharded variables: the base class's naming (`adam_m/<var>`); the TF1 names
      # are still available through `optimizer_slot_variables`.
      return self.add_variable_from_reference(variable, suffix)
    dtype = getattr(variable, "true_dtype", variable.dtype)
    strategy = tf.distribute.get_strategy()
    with strategy.extended.colocate_vars_with(variable), tf.name_scope(""):
      slot = tf.Variable(tf.zeros(variable.shape, dtype=dtype),
                         name=f"{variable_name(variable)}/{suffix}", dtype=dtype,
                         trainable=False)
    self._variables.append(slot)
    return slot

  def build(self, var_list):
    """Creates `<var>/adam_m` and `<var>/adam_v` for every variable (zeros, the var's dtype)."""
    super().build(var_list)
    if getattr(self, "_built", False):
      return
    self._built = True
    self._m: List[tf.Variable] = []
    self._v: List[tf.Variable] = []
    self._decay_flags: List[bool] = []
    self._adaptation_flags: List[bool] = []
    for var in var_list:
      self._m.append(self._add_slot(var, SLOT_SUFFIXES[0]))
      self._v.append(self._add_slot(var, SLOT_SUFFIXES[1]))
      self._decay_flags.append(self.uses_weight_decay(var))
      self._adaptation_flags.append(self.uses_layer_adaptation(var))

  def slots(self, variable) -> Dict[str, tf.Variable]:
    """{'adam_m': m, 'adam_v': v} of a model variable (the optimizer must be built)."""
    index = self._index_dict[self._var_key(variable)]
    return {SLOT_SUFFIXES[0]: self._m[index], SLOT_SUFFIXES[1]: self._v[index]}

  # -- the update
  def update_step(self, gradient, variable):
    index = self._index_dict[self._var_key(variable)]
    m, v = self._m[index], self._v[index]
    dtype = variable.dtype
    if isinstance(gradient, tf.IndexedSlices):  # the original's update is dense
      gradient = tf.convert_to_tensor(gradient)
    grad = tf.cast(gradient, dtype)
    lr = tf.cast(self.learning_rate, dtype)
    param = tf.convert_to_tensor(variable)

    next_m = tf.multiply(self.beta_1, m) + tf.multiply(1.0 - self.beta_1, grad)
    next_v = tf.multiply(self.beta_2, v) + tf.multiply(1.0 - self.beta_2, tf.square(grad))
    update = next_m / (tf.sqrt(next_v) + self.epsilon)
    if self._decay_flags[index]:
      update += self.weight_decay_rate * param
    if self._adaptation_flags[index]:
      w_norm = tf.norm(param, ord=2)
      g_norm = tf.norm(update, ord=2)
      one = tf.ones_like(w_norm)
      ratio = tf.where(tf.greater(w_norm, 0),
                       tf.where(tf.greater(g_norm, 0), w_norm / g_norm, one), one)
      update_with_lr = ratio * lr * update
    else:
      update_with_lr = lr * update
    variable.assign(param - update_with_lr)
    m.assign(next_m)
    v.assign(next_v)

  def get_config(self):
    config = super().get_config()
    config.update({
        "learning_rate": self._serialize_hyperparameter(self._learning_rate),
        "weight_decay_rate": self.weight_decay_rate,
        "beta_1": self.beta_1,
        "beta_2": self.beta_2,
        "epsilon": self.epsilon,
        "exclude_from_weight_decay": self.exclude_from_weight_decay,
    })
    config.pop("weight_decay", None)
    return config


@tf_keras.utils.register_keras_serializable(package="albert")
class AdamWeightDecay(_AdamFamily):
  """The original's `AdamWeightDecayOptimizer` (no bias correction, decoupled L2 decay).

      m = beta_1 m + (1 - beta_1) g;   v = beta_2 v + (1 - beta_2) g^2
      update = m / (sqrt(v) + epsilon) [+ weight_decay_rate * w unless the name is excluded]
      w = w - lr * update
  """

  def __init__(self, learning_rate=0.001, weight_decay_rate: float = 0.0, beta_1: float = 0.9,
               beta_2: float = 0.999, epsilon: float = 1e-6,
               exclude_from_weight_decay: Optional[Sequence[str]] = None,
               name: str = "AdamWeightDecay", **kwargs):
    super().__init__(learning_rate=learning_rate, weight_decay_rate=weight_decay_rate,
                     beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                     exclude_from_weight_decay=exclude_from_weight_decay, name=name, **kwargs)


@tf_keras.utils.register_keras_serializable(package="albert")
class LAMB(_AdamFamily):
  """The original's `LAMBOptimizer`: AdamWeightDecay's update scaled by a layer-wise trust ratio.

      ratio = ||w|| / ||update|| if both norms > 0 else 1.0   (unless the name is excluded)
      w = w - ratio * lr * update

  `exclude_from_layer_adaptation=None` means the `exclude_from_weight_decay` list (the
  original's default). Unlike the original, an explicit empty list means "no exclusion" (the
  original treats [] like None).
  """

  def __init__(self, learning_rate=0.001, weight_decay_rate: float = 0.0, beta_1: float = 0.9,
               beta_2: float = 0.999, epsilon: float = 1e-6,
               exclude_from_weight_decay: Optional[Sequence[str]] = None,
               exclude_from_layer_adaptation: Optional[Sequence[str]] = None,
               name: str = "LAMB", **kwargs):
    super().__init__(learning_rate=learning_rate, weight_decay_rate=weight_decay_rate,
                     beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                     exclude_from_weight_decay=exclude_from_weight_decay, name=name, **kwargs)
    self.exclude_from_layer_adaptation = (None if exclude_from_layer_adaptation is None
                                          else list(exclude_from_layer_adaptation))

  def uses_layer_adaptation(self, variable) -> bool:
    patterns = (self.exclude_from_weight_decay if self.exclude_from_layer_adaptation is None
                else self.exclude_from_layer_adaptation)
    return not _matches_any(patterns, variable_name(variable))

  def get_config(self):
    config = super().get_config()
    config["exclude_from_layer_adaptation"] = self.exclude_from_layer_adaptation
    return config


# ------------------------------------------------------------------------------------- factory
def create_optimizer(init_lr: float, num_train_steps: int, num_warmup_steps: int,
                     optimizer: str = "lamb", poly_power: float = 1.0,
                     start_warmup_step: int = 0, weight_decay_rate: float = 0.01,
                     beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-6,
                     exclude_from_weight_decay: Sequence[str] = DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
                     exclude_from_layer_adaptation: Optional[Sequence[str]] = None,
                     global_clipnorm: Optional[float] = None, **kwargs) -> _AdamFamily:
  """The optimizer of the original's `create_optimizer`, with `PolynomialWarmup` attached.

  Create it inside the strategy's scope. It does not clip (see the module docstring): call
  `clip_gradients` on the all-reduced gradients, or pass `global_clipnorm=1.0`. The schedule is
  `optimizer.learning_rate_schedule`; `optimizer.iterations` is the global step.
  """
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"Not supported optimizer: {optimizer!r} (use one of {', '.join(OPTIMIZERS)})")
  schedule = PolynomialWarmup(init_lr, num_train_steps, num_warmup_steps, poly_power,
                              start_warmup_step)
  common = dict(learning_rate=schedule, weight_decay_rate=weight_decay_rate, beta_1=beta_1,
                beta_2=beta_2, epsilon=epsilon,
                exclude_from_weight_decay=list(exclude_from_weight_decay),
                global_clipnorm=global_clipnorm, **kwargs)
  if optimizer == "lamb":
    return LAMB(exclude_from_layer_adaptation=exclude_from_layer_adaptation, **common)
  if exclude_from_layer_adaptation is not None:
    raise ValueError("exclude_from_layer_adaptation only applies to optimizer='lamb'")
  return AdamWeightDecay(**common)


def clip_gradients(grads: Sequence[tf.Tensor], clip_norm: float = 1.0):
  """(clipped, global_norm) = `tf.clip_by_global_norm(grads, clip_norm)`, the original's clip.

  Call it on the gradient of the whole global batch (after the all-reduce across replicas).
  """
  return tf.clip_by_global_norm(list(grads), clip_norm)


# ------------------------------------------------------------------------- TF1 slot names
def _inner(optimizer):
  """The optimizer itself, or the one a LossScaleOptimizer wraps."""
  while not isinstance(optimizer, _AdamFamily) and hasattr(optimizer, "inner_optimizer"):
    optimizer = optimizer.inner_optimizer
  if not isinstance(optimizer, _AdamFamily):
    raise TypeError(f"expected an albert.optimization optimizer, got {type(optimizer).__name__}")
  return optimizer


def optimizer_slot_variables(optimizer, model_variables: Iterable[tf.Variable]
                             ) -> Dict[str, tf.Variable]:
  """TF1 name -> slot variable, e.g. `bert/pooler/dense/kernel/adam_m` -> m of that kernel.

  `model_variables` are the variables the optimizer was built on (any subset); it builds the
  optimizer on them if it is not built yet. Works through a LossScaleOptimizer.
  """
  optimizer = _inner(optimizer)
  model_variables = list(model_variables)
  if not getattr(optimizer, "_built", False):
    optimizer.build(model_variables)
  result: Dict[str, tf.Variable] = {}
  for var in model_variables:
    if optimizer._var_key(var) not in optimizer._index_dict:
      raise KeyError(f"the optimizer was not built on {variable_name(var)}")
    for suffix, slot in optimizer.slots(var).items():
      result[f"{variable_name(var)}/{suffix}"] = slot
  return result


def load_optimizer_slots(optimizer, model_variables: Iterable[tf.Variable], path: str,
                         require_all: bool = False) -> List[str]:
  """Assigns `<var>/adam_m`, `<var>/adam_v` from a TF1 checkpoint; returns the names read.

  `path` is a checkpoint prefix (or a directory with a `checkpoint` file). Slots the checkpoint
  lacks keep their values (zeros), unless `require_all`, which raises `ValueError`.
  """
  if tf.io.gfile.isdir(path):
    path = tf.train.latest_checkpoint(path) or path
  reader = tf.train.load_checkpoint(path)
  shapes = reader.get_variable_to_shape_map()
  slots = optimizer_slot_variables(optimizer, model_variables)
  missing = sorted(n for n in slots if n not in shapes)
  if require_all and missing:
    raise ValueError(f"checkpoint {path} lacks {len(missing)} optimizer slots: "
                     + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
  loaded = []
  for name, slot in sorted(slots.items()):
    if name in shapes:
      if list(shapes[name]) != list(slot.shape):
        raise ValueError(f"{name}: checkpoint shape {shapes[name]}, slot shape {slot.shape}")
      slot.assign(np.asarray(reader.get_tensor(name)).astype(slot.dtype.as_numpy_dtype))
      loaded.append(name)
  return loaded
