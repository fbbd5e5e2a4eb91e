"""A real script against TensorFlow's in-memory `ram://` file system (issue 24: object storage).

`ram://` lives in one process only, so `run_on_ram(script, args, copy_in, copy_out)` runs the
script in a subprocess that first copies local trees into `ram://` (`copy_in`: {local: ram
url}), runs the script (its own `__main__`), then copies `ram://` trees back to local folders
(`copy_out`: {ram url: local}) whatever the script's exit status; returns the CompletedProcess.
Nothing of the script is changed: it sees only `ram://` paths in its flags.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict, Sequence

from conftest import REPO_DIR

_WRAPPER = r"""
import json, os, runpy, sys
import tensorflow as tf

def copy(source, destination):
  if not tf.io.gfile.isdir(source) or tf.io.gfile.exists(source + ".index"):  # (a prefix)
    tf.io.gfile.makedirs(os.path.dirname(destination))
    tf.io.gfile.copy(source, destination, overwrite=True)
    return
  if "://" not in source:
    for root, _, names in os.walk(source):
      for name in names:
        target = os.path.join(destination, os.path.relpath(os.path.join(root, name), source))
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.copy(os.path.join(root, name), target, overwrite=True)
    return
  # ram:// lists only the files of a folder itself (and not every time its subfolders): the
  # files at each depth are found with globs.
  for depth in range(1, 8):
    for path in tf.io.gfile.glob(source.rstrip("/") + "/*" * depth):
      target = os.path.join(destination, os.path.relpath(path, source))
      try:
        with tf.io.gfile.GFile(path, "rb") as f:
          data = f.read()
      except tf.errors.OpError:  # a folder
        continue
      os.makedirs(os.path.dirname(target), exist_ok=True)
      with open(target, "wb") as f:
        f.write(data)

for local, ram in json.loads(os.environ["RAM_COPY_IN"]):
  copy(local, ram)
script, sys.argv = sys.argv[1], sys.argv[1:]
status = 0
try:
  runpy.run_path(script, run_name="__main__")
except SystemExit as stop:
  status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
finally:
  for ram, local in json.loads(os.environ["RAM_COPY_OUT"]):
    if tf.io.gfile.exists(ram):
      copy(ram, local)
  sys.stdout.flush()
sys.exit(status)
"""


def run_on_ram(script: str, args: Sequence[str], copy_in: Dict[str, str],
               copy_out: Dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2",
             RAM_COPY_IN=json.dumps(sorted(copy_in.items())),
             RAM_COPY_OUT=json.dumps(sorted(copy_out.items())))
  env.pop("ALBERT_TRACEBACK", None)
  env.pop("TF_CONFIG", None)
  return subprocess.run([sys.executable, "-c", _WRAPPER, os.path.join(REPO_DIR, script),
                         *args], cwd=REPO_DIR, env=env, capture_output=True, text=True,
                        timeout=timeout)
