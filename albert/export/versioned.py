"""Exports of fine-tuned models (GLUE, SQuAD, RACE) as versioned SavedModels for serving.

This module owns what the fine-tuning tasks share when they export a model:

* `TASK_KINDS`: the token-id signature of each kind of model (inputs int32 [B,S] unless noted):
  - `classification`: `input_ids`, `input_mask`, `segment_ids` -> `logits` [B,L],
    `probabilities` [B,L], `predictions` [B] (int32);
  - `regression` (STS-B): the same inputs -> `logits` [B], `probabilities` [B,1] (the
    original's), `predictions` [B] (= the score);
  - `squad_v1`: + `p_mask` -> `start_logits`, `end_logits` [B,S] (v1 ignores p_mask, as the
    original's v1; the input is kept so that both versions take the same features);
  - `squad_v2`: + `p_mask` -> `start_log_probs` [B,S], the beam outputs `start_top_log_probs`,
    `start_top_index` [B,start_n_top], `end_top_log_probs`, `end_top_index`
    [B,start_n_top*end_n_top], and the answer-class logit `cls_logits` [B];
  - `race`: ids [B, C*S] (choice-major, as the RACE records) -> `logits`, `probabilities`
    [B,C], `predictions` [B] (int32), `answer` [B] (the letter, "A".."D").
* `export_finetuned(task_kind, model, export_dir, ...)`: writes the in-memory model (weights as
  they are) to `export_dir/<version>/` with the signatures `serving_default` and `token_ids`;
  `write_export` is the same with any signature functions (the GLUE export adds tf.Example and
  raw-text ones, `albert.export.serving`).
* `check_export_base(export_dir, info)`: one base path serves one model: a new version whose
  task, labels, max_seq_length or raw-text signatures differ from those of the versions
  already there is refused, naming both (checked from the flags before the training starts,
  and again before writing).
* `load_for_export(trainer)`: a fresh float32 copy of a Trainer's task model with the weights
  `--do_predict` would use (`model.ckpt-best`, else the latest `model.ckpt-N`, else
  `--init_checkpoint`), and the checkpoint's global step.

Versions. TF Serving serves `<model base path>/<integer version>/`; the original wrote
`export_dir/<timestamp>/`. Here the version is the global step of the exported weights (or an
explicit `version`). The folder is written beside its final place and renamed into it
(`files.write_directory`), after the SavedModel has been loaded back and checked, so a server
polling `export_dir` never sees a half-written version and a failed export leaves nothing. An
existing version folder is kept as it is when it holds the same export (same weights and
settings, recorded in `assets.extra/export_info.json`: a rerun of the same command), and is an
error otherwise (unless `overwrite`).

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
from albert.errors import ExportError, FlagError, TrainingError
from albert.models import ENCODER_INPUTS, SQUAD_V2_PREDICT_OUTPUTS, output_subset

INFO_FILE = os.path.join("assets.extra", "export_info.json")
VERIFY_TOLERANCE = 1e-5  # max |diff| relative to the largest output magnitude (at least 1)
RACE_ANSWERS = ("A", "B", "C", "D")
Outputs = Dict[str, tf.Tensor]
OutputsFn = Callable[[Dict[str, tf.Tensor]], Outputs]


@dataclasses.dataclass(frozen=True)
class TaskKind:
  """The token-id interface of one kind of fine-tuned model."""
  name: str
  inputs: Tuple[str, ...]
  outputs: Tuple[str, ...]  # model outputs served (more may be derived from them)


TASK_KINDS: Dict[str, TaskKind] = {k.name: k for k in (
    TaskKind("classification", ENCODER_INPUTS, ("logits", "probabilities", "predictions")),
    TaskKind("regression", ENCODER_INPUTS, ("logits", "probabilities", "predictions")),
    TaskKind("squad_v1", ENCODER_INPUTS + ("p_mask",), ("start_logits", "end_logits")),
    TaskKind("squad_v2", ENCODER_INPUTS + ("p_mask",),
             ("start_log_probs",) + SQUAD_V2_PREDICT_OUTPUTS),
    TaskKind("race", ENCODER_INPUTS, ("logits", "probabilities", "predictions")),
)}


def task_kind(name: str) -> TaskKind:
  if name not in TASK_KINDS:
    raise FlagError(f"unknown export task kind {name!r}; known: {', '.join(TASK_KINDS)}")
  return TASK_KINDS[name]


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


# ------------------------------------------------------------------------------ outputs
def serving_model(kind: str, model: tf_keras.Model) -> tf_keras.Model:
  """`model` restricted to the served outputs of `kind` (v2: no `start_positions` input)."""
  spec = task_kind(kind)
  missing = [k for k in spec.outputs if k not in model.output]
  if missing:
    raise ExportError(f"model {model.name} is not a {kind} model: it has no output "
                      f"{', '.join(missing)} (outputs: {', '.join(sorted(model.output))})")
  return output_subset(model, spec.outputs, name=f"{model.name}_serving")


def model_outputs_fn(kind: str, model: tf_keras.Model) -> OutputsFn:
  """features (the kind's inputs) -> the served outputs, in inference mode."""
  serving = serving_model(kind, model)
  needed = list(serving.input)

  def outputs(features: Dict[str, tf.Tensor]) -> Outputs:
    result = dict(serving({k: features[k] for k in needed}, training=False))
    if kind == "race":
      result["answer"] = tf.gather(tf.constant(RACE_ANSWERS), result["predictions"])
    return result

  return outputs


def id_specs(names: Sequence[str]) -> List[tf.TensorSpec]:
  return [tf.TensorSpec([None, None], tf.int32, name=name) for name in names]


def token_ids_function(kind: str, outputs_fn: OutputsFn) -> tf.types.experimental.GenericFunction:
  """The `token_ids` signature function: the kind's int32 inputs by name -> outputs."""
  names = task_kind(kind).inputs

  @tf.function(autograph=False, input_signature=id_specs(names))
  def token_ids(*tensors):
    return outputs_fn(dict(zip(names, tensors)))

  return token_ids


# -------------------------------------------------------------------------------- writing
def fingerprint(variables: Sequence[tf.Variable], settings: Mapping) -> str:
  """sha256 of the weights (by name) and the export settings: equal exports, equal prints."""
  digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
  for var in sorted(variables, key=lambda v: v.name):
    digest.update(var.name.encode() + b"\0")
    digest.update(np.ascontiguousarray(var.numpy()).tobytes())
  return digest.hexdigest()


def read_info(path: str) -> Optional[dict]:
  """The recorded settings (`assets.extra/export_info.json`) of a fine-tuned export, or None."""
  info = os.path.join(path, INFO_FILE)
  if not tf.io.gfile.exists(info):
    return None
  try:
    with tf.io.gfile.GFile(info, "r") as f:
      return json.load(f)
  except (ValueError, tf.errors.OpError):
    return None


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
                 trackables: Optional[Mapping[str, object]] = None,
                 functions: Optional[Mapping[str, object]] = None, overwrite: bool = False,
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
    functions: attribute name -> more tf.functions saved on the root object (not signatures).
    overwrite: replace an existing version folder that holds another export.
  """
  version = check_version(version)
  if not export_dir:
    raise FlagError("no export directory given (--export_dir)")
  path = os.path.join(export_dir, str(version))
  settings = dict(info or {})
  settings["signatures"] = sorted(signatures)
  settings["assets"] = {k: _file_digest(v) for k, v in (assets or {}).items()}
  digest = fingerprint(variables, settings)
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
      for name, value in {**(trackables or {}), **(functions or {})}.items():
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


def _file_digest(path: str) -> str:
  with tf.io.gfile.GFile(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


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


def vocab_size_of(model: tf_keras.Model, default: int = 100) -> int:
  for var in model.weights:
    if checkpoint.variable_name(var) == "bert/embeddings/word_embeddings":
      return int(var.shape[0])
  return default


def sample_features(kind: str, vocab_size: int, batch_size: int = 3, seq_length: int = 13,
                    num_choices: int = len(RACE_ANSWERS), seed: int = 0
                    ) -> Dict[str, np.ndarray]:
  """Seeded int32 inputs of `kind` with padding ([B, C*S] for RACE), for the checks."""
  rng = np.random.RandomState(seed)
  rows = batch_size * (num_choices if kind == "race" else 1)
  lengths = rng.randint(3, seq_length + 1, size=rows)
  lengths[0] = seq_length
  positions = np.arange(seq_length)[None, :]
  mask = (positions < lengths[:, None]).astype(np.int32)
  ids = rng.randint(5, vocab_size, size=(rows, seq_length)).astype(np.int32) * mask
  ids[:, 0] = 2 % vocab_size
  segments = ((positions >= lengths[:, None] // 2) * mask).astype(np.int32)
  features = {"input_ids": ids, "input_mask": mask, "segment_ids": segments}
  if kind == "race":
    features = {k: v.reshape(batch_size, -1) for k, v in features.items()}
  if kind.startswith("squad"):
    features["p_mask"] = (1 - segments) * mask  # the question and the padding: not answers
    features["p_mask"][:, 0] = 0  # [CLS] stays legal (the no-answer position)
    features["p_mask"] = (features["p_mask"] + (1 - mask)).astype(np.int32)
  return features


def check_token_ids(loaded, kind: str, outputs_fn: OutputsFn,
                    features: Mapping[str, np.ndarray]) -> Dict[str, float]:
  """The reloaded `token_ids` signature vs the in-memory outputs on `features`."""
  tensors = {k: tf.constant(v) for k, v in features.items()}
  want = {k: v.numpy() for k, v in outputs_fn(tensors).items()}
  got = {k: v.numpy() for k, v in loaded.signatures["token_ids"](**tensors).items()}
  return compare_outputs("token_ids", got, want)


# ------------------------------------------------------------------------------ the export
def export_finetuned(task_kind_name: str, model: tf_keras.Model, export_dir: str,
                     version: Optional[int] = None, step: Optional[int] = None,
                     info: Optional[Mapping] = None, assets: Optional[Mapping[str, str]] = None,
                     overwrite: bool = False, source: Optional[str] = None,
                     log: Callable[[str], None] = print) -> ExportResult:
  """Exports a fine-tuned model with its token-id signature (`serving_default` = `token_ids`).

  Args:
    task_kind_name: one of TASK_KINDS (`classification`, `regression`, `squad_v1`,
      `squad_v2`, `race`).
    model: the task model as `albert.models.build_*_model` returns it, weights loaded.
    export_dir: the model base path; the export goes to `export_dir/<version>/`.
    version: the version folder (default: `step`).
    step: the global step of the weights (recorded; the default version).
    info: more JSON-able settings to record (e.g. SQuAD's max_seq_length, doc_stride).
    assets: attribute -> file stored with the export (e.g. `sp_model_file`).
    source: the checkpoint the weights came from (recorded).
  Returns: the ExportResult (path, version, signatures, max |diff| after reload).
  """
  kind = task_kind(task_kind_name).name
  if version is None:
    if step is None:
      raise FlagError("give the export a version, or the global step of its weights")
    version = step
  outputs_fn = model_outputs_fn(kind, model)
  token_ids = token_ids_function(kind, outputs_fn)
  features = sample_features(kind, vocab_size_of(model))
  settings = {"task_kind": kind, "global_step": step, "checkpoint": source, **(info or {})}
  return write_export(
      export_dir, version, model.weights, {"serving_default": token_ids, "token_ids": token_ids},
      check=lambda loaded: check_token_ids(loaded, kind, outputs_fn, features),
      info=settings, assets=assets, overwrite=overwrite, log=log)


# ------------------------------------------------------------------------------- trainers
def checkpoint_step(prefix: str) -> int:
  """The `global_step` a checkpoint records (0 when it has none)."""
  reader = checkpoint.open_reader(prefix)
  return int(reader.get_tensor("global_step")) if reader.has_tensor("global_step") else 0


def load_for_export(trainer, checkpoint_path: Optional[str] = None
                    ) -> Tuple[tf_keras.Model, str, int]:
  """(float32 task model, checkpoint prefix, global step) for exporting a Trainer's task.

  The weights are those `--do_predict` uses (`trainer._predict_source()`: explicit, else
  `model.ckpt-best`, else the latest `model.ckpt-N`, else `--init_checkpoint`), unless
  `checkpoint_path` is given. The model is built afresh on the default strategy in float32
  (whatever `--mixed_precision` the run trained with), every variable read from the checkpoint.
  """
  if checkpoint_path is None:
    try:
      checkpoint_path = trainer._predict_source()  # pylint: disable=protected-access
    except TrainingError as error:
      raise ExportError(str(error).replace("--do_predict", "--export_dir")) from None
  prefix = checkpoint.resolve_checkpoint(checkpoint_path)
  policy = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy("float32")
  try:
    model = trainer.task.build_model()
  finally:
    tf_keras.mixed_precision.set_global_policy(policy)
  checkpoint.load_tf1_checkpoint(model, prefix, require_all=True)
  return model, prefix, checkpoint_step(prefix)


def export_from_trainer(trainer, task_kind_name: str, export_dir: str,
                        version: Optional[int] = None, checkpoint_path: Optional[str] = None,
                        **kwargs) -> ExportResult:
  """`export_finetuned` of the weights `load_for_export` picks (run_squad.py, run_race.py)."""
  model, prefix, step = load_for_export(trainer, checkpoint_path)
  kwargs["info"] = served_info(trainer.task, kwargs.get("info"))
  return export_finetuned(task_kind_name, model, export_dir, version=version, step=step,
                          source=prefix, log=kwargs.pop("log", trainer.log), **kwargs)


def served_info(task, info: Optional[Mapping] = None) -> Dict[str, object]:
  """The settings an export of `task` records: `info`, with the task's max_seq_length."""
  return {"max_seq_length": task.config.max_seq_length, **(info or {})}


def check_export_dir(task, task_kind_name: str, export_dir: str,
                     info: Optional[Mapping] = None) -> None:
  """Before the training starts: `check_export_base` for the export `export_from_trainer`
  will write (run_squad.py, run_race.py), so that a long run is not wasted."""
  check_export_base(export_dir, {"task_kind": task_kind(task_kind_name).name,
                                 **served_info(task, info)})


# ----------------------------------------------------------------------------------- SQuAD
def squad_kind(task) -> str:
  """The export kind of a `SquadTask`: `squad_v2` for SQuAD 2.0, else `squad_v1`."""
  return "squad_v2" if task.v2 else "squad_v1"


def export_squad(trainer, export_dir: str) -> ExportResult:
  """run_squad.py's `--export_dir`: `export_from_trainer` of the Trainer's SQuAD task, with its
  SentencePiece model as the `sp_model_file` asset and what a client needs to make the
  features and read the answers: do_lower_case, max_seq_length, doc_stride, max_query_length
  and (v2) the held-out `null_score_diff_threshold` stored with the exported weights (None
  when there is none)."""
  task = trainer.task
  try:  # the weights the export reads (when there are none, the export says so)
    stored = task.stored_threshold(trainer._predict_source())  # pylint: disable=protected-access
  except TrainingError:
    stored = None
  spec = task.tokenizer_spec()
  return export_from_trainer(
      trainer, squad_kind(task), export_dir, assets={"sp_model_file": spec.spm_model_file},
      info={"do_lower_case": task.config.do_lower_case,
            "max_seq_length": task.config.max_seq_length, "doc_stride": task.squad.doc_stride,
            "max_query_length": task.squad.max_query_length,
            "null_score_diff_threshold": stored["threshold"] if stored else None})
