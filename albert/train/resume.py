"""The resume state of a run: what a killed or stopped run continues from, exactly.

`ResumeState(run_dir, step, keep, log, model=..., optimizer=..., iterator=...)` keeps
`output_dir/train_state/ckpt-N`: the model, the optimizer's slots and step, and (on one device,
where tf.data iterators can be checkpointed) the input position; the dropout random state is
derived from the step. `keep` states are kept (`tf.train.CheckpointManager`). `restore()` takes
the newest readable state, naming and skipping a damaged one (a damaged
`train_state/checkpoint` index is rebuilt first, `RunDir.repair_state_index`); `save(step)`
writes one (every worker takes part; only the chief's files are kept), a full disk named without
TensorFlow's node text and its temporary folder removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Callable, Optional

import tensorflow as tf

from albert import files
from albert.data.pretraining.inspection import describe_read_error
from albert.errors import OutputError, TrainingError
from albert.train.run_dir import RunDir


class ResumeState:
  """The `train_state/ckpt-N` of a run; see the module docstring.

  Args:
    run_dir: the run's output directory.
    step: the variable holding the global step (the optimizer's `iterations`).
    keep: how many states to keep (`--keep_checkpoint_max`).
    log: where lines go.
    chief: whether this process keeps the files it writes.
    **objects: what the state holds (`tf.train.Checkpoint` keyword arguments).
  """

  def __init__(self, run_dir: RunDir, step: tf.Variable, keep: int,
               log: Callable[[str], None], chief: bool = True, **objects):
    self.run_dir = run_dir
    self.step = step
    self.log = log
    self.chief = chief
    self.checkpoint = tf.train.Checkpoint(**objects)
    run_dir.repair_state_index(log)
    self.manager = tf.train.CheckpointManager(self.checkpoint, run_dir.state_dir, keep,
                                              checkpoint_name="ckpt")

  @property
  def latest(self) -> Optional[str]:
    """The newest state saved (None: none yet)."""
    return self.manager.latest_checkpoint

  def restore(self) -> bool:
    """Restores the newest readable state (True), or finds none (False); a damaged one is named
    and skipped, and an error says so when none can be read."""
    damaged = []
    state_dir = self.run_dir.state_dir
    for found in reversed(self.run_dir.state_steps()):
      path = self.run_dir.state_path(found)
      try:
        self.checkpoint.restore(path).assert_existing_objects_matched()
      except (tf.errors.OpError, AssertionError, ValueError, IndexError) as error:
        message = getattr(error, "message", str(error)).splitlines()[0][:200]
        self.log(f"warning: resume state {path} cannot be read ({type(error).__name__}: "
                 f"{message}); trying an older one")
        damaged.append(path)
        continue
      if damaged:
        self.log(f"Resuming from {path}, the newest intact resume state")
      self.log(f"Resuming from {path} at step {int(self.step.numpy())}")
      return True
    if damaged:
      raise TrainingError(
          f"no resume state in {state_dir} can be read ({', '.join(damaged)}); move "
          f"{state_dir} away to start again from --init_checkpoint, or use a new --output_dir")
    return False

  def save(self, step: int) -> None:
    """Writes the state of `step` (on a worker, into a scratch folder then deleted)."""
    try:
      if self.chief:
        self.manager.save(checkpoint_number=step)
      else:  # every worker takes part in the save; only the chief's files are kept
        scratch = tempfile.mkdtemp(prefix="albert-worker-")
        self.checkpoint.write(os.path.join(scratch, "ckpt"))
        shutil.rmtree(scratch, ignore_errors=True)
    except tf.errors.OpError as error:
      target = self.run_dir.state_path(step)
      # TensorFlow writes into `ckpt-N_temp/` and renames it when complete: a failed save
      # leaves it behind (a full disk stays full of it).
      shutil.rmtree(target + "_temp", ignore_errors=True)
      raise files.tf_write_error(error, target) or OutputError(
          None, f"cannot write the resume state {target}: "
                f"{describe_read_error(error.message)[:300]}") from None
