"""Test-only fault injection: a full or read-only disk under one folder, for Python's own writes.

Python imports `sitecustomize` at start-up from the path, so a test that puts this folder on
PYTHONPATH and sets the variables below runs a real script against a simulated fault:

  ALBERT_FAULT      ENOSPC (the disk fills up) or EROFS (a read-only file system)
  ALBERT_FAULT_DIR  the folder the fault applies to (and everything under it)
  ALBERT_FAULT_BYTES  ENOSPC: bytes that can still be written there before the disk is full

EROFS: opening a file there for writing, creating, renaming into, or removing fails as the
kernel would (an audit hook raises the OSError). ENOSPC: files opened there for writing (with
`open`, `io.open`, `os.fdopen`) share the byte budget; the write that exceeds it fails with
errno ENOSPC and no file name, as a buffered write to a full disk does. Writes by C++ code
(TensorFlow, SentencePiece) are not seen: tests/support/faults.py uses a real small tmpfs instead when
the machine lets it mount one.
"""

import builtins
import errno
import io
import os
import sys

_KIND = os.environ.get("ALBERT_FAULT")
_DIR = os.environ.get("ALBERT_FAULT_DIR")


def _inside(path) -> bool:
  try:
    if isinstance(path, int):
      path = os.readlink(f"/proc/self/fd/{path}")
    real = os.path.realpath(os.fsdecode(path))
  except (OSError, TypeError, ValueError):
    return False
  return real == _ROOT or real.startswith(_ROOT + os.sep)


def _writing(mode, flags) -> bool:
  if isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND):
    return True
  return isinstance(mode, str) and any(c in mode for c in "wax+")


def _read_only(event, args):
  if event == "open":
    path, mode, flags = args
    if path is not None and not isinstance(path, int) and _writing(mode, flags) \
        and _inside(path):
      raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
  elif event in ("os.mkdir", "os.remove", "os.rmdir", "os.truncate", "os.chmod"):
    if _inside(args[0]):
      raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(args[0]))
  elif event == "os.rename":
    for path in args[:2]:
      if _inside(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))


class _FullDiskFile:
  """A file object whose writes draw on the shared budget of the full disk."""

  def __init__(self, inner):
    self._inner = inner

  def write(self, data):
    size = len(data)
    if size > _BUDGET[0]:
      _BUDGET[0] = 0
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    _BUDGET[0] -= size
    return self._inner.write(data)

  def __enter__(self):
    self._inner.__enter__()
    return self

  def __exit__(self, *exc):
    return self._inner.__exit__(*exc)

  def __iter__(self):
    return iter(self._inner)

  def __getattr__(self, name):
    return getattr(self._inner, name)


def _wrap_open(real_open):
  def fault_open(file, mode="r", *args, **kwargs):
    opened = real_open(file, mode, *args, **kwargs)
    if _writing(mode, None) and _inside(file):
      return _FullDiskFile(opened)
    return opened
  return fault_open


if _KIND and _DIR:
  _ROOT = os.path.realpath(_DIR)
  if _KIND == "EROFS":
    sys.addaudithook(_read_only)
  elif _KIND == "ENOSPC":
    _BUDGET = [int(os.environ.get("ALBERT_FAULT_BYTES", "0"))]
    builtins.open = _wrap_open(builtins.open)
    io.open = _wrap_open(io.open)  # os.fdopen calls io.open
  else:
    raise SystemExit(f"sitecustomize: unknown ALBERT_FAULT={_KIND!r}")
