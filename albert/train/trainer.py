"""The one training loop of every task: the original TPUEstimator batch job, in TF2.

`Trainer(task, TrainerConfig, OptimizerConfig, strategy).run(do_train, do_eval, do_predict)`:
- checks the settings, the task's inputs, the init checkpoint and the run directory (another
  albert config, task or settings that shape the model or data are refused) before anything is
  written; holds the directory (a second run is refused); lets the task build its inputs; turns
  an epoch-based length into steps (printed); claims the directory only once the weights are
  loaded (a failed start leaves nothing);
- builds the task's model and the optimizer inside the strategy's scope;
- resumes from `output_dir/train_state/` (`ResumeState`: a killed and resumed run ends with the
  weights of an uninterrupted one), or starts from `init_checkpoint` (TF1 names);
- runs `iterations_per_loop` optimizer steps per compiled host loop (fewer where a checkpoint
  is due): forward, the loss normalised by the global batch's weights, gradients summed over
  replicas (and over the `gradient_accumulation_steps` micro-batches of a step, run one after
  the other), clipped to global norm `clip_norm` (1.0, the original's) once, applied once by
  LAMB or AdamW with the original's schedule (steps, warmup, checkpoints and the resume state
  count optimizer steps; a checkpoint never falls inside an accumulation); `recompute_grad`
  recomputes each transformer layer in the backward pass;
- every `save_checkpoints_steps`: the resume state (`keep_checkpoint_max` kept) and, beside
  it, a weights-only checkpoint in the original TF1 names, `output_dir/model.ckpt-N`; with
  `do_eval`, its `Evaluator` scores it, appends the results to `eval_results.txt` and keeps the
  best (task's `best_metric`) as `model.ckpt-best` + `best_trial.txt`, deleting nothing; it also
  scores every `model.ckpt-N` left without a result on the current eval data, and predicts;
- prints a progress line per loop (examples/s and tokens/s from the batches actually seen) and
  writes TensorBoard summaries; a non-finite loss stops the run with an error naming the step,
  and nothing after the last good checkpoint is saved; Ctrl-C (or SIGTERM) saves the resume
  state at the step reached and stops with one line (an evaluation or prediction stops after
  its current batch, writing nothing); on several workers, a SIGTERM to any one (a preempted
  machine) stops them all at the same step (`distribute.make_stop_agreement`); a corrupted
  record file is named.

Public besides `run`: `prepare(splits)` and `build()` set a run up without running it
(benchmarks, exports); `make_train_loop()`; `evaluate`, `predict`, `evaluate_checkpoints` (they
prepare and build, then call `trainer.evaluator`); `predict_checkpoint()`, the weights
`--do_predict` alone (and an export) uses.

Differences from the original, on purpose: gradients are summed over replicas before clipping
(the original clipped each TPU core's gradient, then averaged), so that N replicas compute what
one device computes with the same global batch; and embedding gradients are made dense before
clipping, so the global norm is that of the true gradient on every device (the original's was
on TPU, with one-hot embeddings; on CPU/GPU its sparse gradients counted each repeated token's
slice separately in the norm).

Beside it: `settings.py` (TrainerConfig, OptimizerConfig), `evaluator.py` (the Evaluator),
`resume.py` (the resume state), `loop.py` (the compiled step loop, Ctrl-C and corrupted-input
guards), `run_dir.py` (the files of output_dir).
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, Optional, Sequence

import tensorflow as tf
import tf_keras

from albert import checkpoint, files, optimization
from albert.modeling import AlbertBackbone
from albert.train import distribute
from albert.errors import FlagError, Interrupted, TrainingError
from albert.train.evaluator import Evaluator
from albert.train.loop import NamedInputErrors, StopRequest, make_train_loop, model_inputs
from albert.train.resume import ResumeState
from albert.train.run_dir import TF1_PREFIX, RunDir
from albert.train.settings import OptimizerConfig, TrainerConfig  # the Trainer's configs
from albert.train.task import Task, print_line


def _format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Trainer:
  """Trains, evaluates and predicts for one task; see the module docstring.

  Args:
    task: the job (albert/train/task.py).
    config: the run's settings.
    optimizer_config: the optimizer and its learning-rate schedule.
    strategy: the distribution strategy (default: the current one).
    log: where progress lines go; default: printed.
  """

  def __init__(self, task: Task, config: TrainerConfig, optimizer_config: OptimizerConfig,
               strategy: Optional[tf.distribute.Strategy] = None,
               log: Callable[[str], None] = print_line):
    config.validate()
    optimizer_config.validate()
    self.task = task
    self.config = config
    self.optimizer_config = optimizer_config
    self.strategy = strategy or tf.distribute.get_strategy()
    self.log = log
    self.chief = distribute.is_chief(self.strategy)
    self.replicas = self.strategy.num_replicas_in_sync
    self.run_dir = RunDir(config.output_dir)
    self.state_dir = self.run_dir.state_dir
    # Set by prepare (epochs into steps) and build.
    self.num_train_steps: int = config.num_train_steps
    self.num_warmup_steps: int = optimizer_config.num_warmup_steps
    self.model: Optional[tf_keras.Model] = None
    self.optimizer = None
    self.schedule = None
    self.train_metrics: Dict[str, tf_keras.metrics.Metric] = {}
    self.evaluator: Optional[Evaluator] = None
    self._prepared = set()
    self._claimed = False
    self._steps_resolved = False
    self._summaries: Optional[tf.summary.SummaryWriter] = None

  # ------------------------------------------------------------------------------- set-up
  def _check(self, do_train: bool, do_eval: bool, do_predict: bool) -> None:
    """Every check that needs no output: settings, inputs, init checkpoint, run directory."""
    c = self.config
    if do_train and c.num_train_epochs is None and not (self.num_train_steps or 0) > 0:
      raise TrainingError(f"--{c.steps_flag}={self.num_train_steps}: --do_train needs at least "
                          "one training step")
    for name, size in (("train_batch_size", c.train_batch_size),
                       ("eval_batch_size", c.eval_batch_size),
                       ("predict_batch_size", c.predict_batch)):
      if size % self.replicas:
        raise TrainingError(f"--{name}={size} is not divisible by the {self.replicas} replicas "
                            "of the distribution strategy (the batch size is global)")
    accumulation = c.gradient_accumulation_steps
    if (c.train_batch_size // self.replicas) % accumulation:
      raise FlagError(f"--train_batch_size={c.train_batch_size} over {self.replicas} replicas "
                      f"is {c.train_batch_size // self.replicas} per replica, not divisible by "
                      f"--gradient_accumulation_steps={accumulation}")
    if self.task.eval_streams and do_eval and not c.max_eval_steps:
      raise TrainingError(f"task {self.task.name} evaluates on an endless input: set "
                          "--max_eval_steps")
    files.check_output_dir(c.output_dir)
    for split, wanted in (("train", do_train), ("eval", do_eval), ("predict", do_predict)):
      if wanted:
        self.task.prepare(split, check_only=True)
    if do_predict and not do_train:
      self.predict_checkpoint()  # weights to predict with, or the error naming what is missing
    for source in (c.init_checkpoint, c.predict_checkpoint):
      if source:
        checkpoint.verify_complete(checkpoint.resolve_checkpoint(source))
    self.run_dir.check_claim(self.task.albert_config, self.task.run_identity(),
                             c.albert_config_file)
    if do_train and self.num_train_steps is not None and self.num_train_steps > 0 and (
        self.optimizer_config.start_warmup_step >= self.num_train_steps):
      self.log(f"warning: --start_warmup_step={self.optimizer_config.start_warmup_step} is at "
               f"or past --num_train_steps={self.num_train_steps}: the learning rate stays 0 "
               "for the whole run")

  def _claim(self) -> None:
    """The run really starts (weights loaded): the chief writes the config and identity."""
    if self._claimed:
      return
    if self.chief:
      train_data = self.task.data_fingerprint("train") if "train" in self._prepared else None
      self.run_dir.claim(self.task.albert_config, self.task.run_identity(),
                         self.config.albert_config_file, train_data=train_data)
    self._claimed = True

  def prepare(self, splits: Sequence[str]) -> None:
    """Lets the task check, then build, the inputs of `splits` (every split checked before any
    is built; done once each), and turns an epoch-based length into steps."""
    for split in splits:
      if split not in self._prepared:
        self.task.prepare(split, check_only=True)
    for split in splits:
      if split not in self._prepared:
        self.task.prepare(split)
        self._prepared.add(split)
    c, o = self.config, self.optimizer_config
    if c.num_train_epochs is not None and "train" in splits and not self._steps_resolved:
      self._steps_resolved = True
      examples = self.task.num_train_examples()
      if not examples:
        raise TrainingError(f"task {self.task.name} cannot count its training examples: give "
                            "--num_train_steps instead of --num_train_epochs")
      self.num_train_steps = int(examples / c.train_batch_size * c.num_train_epochs)
      if self.num_train_steps < 1:
        raise TrainingError(f"--num_train_epochs={c.num_train_epochs:g} of {examples:,} examples "
                            f"at batch {c.train_batch_size} is no training step: train longer "
                            "or with a smaller --train_batch_size")
      if o.warmup_proportion is not None:
        self.num_warmup_steps = int(self.num_train_steps * o.warmup_proportion)
      self.log(f"Training {c.num_train_epochs:g} epoch(s) of {examples:,} examples at batch "
               f"{c.train_batch_size}: {self.num_train_steps:,} steps, "
               f"{self.num_warmup_steps:,} warmup steps")

  def build(self) -> None:
    """Builds the task's model, the optimizer and the metrics inside the strategy's scope, and
    the Evaluator (once; an epoch-based run is `prepare`d with "train" first)."""
    if self.evaluator is not None:
      return
    c, o = self.config, self.optimizer_config
    tf_keras.utils.set_random_seed(c.seed)
    tf_keras.mixed_precision.set_global_policy(c.mixed_precision)
    with self.strategy.scope():
      self.model = self.task.build_model()
      optimizer = optimization.create_optimizer(
          init_lr=o.learning_rate, num_train_steps=self.num_train_steps or 0,
          num_warmup_steps=self.num_warmup_steps, optimizer=o.optimizer,
          poly_power=o.poly_power, start_warmup_step=o.start_warmup_step,
          weight_decay_rate=o.weight_decay_rate)
      self.schedule = optimizer.learning_rate_schedule
      if c.mixed_precision == "mixed_float16":
        optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
      self.optimizer = optimizer
      self.optimizer.build(self.model.trainable_variables)
      self.train_metrics = self.task.build_metrics()
    if c.recompute_grad:
      backbones = [m for m in self.model.submodules if isinstance(m, AlbertBackbone)]
      if not backbones:
        raise FlagError(f"--recompute_grad: the model of task {self.task.name} has no ALBERT "
                        "encoder of this package to recompute (a TF-Hub encoder cannot be)")
      for backbone in backbones:
        backbone.recompute_grad = True
    self.evaluator = Evaluator(self.task, c, self.strategy, self.run_dir, self.model,
                               self.optimizer.iterations, chief=self.chief, log=self.log,
                               claim=self._claim)

  @property
  def global_step(self) -> int:
    return int(self.optimizer.iterations.numpy())

  def make_train_loop(self):
    """The compiled host loop of training around this trainer's model and optimizer
    (`loop.make_train_loop`): `train_loop(iterator, steps) -> dict`; after `build()`."""
    model = self.model
    return make_train_loop(
        self.strategy, lambda features: model(model_inputs(model, features), training=True),
        lambda: model.trainable_variables, self.optimizer, self.task, self.train_metrics,
        clip_norm=self.config.clip_norm, enable_xla=self.config.enable_xla,
        accumulation_steps=self.config.gradient_accumulation_steps)

  # -------------------------------------------------------------------- evaluate, predict
  def evaluate(self, split: str = "eval") -> Dict[str, float]:
    """The current weights' results on `split` (`Evaluator.evaluate`)."""
    self.prepare([split])
    self.build()
    return self.evaluator.evaluate(split)

  def predict(self, split: str = "predict", checkpoint_path: Optional[str] = "auto"):
    """The task's per-example outputs for `split`, in input order (`Evaluator.predict`).

    `checkpoint_path`: a TF1-name checkpoint to load first; "auto": `predict_checkpoint()`;
    None: the current weights.
    """
    self.prepare([split])
    self.build()
    if checkpoint_path == "auto":
      checkpoint_path = self.predict_checkpoint()
    return self.evaluator.predict(split, checkpoint_path)

  def evaluate_checkpoints(self):
    """Scores every `model.ckpt-N` without a result (`Evaluator.evaluate_checkpoints`)."""
    self.prepare(["eval"])
    self.build()
    return self.evaluator.evaluate_checkpoints()

  def predict_checkpoint(self) -> str:
    """The weights `--do_predict` alone (and an export) uses: `--predict_checkpoint`, else
    `model.ckpt-best`, else the latest `model.ckpt-N`, else `--init_checkpoint`."""
    c = self.config
    found = c.predict_checkpoint or self.run_dir.best_or_latest(c.init_checkpoint)
    if not found:
      raise TrainingError(f"--do_predict needs a checkpoint: none in --output_dir "
                          f"({c.output_dir}) and no --init_checkpoint")
    return found

  # ------------------------------------------------------------------------------- run
  def run(self, do_train: bool = True, do_eval: bool = False,
          do_predict: bool = False) -> Dict[str, float]:
    """Trains (resuming if possible), evaluates and/or predicts; returns the last eval results.

    Eval without training scores every checkpoint of output_dir that has no result (or, when
    there is none, `init_checkpoint`); the results returned are those of the latest step.
    Predict runs the task's `postprocess` on the predict split (its metrics are returned under
    `predict/` keys when it has any).
    """
    if not (do_train or do_eval or do_predict):
      raise TrainingError("nothing to do: set --do_train, --do_eval and/or --do_predict")
    with StopRequest():  # Ctrl-C and SIGTERM: the loops stop at a safe point, the rest at once
      self._check(do_train, do_eval, do_predict)
      if not self.chief:
        return self._run(do_train, do_eval, do_predict)
      before = self.run_dir.entries()
      with self.run_dir.lock():  # another run of this output_dir is refused until this one ends
        try:
          return self._run(do_train, do_eval, do_predict)
        except BaseException:
          if not self._claimed:  # a failed start leaves nothing behind
            self.run_dir.remove_added(before)
          raise

  def _run(self, do_train: bool, do_eval: bool, do_predict: bool) -> Dict[str, float]:
    c = self.config
    self.prepare([s for s, wanted in (("train", do_train), ("eval", do_eval),
                                      ("predict", do_predict)) if wanted])
    self.log(f"Strategy: {type(self.strategy).__name__}, {self.replicas} replica(s); global "
             f"batch {c.train_batch_size} (train), {c.eval_batch_size} (eval); "
             f"{c.mixed_precision}{', XLA' if c.enable_xla else ''}"
             + (f"; each step accumulates {c.gradient_accumulation_steps} micro-batches of "
                f"{c.train_batch_size // c.gradient_accumulation_steps}"
                if c.gradient_accumulation_steps > 1 else "")
             + ("; recomputing each layer in the backward pass" if c.recompute_grad else ""))
    self.build()
    results: Dict[str, float] = {}
    if do_train:
      results = self._train(do_eval)
    elif do_eval:
      results = self.evaluator.evaluate_run()
    if do_predict:
      source = None if do_train and not do_eval else "auto"
      for split in self.task.predict_splits:
        predictions = self.predict(split, checkpoint_path=source)
        self._claim()
        metrics = self.task.postprocess(split, predictions, c.output_dir)
        results.update({f"{split}/{k}": v for k, v in (metrics or {}).items()})
    if self._summaries is not None:
      self._summaries.flush()
    return results

  # ------------------------------------------------------------------------------ train
  def _train(self, do_eval: bool) -> Dict[str, float]:
    c = self.config
    if self.run_dir.state_steps():  # its input position must not be restored over other data
      self.run_dir.check_train_data(self.task.data_fingerprint("train"))
    initial = None
    # Checkpoints an earlier (killed) run saved but did not score, or scored on other eval data.
    if do_eval and self.evaluator.unscored_steps():
      initial = [v.numpy() for v in self.model.weights]  # the fresh initialisation
      self.evaluator.evaluate_checkpoints()
    # The input position is part of the resume state. On one device (the default strategy) the
    # iterator itself is checkpointed; tf.distribute's iterators cannot be, so there the input
    # is rebuilt and the batches of the steps already done are skipped (exact, but read again).
    single = self.strategy is tf.distribute.get_strategy()  # the default strategy
    dataset = lambda skip=0: distribute.distributed_dataset(  # noqa: E731
        self.strategy, self.task, "train", c.train_batch_size, skip_steps=skip)
    iterator = iter(dataset()) if single else None
    resume = ResumeState(self.run_dir, self.optimizer.iterations, c.keep_checkpoint_max,
                         self.log, self.chief, model=self.model, optimizer=self.optimizer,
                         **({"iterator": iterator} if single else {}))
    self.optimizer.iterations.assign(0)
    self.evaluator.weights_source = None
    if not resume.restore():
      if initial is not None:  # scoring loaded other weights: back to the fresh ones
        for var, value in zip(self.model.weights, initial):
          var.assign(value)
        self.optimizer.iterations.assign(0)
      if c.init_checkpoint:
        report = self.task.initialize(self.model, c.init_checkpoint, c.init_from_group0)
        self.log(report.format())
      else:
        self.log(self.task.initial_weights_note() or
                 "Training from scratch (no checkpoint in --output_dir, no --init_checkpoint)")
    self._claim()
    if not single:
      iterator = iter(dataset(self.global_step))

    train_loop = self.make_train_loop()
    agreed = distribute.make_stop_agreement(self.strategy)
    results: Dict[str, float] = {}
    with StopRequest("loop") as stop, NamedInputErrors(self.task.input_files("train"), "train"):
      while self.global_step < self.num_train_steps:
        step = self.global_step
        to_save = c.save_checkpoints_steps - step % c.save_checkpoints_steps
        steps = min(c.iterations_per_loop, to_save, self.num_train_steps - step)
        for metric in self.train_metrics.values():
          metric.reset_state()
        loop_start = time.time()
        out = train_loop(iterator, tf.constant(steps))
        bad_step = int(out["bad_step"].numpy())
        if bad_step >= 0:
          raise TrainingError(
              f"the loss became {float(out['loss'].numpy())} (gradient norm "
              f"{float(out['norm'].numpy())}) at step {bad_step}; stopping. Nothing after the "
              f"last checkpoint was saved: {resume.latest or 'none yet'}")
        step = self.global_step
        self._log_progress(step, steps, out, time.time() - loop_start)
        # Every worker stops at the same step when any was asked to (a preempted machine).
        stopping = agreed(stop.requested)
        why = "" if stop.requested or not stopping else "another worker was asked to stop; "
        if step % c.save_checkpoints_steps == 0 or step >= self.num_train_steps:
          self._save(resume, do_eval)
          if do_eval:
            results = self.evaluator.evaluate()
            self.evaluator.record(results, step)
            self.run_dir.prune(c.keep_checkpoint_max)
        elif stopping:
          resume.save(step)  # every worker takes part; only the chief's files are kept
          raise Interrupted(f"at step {step} of {self.num_train_steps}; {why}the resume state "
                            f"is saved in {self.state_dir}; rerun the same command to resume")
        if stopping:
          raise Interrupted(f"at step {step} of {self.num_train_steps}; {why}the checkpoint "
                            f"{self.run_dir.prefix(step)} is saved; rerun the same command to "
                            "resume")
    if do_eval and not results:  # nothing left to train: the results recorded for this step
      results = self.evaluator.recorded(self.global_step)
    return results

  def _save(self, resume: ResumeState, do_eval: bool) -> str:
    """Saves the resume state and the TF1-name weights; returns the TF1 prefix."""
    step = self.global_step
    resume.save(step)
    prefix = self.run_dir.prefix(step)
    if self.chief:
      output_dir = self.config.output_dir
      checkpoint.save_tf1_checkpoint(self.model, os.path.join(output_dir, TF1_PREFIX),
                                     global_step=step)
      if not do_eval and not self.task.keep_unscored_checkpoints:
        self.run_dir.prune(self.config.keep_checkpoint_max)  # with eval: once scored
      checkpoint.write_checkpoint_state(output_dir, os.path.basename(prefix))
      self.log(f"Saved {prefix} (resume state in {self.state_dir})")
    return prefix

  def _log_progress(self, step: int, steps: int, out: Dict[str, tf.Tensor],
                    seconds: float) -> None:
    """One line per loop (metrics averaged over the loop; the ETA at the loop's pace)."""
    values = {k: float(m.result().numpy()) for k, m in self.train_metrics.items()}
    lr = float(self.schedule(step - 1).numpy()) if step > 0 else 0.0
    norm = float(out["norm"].numpy())
    seconds = max(seconds, 1e-9)
    examples_per_second = float(out["examples"].numpy()) / seconds
    tokens_per_second = float(out["tokens"].numpy()) / seconds
    eta = _format_duration((self.num_train_steps - step) * seconds / steps)
    shown = " | ".join(f"{k} {v:.4f}" for k, v in values.items())
    n = self.config.gradient_accumulation_steps
    micro = (f" | micro-batch {step * n}/{self.num_train_steps * n} ({n} per step)"
             if n > 1 else "")
    self.log(f"step {step}/{self.num_train_steps}{micro} | {shown} | lr {lr:.3g} | grad_norm "
             f"{norm:.3g} | {examples_per_second:.1f} examples/s | ETA {eta}")
    if not self.chief:
      return
    if self._summaries is None:
      self._summaries = tf.summary.create_file_writer(
          os.path.join(self.config.output_dir, "summaries", "train"))
    with self._summaries.as_default():
      for key, value in values.items():
        tf.summary.scalar(key, value, step=step)
      tf.summary.scalar("learning_rate", lr, step=step)
      tf.summary.scalar("gradient_norm", norm, step=step)
      tf.summary.scalar("examples_per_second", examples_per_second, step=step)
      tf.summary.scalar("tokens_per_second", tokens_per_second, step=step)
