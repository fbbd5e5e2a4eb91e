"""TF Serving version folders: how every fine-tuned export (`albert.export.serving`) is written.

TF Serving serves `<model base path>/<integer version>/`; the original wrote
`export_dir/<timestamp>/`. Here the version is the global step of the exported weights (or an
explicit `version`). This module owns writing and checking such a folder:

* `write_export(export_dir, version, variables, signatures, check, info, ...)`: the SavedModel
  is written beside its final place, loaded back and checked (`check(loaded)`, usually
  `compare_outputs` of each signature against the in-memory model), then renamed into place
  (`files.write_directory`), so a server polling `export_dir` never sees a half-written
  version and a failed export leaves nothing. What made it is recorded in
  `assets.extra/export_info.json` (`INFO_FILE`: the settings, the signatures and their input
  and output names, and the `fingerprint` of weights + settings, `export_digest`). An existing
  version folder is kept as it is when it holds the same export (a rerun of the same command)
  and is an error otherwise (unless `overwrite`). Returns an `ExportResult`.
* `check_export_base(export_dir, info)`: one base path serves one model: a new version whose
  task, labels, max_seq_length or raw-text signatures (`SERVED_KEYS`) differ from those of the
  versions already there is refused, naming both (checked from the flags before the training
  starts, and again before writing).
* `read_info(path)`: the recorded settings of an export (`albert.hub` and
  `albert.export.answer` read them too).
* `load_task_model(task, checkpoint)`: what a version holds, a task's model with the weights
  of a checkpoint and its global step (the default version); `checkpoint_to_export(output_dir,
  init_checkpoint)`: which checkpoint a run's `--export_dir` exports.

Loading an export: `tf.saved_model.load(path)` (with `import tensorflow_text` first when it has
raw-text signatures), then `loaded.signatures["token_ids"](input_ids=..., ...)`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from albert import checkpoint, files
from albert.errors import ExportError, FlagError

INFO_FILE = os.path.join("assets.extra", "export_info.json")
VERIFY_TOLERANCE = 1e-5  # max |diff| relative to the largest output magnitude (at least 1)


@dataclasses.dataclass
class ExportResult:
  """What an export wrote (or found already written) and measured after reloading."""
  path: str
  version: int
  signatures: List[str]
  max_abs_diff: Dict[str, float] = dataclasses.field(default_factory=dict)
  reused: bool = False  # the version folder already held this very export
  source: Optional[str] = None  # the checkpoint the weights came from, if known

  def format(self) -> str:
    if self.reused:
      return f"{self.path} already holds this export (version {self.version}); left as it is"
    lines = [f"Exported {self.path} (version {self.version}"
             + (f", weights of {self.source})" if self.source else ")"),
             f"  signatures: {', '.join(self.signatures)}"]
    if self.max_abs_diff:
      worst: Dict[str, float] = {}
      for key, value in self.max_abs_diff.items():
        name = key.split("/")[0]
        worst[name] = max(worst.get(name, 0.0), value)
      lines.append("  reloaded vs in-memory, max |diff| per signature: " + ", ".join(
          f"{k} {v:.2e}" for k, v in sorted(worst.items())))
    return "\n".join(lines)


# -------------------------------------------------------------------------------- writing
def export_digest(variables: Sequence[tf.Variable], settings: Mapping) -> str:
  """sha256 of the weights (by name) and the export settings: equal exports, equal prints."""
  digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
  for var in sorted(variables, key=lambda v: v.name):
    digest.update(var.name.encode() + b"\0")
    digest.update(np.ascontiguousarray(var.numpy()).tobytes())
  return digest.hexdigest()


def read_info(path: str) -> Optional[dict]:
  """The recorded settings (`assets.extra/export_info.json`) of a fine-tuned export, or None."""
  return files.read_json(os.path.join(path, INFO_FILE))


def check_version(version) -> int:
  if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 0:
    raise FlagError(f"an export version is a non-negative integer (TF Serving's version "
                    f"folders), got {version!r}")
  return int(version)


def signature_io(function) -> Dict[str, Dict[str, List[str]]]:
  """Input and output names of a concrete signature function."""
  args, kwargs = function.structured_input_signature
  inputs = [spec.name for spec in args] + list(kwargs)
  return {"inputs": sorted(inputs), "outputs": sorted(function.structured_outputs)}


# What a version serves, as its clients see it: another value in a new version of the same
# base path would answer the old model's clients with another model.
SERVED_KEYS = ("task_kind", "task_name", "labels", "max_seq_length", "raw_text")


def served(info: Mapping) -> Dict[str, object]:
  """The SERVED_KEYS of an export's recorded settings (those it records)."""
  return {k: info[k] for k in SERVED_KEYS if info.get(k) is not None}


