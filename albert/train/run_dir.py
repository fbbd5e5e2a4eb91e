"""A run's output directory: what the original wrote there, read back and written atomically.

`RunDir(output_dir)` owns the files a run shares with its users and with later runs:
* `model.ckpt-N` (TF1 names, weights only): `steps()`, `prefix(step)`, `prune(keep)`,
  `best_or_latest()` (what a prediction or an export reads);
* `eval_results.txt`: per evaluation, the sorted `key = value` lines of its results (the
  original's format; `global_step` among them), appended; `results()` reads them back;
* `model.ckpt-best` + `best_trial.txt` (the original's one line `global_step:best_step:value`,
  which its scripts read back with `split(":")`) and `train_state/best_checkpoint.json` (the
  metric, its value, where the copy came from and the data it was chosen on):
  `update_best(step, value)`;
* `albert_config.json` and `train_state/run_identity.json` (the task and the settings that shape
  the model or its data: task name, labels, max_seq_length, tokenizer; and the fingerprint of
  the training data): `check_claim` refuses a run with another config or other settings,
  naming both, before anything is written; `claim` writes them when the run really starts;
* `train_state/eval_records.jsonl`: each evaluation of a checkpoint with the fingerprint of the
  data it was scored on (`record_eval`, `scored(data)`), which is how a rerun knows which
  checkpoints were already scored: only on the same data, so a changed dev set scores every
  checkpoint again (and a best chosen on other data is beaten by any score);
* `train_state/ckpt-N` (the resume states, written by the Trainer's `tf.train.CheckpointManager`):
  `state_steps()`, `state_path(step)`, `repair_state_index()` (a damaged `train_state/checkpoint`
  index is rebuilt from the states beside it);
* `train_state/lock`: `lock()` holds the directory for one run at a time (`flock`, released by
  the kernel when the process dies, even by SIGKILL).

The best checkpoint is copied (data first, the index last, each atomically), never renamed:
nothing of a run is deleted. TensorFlow is imported only by what reads a checkpoint
(`checkpoint_step`, `repair_state_index`): scripts/run_glue.py reads results without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from typing import Any, Dict, Iterator, List, Optional

from albert import files
from albert.errors import TrainingError

TF1_PREFIX = "model.ckpt"
STATE_DIR = "train_state"
RESULTS_FILE = "eval_results.txt"
BEST_TRIAL_FILE = "best_trial.txt"
BEST_STATE_FILE = "best_checkpoint.json"
CONFIG_FILE = "albert_config.json"
IDENTITY_FILE = "run_identity.json"  # in train_state/
EVAL_RECORDS_FILE = "eval_records.jsonl"  # in train_state/
LOCK_FILE = "lock"  # in train_state/
_SUFFIXES = (".data-00000-of-00001", ".index")  # the index last: it makes a checkpoint visible


def format_results(results: Dict[str, float]) -> str:
  """The original's block: one `key = value` line per result, sorted by key."""
  return "".join(f"{key} = {results[key]}\n" for key in sorted(results))


def describe_differences(before: Dict[str, Any], now: Dict[str, Any],
                         limit: Optional[int] = None) -> str:
  """`key: <before> there, <now> now; ...` for each key whose value differs, sorted by key."""
  changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
  return "; ".join(f"{k}: {before.get(k)!r} there, {now.get(k)!r} now"
                   for k in changed[:limit])


def checkpoint_step(prefix: str) -> int:
  """The `global_step` a checkpoint records (0 when it has none)."""
  from albert import checkpoint  # pylint: disable=g-import-not-at-top  (TensorFlow)
  reader = checkpoint.open_reader(prefix)
  return int(reader.get_tensor("global_step")) if reader.has_tensor("global_step") else 0


def _read_json(path: str) -> Optional[Any]:
  """The JSON in `path`, or None when the file is missing or unreadable."""
  if not files.exists(path):
    return None
  with files.open_file(path, encoding="utf-8") as f:
    try:
      return json.load(f)
    except json.JSONDecodeError:
      return None


def parse_results(text: str) -> List[Dict[str, float]]:
  """The evaluations of an eval_results.txt: a block ends where a key repeats."""
  blocks: List[Dict[str, float]] = []
  current: Dict[str, float] = {}
  for line in text.splitlines():
    if " = " not in line:
      continue
    key, value = line.split(" = ", 1)
    key = key.strip()
    if key in current:
      blocks.append(current)
      current = {}
    try:
      current[key] = float(value)
    except ValueError:
      continue  # e.g. the original pretraining's "saved ... to ..." lines
  if current:
    blocks.append(current)
  return blocks


