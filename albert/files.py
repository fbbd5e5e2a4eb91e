"""Writing files so that nothing half-written is ever seen (bottom floor: imports only `errors`).

Every output of the library goes through here:
* `write_text` / `write_bytes` / `copy_file`: a temporary name in the target's directory
  (`.<name>.tmp-<pid>-XXXX`), then one `os.replace`; the permissions are those of the user's
  umask (not mkstemp's 0600), and a failure removes the temporary file.
* `write_directory(path, write)`: `write(tmp_dir)` into a sibling `<name>.tmp-<pid>-XXXX`, then
  renamed into place (an existing non-empty directory only with `overwrite`, replaced after the
  new one is complete); folders get the umask's permissions (mkdtemp's 0700 would hide an
  export from a serving process); leftovers of killed runs (`*.tmp-<pid>-*`, `*.old-<pid>-*` of
  processes that no longer exist) are removed first. Remote paths (gs://...) are written locally
  and copied with tf.io.gfile, `saved_model.pb` last.
* `staged_files({name: source})`: copies assets to a temporary folder under their final names.
* `check_output_dir(path, flag)` / `check_output_file(path, flag)`: a directory (or a file's
  folder) that can be created and written, checked before a run writes anything (a parent that
  is a file, a read-only or foreign directory: one clear error naming the flag).
* `open_file`, `exists`, `isdir`, `listdir`, `glob_paths`, `size`, `remove`, `upload`: the
  file-system shim of `albert/filesystem.py` (local or any `tf.io.gfile` URL), re-exported.
  A remote file is written in one upload to its final name (an object store cannot rename,
  and shows an object only once complete).
* `file_digest(path)`: the sha256 of a file's bytes (local or remote), what the feature caches'
  fingerprints and the exports' records are made of.

OS errors become `OutputError`s that name the path and the cause (`tf_write_error` does the same
for TensorFlow's write failures, which carry no errno).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from typing import Callable, Dict, Iterator, Optional

from albert.errors import ExportError, FlagError, OutputError, output_error
from albert.filesystem import (  # the file-system shim, re-exported  # noqa: F401
    exists, fresh, glob_paths, gfile, is_remote, isdir, isfile, listdir, open_file, remote_errors,
    remove, remove_tree, size, upload)

TEMP_MARK = ".tmp-"
OLD_MARK = ".old-"
_DIGESTS: Dict[tuple, str] = {}


def umask() -> int:
  """The process's umask (read without changing it for longer than one call)."""
  value = os.umask(0)
  os.umask(value)
  return value


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def file_digest(path: str) -> str:
  """sha256 (hex) of a file's bytes, local or remote (tf.io.gfile).

  A local file's digest is remembered for the process, per path, size and modification time
  (a run hashes the same tokenizer model for several caches).
  """
  if is_remote(path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    with tf.io.gfile.GFile(path, "rb") as f:
      return _sha256(f)
  stat = os.stat(path)
  key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
  if key not in _DIGESTS:
    with open(path, "rb") as f:
      _DIGESTS[key] = _sha256(f)
  return _DIGESTS[key]


def _sha256(stream) -> str:
  digest = hashlib.sha256()
  for block in iter(lambda: stream.read(1 << 22), b""):
    digest.update(block)
  return digest.hexdigest()


# ------------------------------------------------------------------------------------- files
def write_bytes(path: str, data: bytes) -> str:
  """Writes `data` to `path` atomically; returns the path."""
  path = os.fspath(path)
  if is_remote(path):  # one upload to the final name: an object appears only when complete
    with remote_errors(path):
      parent = os.path.dirname(path)
      if parent and not gfile().exists(parent):
        gfile().makedirs(parent)
      fresh(path)
      with gfile().GFile(path, "wb") as f:
        f.write(data)
    return path
  directory = os.path.dirname(os.path.abspath(path))
  tmp = None
  try:
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}{TEMP_MARK}{os.getpid()}-",
                               dir=directory)
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.chmod(tmp, 0o666 & ~umask())
    os.replace(tmp, path)
    tmp = None
  except OSError as error:
    error.filename = path  # the file the user asked for, not the temporary name
    raise output_error(error) from None
  finally:
    if tmp and os.path.exists(tmp):
      os.remove(tmp)
  return path


def write_text(path: str, text: str) -> str:
  """Writes `text` (UTF-8) to `path` atomically; returns the path."""
  return write_bytes(path, text.encode("utf-8"))


