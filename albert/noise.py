"""Lines known to be noise, kept out of a program's output (bottom floor: imports nothing of ours).

TensorFlow and its tools print notes a user can do nothing about: the CUDA build's "failed call
to cuInit" on a machine without a GPU (dropped by `albert.cli.startup`), the TFLite converter's
notes on its own internal options, tf_keras's "Compiled the loaded model, but the compiled
metrics have yet to be built" on every save of a model that is never compiled (dropped by the
exports, `albert.export.encoder`). Two filters, each for the span of a `with` block:

* `stderr_without(*marks)`: file descriptor 2 (where TensorFlow's C++ code writes) through a
  small filter process that drops the lines containing a mark and forwards every other line as
  it comes; a separate process, so that nothing is lost even if the program crashes.
* `python_logs_without(*prefixes)`: records of a Python logger that start with a prefix.

Both filters are here rather than in `albert.cli` because the library's exports use them and
the library does not import the command-line layer; no TensorFlow is imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from typing import Iterator


# The filter process: stdin -> its stderr (the original one), line by line, without the marks.
_FILTER = """
import sys
marks = [m.encode() for m in sys.argv[1:]]
out = sys.stderr.buffer
for line in iter(sys.stdin.buffer.readline, b""):
  if not any(m in line for m in marks):
    out.write(line)
    out.flush()
"""


@contextlib.contextmanager
def stderr_without(*marks: str) -> Iterator[None]:
  """Inside the block, lines containing any of `marks` written to file descriptor 2 (by Python
  or C++) are dropped; every other line is forwarded at once, even if the process crashes."""
  sys.stderr.flush()
  try:
    dropper = subprocess.Popen([sys.executable, "-S", "-c", _FILTER, *marks],
                               stdin=subprocess.PIPE, close_fds=True)
  except OSError:
    yield  # no filter: every line is shown
    return
  saved = os.dup(2)
  os.dup2(dropper.stdin.fileno(), 2)
  try:
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    dropper.stdin.close()
    try:
      dropper.wait(timeout=10)  # everything forwarded before later output
    except subprocess.TimeoutExpired:
      pass


@contextlib.contextmanager
def python_logs_without(*prefixes: str, logger: str = "tensorflow") -> Iterator[None]:
  """Inside the block, records of the Python `logger` starting with any of `prefixes` are
  dropped (TensorFlow and tf_keras log through the "tensorflow" logger)."""
  def keep(record: logging.LogRecord) -> bool:
    return not str(record.getMessage()).startswith(prefixes)

  target = logging.getLogger(logger)
  target.addFilter(keep)
  try:
    yield
  finally:
    target.removeFilter(keep)
