"""The Evaluator the Trainer holds: one-pass evaluation, prediction, scoring every checkpoint.

`Evaluator(task, config, strategy, run_dir, model, step, ...)` scores and predicts with a built
model whose task has prepared the splits it reads (the Trainer's `evaluate`, `predict` and
`evaluate_checkpoints` prepare and build, then call it):

* `evaluate(split)`: the model's current weights on every example of the split once (batches
  padded with rows whose `is_real_example` is 0, which the task's metrics weigh 0), or, for a
  task whose eval input streams, `max_eval_steps` batches; a task with `eval_by_predict` is
  scored by `predict` + its `postprocess`.
* `predict(split, checkpoint_path)`: the task's `prediction_outputs` for every real example, in
  input order (rows carry `row_index`), gathered from every replica.
* Both stop after the current batch on Ctrl-C or SIGTERM (`loop.StopRequest`, the training
  loop's mechanism), before anything of theirs is written: one `stopped:` line.
* `evaluate_checkpoints()`: every `model.ckpt-N` of output_dir without a result recorded on the
  current eval data (a changed dev set scores every checkpoint again and chooses the best
  again), in step order; `record(results, step)` appends each result to eval_results.txt, may
  make it `model.ckpt-best`, and writes its summaries; `evaluate_run()` is `--do_eval` without
  training.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf
import tf_keras

from albert import checkpoint
from albert.data import cache as cache_lib
from albert.errors import CheckpointError, InputError, Interrupted, TrainingError
from albert.hf import names
from albert.train.distribute import distributed_dataset
from albert.train.input_pipeline import IS_REAL, ROW_INDEX
from albert.train.loop import NamedInputErrors, StopRequest, model_inputs
from albert.train.run_dir import TF1_PREFIX, RunDir, checkpoint_step
from albert.train.task import Task


class Evaluator:
  """Evaluation and prediction of one task's model; see the module docstring.

  Args:
    task: the task, its splits prepared.
    config: the run's `TrainerConfig` (batch sizes, `max_eval_steps`, XLA, output_dir,
      init_checkpoint).
    strategy: the distribution strategy the model was built in.
    run_dir: the run's output directory.
    model: the task's built model.
    step: the variable holding the global step (the optimizer's `iterations`); loading a
      checkpoint sets it to the checkpoint's.
    chief: whether this process writes the results.
    log: where lines go.
    claim: called before the first write into output_dir (the Trainer claims the directory).
  """

  def __init__(self, task: Task, config, strategy: tf.distribute.Strategy, run_dir: RunDir,
               model: tf_keras.Model, step: tf.Variable, *, chief: bool = True,
               log: Callable[[str], None], claim: Callable[[], None] = lambda: None):
    self.task = task
    self.config = config
    self.strategy = strategy
    self.run_dir = run_dir
    self.model = model
    self.step = step
    self.chief = chief
    self.log = log
    self.claim = claim
    with strategy.scope():
      self.metrics = task.build_metrics()
    # The checkpoint the model's weights are now (None: trained in memory, or fresh).
    self.weights_source: Optional[str] = None
    self._eval_step = None
    self._predict_step = None
    self._datasets: Dict[str, tf.distribute.DistributedDataset] = {}
    self._summaries: Optional[tf.summary.SummaryWriter] = None

  @property
  def global_step(self) -> int:
    return int(self.step.numpy())

  def load_weights(self, source: str, step: Optional[int] = None) -> None:
    """Loads a TF1-name checkpoint into the model (every variable required); the global step
    becomes `step`, else the one the checkpoint records."""
    if self.weights_source == source:
      return
    report = checkpoint.load_tf1_checkpoint(self.model, source, require_all=True)
    folder = checkpoint.hf_settings(source)
    if folder is not None:  # an HF classifier's rows follow its id2label
      order, other = names.label_order(folder.labels, self.task.head_labels())
      if other:
        raise CheckpointError(f"{source}: {other}, so its head cannot score this task "
                              "(fine-tune it with --do_train first)")
      if order is not None:
        self.log(checkpoint.reorder_head_rows(checkpoint.variables_by_name(self.model), order,
                                              folder.labels, self.task.head_labels()))
    self.step.assign(checkpoint_step(report.checkpoint) if step is None else step)
    self.weights_source = source

  def _dataset(self, key: str, split: str, batch: int):
    if key not in self._datasets:  # the same batches every time
      self._datasets[key] = distributed_dataset(self.strategy, self.task, split, batch)
    return self._datasets[key]

  def _stopped(self, doing: str, batches: int) -> Interrupted:
    """The error of an evaluation or prediction stopped by Ctrl-C or SIGTERM (see StopRequest)."""
    return Interrupted(f"at step {self.global_step}, while {doing} ({batches} batch(es) done); "
                       "none of its results was written; rerun the same command to resume")

  # ------------------------------------------------------------------------------ evaluate
  def _make_eval_step(self):
    model, task, metrics = self.model, self.task, self.metrics

    def replica_step(features):
      outputs = model(model_inputs(model, features), training=False)
      _, aux = task.compute_loss(features, outputs)
      task.update_metrics(metrics, features, aux)

    if self.config.enable_xla:
      replica_step = tf.function(replica_step, jit_compile=True)
    strategy = self.strategy

    @tf.function(reduce_retracing=True)
    def eval_step(features):
      strategy.run(replica_step, args=(features,))

    return eval_step

  def evaluate(self, split: str = "eval") -> Dict[str, float]:
    """Scores the model's current weights on `split`: one pass (or `max_eval_steps` batches).

    Returns:
      `global_step` and the task's metrics (an `eval_by_predict` task: its `postprocess`'s
      results on `split` and, for "eval", on its `extra_eval_splits`).
    """
    if self.task.eval_by_predict:
      results = {"global_step": self.global_step}
      extra = self.task.extra_eval_splits if split == "eval" else ()
      for part in (split,) + tuple(extra):
        predictions = self.predict(part)
        results.update(self.task.postprocess(part, predictions, self.config.output_dir))
      return results
    for metric in self.metrics.values():
      metric.reset_state()
    if self._eval_step is None:
      self._eval_step = self._make_eval_step()
    dataset = self._dataset(split, split, self.config.eval_batch_size)
    cap = self.config.max_eval_steps if self.task.eval_streams else None
    with NamedInputErrors(self.task.input_files(split), split), StopRequest("batch") as stop:
      for steps, features in enumerate(dataset):
        if cap is not None and steps >= cap:
          break
        self._eval_step(features)
        if stop.requested:
          raise self._stopped(f"evaluating the {split} split", steps + 1)
    results = {"global_step": self.global_step}
    results.update({k: float(m.result().numpy()) for k, m in self.metrics.items()})
    return results

  # ------------------------------------------------------------------------------- predict
  def make_predict_step(self):
    """The compiled prediction step: a distributed batch -> the task's `prediction_outputs`
    with `row_index` and `is_real_example`, gathered from every replica."""
    model, task, strategy = self.model, self.task, self.strategy

    def replica_step(features):
      outputs = model(model_inputs(model, features), training=False)
      result = dict(task.prediction_outputs(features, outputs))
      result[ROW_INDEX] = features[ROW_INDEX]
      result[IS_REAL] = features[IS_REAL]
      return result

    if self.config.enable_xla:
      replica_step = tf.function(replica_step, jit_compile=True)

    @tf.function(reduce_retracing=True)
    def predict_step(features):
      per_replica = strategy.run(replica_step, args=(features,))
      return tf.nest.map_structure(lambda v: strategy.gather(v, axis=0), per_replica)

    return predict_step

  def predict(self, split: str = "predict", checkpoint_path: Optional[str] = None
              ) -> Dict[str, np.ndarray]:
    """The task's per-example outputs for every real example of `split`, in input order.

    Args:
      split: a prepared split.
      checkpoint_path: a TF1-name checkpoint to load first; None: the current weights.

    Returns:
      numpy arrays by name: `prediction_outputs`, `row_index`, `is_real_example`.
    """
    if checkpoint_path:
      self.load_weights(checkpoint_path)
      self.log(f"Predicting {split} with {checkpoint_path} (step {self.global_step})")
    self.task.weights_source = self.weights_source or self.run_dir.prefix(self.global_step)
    if self._predict_step is None:
      self._predict_step = self.make_predict_step()
    batch = self.config.predict_batch if split == "predict" else self.config.eval_batch_size
    chunks: Dict[str, List[np.ndarray]] = {}
    with NamedInputErrors(self.task.input_files(split), split), StopRequest("batch") as stop:
      for batches, features in enumerate(self._dataset(f"predict:{split}", split, batch), 1):
        for name, value in self._predict_step(features).items():
          chunks.setdefault(name, []).append(value.numpy())
        if stop.requested:
          raise self._stopped(f"predicting the {split} split", batches)
    if not chunks:
      raise InputError(f"{split}: the input has no example")
    merged = {name: np.concatenate(parts, axis=0) for name, parts in chunks.items()}
    real = merged[IS_REAL] > 0
    order = np.argsort(merged[ROW_INDEX][real], kind="stable")
    return {name: value[real][order] for name, value in merged.items()}

  # ----------------------------------------------------------------- scoring checkpoints
  def _eval_data_key(self) -> Optional[str]:
    """A fingerprint of what `evaluate()` scores: the eval split and the task's extra eval
    splits (each's `data_fingerprint`, else the path, size and time of its files), and for a
    streaming eval the batches it takes. Results are recorded with it."""
    splits = ("eval",) + (tuple(self.task.extra_eval_splits) if self.task.eval_by_predict
                          else ())
    parts = []
    for split in splits:
      key = self.task.data_fingerprint(split)
      if key == "":  # data of the run itself (e.g. SQuAD's held-out training articles)
        continue
      if key is None and self.task.input_files(split):
        key = cache_lib.files_identity(self.task.input_files(split))
      parts.append(key)
    if all(part is None for part in parts):
      return None
    if self.task.eval_streams:
      parts.append(f"{self.config.max_eval_steps} batches of {self.config.eval_batch_size}")
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

  def _scored(self) -> Dict[int, Dict[str, float]]:
    """global_step -> its results recorded on the current eval data."""
    return self.run_dir.scored(self._eval_data_key())

  def unscored_steps(self) -> List[int]:
    """The steps N of the `model.ckpt-N` without a result recorded on the current eval data."""
    scored = self._scored()
    return [s for s in self.run_dir.steps() if s not in scored]

  def recorded(self, step: int, announce: bool = True) -> Dict[str, float]:
    """The results recorded for `model.ckpt-<step>` on the current eval data ({} if none);
    `announce`: log them, as results scored earlier."""
    results = dict(self._scored().get(step, {}))
    if results and announce:
      self._log_eval(results, recorded=step)
    return results

  def _before_rescoring(self, pending: List[int], data: Optional[str]) -> None:
    """Restores `model.ckpt-best`'s source if the best was chosen on other eval data and its
    source pruned since (so that the best is chosen again among all), and says which pending
    checkpoints have results on other eval data."""
    metric = self.task.best_metric
    stale = self.run_dir.stale_best(metric, data) if metric else None
    if stale is not None and self.chief and int(stale["step"]) not in self.run_dir.steps():
      self.claim()
      restored = self.run_dir.restore_from_best(int(stale["step"]))
      self.log(f"{self.run_dir.best_prefix} was chosen on other eval data, and its source was "
               f"pruned since: restored {restored} from it, to score it again")
      pending[:] = self.unscored_steps()
    names = lambda steps: ", ".join(f"{TF1_PREFIX}-{s}" for s in steps)  # noqa: E731
    other = {int(r["global_step"]) for r in self.run_dir.eval_records()}
    changed = [s for s in pending if s in other]
    unknown = [s for s in pending if s in self.run_dir.scored_steps() and s not in other]
    if changed:
      self.log(f"The eval data changed since {names(changed)} "
               f"{'was' if len(changed) == 1 else 'were'} scored: scoring again on the current "
               "data, and choosing the best checkpoint again")
    if unknown:
      self.log(f"{names(unknown)} {'was' if len(unknown) == 1 else 'were'} scored on eval data "
               "that was not recorded (an earlier version's run): scoring again, and choosing "
               "the best checkpoint again")

  def evaluate_checkpoints(self) -> List[Dict[str, float]]:
    """Scores, in step order, every `model.ckpt-N` of output_dir without a result recorded on
    the current eval data; returns their results."""
    pending = self.unscored_steps()
    self._before_rescoring(pending, self._eval_data_key())
    if pending:
      self.claim()
      self.log(f"Scoring {len(pending)} checkpoint(s) without a result: "
               + ", ".join(f"{TF1_PREFIX}-{s}" for s in pending))
    results = []
    for step in pending:
      self.load_weights(self.run_dir.prefix(step), step)
      self.log(f"Evaluating {self.run_dir.prefix(step)} (step {step})")
      result = self.evaluate()
      self.record(result, step)
      results.append(result)
    return results

  def evaluate_run(self) -> Dict[str, float]:
    """`--do_eval` without training: every checkpoint without a result, then the results of the
    latest; with no checkpoint in output_dir, `init_checkpoint`'s."""
    if self.run_dir.steps():
      fresh = {int(r["global_step"]) for r in self.evaluate_checkpoints()}
      latest = self.run_dir.steps()[-1]
      return self.recorded(latest, announce=latest not in fresh)
    source = self.config.init_checkpoint
    if not source:
      raise TrainingError(f"--do_eval without --do_train needs a checkpoint in --output_dir "
                          f"({self.config.output_dir}) or --init_checkpoint")
    self.load_weights(source)
    self.claim()
    self.log(f"Evaluating {source} (step {self.global_step})")
    results = self.evaluate()
    self.record(results, None)
    return results

  def record(self, results: Dict[str, float], step: Optional[int]) -> None:
    """Logs the results of `model.ckpt-<step>` (None: of weights outside output_dir); on the
    chief, keeps the best checkpoint, appends to eval_results.txt (last) and writes summaries."""
    self._log_eval(results)
    if not self.chief:
      return
    metric = self.task.best_metric
    data = self._eval_data_key()
    if metric and step is not None and metric in results:
      self.run_dir.update_best(step, metric, results[metric],
                               self.task.best_metric_higher_is_better, log=self.log, data=data)
    if step is None:
      self.run_dir.append_results(results)
    else:
      self.run_dir.record_eval(step, results, data)
    if self._summaries is None:
      self._summaries = tf.summary.create_file_writer(
          os.path.join(self.config.output_dir, "summaries", "eval"))
    with self._summaries.as_default():
      for key, value in results.items():
        if key != "global_step":
          tf.summary.scalar(key, value, step=int(results["global_step"]))
    self._summaries.flush()

  def _log_eval(self, results: Dict[str, float], recorded: Optional[int] = None) -> None:
    """The original's block; `recorded`: the step of results read back, not scored now."""
    if recorded is None:
      self.log("***** Eval results *****")
    else:
      self.log(f"***** Recorded eval results of {TF1_PREFIX}-{recorded} (scored earlier on "
               "the same eval data) *****")
    for key in sorted(results):
      self.log(f"  {key} = {results[key]}")