def read_json(path: str) -> Optional[dict]:
  """The JSON object in `path` (local or remote), or None when the file is absent, unreadable or
  holds no object: a record an older or interrupted run did not write counts as none."""
  try:
    if is_remote(path):
      import tensorflow as tf  # pylint: disable=g-import-not-at-top  (files stays TF-free)
      with tf.io.gfile.GFile(path, "r") as f:
        value = json.load(f)
    else:
      with open(path, encoding="utf-8") as f:
        value = json.load(f)
  except Exception:  # pylint: disable=broad-except  (OSError, bad JSON, tf.errors on gs://)
    return None
  return value if isinstance(value, dict) else None


def append_text(path: str, text: str) -> str:
  """Appends `text` by rewriting the whole file atomically (small files such as results)."""
  previous = ""
  if exists(path):
    with open_file(path, encoding="utf-8") as f:
      previous = f.read()
    if previous and not previous.endswith("\n"):
      previous += "\n"
  return write_text(path, previous + text)


def copy_file(source: str, destination: str) -> str:
  """Copies `source` to `destination` atomically; returns the destination."""
  with open_file(source, "rb") as f:
    data = f.read()
  return write_bytes(destination, data)


# ------------------------------------------------------------------------------- directories
def check_output_dir(path: Optional[str], flag: str = "--output_dir") -> str:
  """Checks that `path` is (or can be made) a writable directory; creates nothing. Returns it."""
  if not path:
    raise FlagError(f"{flag} is required")
  path = os.fspath(path)
  if is_remote(path):
    return _reachable(path, flag)
  problem = _unwritable_directory(os.path.abspath(path))
  if problem:
    raise FlagError(f"{flag}={path}: {problem}")
  return path


def check_output_file(path: Optional[str], flag: str, directory_ok: bool = False) -> str:
  """Checks that `path` can be written: its folder exists or can be made, and is writable;
  `path` is not a directory (unless `directory_ok`: a `write_directory` target, which is
  renamed into place from a sibling). Creates nothing. Returns it."""
  if not path:
    raise FlagError(f"{flag} is required")
  path = os.fspath(path)
  if is_remote(path):
    return _reachable(path, flag)
  if os.path.isdir(path) and not directory_ok:
    raise FlagError(f"{flag}={path}: is a directory; name a file")
  problem = _unwritable_directory(os.path.dirname(os.path.abspath(path)), "its folder")
  if problem:
    raise FlagError(f"{flag}={path}: {problem}")
  return path


def _reachable(path: str, flag: str) -> str:
  """`path` (a URL) if its file system answers (an unknown scheme, a bucket that cannot be
  reached or read: one FlagError naming the flag)."""
  try:
    with remote_errors(path):
      gfile().exists(path)
  except OSError as error:
    raise FlagError(f"{flag}={path}: cannot be reached ({error.strerror})") from None
  return path


def _unwritable_directory(path: str, name: str = "the directory") -> Optional[str]:
  """Why `path` cannot be (made) a writable directory, or None."""
  probe = path
  while not os.path.exists(probe):
    parent = os.path.dirname(probe)
    if parent == probe:
      break
    probe = parent
  if not os.path.isdir(probe):
    return f"{probe} is a file, not a directory"
  if not os.access(probe, os.W_OK | os.X_OK):
    what = name if probe == path else f"its parent {probe}"
    reason = "is on a read-only file system" if _read_only(probe) else "is not writable"
    return f"{what} {reason}"
  return None


def _read_only(path: str) -> bool:
  try:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
  except OSError:
    return False


_TF_WRITE_FAULTS = (("no space left", errno.ENOSPC), ("disk quota", errno.EDQUOT),
                    ("read-only file system", errno.EROFS), ("permission denied", errno.EACCES),
                    ("operation not permitted", errno.EPERM), ("not a directory", errno.ENOTDIR))


def tf_write_error(error: BaseException, path: str) -> Optional[OutputError]:
  """The `OutputError` for a TensorFlow write failure (tf.errors.ResourceExhaustedError "No
  space left on device", PermissionDeniedError, ...), naming `path`; None for anything else.

  TensorFlow reports OS faults as `tf.errors.OpError`s without an errno; this reads the cause
  from the message (no TensorFlow import needed).
  """
  message = str(getattr(error, "message", "") or error).lower()
  if not type(error).__name__.endswith("Error") or "tensorflow" not in type(error).__module__:
    return None
  for text, code in _TF_WRITE_FAULTS:
    if text in message:
      return output_error(OSError(code, os.strerror(code), path))
  return None


def make_dirs(path: str) -> str:
  """`os.makedirs(path, exist_ok=True)` with a clear `OutputError`; returns the path."""
  if is_remote(path):
    try:
      with remote_errors(path):
        gfile().makedirs(path)
    except OSError as error:
      raise output_error(error, "cannot create") from None
    return path
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as error:
    if error.filename is None:
      error.filename = path
    raise output_error(error, "cannot create") from None
  return path