def _model_of(serves: Mapping) -> str:
  shown = str(serves.get("task_name") or serves.get("task_kind"))
  if serves.get("labels"):
    shown += f" (labels {', '.join(map(str, serves['labels']))})"
  return shown


def check_export_base(export_dir: str, info: Mapping, replacing: Optional[int] = None) -> None:
  """Refuses to add a version to `export_dir` that serves another model than its versions.

  `info` holds the settings the new export records (`task_kind`, and `task_name`, `labels`,
  `max_seq_length`, `raw_text` where they apply); every version folder of the base with our
  `export_info.json` must serve the same (keys one of them does not record are not compared).
  TF Serving serves the highest version of a base path: a version of another task would
  answer the first model's clients. `replacing`: the version an overwrite replaces (skipped).
  Called before the training starts (from the flags) and again before writing.
  """
  if not export_dir or not tf.io.gfile.isdir(export_dir):
    return
  mine = served(info)
  versions = sorted((n.rstrip("/") for n in tf.io.gfile.listdir(export_dir)
                     if n.rstrip("/").isdigit()), key=int)
  for version in versions:
    found = read_info(os.path.join(export_dir, version))
    if found is None or (replacing is not None and int(version) == replacing):
      continue
    theirs = served(found)
    differ = [k for k in SERVED_KEYS if k in theirs and k in mine and theirs[k] != mine[k]]
    if differ:
      shown = "; ".join(f"{k} {theirs[k]!r} there, {mine[k]!r} now" for k in differ)
      raise ExportError(
          f"--export_dir={export_dir} already serves another model: version {version} is "
          f"{_model_of(theirs)}, this run exports {_model_of(mine)} ({shown}). TF Serving "
          "serves the highest version of a base path, so the first model's clients would get "
          "this one: export to another --export_dir (one base path per model)")


