"""The one training loop of every task: the original TPUEstimator batch job, in TF2.

`Trainer(task, TrainerConfig, OptimizerConfig, strategy).run(do_train, do_eval)`:
- builds the task's model and the optimizer inside the strategy's scope, checks the inputs and
  the batch size before any work;
- resumes from `output_dir/train_state/` (model, optimizer slots and step, input position and
  dropout random state, so that a killed and resumed run ends with the weights of an
  uninterrupted one), or starts from `init_checkpoint` (TF1 names, original or ours);
- runs `iterations_per_loop` steps per compiled host loop (fewer where a checkpoint is due):
  forward, loss / replicas, gradients summed over replicas, clipped to global norm
  `clip_norm` (1.0, the original's), applied by LAMB or AdamW with the original's schedule;
- every `save_checkpoints_steps`: the resume checkpoint (`keep_checkpoint_max` kept) and, beside
  it, a weights-only checkpoint in the original TF1 names, `output_dir/model.ckpt-N`; with
  `do_eval`, evaluates `max_eval_steps` batches, appends the results to `eval_results.txt` and
  copies the best checkpoint (task's `best_metric`) to `model.ckpt-best`, deleting nothing;
- prints a progress line per loop and writes TensorBoard summaries; a non-finite loss stops
  the run with an error naming the step, and nothing after the last good checkpoint is saved.

Differences from the original, on purpose: gradients are summed over replicas before clipping
(the original clipped each TPU core's gradient, then averaged), so that N replicas compute what
one device computes with the same global batch; and embedding gradients are made dense before
clipping, so the global norm is that of the true gradient on every device (the original's was
on TPU, with one-hot embeddings; on CPU/GPU its sparse gradients counted each repeated token's
slice separately in the norm).

`make_train_loop` is the compiled step loop itself, usable around any model and optimizer
(the pretraining benchmark runs tf-models-official's model through it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
from typing import Callable, Dict, List, Optional

import tensorflow as tf
import tf_keras

from albert import checkpoint, distribute, optimization
from albert.tasks.base import Task

STATE_DIR = "train_state"
TF1_PREFIX = "model.ckpt"


class TrainingError(RuntimeError):
  """The run cannot go on (bad settings, or a non-finite loss); the message says why."""


@dataclasses.dataclass
class OptimizerConfig:
  optimizer: str = "lamb"  # lamb | adamw
  learning_rate: float = 0.00176
  num_warmup_steps: int = 3125
  start_warmup_step: int = 0
  poly_power: float = 1.0
  weight_decay_rate: float = 0.01


@dataclasses.dataclass
class TrainerConfig:
  output_dir: str
  train_batch_size: int = 4096  # global
  eval_batch_size: int = 64  # global
  num_train_steps: int = 125000
  save_checkpoints_steps: int = 5000
  keep_checkpoint_max: int = 5
  iterations_per_loop: int = 1000
  max_eval_steps: int = 100
  init_checkpoint: Optional[str] = None
  init_from_group0: bool = False
  enable_xla: bool = False
  mixed_precision: str = "float32"  # float32 | mixed_float16 | mixed_bfloat16
  seed: int = 12345
  clip_norm: float = 1.0

  def validate(self) -> None:
    for key in ("train_batch_size", "eval_batch_size", "save_checkpoints_steps",
                "keep_checkpoint_max", "iterations_per_loop", "max_eval_steps"):
      if getattr(self, key) <= 0:
        raise TrainingError(f"--{key} must be positive, got {getattr(self, key)}")
    if self.num_train_steps < 0:
      raise TrainingError(f"--num_train_steps must not be negative, got {self.num_train_steps}")
    if self.mixed_precision not in ("float32", "mixed_float16", "mixed_bfloat16"):
      raise TrainingError(f"--mixed_precision must be float32, mixed_float16 or mixed_bfloat16, "
                          f"got {self.mixed_precision!r}")
    if not self.output_dir:
      raise TrainingError("--output_dir is required")


def _format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def make_train_loop(strategy: tf.distribute.Strategy,
                    forward: Callable[[Dict[str, tf.Tensor]], Dict[str, tf.Tensor]],
                    variables: Callable[[], List[tf.Variable]], optimizer, task: Task,
                    metrics, *, clip_norm: float = 1.0, enable_xla: bool = False,
                    dense_gradients: bool = True):
  """The compiled host loop of training: `train_loop(iterator, steps) -> (loss, norm, bad_step)`.

  Each step, on every replica: `forward(features)` (training mode) -> the task's loss /
  replicas (scaled when `optimizer` is a LossScaleOptimizer) -> gradients of `variables()` ->
  summed over replicas -> clipped to global norm `clip_norm` -> applied; then the task's
  metrics are updated. `dense_gradients` (the Trainer's choice) turns the IndexedSlices of
  embedding lookups into dense tensors and sums them with one explicit all-reduce; False leaves
  them sparse and lets `apply_gradients` aggregate them, as tf-models-official's trainer does
  (the pretraining benchmark runs its peer through this loop that way). `enable_xla` compiles
  the replica step with XLA. Returns the replica means of the last step's loss and gradient
  norm, and the step whose loss (or, without loss scaling, gradient norm) was not finite, -1
  when none was; the loop stops there.
  """
  replicas = strategy.num_replicas_in_sync
  loss_scaled = isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer)

  def replica_step(features):
    with tf.GradientTape() as tape:
      loss, aux = task.compute_loss(features, forward(features))
      scaled = loss / replicas
      if loss_scaled:
        scaled = optimizer.get_scaled_loss(scaled)
    trainable = variables()
    grads = tape.gradient(scaled, trainable)
    if dense_gradients:
      grads = [tf.convert_to_tensor(g) for g in grads]
    if loss_scaled:
      grads = optimizer.get_unscaled_gradients(grads)
    if dense_gradients:
      grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
    grads, norm = tf.clip_by_global_norm(grads, clip_norm)
    if dense_gradients:  # summed above
      optimizer.apply_gradients(zip(grads, trainable), skip_gradients_aggregation=True)
    else:  # (a legacy OptimizerV2, such as tf-models' LAMB, has no such argument)
      optimizer.apply_gradients(zip(grads, trainable))
    task.update_metrics(metrics, features, aux)
    return loss, norm

  if enable_xla:
    replica_step = tf.function(replica_step, jit_compile=True)

  @tf.function
  def train_loop(iterator, steps):
    loss = tf.constant(0.0)
    norm = tf.constant(0.0)
    bad_step = tf.constant(-1, tf.int64)
    for _ in tf.range(steps):
      per_replica_loss, per_replica_norm = strategy.run(replica_step, args=(next(iterator),))
      loss = strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica_loss, axis=None)
      norm = strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica_norm, axis=None)
      # Under loss scaling, overflowing gradients are expected: that step is skipped.
      if not tf.math.is_finite(loss) or (not loss_scaled and not tf.math.is_finite(norm)):
        bad_step = tf.cast(optimizer.iterations, tf.int64) - 1
        break
    return loss, norm, bad_step

  return train_loop


class Trainer:
  """Trains and evaluates one task; see the module docstring."""

  def __init__(self, task: Task, config: TrainerConfig, optimizer_config: OptimizerConfig,
               strategy: Optional[tf.distribute.Strategy] = None,
               log: Callable[[str], None] = lambda line: print(line, flush=True)):
    config.validate()
    self.task = task
    self.config = config
    self.optimizer_config = optimizer_config
    self.strategy = strategy or tf.distribute.get_strategy()
    self.log = log
    self.chief = distribute.is_chief(self.strategy)
    self.replicas = self.strategy.num_replicas_in_sync
    self.state_dir = os.path.join(config.output_dir, STATE_DIR)
    self._built = False

  # ------------------------------------------------------------------------------- set-up
  def _check(self, do_train: bool, do_eval: bool) -> None:
    c = self.config
    for name, size in (("train_batch_size", c.train_batch_size),
                       ("eval_batch_size", c.eval_batch_size)):
      if size % self.replicas:
        raise TrainingError(f"--{name}={size} is not divisible by the {self.replicas} replicas "
                            "of the distribution strategy (the batch size is global)")
    if do_train:
      self.task.check_inputs("train")
    if do_eval:
      self.task.check_inputs("eval")

  def _build(self) -> None:
    if self._built:
      return
    c, o = self.config, self.optimizer_config
    tf_keras.utils.set_random_seed(c.seed)
    tf_keras.mixed_precision.set_global_policy(c.mixed_precision)
    with self.strategy.scope():
      self.model = self.task.build_model()
      optimizer = optimization.create_optimizer(
          init_lr=o.learning_rate, num_train_steps=c.num_train_steps,
          num_warmup_steps=o.num_warmup_steps, optimizer=o.optimizer,
          poly_power=o.poly_power, start_warmup_step=o.start_warmup_step,
          weight_decay_rate=o.weight_decay_rate)
      self.schedule = optimizer.learning_rate_schedule
      if c.mixed_precision == "mixed_float16":
        optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
      self.optimizer = optimizer
      self.optimizer.build(self.model.trainable_variables)
      self.train_metrics = self.task.build_metrics()
      self.eval_metrics = self.task.build_metrics()
    self._built = True

  @property
  def global_step(self) -> int:
    return int(self.optimizer.iterations.numpy())

  def _distributed(self, split: str, global_batch: int, skip_steps: int = 0):
    """The distributed dataset; `skip_steps` global steps' batches are skipped (resume)."""
    def dataset_fn(context: tf.distribute.InputContext):
      dataset = self.task.build_dataset(
          split, context.get_per_replica_batch_size(global_batch), context)
      if skip_steps:  # each pipeline feeds its local replicas one batch each per step
        local_replicas = context.num_replicas_in_sync // context.num_input_pipelines
        dataset = dataset.skip(skip_steps * local_replicas)
      return dataset
    return self.strategy.distribute_datasets_from_function(dataset_fn)

  # ------------------------------------------------------------------------- the steps
  def _model_inputs(self, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """The features the model takes (labels and weights stay with the task)."""
    names = self.model.input if isinstance(self.model.input, dict) else None
    return {k: v for k, v in features.items() if names is None or k in names}

  def _make_train_loop(self):
    model = self.model
    return make_train_loop(
        self.strategy, lambda features: model(self._model_inputs(features), training=True),
        lambda: model.trainable_variables, self.optimizer, self.task, self.train_metrics,
        clip_norm=self.config.clip_norm, enable_xla=self.config.enable_xla)

  def _make_eval_step(self):
    model, task, metrics = self.model, self.task, self.eval_metrics

    def replica_step(features):
      outputs = model(self._model_inputs(features), training=False)
      _, aux = task.compute_loss(features, outputs)
      task.update_metrics(metrics, features, aux)

    if self.config.enable_xla:
      replica_step = tf.function(replica_step, jit_compile=True)
    strategy = self.strategy

    @tf.function
    def eval_step(iterator):
      strategy.run(replica_step, args=(next(iterator),))

    return eval_step

  # ---------------------------------------------------------------------- checkpoints
  def _tf1_checkpoints(self) -> List[int]:
    steps = []
    pattern = re.compile(re.escape(TF1_PREFIX) + r"-(\d+)\.index$")
    for name in os.listdir(self.config.output_dir):
      match = pattern.match(name)
      if match:
        steps.append(int(match.group(1)))
    return sorted(steps)

  def _save(self, manager: tf.train.CheckpointManager) -> str:
    """Saves the resume state and the TF1-name weights; returns the TF1 prefix."""
    step = self.global_step
    if self.chief:
      manager.save(checkpoint_number=step)
    else:  # every worker takes part in the save; only the chief's files are kept
      scratch = tempfile.mkdtemp(prefix="albert-worker-")
      self._checkpoint.write(os.path.join(scratch, "ckpt"))
      shutil.rmtree(scratch, ignore_errors=True)
    prefix = os.path.join(self.config.output_dir, f"{TF1_PREFIX}-{step}")
    if self.chief:
      checkpoint.save_tf1_checkpoint(self.model, os.path.join(self.config.output_dir, TF1_PREFIX),
                                     global_step=step)
      for old in self._tf1_checkpoints()[:-self.config.keep_checkpoint_max]:
        for suffix in (".index", ".data-00000-of-00001"):
          path = os.path.join(self.config.output_dir, f"{TF1_PREFIX}-{old}{suffix}")
          if os.path.exists(path):
            os.remove(path)
      checkpoint.write_checkpoint_state(self.config.output_dir, os.path.basename(prefix))
    return prefix

  # ------------------------------------------------------------------------------ eval
  def evaluate(self) -> Dict[str, float]:
    """Evaluates the current weights on `max_eval_steps` batches of the eval input."""
    for metric in self.eval_metrics.values():
      metric.reset_state()
    if not hasattr(self, "_eval_step"):
      self._eval_step = self._make_eval_step()
      self._eval_dataset = self._distributed("eval", self.config.eval_batch_size)
    iterator = iter(self._eval_dataset)  # the same batches at every evaluation
    for _ in range(self.config.max_eval_steps):
      self._eval_step(iterator)
    results = {"global_step": self.global_step}
    results.update({k: float(m.result().numpy()) for k, m in self.eval_metrics.items()})
    return results

  def _record_eval(self, results: Dict[str, float], tf1_prefix: Optional[str]) -> None:
    """Appends to eval_results.txt, writes summaries, and keeps the best checkpoint."""
    if not self.chief:
      return
    lines = [f"{key} = {results[key]}" for key in sorted(results)]
    metric = self.task.best_metric
    best_file = os.path.join(self.state_dir, "best_checkpoint.json")
    if metric and tf1_prefix and os.path.exists(tf1_prefix + ".index"):
      best = None
      if os.path.exists(best_file):
        with open(best_file) as f:
          best = json.load(f)
      value = results[metric]
      better = best is None or (value > best["value"] if self.task.best_metric_higher_is_better
                                else value < best["value"])
      if better:
        target = os.path.join(self.config.output_dir, f"{TF1_PREFIX}-best")
        for suffix in (".data-00000-of-00001", ".index"):  # the index last
          shutil.copyfile(tf1_prefix + suffix, target + suffix + ".tmp")
          os.replace(target + suffix + ".tmp", target + suffix)
        os.makedirs(self.state_dir, exist_ok=True)
        _write_atomic(best_file, json.dumps({"step": results["global_step"], "value": value,
                                             "metric": metric}))
        lines.append(f"saved {tf1_prefix} to {target}")
    path = os.path.join(self.config.output_dir, "eval_results.txt")
    previous = ""
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        previous = f.read()
    _write_atomic(path, previous + "\n".join(lines) + "\n")
    with self._writer("eval").as_default():
      for key, value in results.items():
        if key != "global_step":
          tf.summary.scalar(key, value, step=results["global_step"])

  def _writer(self, name: str):
    if not hasattr(self, "_writers"):
      self._writers = {}
    if name not in self._writers:
      self._writers[name] = tf.summary.create_file_writer(
          os.path.join(self.config.output_dir, "summaries", name))
    return self._writers[name]

  # ------------------------------------------------------------------------------- run
  def run(self, do_train: bool = True, do_eval: bool = False) -> Dict[str, float]:
    """Trains (resuming if possible) and/or evaluates; returns the last eval results."""
    if not (do_train or do_eval):
      raise TrainingError("nothing to do: set --do_train and/or --do_eval")
    c = self.config
    self._check(do_train, do_eval)
    os.makedirs(c.output_dir, exist_ok=True)
    self.log(f"Strategy: {type(self.strategy).__name__}, {self.replicas} replica(s); global "
             f"batch {c.train_batch_size} (train), {c.eval_batch_size} (eval); "
             f"{c.mixed_precision}{', XLA' if c.enable_xla else ''}")
    self._build()
    results: Dict[str, float] = {}
    if do_train:
      results = self._train(do_eval)
    if do_eval and not do_train:
      self._restore_weights_for_eval()
      results = self.evaluate()
      self._log_eval(results)
      latest = self._tf1_checkpoints()
      prefix = (os.path.join(c.output_dir, f"{TF1_PREFIX}-{results['global_step']}")
                if results["global_step"] in latest else None)
      self._record_eval(results, prefix)
    return results

  def _restore_weights_for_eval(self) -> None:
    state = tf.train.latest_checkpoint(self.state_dir)
    if state:
      tf.train.Checkpoint(model=self.model, optimizer=self.optimizer).restore(state).expect_partial()
      self.log(f"Evaluating {state} (step {self.global_step})")
      return
    steps = self._tf1_checkpoints()
    source = (os.path.join(self.config.output_dir, f"{TF1_PREFIX}-{steps[-1]}") if steps
              else self.config.init_checkpoint)
    if not source:
      raise TrainingError(f"--do_eval without --do_train needs a checkpoint in --output_dir "
                          f"({self.config.output_dir}) or --init_checkpoint")
    report = checkpoint.load_tf1_checkpoint(self.model, source, require_all=True)
    if steps:
      self.optimizer.iterations.assign(steps[-1])
    self.log(f"Evaluating {report.checkpoint} (step {self.global_step})")

  def _log_eval(self, results: Dict[str, float]) -> None:
    self.log("***** Eval results *****")
    for key in sorted(results):
      self.log(f"  {key} = {results[key]}")

  def _train(self, do_eval: bool) -> Dict[str, float]:
    c = self.config
    # The input position is part of the resume state. On one device (the default strategy) the
    # iterator itself is checkpointed; tf.distribute's iterators cannot be, so there the input
    # is rebuilt and the batches of the steps already done are skipped (exact, but read again).
    single = self.strategy is tf.distribute.get_strategy()  # the default strategy
    iterator = iter(self._distributed("train", c.train_batch_size)) if single else None
    ckpt = (tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, iterator=iterator)
            if single else tf.train.Checkpoint(model=self.model, optimizer=self.optimizer))
    self._checkpoint = ckpt
    manager = tf.train.CheckpointManager(ckpt, self.state_dir, max_to_keep=c.keep_checkpoint_max,
                                         checkpoint_name="ckpt")
    resumed = manager.latest_checkpoint
    if resumed:
      ckpt.restore(resumed).assert_existing_objects_matched()
      self.log(f"Resuming from {resumed} at step {self.global_step}")
    elif c.init_checkpoint:
      report = self.task.initialize(self.model, c.init_checkpoint, c.init_from_group0)
      self.log(report.format())
    else:
      self.log("Training from scratch (no checkpoint in --output_dir, no --init_checkpoint)")
    if not single:
      iterator = iter(self._distributed("train", c.train_batch_size, skip_steps=self.global_step))

    train_loop = self._make_train_loop()
    results: Dict[str, float] = {}
    start_step = self.global_step
    while self.global_step < c.num_train_steps:
      step = self.global_step
      to_save = c.save_checkpoints_steps - step % c.save_checkpoints_steps
      steps = min(c.iterations_per_loop, to_save, c.num_train_steps - step)
      for metric in self.train_metrics.values():
        metric.reset_state()
      loop_start = time.time()
      loss, norm, bad_step = train_loop(iterator, tf.constant(steps))
      bad_step = int(bad_step.numpy())
      if bad_step >= 0:
        raise TrainingError(
            f"the loss became {float(loss.numpy())} (gradient norm {float(norm.numpy())}) at "
            f"step {bad_step}; stopping. Nothing after the last checkpoint was saved: "
            f"{manager.latest_checkpoint or 'none yet'}")
      now, step = time.time(), self.global_step
      self._log_progress(step, steps, float(norm.numpy()), now - loop_start)
      if step % c.save_checkpoints_steps == 0 or step >= c.num_train_steps:
        prefix = self._save(manager)
        self.log(f"Saved {prefix} (resume state in {self.state_dir})")
        if do_eval:
          results = self.evaluate()
          self._log_eval(results)
          self._record_eval(results, prefix)
    if self.global_step == start_step and do_eval and not results:
      results = self.evaluate()
      self._log_eval(results)
      self._record_eval(results, manager.latest_checkpoint and os.path.join(
          c.output_dir, f"{TF1_PREFIX}-{self.global_step}"))
    for writer in getattr(self, "_writers", {}).values():
      writer.flush()
    return results

  def _log_progress(self, step: int, steps: int, norm: float, seconds: float) -> None:
    """One line per loop (metrics averaged over the loop; the ETA at the loop's pace)."""
    c = self.config
    values = {k: float(m.result().numpy()) for k, m in self.train_metrics.items()}
    lr = float(self.schedule(step - 1).numpy()) if step > 0 else 0.0
    examples_per_second = steps * c.train_batch_size / max(seconds, 1e-9)
    eta = _format_duration((c.num_train_steps - step) * seconds / steps)
    shown = " | ".join(f"{k} {v:.4f}" for k, v in values.items())
    self.log(f"step {step}/{c.num_train_steps} | {shown} | lr {lr:.3g} | grad_norm {norm:.3g} | "
             f"{examples_per_second:.1f} examples/s | ETA {eta}")
    if self.chief:
      with self._writer("train").as_default():
        for key, value in values.items():
          tf.summary.scalar(key, value, step=step)
        tf.summary.scalar("learning_rate", lr, step=step)
        tf.summary.scalar("gradient_norm", norm, step=step)
        tf.summary.scalar("examples_per_second", examples_per_second, step=step)
        tf.summary.scalar("tokens_per_second", examples_per_second * self._tokens_per_example(),
                          step=step)

  def _tokens_per_example(self) -> int:
    data = getattr(getattr(self.task, "config", None), "train_data", None)
    return getattr(data, "max_seq_length", 0)


def _write_atomic(path: str, text: str) -> None:
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)