def remove_stale_siblings(path: str) -> list:
  """Removes `<name>.tmp-<pid>-*` / `<name>.old-<pid>-*` beside `path` left by dead processes.

  Also the hidden `.<name>.tmp-<pid>-*` files of `write_bytes`.
  """
  parent, name = os.path.split(os.path.abspath(path))
  if not os.path.isdir(parent):
    return []
  pattern = re.compile(r"\.?" + re.escape(name) + r"(?:" + re.escape(TEMP_MARK) + "|"
                       + re.escape(OLD_MARK) + r")(\d+)-")
  removed = []
  for entry in os.listdir(parent):
    match = pattern.match(entry)
    if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
      target = os.path.join(parent, entry)
      shutil.rmtree(target, ignore_errors=True) if os.path.isdir(target) else os.remove(target)
      removed.append(target)
  return removed


def _open_permissions(directory: str) -> None:
  """Gives a staged tree the permissions a plain `mkdir` would (mkdtemp makes 0700)."""
  mode = 0o777 & ~umask()
  for root, dirs, _ in os.walk(directory):
    os.chmod(root, mode)
    for d in dirs:
      os.chmod(os.path.join(root, d), mode)


def _refuse_existing(path: str, overwrite: bool, exists, listdir, isdir) -> None:
  if exists(path) and not overwrite and (not isdir(path) or listdir(path)):
    raise ExportError(f"export path {path} already exists; choose a new path or pass "
                      "--overwrite to replace it")


def write_directory(path: str, write: Callable[[str], None], overwrite: bool = False) -> str:
  """Runs `write(tmp_dir)` and renames the result to `path`; returns that path.

  The temporary directory is a sibling, so the rename is atomic; on error it is removed and
  `path` is untouched. An existing non-empty `path` is an error unless `overwrite`, and is then
  replaced only after the new directory is complete.
  """
  if is_remote(path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    _refuse_existing(path, overwrite, tf.io.gfile.exists, tf.io.gfile.listdir, tf.io.gfile.isdir)
    with tempfile.TemporaryDirectory(prefix="albert-export-") as local:
      target = os.path.join(local, "export")
      os.mkdir(target)
      write(target)
      copy_tree(target, path)
    return path
  path = os.path.abspath(path)
  _refuse_existing(path, overwrite, os.path.exists, os.listdir, os.path.isdir)
  parent, name = os.path.split(path)
  make_dirs(parent)
  remove_stale_siblings(path)
  try:
    tmp = tempfile.mkdtemp(prefix=f"{name}{TEMP_MARK}{os.getpid()}-", dir=parent)
  except OSError as error:
    raise output_error(error) from None
  old = None
  try:
    write(tmp)
    _open_permissions(tmp)
    if os.path.exists(path):
      old = tempfile.mkdtemp(prefix=f"{name}{OLD_MARK}{os.getpid()}-", dir=parent)
      os.rmdir(old)
      os.rename(path, old)
    os.rename(tmp, path)
  except BaseException as error:
    shutil.rmtree(tmp, ignore_errors=True)
    if old and not os.path.exists(path):
      os.rename(old, path)
    if isinstance(error, OSError) and not isinstance(error, OutputError) and (
        error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS)):
      raise output_error(error) from None
    raise
  if old:
    shutil.rmtree(old, ignore_errors=True)
  return path


def copy_tree(source: str, destination: str) -> None:
  """Copies a SavedModel directory (tf.io.gfile paths), `saved_model.pb` last.

  A reader that finds no saved_model.pb knows the copy is incomplete.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  files = []
  for directory, _, names in tf.io.gfile.walk(source):
    for name in names:
      files.append(os.path.relpath(os.path.join(directory, name), source))
  files.sort(key=lambda p: (p == "saved_model.pb", p))
  for relative in files:
    target = os.path.join(destination, relative)
    tf.io.gfile.makedirs(os.path.dirname(target))
    tf.io.gfile.copy(os.path.join(source, relative), target, overwrite=True)


@contextlib.contextmanager
def staged_files(files: Dict[str, str]) -> Iterator[Dict[str, str]]:
  """Copies `{final name: source path}` to a temporary folder; yields name -> staged path.

  A SavedModel asset keeps the file's base name, so staging gives each asset its intended
  name (`albert_config.json` whatever the source was called) and reads remote sources once.
  """
  with tempfile.TemporaryDirectory(prefix="albert-assets-") as tmp:
    staged = {}
    for name, source in files.items():
      staged[name] = os.path.join(tmp, name)
      if is_remote(source):
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        tf.io.gfile.copy(source, staged[name], overwrite=True)
      else:
        shutil.copyfile(source, staged[name])
    yield staged