def write_export(export_dir: str, version: int, variables: Sequence[tf.Variable],
                 signatures: Mapping[str, tf.types.experimental.GenericFunction],
                 check: Callable[[object], Dict[str, float]],
                 info: Optional[Mapping] = None, assets: Optional[Mapping[str, str]] = None,
                 trackables: Optional[Mapping[str, object]] = None, overwrite: bool = False,
                 log: Callable[[str], None] = print) -> ExportResult:
  """Writes `export_dir/<version>/` atomically; returns what was written.

  Args:
    variables: every variable the signatures read (tracked by the saved root object).
    signatures: name -> tf.function with an input signature (its inputs by name).
    check: called with the reloaded SavedModel before the folder is renamed into place;
      returns max |diff| per output (raises ExportError when the export is wrong).
    info: JSON-able settings recorded in `assets.extra/export_info.json` (with the version,
      the signatures and the fingerprint of weights + settings).
    assets: attribute name -> file, stored as SavedModel assets under their base names.
    trackables: attribute name -> resources the functions use (e.g. a tokenizer).
    overwrite: replace an existing version folder that holds another export.
  """
  version = check_version(version)
  if not export_dir:
    raise FlagError("no export directory given (--export_dir)")
  path = os.path.join(export_dir, str(version))
  settings = dict(info or {})
  settings["signatures"] = sorted(signatures)
  settings["assets"] = {k: files.file_digest(v) for k, v in (assets or {}).items()}
  digest = export_digest(variables, settings)
  if tf.io.gfile.exists(path):
    existing = read_info(path)
    if existing is not None and existing.get("fingerprint") == digest:
      result = ExportResult(path=path, version=version, signatures=sorted(signatures),
                            reused=True, source=settings.get("checkpoint"))
      log(result.format())
      return result
    if not overwrite:
      if existing is None:
        what = "something that is not one of our exports"
      else:
        source = existing.get("checkpoint")
        what = (f"another export ({'of ' + source + ', ' if source else ''}other weights or "
                "settings)")
      raise ExportError(f"version folder {path} already holds {what}; remove it, export to "
                        "another --export_dir, or give another version (TF Serving serves the "
                        "highest version)")
  check_export_base(export_dir, settings, replacing=version if overwrite else None)
  result = ExportResult(path=path, version=version, signatures=sorted(signatures),
                        source=settings.get("checkpoint"))

  def write(directory: str) -> None:
    sources = {os.path.basename(p): p for p in (assets or {}).values()}
    with files.staged_files(sources) as staged:
      root = tf.Module()
      root.model_variables = list(variables)
      for name, source in (assets or {}).items():
        setattr(root, name, tf.saved_model.Asset(staged[os.path.basename(source)]))
      for name, value in (trackables or {}).items():
        setattr(root, name, value)
      concrete = {name: fn.get_concrete_function() for name, fn in signatures.items()}
      tf.saved_model.save(root, directory, signatures=concrete)
    record = {**settings, "version": version, "fingerprint": digest,
              "signature_io": {name: signature_io(fn) for name, fn in concrete.items()}}
    files.write_text(os.path.join(directory, INFO_FILE),
                     json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    result.max_abs_diff = check(tf.saved_model.load(directory))

  files.write_directory(path, write, overwrite=overwrite)
  log(result.format())
  return result


# ------------------------------------------------------------------ the weights of a version
def checkpoint_to_export(output_dir: str, init_checkpoint: Optional[str] = None) -> str:
  """The weights a run's `--export_dir` exports, as `--do_predict` picks them:
  `model.ckpt-best`, else the latest `model.ckpt-N` of `output_dir`, else `init_checkpoint`."""
  from albert.train.run_dir import RunDir  # pylint: disable=g-import-not-at-top
  found = RunDir(output_dir).best_or_latest(init_checkpoint)
  if found:
    return found
  raise ExportError(f"--export_dir needs a checkpoint: none in --output_dir ({output_dir}) and "
                    "no --init_checkpoint")


def load_task_model(task, checkpoint_path: str) -> Tuple[tf_keras.Model, str, int]:
  """(float32 task model, checkpoint prefix, global step): `task.build_model()` built afresh
  on the default strategy in float32 (whatever `--mixed_precision` the run trained with),
  every variable read from the checkpoint."""
  prefix = checkpoint.resolve_checkpoint(checkpoint_path)
  policy = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy("float32")
  try:
    model = task.build_model()
  finally:
    tf_keras.mixed_precision.set_global_policy(policy)
  checkpoint.load_tf1_checkpoint(model, prefix, require_all=True)
  from albert.train.run_dir import checkpoint_step  # pylint: disable=g-import-not-at-top
  return model, prefix, checkpoint_step(prefix)


# --------------------------------------------------------------------------- verification
def max_abs_diff(got, want) -> float:
  got, want = np.asarray(got), np.asarray(want)
  if got.shape != want.shape:
    raise ExportError(f"reloaded output shape {got.shape} differs from the model's {want.shape}")
  if got.dtype.kind in "OSUb" or want.dtype.kind in "OSUb":
    return 0.0 if np.array_equal(got, want) else math.inf
  if got.size == 0:
    return 0.0
  return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))


def compare_outputs(name: str, got: Mapping, want: Mapping) -> Dict[str, float]:
  """max |diff| per output of signature `name`; ExportError above tolerance or on other keys."""
  if set(got) != set(want):
    raise ExportError(f"signature {name}: outputs {sorted(got)} differ from the model's "
                      f"{sorted(want)}")
  diffs = {f"{name}/{k}": max_abs_diff(got[k], want[k]) for k in want}
  scale = max([1.0] + [float(np.max(np.abs(np.asarray(v, np.float64)))) for v in want.values()
                       if np.asarray(v).dtype.kind == "f" and np.asarray(v).size])
  bad = {k: v for k, v in diffs.items() if not v <= VERIFY_TOLERANCE * scale}
  if bad:
    raise ExportError("the reloaded export does not reproduce the model: max |diff| "
                      + ", ".join(f"{k} {v:.3g}" for k, v in sorted(bad.items())))
  return diffs
