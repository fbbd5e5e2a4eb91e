"""The Trainer's evaluation half: one-pass evaluation, prediction, scoring every checkpoint.

`Evaluation` is a base class of `albert.train.trainer.Trainer` (kept apart so that each file reads
top to bottom); it uses the Trainer's `task`, `config`, `strategy`, `model`, `optimizer`
(its `iterations` is the global step), `eval_metrics`, `run_dir`, `chief`, `log`,
`_distributed`, `_model_inputs`, `_prepare` and `_build`.

* `evaluate(split)`: the model's current weights on every example of the split once (batches
  padded with rows whose `is_real_example` is 0, which the task's metrics weigh 0), or, for a
  task whose eval input streams, `max_eval_steps` batches; a task with `eval_by_predict` is
  scored by `predict` + its `postprocess`.
* `predict(split, checkpoint_path)`: the task's per-example outputs for every real example, in
  input order (rows carry `row_index`), gathered from every replica.
* Both stop after the current batch on Ctrl-C or SIGTERM (`train_loop.StopRequest`, the
  training loop's mechanism), before anything of theirs is written: one `stopped:` line.
* `evaluate_checkpoints()`: every `model.ckpt-N` of output_dir without a result recorded on
  the current eval data (`_eval_data_key`: a changed dev set scores every checkpoint again and
  chooses the best again), in step order; each result is appended to eval_results.txt and may
  become `model.ckpt-best`.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from albert import checkpoint
from albert.data import cache as cache_lib
from albert.errors import InputError, Interrupted, TrainingError
from albert.train.input_pipeline import IS_REAL, ROW_INDEX
from albert.train.run_dir import TF1_PREFIX
from albert.train.loop import StopRequest


class Evaluation:
  """Evaluation and prediction methods of the Trainer; see the module docstring."""

  def _load_weights(self, source: str, step: Optional[int] = None) -> None:
    """Loads a TF1-name checkpoint into the model (every variable required) for eval/predict."""
    if self._weights_source == source:
      return
    report = checkpoint.load_tf1_checkpoint(self.model, source, require_all=True)
    if step is None:
      step = _checkpoint_step(report.checkpoint)
    self.optimizer.iterations.assign(step)
    self._weights_source = source

  def _make_eval_step(self):
    model, task, metrics = self.model, self.task, self.eval_metrics

    def replica_step(features):
      outputs = model(self._model_inputs(features), training=False)
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
    """Scores the model's current weights on `split`: one pass (or `max_eval_steps` batches)."""
    self._prepare([split])
    self._build()
    if self.task.eval_by_predict:
      results = {"global_step": self.global_step}
      extra = self.task.extra_eval_splits if split == "eval" else ()
      for part in (split,) + tuple(extra):
        predictions = self.predict(part, checkpoint_path=None)
        results.update(self.task.postprocess(part, predictions, self.config.output_dir))
      return results
    for metric in self.eval_metrics.values():
      metric.reset_state()
    if self._eval_step is None:
      self._eval_step = self._make_eval_step()
    if split not in self._datasets:
      self._datasets[split] = self._distributed(split, self.config.eval_batch_size)
    cap = self.config.max_eval_steps if self.task.eval_streams else None
    with self._named_input_errors(split), StopRequest("batch") as stop:
      for steps, features in enumerate(self._datasets[split]):  # the same batches every time
        if cap is not None and steps >= cap:
          break
        self._eval_step(features)
        if stop.requested:
          raise self._stopped(f"evaluating the {split} split", steps + 1)
    results = {"global_step": self.global_step}
    results.update({k: float(m.result().numpy()) for k, m in self.eval_metrics.items()})
    return results

  # ------------------------------------------------------------------------------ predict
  def _make_predict_step(self):
    model, task, strategy = self.model, self.task, self.strategy

    def replica_step(features):
      outputs = model(self._model_inputs(features), training=False)
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

  def predict(self, split: str = "predict", checkpoint_path: Optional[str] = "auto"
              ) -> Dict[str, np.ndarray]:
    """The task's per-example outputs for every real example of `split`, in input order.

    `checkpoint_path`: a TF1-name checkpoint to load first; "auto" picks as `--do_predict`
    does (see `TrainerConfig.predict_checkpoint`); None uses the current weights.
    """
    self._prepare([split])
    self._build()
    if checkpoint_path == "auto":
      checkpoint_path = self._predict_source()
    if checkpoint_path:
      self._load_weights(checkpoint_path)
      self.log(f"Predicting {split} with {checkpoint_path} (step {self.global_step})")
    self.task.weights_source = self._weights_source or self.run_dir.prefix(self.global_step)
    if self._predict_step is None:
      self._predict_step = self._make_predict_step()
    step = self._predict_step
    key = f"predict:{split}"
    if key not in self._datasets:
      batch = self._predict_batch_size if split == "predict" else self.config.eval_batch_size
      self._datasets[key] = self._distributed(split, batch)
    chunks: Dict[str, List[np.ndarray]] = {}
    with self._named_input_errors(split), StopRequest("batch") as stop:
      for batches, features in enumerate(self._datasets[key], 1):
        for name, value in step(features).items():
          chunks.setdefault(name, []).append(value.numpy())
        if stop.requested:
          raise self._stopped(f"predicting the {split} split", batches)
    if not chunks:
      raise InputError(f"{split}: the input has no example")
    merged = {name: np.concatenate(parts, axis=0) for name, parts in chunks.items()}
    real = merged[IS_REAL] > 0
    order = np.argsort(merged[ROW_INDEX][real], kind="stable")
    return {name: value[real][order] for name, value in merged.items()}

  def _stopped(self, doing: str, batches: int) -> Interrupted:
    """The error of an evaluation or prediction stopped by Ctrl-C or SIGTERM (see StopRequest)."""
    return Interrupted(f"at step {self.global_step}, while {doing} ({batches} batch(es) done); "
                       "none of its results was written; rerun the same command to resume")

  def _predict_source(self) -> Optional[str]:
    """Where `--do_predict` reads weights: explicit, else best, else latest, else init."""
    c = self.config
    if c.predict_checkpoint:
      return c.predict_checkpoint
    if os.path.exists(self.run_dir.best_prefix + ".index"):
      return self.run_dir.best_prefix
    steps = self.run_dir.steps()
    if steps:
      return self.run_dir.prefix(steps[-1])
    if c.init_checkpoint:
      return c.init_checkpoint
    raise TrainingError(f"--do_predict needs a checkpoint: none in --output_dir "
                        f"({c.output_dir}) and no --init_checkpoint")

  # ----------------------------------------------------------------- scoring checkpoints
  def _eval_data_key(self) -> Optional[str]:
    """A fingerprint of what `evaluate()` scores: the eval split and the task's extra eval
    splits (each's `data_fingerprint`, else the path, size and time of its files), and for a
    streaming eval the batches it takes. Results are recorded with it."""
    self._prepare(["eval"])
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

  def _unscored_steps(self) -> List[int]:
    scored = self._scored()
    return [s for s in self.run_dir.steps() if s not in scored]

  def _before_rescoring(self, pending: List[int], data: Optional[str]) -> None:
    """Restores `model.ckpt-best`'s source if the best was chosen on other eval data and its
    source pruned since (so that the best is chosen again among all), and says which pending
    checkpoints have results on other eval data."""
    metric = self.task.best_metric
    stale = self.run_dir.stale_best(metric, data) if metric else None
    if stale is not None and self.chief and int(stale["step"]) not in self.run_dir.steps():
      self._claim()
      restored = self.run_dir.restore_from_best(int(stale["step"]))
      self.log(f"{self.run_dir.best_prefix} was chosen on other eval data, and its source was "
               f"pruned since: restored {restored} from it, to score it again")
      pending[:] = self._unscored_steps()
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
    the current eval data."""
    self._prepare(["eval"])
    self._build()
    pending = self._unscored_steps()
    self._before_rescoring(pending, self._eval_data_key())
    if pending:
      self._claim()
      self.log(f"Scoring {len(pending)} checkpoint(s) without a result: "
               + ", ".join(f"{TF1_PREFIX}-{s}" for s in pending))
    results = []
    for step in pending:
      self._load_weights(self.run_dir.prefix(step), step)
      self.log(f"Evaluating {self.run_dir.prefix(step)} (step {step})")
      result = self.evaluate()
      self._record_eval(result, step)
      results.append(result)
    return results

  def _record_eval(self, results: Dict[str, float], step: Optional[int]) -> None:
    """Logs; keeps the best checkpoint; appends to eval_results.txt (last); writes summaries."""
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
    with self._writer("eval").as_default():
      for key, value in results.items():
        if key != "global_step":
          tf.summary.scalar(key, value, step=int(results["global_step"]))
    self._writer("eval").flush()

  def _writer(self, name: str):
    if name not in self._writers:
      self._writers[name] = tf.summary.create_file_writer(
          os.path.join(self.config.output_dir, "summaries", name))
    return self._writers[name]

  def _log_eval(self, results: Dict[str, float], recorded: Optional[int] = None) -> None:
    """The original's block; `recorded`: the step of results read back, not scored now."""
    if recorded is None:
      self.log("***** Eval results *****")
    else:
      self.log(f"***** Recorded eval results of {TF1_PREFIX}-{recorded} (scored earlier on "
               "the same eval data) *****")
    for key in sorted(results):
      self.log(f"  {key} = {results[key]}")

  def _evaluate_only(self) -> Dict[str, float]:
    if self.run_dir.steps():
      fresh = {int(r["global_step"]) for r in self.evaluate_checkpoints()}
      latest = self.run_dir.steps()[-1]
      results = self._scored().get(latest, {})
      if results and latest not in fresh:
        self._log_eval(results, recorded=latest)
      return dict(results)
    if not self.config.init_checkpoint:
      raise TrainingError(f"--do_eval without --do_train needs a checkpoint in --output_dir "
                          f"({self.config.output_dir}) or --init_checkpoint")
    self._load_weights(self.config.init_checkpoint)
    self._claim()
    self.log(f"Evaluating {self.config.init_checkpoint} (step {self.global_step})")
    results = self.evaluate()
    self._record_eval(results, None)
    return results


def _checkpoint_step(prefix: str) -> int:
  """The `global_step` stored in a checkpoint (0 when it has none)."""
  try:
    reader = checkpoint.open_reader(prefix)
    if reader.has_tensor("global_step"):
      return int(reader.get_tensor("global_step"))
  except Exception:  # pylint: disable=broad-except  (a missing step is not an error)
    pass
  return 0
