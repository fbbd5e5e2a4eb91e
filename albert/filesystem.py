"""The one file-system shim: local paths through `open`/`os`, URLs through `tf.io.gfile`.

`is_remote(path)`: a path with a scheme (gs://, s3://, hdfs://, ram://). `open_file`, `exists`,
`isdir`, `isfile`, `listdir`, `glob_paths`, `size`, `remove`, `remove_tree`, `upload` behave
the same on both; TensorFlow is imported only when a path is remote (albert/data stays TF-free)
and its errors become OSErrors naming the path, so that callers report them as local ones.
Object stores cannot rename: `upload` copies a complete local file to its final name in one
piece (an object is seen only once complete). `albert.files` re-exports these names.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
from typing import Optional


def is_remote(path: str) -> bool:
  return "://" in os.fspath(path)


# ---------------------------------------------------------------- local or remote file system
# The one file-system shim: plain `open`/`os` for local paths, `tf.io.gfile` (imported only
# when a path has a scheme: gs://, s3://, hdfs://, ram://) for the others. TensorFlow's
# errors become OSErrors naming the path, so that every caller reports them as it does local
# ones. Object stores cannot rename atomically: there a file is written to its final name in
# one upload (`write_bytes`), which a reader never sees half-done on gs:// and s3://.
def gfile():
  """`tf.io.gfile` (TensorFlow imported on first use)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def _os_error(error: BaseException, path: str) -> OSError:
  name = type(error).__name__
  code = {"NotFoundError": errno.ENOENT, "PermissionDeniedError": errno.EACCES,
          "AlreadyExistsError": errno.EEXIST, "ResourceExhaustedError": errno.ENOSPC,
          "FailedPreconditionError": errno.ENOTDIR}.get(name, errno.EIO)
  message = (getattr(error, "message", "") or str(error) or name).splitlines()[0][:300]
  return OSError(code, os.strerror(code) if code != errno.EIO else message, path)


@contextlib.contextmanager
def remote_errors(path: str):
  """TensorFlow's file-system errors inside as OSErrors naming `path`."""
  try:
    yield
  except Exception as error:  # pylint: disable=broad-except
    if "tensorflow" in type(error).__module__ and type(error).__name__.endswith("Error"):
      raise _os_error(error, path) from None
    raise


class _RemoteRaw(io.RawIOBase):
  """A read-only `tf.io.gfile.GFile` as a raw binary stream (for io.TextIOWrapper)."""

  def __init__(self, handle):
    super().__init__()
    self._handle = handle

  def readable(self):
    return True

  def readinto(self, buffer):
    data = self._handle.read(len(buffer))
    buffer[:len(data)] = data
    return len(data)

  def close(self):
    self._handle.close()
    super().close()


def open_file(path: str, mode: str = "r", encoding: Optional[str] = None,
              newline: Optional[str] = None):
  """`open(path, mode)` for a local path or any `tf.io.gfile` URL (reading: text or binary;
  writing: binary or text, written when closed). A missing remote file is a
  FileNotFoundError naming it, as a local one."""
  path = os.fspath(path)
  if not is_remote(path):
    return open(path, mode, encoding=encoding, newline=newline) if "b" not in mode else \
        open(path, mode)
  with remote_errors(path):
    handle = gfile().GFile(path, mode.replace("t", "").replace("b", "") + "b")
    if "r" in mode:
      handle.size()  # a missing file fails here, not at the first read
  if "r" in mode and "b" in mode:
    return io.BufferedReader(_RemoteRaw(handle), 1 << 20)
  if "b" in mode:
    return handle
  if "r" in mode:
    return io.TextIOWrapper(io.BufferedReader(_RemoteRaw(handle)), encoding=encoding or "utf-8",
                            newline=newline)
  return io.TextIOWrapper(handle, encoding=encoding or "utf-8", newline=newline)


def exists(path: str) -> bool:
  if not is_remote(path):
    return os.path.exists(path)
  if path.startswith("ram://") and gfile().exists(path):  # there: true for any prefix of a name
    parent, name = os.path.split(path.rstrip("/"))
    return "://" not in parent or name in listdir(parent) or isdir(path)
  return gfile().exists(path)


def fresh(path: str) -> None:
  """Before a file is written whole: the in-memory ram:// appends to an existing file, so
  there the old one is removed first (gs://, s3:// replace an object in one piece)."""
  if path.startswith("ram://") and exists(path):
    gfile().remove(path)


def isdir(path: str) -> bool:
  if not is_remote(path):
    return os.path.isdir(path)
  if not gfile().isdir(path):
    return False
  if path.startswith("ram://"):  # the in-memory file system calls any prefix a directory
    parent, name = os.path.split(path.rstrip("/"))
    return ("://" not in parent or name in listdir(parent)
            or bool(gfile().glob(os.path.join(parent, name, "*"))))
  return True


def isfile(path: str) -> bool:
  return exists(path) and not isdir(path)


def listdir(path: str) -> list:
  if not is_remote(path):
    return os.listdir(path)
  with remote_errors(path):
    return [name.rstrip("/") for name in gfile().listdir(path)]


def glob_paths(pattern: str) -> list:
  """The sorted paths matching a glob, local or remote."""
  import glob as glob_module  # pylint: disable=g-import-not-at-top
  if not is_remote(pattern):
    return sorted(glob_module.glob(pattern))
  with remote_errors(pattern):
    return sorted(gfile().glob(pattern))


def size(path: str) -> int:
  if not is_remote(path):
    return os.path.getsize(path)
  with remote_errors(path):
    return gfile().stat(path).length


def remove(path: str) -> None:
  if not is_remote(path):
    os.remove(path)
    return
  with remote_errors(path):
    gfile().remove(path)


def upload(local: str, path: str) -> str:
  """Copies the complete local file `local` to `path` (remote: one upload, the object appears
  only once complete; local: renamed into place). Returns `path`."""
  if not is_remote(path):
    os.replace(local, path)
    return path
  with remote_errors(path):
    parent = os.path.dirname(path)
    if parent and not gfile().exists(parent):
      gfile().makedirs(parent)
    fresh(path)
    with open(local, "rb") as source, gfile().GFile(path, "wb") as target:
      shutil.copyfileobj(source, target, 1 << 24)  # (gfile.copy would copy into a "folder")
  return path


def remove_tree(path: str) -> None:
  """Removes a folder and everything in it, if it exists."""
  if not is_remote(path):
    shutil.rmtree(path, ignore_errors=True)
  elif gfile().exists(path):
    with remote_errors(path):
      gfile().rmtree(path)
