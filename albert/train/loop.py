"""The compiled training loop and the run-time guards around it.

* `model_inputs(model, features)`: the features a model takes, out of a batch.
* `make_train_loop(...)`: the compiled host loop of training, usable around any model and
  optimizer (the Trainer's; the pretraining benchmark runs tf-models-official's model through it).
  Each optimizer step on every replica: forward (over each micro-batch in turn), the loss
  normalised by the global batch's weights, gradients summed over micro-batches and replicas
  (dense: the norm is that of the true gradient on every device), clipped to a global norm,
  applied; the task's metrics updated; examples and real tokens counted from the batches seen.
* `StopRequest`: Ctrl-C and SIGTERM. While a loop runs (training, evaluation, prediction), the
  first one only asks the run to stop after the current host loop or batch (so that the state
  can be saved, and nothing half-done is written); a second one stops at once; elsewhere in a
  run, at once.
* `NamedInputErrors`: tf.data's DataLossError names only a byte offset; this finds and names the
  corrupted record file. An input check inside the pipeline (`input_pipeline.check_ids_below`)
  becomes an InputError instead of a bug-shaped InvalidArgumentError.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable, Dict, List, Optional

import tensorflow as tf
import tf_keras

from albert import layers, optimization
from albert.errors import InputError
from albert.train.input_pipeline import INPUT_CHECK_MARK, corrupted_records_error
from albert.train.task import Task


def model_inputs(model: tf_keras.Model, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """The features `model` takes (labels, weights and ids stay with the task)."""
  names = model.input if isinstance(model.input, dict) else None
  return {k: v for k, v in features.items() if names is None or k in names}


def count_batch(features: Dict[str, tf.Tensor]):
  """(examples, real tokens) of one batch: rows, and non-zero `input_mask` entries."""
  first = next(iter(features.values()))
  examples = tf.shape(first)[0]
  if "input_mask" in features:
    tokens = tf.reduce_sum(tf.cast(tf.not_equal(features["input_mask"], 0), tf.int64))
  else:
    tokens = tf.cast(tf.size(first), tf.int64)
  return tf.cast(examples, tf.int64), tokens


def make_train_loop(strategy: tf.distribute.Strategy,
                    forward: Callable[[Dict[str, tf.Tensor]], Dict[str, tf.Tensor]],
                    variables: Callable[[], List[tf.Variable]], optimizer, task: Task,
                    metrics, *, clip_norm: float = 1.0, enable_xla: bool = False,
                    dense_gradients: bool = True, accumulation_steps: int = 1):
  """The compiled host loop of training: `train_loop(iterator, steps) -> dict`.

  Each optimizer step, on every replica: the replica's batch is cut into `accumulation_steps`
  micro-batches; for each in turn, `forward(micro-batch)` (training mode) -> the task's loss,
  normalised by the global batch's weight sums (`Task.loss_weights`: the MLM loss by every
  replica's and micro-batch's real masked positions, a mean over rows by all the rows), scaled
  when `optimizer` is a LossScaleOptimizer -> gradients of `variables()`, added up (the
  micro-batches are unrolled in the graph, each waiting for the sums of the one before: a
  tf.while_loop would keep one copy, but its runs differed in the last bits between
  processes, which breaks the exact resume); then the
  sums are summed over replicas -> clipped to global norm `clip_norm` once -> applied once. So
  any number of micro-batches and replicas computes the loss, gradient and update of one batch
  of the global size on one device. Dropout masks depend on the step and each example's
  position in the global batch (`albert.layers.dropout_context`). The task's metrics are
  updated per micro-batch. `dense_gradients` (the Trainer's choice) turns the IndexedSlices of
  embedding lookups into dense tensors and sums them with one explicit all-reduce; False leaves
  them sparse and lets `apply_gradients` aggregate them, as tf-models-official's trainer does
  (the pretraining benchmark runs its peer through this loop that way; accumulated gradients
  are always dense). `enable_xla` compiles the replica step with XLA. Returns `loss` (the
  global batch's, of the last step) and `norm` (of its summed gradient, before clipping),
  `bad_step` (the step whose loss, or without loss scaling gradient norm, was not finite; -1
  when none was; the loop stops there), and `examples` / `tokens` seen (all replicas).
  """
  if accumulation_steps < 1:
    raise ValueError(f"accumulation_steps must be at least 1, got {accumulation_steps}")
  loss_scaled = isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer)

  def micro_step(features, totals, first_row):
    """(loss part, gradients of `variables()` or None) of one micro-batch."""
    rows = tf.shape(next(iter(features.values())))[0]
    with layers.dropout_context(optimizer.iterations, first_row, rows):
      with tf.GradientTape() as tape:
        loss, aux = task.compute_loss(features, forward(features))
        terms = task.loss_terms(loss, aux)
        weights = task.loss_weights(features)
        if sorted(terms) != sorted(weights):
          raise ValueError(f"task {task.name}: loss_terms {sorted(terms)} and loss_weights "
                           f"{sorted(weights)} name different terms")
        part = tf.add_n([terms[name] * (denominator(weight) / denominator(totals[name]))
                         for name, (weight, denominator) in sorted(weights.items())])
        scaled = optimizer.get_scaled_loss(part) if loss_scaled else part
      grads = tape.gradient(scaled, variables())
    task.update_metrics(metrics, features, aux)
    return part, grads

  def replica_step(features):
    context = tf.distribute.get_replica_context()
    rows = tf.shape(next(iter(features.values())))[0]  # this replica's share of the batch
    first_row = tf.cast(context.replica_id_in_sync_group, tf.int64) * tf.cast(rows, tf.int64)
    weights = task.loss_weights(features)
    names = sorted(weights)
    sums = context.all_reduce(tf.distribute.ReduceOp.SUM,
                              tf.stack([tf.cast(weights[n][0], tf.float32) for n in names]))
    totals = {name: sums[i] for i, name in enumerate(names)}
    trainable = variables()
    if accumulation_steps == 1:
      loss, grads = micro_step(features, totals, first_row)
    else:
      # The micro-batches one after the other (each waits for the sums of the one before, so
      # that only one micro-batch's activations are alive at a time), unrolled: N copies of the
      # step in the graph.
      micro = rows // accumulation_steps
      loss, grads = tf.constant(0.0), None
      for i in range(accumulation_steps):
        with tf.control_dependencies([g for g in grads or [] if g is not None]):
          part = {k: tf.identity(v[i * micro:(i + 1) * micro]) for k, v in features.items()}
        part_loss, part_grads = micro_step(part, totals,
                                           first_row + tf.cast(i * micro, tf.int64))
        part_grads = [tf.convert_to_tensor(g) if g is not None else None for g in part_grads]
        if loss_scaled:  # unscaled before they are added up
          kept = optimizer.get_unscaled_gradients([g for g in part_grads if g is not None])
          part_grads = [kept.pop(0) if g is not None else None for g in part_grads]
        loss += part_loss
        grads = part_grads if grads is None else [
            a + g if g is not None else a for a, g in zip(grads, part_grads)]
    # Variables the loss does not reach (SQuAD never uses the pooler) get no update at all, as
    # in the original (a zero gradient would still let weight decay shrink them).
    used = [(g, v) for g, v in zip(grads, trainable) if g is not None]
    grads, trainable = [g for g, _ in used], [v for _, v in used]
    dense = dense_gradients or accumulation_steps > 1
    if dense:
      grads = [tf.convert_to_tensor(g) for g in grads]
    if loss_scaled and accumulation_steps == 1:
      grads = optimizer.get_unscaled_gradients(grads)
    if dense:
      grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    grads, norm = optimization.clip_gradients(grads, clip_norm)
    if dense:  # summed above
      optimizer.apply_gradients(zip(grads, trainable), skip_gradients_aggregation=True)
    else:  # (a legacy OptimizerV2, such as tf-models' LAMB, has no such argument)
      optimizer.apply_gradients(zip(grads, trainable))
    examples, tokens = count_batch(features)
    return loss, norm, examples, tokens

  if enable_xla:
    replica_step = tf.function(replica_step, jit_compile=True)

  def total(value):
    return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

  @tf.function
  def train_loop(iterator, steps):
    loss = tf.constant(0.0)
    norm = tf.constant(0.0)
    examples = tf.constant(0, tf.int64)
    tokens = tf.constant(0, tf.int64)
    bad_step = tf.constant(-1, tf.int64)
    for _ in tf.range(steps):
      per_replica = strategy.run(replica_step, args=(next(iterator),))
      loss = total(per_replica[0])  # each replica's part of the global batch's loss
      norm = strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica[1], axis=None)
      examples += total(per_replica[2])
      tokens += total(per_replica[3])
      # Under loss scaling, overflowing gradients are expected: that step is skipped.
      if not tf.math.is_finite(loss) or (not loss_scaled and not tf.math.is_finite(norm)):
        bad_step = tf.cast(optimizer.iterations, tf.int64) - 1
        break
    return {"loss": loss, "norm": norm, "bad_step": bad_step, "examples": examples,
            "tokens": tokens}

  return train_loop


class StopRequest:
  """Ctrl-C (SIGINT) and SIGTERM while the Trainer works: one mechanism for every loop.

  `with StopRequest(unit) as stop:` around a loop that looks at `stop.requested` at its safe
  points (training: after each host loop, where the state can be saved; evaluation and
  prediction: after each batch, before anything is written): the first signal only sets
  `requested` and says so; the loop then stops and raises `Interrupted` (one `stopped:` line,
  exit status 130). A second signal stops at once (KeyboardInterrupt). A stop is never lost:
  one requested as the last such loop ends (or a KeyboardInterrupt that something swallowed)
  raises KeyboardInterrupt when the request is left.

  `with StopRequest() as stop:` (no unit) around a whole run: outside those loops (feature
  conversion, model building, post-processing) a signal stops at once, as Ctrl-C does by
  default, SIGTERM included (atomic files then remove their temporary names, worker pools end).

  Nested uses share the outermost request, so the evaluation inside a training run sees the
  training's. The handlers are installed in the main thread only, over an inherited "ignore" too
  (a job a script starts in the background must still stop on Ctrl-C), and the previous ones are
  restored when the outermost use ends.
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)
  _active: Optional["StopRequest"] = None  # the outermost request in use

  def __init__(self, unit: Optional[str] = None):
    self.unit = unit  # what a checking loop finishes before it stops: "loop", "batch"
    self.requested = False
    self._shared: Optional[StopRequest] = None
    self._units: List[str] = []  # the checking loops running now, innermost last
    self._previous: Dict[int, object] = {}

  def __enter__(self) -> "StopRequest":
    shared = StopRequest._active
    if shared is None:
      shared = self
      if threading.current_thread() is threading.main_thread():
        for signum in self.SIGNALS:
          self._previous[signum] = signal.getsignal(signum)
          signal.signal(signum, self._handle)
        StopRequest._active = self
    self._shared = shared
    if self.unit:
      shared._units.append(self.unit)
    return shared

  def __exit__(self, exc_type, exc, tb):
    shared = self._shared
    if self.unit:
      shared._units.pop()
    if shared is self and StopRequest._active is self:
      for signum, previous in self._previous.items():
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
      StopRequest._active = None
    # A stop asked for as the last checking loop ended (or a swallowed KeyboardInterrupt).
    if exc_type is None and shared.requested and not shared._units:
      raise KeyboardInterrupt
    return False

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    # Set in every case: a KeyboardInterrupt raised inside a finalizer is swallowed by Python.
    again, self.requested = self.requested, True
    if again or not self._units:
      raise KeyboardInterrupt
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    print(f"\n{name}: stopping after the current {self._units[-1]} (press Ctrl-C again to stop "
          "at once)", flush=True)


class NamedInputErrors:
  """Turns tf.data's DataLossError (which names only an offset) into an error naming the file."""

  def __init__(self, paths: List[str], split: str):
    self.paths, self.split = paths, split

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, tb):
    if exc_type is not None and issubclass(exc_type, tf.errors.InvalidArgumentError) and (
        INPUT_CHECK_MARK in (exc.message or "")):
      message = exc.message[exc.message.index(INPUT_CHECK_MARK):].splitlines()[0]
      raise InputError(message.split(" [", 1)[0].rstrip(".")) from None
    if exc_type is None or not issubclass(exc_type, tf.errors.DataLossError):
      return False
    bad = find_corrupted_record_file(self.paths)
    where = bad or (", ".join(self.paths) if self.paths else f"the {self.split} input")
    raise corrupted_records_error(where, exc, "; the run stopped there; replace the file and "
                                  "rerun the same command to resume") from None


def find_corrupted_record_file(paths: List[str]) -> Optional[str]:
  """The first of `paths` whose TFRecord framing or checksums are broken, or None."""
  for path in paths:
    try:
      for _ in tf.data.TFRecordDataset(path).batch(1024):
        pass
    except tf.errors.DataLossError:
      return path
  return None
