"""A run's output directory: what the original wrote there, read back and written atomically.

`RunDir(output_dir)` owns the files a run shares with its users and with later runs:
* `model.ckpt-N` (TF1 names, weights only): `steps()`, `prefix(step)`, `prune(keep)`;
* `eval_results.txt`: per evaluation, the sorted `key = value` lines of its results (the
  original's format; `global_step` among them), appended; `results()` reads them back, which is
  how a rerun knows which checkpoints were already scored;
* `model.ckpt-best` + `best_trial.txt` (the original's one line `global_step:best_step:value`,
  which its scripts read back with `split(":")`) and `train_state/best_checkpoint.json` (the
  metric, its value and where the copy came from): `update_best(step, value)`;
* `albert_config.json`: `claim(config, source)` writes the run's config on the first run and
  refuses a later run with another one, naming both files.

The best checkpoint is copied (data first, the index last, each atomically), never renamed:
nothing of a run is deleted.
"""

from __future__ import annotations

import json
import os
import re
from typing import Dict, List, Optional

from albert import files
from albert.errors import TrainingError

TF1_PREFIX = "model.ckpt"
STATE_DIR = "train_state"
RESULTS_FILE = "eval_results.txt"
BEST_TRIAL_FILE = "best_trial.txt"
BEST_STATE_FILE = "best_checkpoint.json"
CONFIG_FILE = "albert_config.json"
_SUFFIXES = (".data-00000-of-00001", ".index")  # the index last: it makes a checkpoint visible


def format_results(results: Dict[str, float]) -> str:
  """The original's block: one `key = value` line per result, sorted by key."""
  return "".join(f"{key} = {results[key]}\n" for key in sorted(results))


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
    if not os.path.isdir(self.path):
      return []
    pattern = re.compile(re.escape(TF1_PREFIX) + r"-(\d+)\.index$")
    found = []
    for name in os.listdir(self.path):
      match = pattern.match(name)
      if match and os.path.exists(self.prefix(match.group(1)) + _SUFFIXES[0]):
        found.append(int(match.group(1)))
    return sorted(found)

  def prune(self, keep: int, protect: Optional[int] = None) -> None:
    """Deletes the oldest `model.ckpt-N` beyond `keep` (never `protect`, the one not yet scored)."""
    for old in self.steps()[:-keep]:
      if old == protect:
        continue
      for suffix in _SUFFIXES:
        path = self.prefix(old) + suffix
        if os.path.exists(path):
          os.remove(path)

  # -------------------------------------------------------------------------------- results
  @property
  def results_file(self) -> str:
    return os.path.join(self.path, RESULTS_FILE)

  def results(self) -> List[Dict[str, float]]:
    """Every evaluation recorded in eval_results.txt, in file order."""
    if not os.path.exists(self.results_file):
      return []
    with open(self.results_file, encoding="utf-8") as f:
      return parse_results(f.read())

  def scored_steps(self) -> Dict[int, Dict[str, float]]:
    """global_step -> its (last) recorded results."""
    return {int(r["global_step"]): r for r in self.results() if "global_step" in r}

  def append_results(self, results: Dict[str, float]) -> None:
    files.append_text(self.results_file, format_results(results))

  # ----------------------------------------------------------------------------------- best
  @property
  def best_prefix(self) -> str:
    return os.path.join(self.path, f"{TF1_PREFIX}-best")

  def best(self) -> Optional[Dict]:
    """{"step", "value", "metric", "source"} of the best checkpoint so far, or None."""
    path = os.path.join(self.state_dir, BEST_STATE_FILE)
    if not os.path.exists(path) or not os.path.exists(self.best_prefix + ".index"):
      return None
    with open(path, encoding="utf-8") as f:
      return json.load(f)

  def update_best(self, step: int, metric: str, value: float, higher_is_better: bool = True,
                  log=None) -> bool:
    """Copies `model.ckpt-<step>` to `model.ckpt-best` if `value` beats the best; True if so.

    `best_trial.txt` is rewritten after every scored checkpoint (the original's
    `global_step:best_step:best_value`), whether or not it became the best.
    """
    best = self.best()
    better = best is None or (value > best["value"] if higher_is_better else value < best["value"])
    source = self.prefix(step)
    if better and os.path.exists(source + ".index"):
      for suffix in _SUFFIXES:  # the index last
        files.copy_file(source + suffix, self.best_prefix + suffix)
      best = {"step": int(step), "value": float(value), "metric": metric,
              "source": os.path.basename(source), "copy": os.path.basename(self.best_prefix)}
      files.write_text(os.path.join(self.state_dir, BEST_STATE_FILE), json.dumps(best) + "\n")
      if log:
        log(f"New best {metric} = {value} at step {step}: copied {source} to {self.best_prefix}")
    else:
      better = False
    if best is not None:
      files.write_text(os.path.join(self.path, BEST_TRIAL_FILE),
                       f"{int(step)}:{best['step']}:{best['value']}")
    return better

  # --------------------------------------------------------------------------------- config
  def claim(self, config, source: Optional[str] = None) -> None:
    """Writes `albert_config.json` on the first run; a run with another config is refused.

    `config` is an `AlbertConfig`; `source` the file it came from (named in the message).
    """
    path = os.path.join(self.path, CONFIG_FILE)
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        try:
          existing = json.load(f)
        except json.JSONDecodeError:
          existing = None
      if existing is not None and existing != config.to_dict():
        differences = sorted(k for k in set(existing) | set(config.to_dict())
                             if existing.get(k) != config.to_dict().get(k))
        shown = ", ".join(f"{k}: {existing.get(k)!r} there, {config.to_dict().get(k)!r} now"
                          for k in differences[:5])
        given = f"--albert_config_file={source}" if source else "the albert config of this run"
        raise TrainingError(
            f"{self.path} already holds a run with another albert config: {path} differs from "
            f"{given} ({shown}). Use a new --output_dir, or the same config to resume.")
      if existing is not None:
        return
    config.to_json_file(path)
