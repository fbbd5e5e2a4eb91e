"""What a program does before its first TensorFlow op: start TensorFlow without a false alarm.

On a machine without an NVIDIA GPU, TensorFlow's CUDA build logs one line at error level when it
first lists its devices:

  E external/local_xla/xla/stream_executor/cuda/cuda_platform.cc:51] failed call to cuInit: ...

It is harmless (TensorFlow then runs on the CPU), but it is the first thing every command
prints and it looks like a failure. `start_tensorflow()` imports TensorFlow and lists its devices
with stderr (file descriptor 2, where TensorFlow's C++ code writes) passed through a small filter
process that drops that one line and forwards every other line as it comes; a separate process,
so that nothing is lost even if TensorFlow crashes while starting. The line is dropped only when
the machine has no NVIDIA device at all (no `/dev/nvidia*`, no `/proc/driver/nvidia`): where a GPU
exists the line may be a real problem (a broken driver) and is kept, and nothing is ever hidden
from TensorFlow (no `CUDA_VISIBLE_DEVICES` is set). `ALBERT_SHOW_CUINIT=1` keeps the line too.

Call it first in a program's main, before anything else imports TensorFlow or runs an op (under
`absl.app.run` the line is printed while TensorFlow is imported). TensorFlow is imported only
inside `start_tensorflow`, so importing this module is cheap.

The filter is `albert.noise.stderr_without` (the library's exports use it and its sibling
`python_logs_without` for other lines known to be noise).
"""

from __future__ import annotations

import contextlib
import glob
import os

from albert.noise import stderr_without

CUINIT_MARK = "failed call to cuInit"


def nvidia_device_present() -> bool:
  """Whether the machine shows any sign of an NVIDIA GPU or driver."""
  return bool(glob.glob("/dev/nvidia*")) or os.path.exists("/proc/driver/nvidia")


def start_tensorflow() -> None:
  """Imports TensorFlow and initialises its devices; see the module docstring."""
  keep = nvidia_device_present() or os.environ.get("ALBERT_SHOW_CUINIT")
  with contextlib.nullcontext() if keep else stderr_without(CUINIT_MARK):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.list_physical_devices()


def run_script(main) -> int:
  """What the absl `main` of every training script does: TensorFlow's INFO/WARNING log lines off
  (they would drown the progress lines), TensorFlow started without the false alarm, and the
  library's errors as one line (`albert.errors.run_cleanly`)."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  from albert.errors import run_cleanly  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.WARNING)
  start_tensorflow()
  return run_cleanly(main)
