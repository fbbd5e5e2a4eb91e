"""The library's error family (bottom floor: imports nothing of the package) and `run_cleanly`.

Every error the library raises on purpose derives from `AlbertError`, and its message names the
file, flag, key or line and what was expected. The scripts run their `main` through
`run_cleanly`, which turns exactly that family (plus `FileNotFoundError`, and the ordinary OS
faults of writing output: a parent that is a file, no permission, a read-only or full disk) into
one line `error: <message>` on stderr and exit status 1. Anything else is a bug and keeps its
traceback. Set ALBERT_TRACEBACK=1 to see the traceback of a library error too.

Each class also derives from the built-in exception it refines (`ValueError` for bad input,
`RuntimeError` for a run that cannot go on, `OSError` for output that cannot be written), so
callers that caught those before still do.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Callable, Optional


class AlbertError(Exception):
  """Base of every error the library raises on purpose; the message says what is wrong."""


class ConfigError(AlbertError, ValueError):
  """An invalid `albert_config.json` (or config value); names the key and, when known, the file."""


class FlagError(AlbertError, ValueError):
  """A setting (flag or config field) that cannot be right; names the flag."""


class InputError(AlbertError, ValueError):
  """Input files that cannot feed the run; names the file or flag."""


class DataError(AlbertError, ValueError):
  """Bad input data for a data command; names the file and line, or the flag."""


class TokenizerError(AlbertError, ValueError):
  """A vocabulary or SentencePiece model that cannot be used; names the file."""


class CheckpointError(AlbertError, ValueError):
  """A checkpoint that cannot be used as asked; names it and the variables."""


class ExportError(AlbertError, ValueError):
  """An export that cannot be written as asked; names the path or variables."""


class HubHandleError(AlbertError, ValueError):
  """A hub handle that cannot be loaded; names the handle and what was found there."""


class TrainingError(AlbertError, RuntimeError):
  """The run cannot go on (bad settings, a non-finite loss, a damaged state); says why."""


class OutputError(AlbertError, OSError):
  """Output that cannot be written (parent is a file, permissions, full disk); names the path."""

  def __str__(self) -> str:
    return self.strerror or super().__str__()


class Interrupted(AlbertError):
  """The user stopped the run (Ctrl-C); the message says where it stopped and how to resume."""


def leave_interrupts_to_parent() -> None:
  """In a worker process of a pool: Ctrl-C (which a terminal sends to the whole process group)
  is ignored, so that the parent alone stops (it ends its pool and prints the one `stopped:`
  line) instead of every worker printing a KeyboardInterrupt traceback; SIGTERM (what the parent
  ends its pool with) keeps its default action."""
  import signal  # pylint: disable=g-import-not-at-top
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  signal.signal(signal.SIGTERM, signal.SIG_DFL)


# OS error numbers of ordinary faults while writing output: not bugs, reported in one line.
ORDINARY_ERRNOS = frozenset({errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS,
                             errno.ENOSPC, errno.EDQUOT, errno.EEXIST, errno.ENAMETOOLONG,
                             errno.ENOENT})


def _file_in_the_way(path: str) -> Optional[str]:
  """The first existing ancestor of `path` that is a file, if any."""
  probe = os.path.dirname(os.path.abspath(path))
  while probe and not os.path.exists(probe):
    parent = os.path.dirname(probe)
    if parent == probe:
      return None
    probe = parent
  return probe if probe and os.path.isfile(probe) else None


def describe_os_error(error: OSError, action: str = "cannot write") -> str:
  """`<action> <file>: <reason>` for an OSError, with a hint for the common causes."""
  path = error.filename or "(unknown file)"
  reason = error.strerror or str(error)
  if error.errno in (errno.EEXIST, errno.ENOTDIR) and error.filename:
    blocker = error.filename if os.path.isfile(error.filename) and error.errno == errno.EEXIST \
        else _file_in_the_way(error.filename)
    if blocker:
      return f"{action} {path}: {blocker} is a file, not a directory"
  hints = {errno.ENOTDIR: "a part of the path is a file, not a directory",
           errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted"}
  hint = hints.get(error.errno)
  if hint and hint.lower() not in reason.lower():
    reason = f"{reason} ({hint})"
  return f"{action} {path}: {reason}"


def output_error(error: OSError, action: str = "cannot write") -> OutputError:
  """An `OutputError` with the message of `describe_os_error` (keeps errno and filename)."""
  wrapped = OutputError(error.errno, describe_os_error(error, action))
  wrapped.filename = error.filename
  return wrapped


def _message(error: BaseException) -> str:
  if isinstance(error, OutputError):
    return error.strerror or str(error)
  if isinstance(error, OSError) and not isinstance(error, AlbertError):
    return describe_os_error(error, "cannot read" if isinstance(error, FileNotFoundError)
                             else "cannot write")
  return str(error)


def is_ordinary(error: BaseException) -> bool:
  """Whether `error` is a user-facing fault (reported in one line) rather than a bug."""
  if isinstance(error, AlbertError):
    return True
  if isinstance(error, OSError):
    return isinstance(error, FileNotFoundError) or error.errno in ORDINARY_ERRNOS
  return False


def run_cleanly(main: Callable[[], object], on_interrupt: Optional[Callable[[], str]] = None
                ) -> int:
  """Runs `main`; a library error or an ordinary OS fault -> `error: <message>`, exit status 1.

  Ctrl-C (KeyboardInterrupt, or `Interrupted` raised by the trainer) prints one line (from
  `on_interrupt` when given) and exits with status 130, the shell's convention for SIGINT.
  """
  try:
    main()
  except KeyboardInterrupt:
    message = on_interrupt() if on_interrupt else "interrupted; rerun the same command to resume"
    print(f"\nstopped: {message}", file=sys.stderr, flush=True)
    sys.exit(130)
  except Interrupted as error:
    print(f"\nstopped: {error}", file=sys.stderr, flush=True)
    sys.exit(130)
  except Exception as error:  # pylint: disable=broad-except
    if not is_ordinary(error):
      raise
    if os.environ.get("ALBERT_TRACEBACK"):
      traceback.print_exc()
    print(f"error: {_message(error)}", file=sys.stderr, flush=True)
    sys.exit(1)
  return 0