class RunDir:
  """The files of one run's `output_dir`; see the module docstring."""

  def __init__(self, output_dir: str):
    self.path = output_dir
    self.state_dir = os.path.join(output_dir, STATE_DIR)

  # ---------------------------------------------------------------------------- checkpoints
  def prefix(self, step) -> str:
    return os.path.join(self.path, f"{TF1_PREFIX}-{step}")

  def steps(self) -> List[int]:
    """Steps N of the complete `model.ckpt-N` checkpoints, ascending."""
    if not files.isdir(self.path):
      return []
    pattern = re.compile(re.escape(TF1_PREFIX) + r"-(\d+)\.index$")
    found = []
    for name in files.listdir(self.path):
      match = pattern.match(name)
      if match and files.exists(self.prefix(match.group(1)) + _SUFFIXES[0]):
        found.append(int(match.group(1)))
    return sorted(found)

  def best_or_latest(self, fallback: Optional[str] = None) -> Optional[str]:
    """The weights a prediction or an export of the run uses: `model.ckpt-best`, else the
    latest `model.ckpt-N`, else `fallback` (--init_checkpoint); None when there is none."""
    if files.exists(self.best_prefix + ".index"):
      return self.best_prefix
    steps = self.steps()
    return self.prefix(steps[-1]) if steps else fallback

  def prune(self, keep: int, protect: Optional[int] = None) -> None:
    """Deletes the oldest `model.ckpt-N` beyond `keep` (never `protect`, the one not yet scored)."""
    for old in self.steps()[:-keep]:
      if old == protect:
        continue
      for suffix in _SUFFIXES:
        path = self.prefix(old) + suffix
        if files.exists(path):
          files.remove(path)

  # --------------------------------------------------------------------------- resume states
  def state_path(self, step: int) -> str:
    return os.path.join(self.state_dir, f"ckpt-{step}")

  def state_steps(self) -> List[int]:
    """Steps of the resume states on disk (`train_state/ckpt-N.index`), ascending."""
    if not files.isdir(self.state_dir):
      return []
    return sorted(int(m.group(1)) for m in (re.match(r"ckpt-(\d+)\.index$", n)
                                            for n in files.listdir(self.state_dir)) if m)

  def repair_state_index(self, log) -> None:
    """Rebuilds a `train_state/checkpoint` index that cannot be read from the resume states
    beside it (removes it when there is none), saying so with `log`."""
    index = os.path.join(self.state_dir, "checkpoint")
    if not files.exists(index):
      return
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    try:
      readable = tf.train.get_checkpoint_state(self.state_dir) is not None
    except Exception:  # pylint: disable=broad-except  (text_format.ParseError and friends)
      readable = False
    if readable:
      return
    steps = self.state_steps()
    log(f"warning: {index} cannot be read; rebuilt from the {len(steps)} resume state(s) found "
        "beside it")
    if steps:
      lines = [f'model_checkpoint_path: "ckpt-{steps[-1]}"']
      lines += [f'all_model_checkpoint_paths: "ckpt-{s}"' for s in steps]
      files.write_text(index, "\n".join(lines) + "\n")
    else:
      files.remove(index)

  # -------------------------------------------------------------------------------- results
  @property
  def results_file(self) -> str:
    return os.path.join(self.path, RESULTS_FILE)

  def results(self) -> List[Dict[str, float]]:
    """Every evaluation recorded in eval_results.txt, in file order."""
    if not files.exists(self.results_file):
      return []
    with files.open_file(self.results_file, encoding="utf-8") as f:
      return parse_results(f.read())

  def scored_steps(self) -> Dict[int, Dict[str, float]]:
    """global_step -> its (last) recorded results."""
    return {int(r["global_step"]): r for r in self.results() if "global_step" in r}

  def append_results(self, results: Dict[str, float]) -> None:
    files.append_text(self.results_file, format_results(results))

  @property
  def records_file(self) -> str:
    return os.path.join(self.state_dir, EVAL_RECORDS_FILE)

  def eval_records(self) -> List[Dict[str, Any]]:
    """Every `{"global_step", "data", "results"}` recorded by `record_eval`, in file order."""
    if not files.exists(self.records_file):
      return []
    found = []
    with files.open_file(self.records_file, encoding="utf-8") as f:
      for line in f:
        try:
          found.append(json.loads(line))
        except json.JSONDecodeError:
          continue  # a line cut short: that evaluation counts as not done
    return found

  def scored(self, data: Optional[str]) -> Dict[int, Dict[str, float]]:
    """global_step -> its (last) results on the data of fingerprint `data`."""
    return {int(r["global_step"]): r["results"] for r in self.eval_records()
            if r.get("data") == data}

  def record_eval(self, step: int, results: Dict[str, float], data: Optional[str]) -> None:
    """Appends the results of `model.ckpt-<step>` to eval_results.txt, then (last: it marks the
    checkpoint scored) to train_state/eval_records.jsonl with the data's fingerprint."""
    self.append_results(results)
    values = {k: int(v) if k == "global_step" else float(v) for k, v in results.items()}
    files.append_text(self.records_file, json.dumps(
        {"global_step": int(step), "data": data, "results": values}, sort_keys=True) + "\n")

  # ----------------------------------------------------------------------------------- best
  @property
  def best_prefix(self) -> str:
    return os.path.join(self.path, f"{TF1_PREFIX}-best")

  def best(self) -> Optional[Dict]:
    """{"step", "value", "metric", "source"} of the best checkpoint so far, or None."""
    path = os.path.join(self.state_dir, BEST_STATE_FILE)
    if not files.exists(path) or not files.exists(self.best_prefix + ".index"):
      return None
    with files.open_file(path, encoding="utf-8") as f:
      return json.load(f)

  def stale_best(self, metric: str, data: Optional[str]) -> Optional[Dict]:
    """The best checkpoint's record if it was chosen by another metric or on other data."""
    best = self.best()
    if best is not None and (best.get("metric") != metric or best.get("data") != data):
      return best
    return None

  def update_best(self, step: int, metric: str, value: float, higher_is_better: bool = True,
                  log=None, data: Optional[str] = None) -> bool:
    """Copies `model.ckpt-<step>` to `model.ckpt-best` if `value` beats the best; True if so.

    `data` is the fingerprint of the data `value` was measured on: a best chosen on other data
    (or by another metric) is beaten by any value. `best_trial.txt` is rewritten after every
    scored checkpoint (the original's `global_step:best_step:best_value`), whether or not it
    became the best.
    """
    best = self.best()
    better = (best is None or self.stale_best(metric, data) is not None or
              (value > best["value"] if higher_is_better else value < best["value"]))
    source = self.prefix(step)
    if better and files.exists(source + ".index"):
      for suffix in _SUFFIXES:  # the index last
        files.copy_file(source + suffix, self.best_prefix + suffix)
      best = {"step": int(step), "value": float(value), "metric": metric,
              "source": os.path.basename(source), "copy": os.path.basename(self.best_prefix),
              "data": data}
      files.write_text(os.path.join(self.state_dir, BEST_STATE_FILE), json.dumps(best) + "\n")
      if log:
        log(f"New best {metric} = {value} at step {step}: copied {source} to {self.best_prefix}")
    else:
      better = False
    if best is not None:
      files.write_text(os.path.join(self.path, BEST_TRIAL_FILE),
                       f"{int(step)}:{best['step']}:{best['value']}")
    return better

  def restore_from_best(self, step: int) -> str:
    """Copies `model.ckpt-best` back to `model.ckpt-<step>` (its source, pruned since), so that
    it can be scored again; returns the prefix."""
    for suffix in _SUFFIXES:  # the index last
      files.copy_file(self.best_prefix + suffix, self.prefix(step) + suffix)
    return self.prefix(step)

  # --------------------------------------------------------------------------------- config
  @property
  def identity_file(self) -> str:
    return os.path.join(self.state_dir, IDENTITY_FILE)

  def identity(self) -> Optional[Dict[str, Any]]:
    """`{"settings": {...}, "train_data": fingerprint or None}` of the run, or None."""
    found = _read_json(self.identity_file)
    return found if isinstance(found, dict) else None

  def check_claim(self, config, settings: Dict[str, Any], source: Optional[str] = None) -> None:
    """Refuses a run whose albert config or settings differ from the directory's; writes nothing.

    `config` is an `AlbertConfig` (or None: not checked); `source` the file it came from;
    `settings` the task and what shapes the model or its data (`Task.run_identity`), keyed by
    flag name.
    """
    path = os.path.join(self.path, CONFIG_FILE)
    existing = _read_json(path)
    if config is not None and isinstance(existing, dict) and existing != config.to_dict():
      shown = describe_differences(existing, config.to_dict(), limit=5)
      given = f"--albert_config_file={source}" if source else "the albert config of this run"
      raise TrainingError(
          f"{self.path} already holds a run with another albert config: {path} differs from "
          f"{given} ({shown}). Use a new --output_dir, or the same config to resume.")
    settings = json.loads(json.dumps(settings))  # tuples as lists, as read back
    recorded = (self.identity() or {}).get("settings")
    if isinstance(recorded, dict) and recorded != settings:
      shown = describe_differences(recorded, settings)
      raise TrainingError(
          f"{self.path} already holds a run of another task or other settings ({shown}; "
          f"recorded in {self.identity_file}). Use a new --output_dir (its --init_checkpoint "
          f"may be {self.best_prefix} or a {TF1_PREFIX}-N), or the same settings to resume.")

  def claim(self, config, settings: Dict[str, Any], source: Optional[str] = None,
            train_data: Optional[str] = None) -> None:
    """Checks as `check_claim`, then writes `albert_config.json` (first run) and the identity
    (`train_data`: the fingerprint of the training data, kept from an earlier run if None)."""
    self.check_claim(config, settings, source)
    files.make_dirs(self.path)
    if config is not None and not isinstance(_read_json(os.path.join(self.path, CONFIG_FILE)),
                                             dict):
      config.to_json_file(os.path.join(self.path, CONFIG_FILE))
    identity = {"settings": json.loads(json.dumps(settings)),
                "train_data": train_data or (self.identity() or {}).get("train_data")}
    if identity != self.identity():
      files.write_text(self.identity_file, json.dumps(identity, indent=1, sort_keys=True) + "\n")

  def check_train_data(self, current: Optional[str]) -> None:
    """Refuses to resume on training features other than those the run recorded: the resume
    state's input position would be restored over other records."""
    recorded = (self.identity() or {}).get("train_data")
    if recorded and current and recorded != current:
      raise TrainingError(
          f"the training data changed since the resume state in {self.state_dir} was saved "
          f"(features {recorded[:16]} there, {current[:16]} now: another train file, or other "
          "settings that shape its features): resuming would continue its input position over "
          "other records. Use a new --output_dir (its --init_checkpoint may be a model.ckpt-N "
          "of this one), or the training data of the run")

  # ------------------------------------------------------------------- lock, failed starts
  def entries(self) -> Optional[set]:
    """The names in the directory (None: it does not exist, or is remote)."""
    if files.is_remote(self.path) or not os.path.isdir(self.path):
      return None
    return set(os.listdir(self.path))

  def remove_added(self, before: Optional[set]) -> None:
    """After a run that failed before it started: removes what it added (`before`: `entries()`
    then), and the directory if it made it."""
    now = self.entries()
    if now is None:
      return
    for name in sorted(now - (before or set())):
      path = os.path.join(self.path, name)
      if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
      else:
        os.remove(path)
    if before is None and not os.listdir(self.path):
      os.rmdir(self.path)

  @contextlib.contextmanager
  def lock(self) -> Iterator[None]:
    """Holds the directory for this process: another run of it is refused while this one runs.

    An exclusive `flock` on `train_state/lock` (which names the holder's process id): the
    kernel releases it when the process ends in any way, so a killed run leaves no stale lock.
    Remote directories (gs://...) and file systems without `flock` are not locked.
    """
    if files.is_remote(self.path):
      yield
      return
    import fcntl  # pylint: disable=g-import-not-at-top  (POSIX only)
    path = os.path.join(self.state_dir, LOCK_FILE)
    files.make_dirs(self.state_dir)
    while True:
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        holder = os.read(fd, 64).decode("ascii", "replace").strip()
        os.close(fd)
        raise TrainingError(
            f"{self.path} is in use by another run (process {holder or 'unknown'}, which holds "
            f"{path}): wait for it to end, or use another --output_dir") from None
      except OSError:  # no flock on this file system: the run goes on unlocked
        os.close(fd)
        fd = None
        break
      try:  # the holder may have removed the file between our open and our flock
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
          break
      except FileNotFoundError:
        pass
      os.close(fd)
    if fd is None:
      yield
      return
    try:
      os.ftruncate(fd, 0)
      os.write(fd, f"{os.getpid()}\n".encode("ascii"))
      yield
    finally:
      try:
        os.remove(path)  # while still holding it: a waiting opener sees another inode
      except OSError:
        pass
      os.close(fd)
