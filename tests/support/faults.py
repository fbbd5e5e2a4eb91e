"""Running the real scripts against real faults: helpers of tests/scripts/test_faults.py.

* `run_script(script, *args)`: the script in a subprocess from the repository root, with the
  project's environment; returns the CompletedProcess.
* `assert_clean_error(done, *needles)`: exit status 1, no traceback, one last line
  `error: ...` that contains every needle (the file, flag or byte it must name; compared
  without regard to case).
* Faults of the disk, chosen by what the machine allows, the same for any user:
  - `tmpfs_available()`: a private mount namespace (`unshare --user --map-root-user --mount`,
    which needs no privileges where user namespaces are enabled) can mount a small tmpfs.
    `run_on_tmpfs` then runs commands against a real full or read-only file system, so that
    TensorFlow's and SentencePiece's C++ writes fail as they would for a user; the mount lives
    only as long as the commands, so nothing needs cleaning up even if a test is killed.
  - otherwise `injected_fault_env`: the simulated fault of tests/support/fault_injection/sitecustomize.py
    (Python's own writes only).
  - `locked_directory(path)`: a directory this process cannot write in: mode 0500 for a normal
    user; for root (whom permissions do not stop) the immutable attribute (`chattr +i`); where
    neither works, None (the caller injects EROFS instead).
  `ALBERT_TEST_SIMULATED_FAULTS=1` forces the simulated faults everywhere.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import subprocess
import sys
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from conftest import REPO_DIR, TESTS_DIR

INJECTION_DIR = os.path.join(TESTS_DIR, "support", "fault_injection")


def script_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
  env = dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("ALBERT_TRACEBACK", None)
  env.update(extra or {})
  return env


def script_command(script: str, *args: str) -> List[str]:
  return [sys.executable, os.path.join(REPO_DIR, script), *args]


def run_script(script: str, *args: str, env: Optional[Dict[str, str]] = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
  return subprocess.run(script_command(script, *args), cwd=REPO_DIR, env=script_env(env),
                        capture_output=True, text=True, timeout=timeout)


def assert_clean_error(done, *needles: str) -> str:
  """The error line of a run that failed cleanly; asserts status 1, no traceback, the needles."""
  stderr = done.stderr if isinstance(done.stderr, str) else done.stderr.decode()
  assert done.returncode == 1, (done.returncode, stderr[-3000:])
  assert "Traceback" not in stderr, stderr[-3000:]
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("error: "), stderr[-3000:]
  for needle in needles:
    assert needle.lower() in last.lower(), (needle, last)
  return last


def listing(directory: str) -> List[str]:
  """Every path under `directory`, relative, sorted (hidden files included)."""
  found = []
  for root, dirs, names in os.walk(directory):
    for name in dirs + names:
      found.append(os.path.relpath(os.path.join(root, name), directory))
  return sorted(found)


# ------------------------------------------------------------------------- a real small disk
def simulated_only() -> bool:
  """ALBERT_TEST_SIMULATED_FAULTS=1 uses the simulated faults even where real ones can be made
  (to test that path)."""
  return os.environ.get("ALBERT_TEST_SIMULATED_FAULTS") == "1"


@functools.lru_cache(maxsize=None)
def tmpfs_available() -> bool:
  if simulated_only() or not shutil.which("unshare"):
    return False
  probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                          "mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True)
  return probe.returncode == 0


def run_on_tmpfs(mount_point: str, steps: Sequence, size_kb: int, read_only: bool = False,
                 env: Optional[Dict[str, str]] = None, timeout: float = 600
                 ) -> Tuple[List[Tuple[int, str, str]], List[str]]:
  """Runs `steps` with a fresh tmpfs of `size_kb` at `mount_point`, in a private namespace.

  A step is a command (a list of strings), or ("remount", size_kb) to grow the disk. Returns
  (returncode, stdout, stderr) per command and the listing of the tmpfs after the last step.
  """
  os.makedirs(mount_point, exist_ok=True)
  work = mount_point.rstrip("/") + ".steps"
  os.makedirs(work, exist_ok=True)
  options = f"size={size_kb}k" + (",ro" if read_only else "")
  lines = ["set -u", f"mount -t tmpfs -o {options} tmpfs {shlex.quote(mount_point)} || exit 97"]
  commands = 0
  for step in steps:
    if step[0] == "remount":
      lines.append(f"mount -o remount,size={step[1]}k {shlex.quote(mount_point)} || exit 98")
      continue
    out, err, status = (os.path.join(work, f"{commands}.{kind}") for kind in ("out", "err", "rc"))
    lines.append(f"(cd {shlex.quote(REPO_DIR)} && {shlex.join(step)}) >{shlex.quote(out)} "
                 f"2>{shlex.quote(err)}; echo $? >{shlex.quote(status)}")
    commands += 1
  lines.append(f"(cd {shlex.quote(mount_point)} && find . -mindepth 1 | sort) "
               f">{shlex.quote(os.path.join(work, 'listing'))}")
  done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                         "\n".join(lines)], env=script_env(env), capture_output=True, text=True,
                        timeout=timeout)
  assert done.returncode == 0, f"the tmpfs could not be set up: {done.stderr}"
  results = []
  for k in range(commands):
    read = lambda kind: open(os.path.join(work, f"{k}.{kind}"), encoding="utf-8").read()  # noqa
    results.append((int(read("rc")), read("out"), read("err")))
  with open(os.path.join(work, "listing"), encoding="utf-8") as f:
    tree = [line[2:] for line in f.read().splitlines()]
  return results, tree


class Done:
  """A CompletedProcess-like view of one step of `run_on_tmpfs`."""

  def __init__(self, result: Tuple[int, str, str]):
    self.returncode, self.stdout, self.stderr = result


# ------------------------------------------------------------------------ a simulated fault
def injected_fault_env(kind: str, directory: str, budget: int = 0) -> Dict[str, str]:
  """The environment of a script run whose writes under `directory` fail with `kind`."""
  return {"PYTHONPATH": os.pathsep.join([INJECTION_DIR, REPO_DIR]), "ALBERT_FAULT": kind,
          "ALBERT_FAULT_DIR": directory, "ALBERT_FAULT_BYTES": str(budget)}


# ------------------------------------------------------------------ an unwritable directory
@contextlib.contextmanager
def locked_directory(path: str) -> Iterator[Optional[str]]:
  """`path` created and made unwritable for this user; yields how, or None if impossible."""
  os.makedirs(path, exist_ok=True)
  how = None
  if simulated_only():
    pass
  elif os.geteuid() != 0:
    os.chmod(path, 0o500)
    how = "mode 0500"
  elif shutil.which("chattr") and subprocess.run(["chattr", "+i", path],
                                                 capture_output=True).returncode == 0:
    how = "chattr +i"
  try:
    yield how
  finally:
    if how == "mode 0500":
      os.chmod(path, 0o700)
    elif how == "chattr +i":
      subprocess.run(["chattr", "-i", path], check=True)
