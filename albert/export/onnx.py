"""ONNX exports of a fine-tuned model: `<export_dir>/<version>/onnx/` beside its SavedModel.

`export_onnx_folder(version_dir)` (the scripts' `--export_onnx`, after `--export_dir` wrote the
version folder) converts the SavedModel's `token_ids` signature with tf2onnx, batch and
sequence length free (`batch`, `sequence`), its numeric outputs only (the string ones, `label`,
`answer`, are looked up from `serving.json`, see `albert.export.runtime`), and writes:

* `model.onnx`: float32, standard ONNX ops (opset `OPSET`); ONNX Runtime applies its own
  graph optimizations when it loads it (the attention is MatMuls already: no Einsum);
* `model_int8.onnx`: ONNX Runtime's dynamic quantization (int8 weights of every MatMul and
  of the embedding tables, activations quantized at run time);
* the SentencePiece model of the export (if it has one) and `serving.json`.

Each model is run by ONNX Runtime on seeded inputs at batch sizes 1, 3, 8 and several lengths
(and, for a classifier with a SentencePiece model, on the features of `serving.CHECK_TEXTS`)
and compared with the SavedModel before the folder appears (written beside its place, then
renamed, `files.write_directory`): float32 within `FLOAT_TOLERANCE`, int8 within
`INT8_TOLERANCE` (max |diff| relative to max(1, max |output|)); the measured values are in
`serving.json`. A rerun over the same export keeps the folder (same `fingerprint`).

`export_encoder_onnx(saved_model_dir, onnx_path)`: the TF-Hub encoder (`export_to_tfhub.py
--onnx_path`), its `serving_default` signature as one float32 `.onnx` file, checked likewise.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from albert import files, noise
from albert.errors import ExportError, FlagError
from albert.export import runtime

OPSET = 17
ONNX_DIR = "onnx"
FLOAT_TOLERANCE = 1e-4
# Dynamic int8 quantization of weights and activations: measured max |diff| of probabilities
# is ~1e-2 on the main job's model; logits move more (relative to max(1, |logit|)).
INT8_TOLERANCE = 0.1
TF2ONNX_NOISE = ("tf2onnx", "Computed ", "Using tensorflow", "Using opset", "Optimizing ONNX",
                 "After optimization", "Using external data", "Could not search for non-variable")


def require_onnx(flag: str = "--export_onnx") -> None:
  """A clear line before hours of training when tf2onnx / onnxruntime are not installed."""
  try:
    import onnxruntime  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    import tf2onnx  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise FlagError(f"{flag} needs tf2onnx and onnxruntime ({e}); install "
                    "requirements.txt") from None


@dataclasses.dataclass
class ArtifactResult:
  """What an ONNX or TFLite export wrote (or kept), with the measured differences."""
  folder: str
  files: List[str]
  max_abs_diff: Dict[str, float]
  reused: bool = False

  def format(self) -> str:
    if self.reused:
      return f"{self.folder} already holds this export; left as it is"
    return (f"Wrote {self.folder} ({', '.join(self.files)}); vs the SavedModel, max |diff| "
            + ", ".join(f"{k} {v:.2e}" for k, v in sorted(self.max_abs_diff.items())))


# ----------------------------------------------------------------------- the conversion
def numeric_function(reference: "runtime.SavedModelRunner", seq_length: Optional[int] = None):
  """(tf.function of the `token_ids` signature with its numeric outputs only, input specs,
  string outputs as `runtime.string_outputs`); `seq_length` None: free length."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  signature = reference.loaded.signatures["token_ids"]
  strings = [k for k, v in signature.structured_outputs.items() if v.dtype == tf.string]
  numeric = [k for k in sorted(signature.structured_outputs) if k not in strings]
  specs = [tf.TensorSpec([None, seq_length], tf.int32, name=n) for n in reference.inputs]

  @tf.function(input_signature=specs, autograph=False)
  def function(*ids):
    out = signature(**dict(zip(reference.inputs, ids)))
    return {k: out[k] for k in numeric}

  return function, specs, runtime.string_outputs(reference.info, strings)


def convert(function, specs, path: str) -> str:
  """tf2onnx of `function`, free dimensions named `batch` and `sequence`, written to `path`."""
  import tf2onnx  # pylint: disable=g-import-not-at-top
  try:
    with noise.stderr_without(*TF2ONNX_NOISE), noise.python_logs_without(
        "", logger="tf2onnx"):
      proto, _ = tf2onnx.convert.from_function(function, input_signature=specs, opset=OPSET)
  except Exception as e:  # tf2onnx raises plain exceptions for unsupported ops
    raise ExportError(f"ONNX conversion failed: {str(e).splitlines()[0][:300]}") from e
  for value in proto.graph.input:
    dims = value.type.tensor_type.shape.dim
    for dim, name in zip(dims, ("batch", "sequence")):
      if not dim.HasField("dim_value"):
        dim.dim_param = name
  return files.write_bytes(path, proto.SerializeToString())


def quantize(source: str, path: str) -> str:
  """ONNX Runtime's dynamic int8 quantization of `source` (signed int8 weights)."""
  from onnxruntime.quantization import QuantType, quantize_dynamic  # pylint: disable=g-import-not-at-top
  with noise.python_logs_without("", logger="root"):
    quantize_dynamic(source, path, weight_type=QuantType.QInt8)
  return path


# ---------------------------------------------------------------------------- the folder
def check_batches(reference: "runtime.SavedModelRunner") -> List[Dict[str, np.ndarray]]:
  """What every artifact is checked on: seeded rows at batch 1, 3, 8 and lengths 5, 16, 33
  (cut to max_seq_length), and the classifiers' CHECK_TEXTS features."""
  from albert.export import serving  # pylint: disable=g-import-not-at-top
  max_length = int(reference.info.get("max_seq_length") or 33)
  lengths = sorted({min(n, max_length) for n in (5, 16, 33)})
  batches = runtime.sample_batches(reference.kind, reference.vocab_size, lengths)
  spm_model = spm_file(reference.path)
  if reference.info.get("labels") is not None and spm_model:
    spec = serving.ClassifierSpec.for_task(
        reference.info["task_name"], max_length, spm_model,
        bool(reference.info.get("do_lower_case", True)))
    batches.append(serving.python_features(spec, serving.CHECK_TEXTS))
  return batches


def spm_file(version_dir: str) -> Optional[str]:
  from albert import hub  # pylint: disable=g-import-not-at-top
  return hub.find_asset(version_dir, ["*.model"])


def check_model(runner: "runtime.Runner", reference: "runtime.Runner",
                batches: Sequence[Dict[str, np.ndarray]], tolerance: float) -> float:
  """The worst relative max |diff| of `runner` vs `reference` over `batches`."""
  worst = 0.0
  for batch in batches:
    want, got = reference.run(batch), runner.run(batch)
    if tolerance > FLOAT_TOLERANCE:  # int8: decisions may flip where the margin is small
      want = {k: v for k, v in want.items() if np.asarray(v).dtype.kind == "f"}
    diffs = runtime.compare(got, want, tolerance, os.path.basename(runner.path))
    worst = max([worst] + list(diffs.values()))
  return worst


def write_artifacts(version_dir: str, backend: str,
                    make: Callable[[str, "runtime.SavedModelRunner"], Dict[str, object]],
                    models: Dict[str, float], overwrite: bool = False,
                    log: Callable[[str], None] = print) -> ArtifactResult:
  """Writes `<version_dir>/<backend>/` atomically: `make(tmp, reference)` writes the models
  and returns serving.json's extra keys; each of `models` (file -> tolerance) is then loaded
  by `runtime.load` and checked against the SavedModel before the folder appears."""
  reference = runtime.SavedModelRunner(version_dir)
  folder = os.path.join(version_dir, backend)
  fingerprint = reference.info.get("fingerprint")
  if os.path.exists(folder) and not overwrite:
    try:
      found = runtime.read_serving(folder)
    except ExportError:
      found = {}
    if found.get("fingerprint") == fingerprint and all(
        os.path.isfile(os.path.join(folder, f)) for f in models):
      result = ArtifactResult(folder, sorted(models), found.get("max_abs_diff", {}), reused=True)
      log(result.format())
      return result
    raise ExportError(f"{folder} already holds another {backend} export (of other weights or "
                      "settings); remove it or export to another --export_dir")
  result = ArtifactResult(folder, [], {})

  def write(tmp: str) -> None:
    spm_model = spm_file(version_dir)
    record = {**{k: v for k, v in reference.info.items()
                 if k not in ("signature_io", "signatures", "assets")},
              "fingerprint": fingerprint, "backend": backend,
              "spm_model": os.path.basename(spm_model) if spm_model else None,
              "files": sorted(models), "tolerance": dict(models)}
    if spm_model:
      shutil.copyfile(spm_model, os.path.join(tmp, os.path.basename(spm_model)))
    record.update(make(tmp, reference))
    runtime.write_serving(tmp, record)
    batches = check_batches(reference)
    for name, tolerance in models.items():
      runner = runtime.load(os.path.join(tmp, name), backend)
      result.max_abs_diff[name] = check_model(runner, reference, batches, tolerance)
    record["max_abs_diff"] = result.max_abs_diff
    runtime.write_serving(tmp, record)

  files.write_directory(folder, write, overwrite=overwrite)
  result.files = sorted(os.listdir(folder))
  log(result.format())
  return result


def export_onnx_folder(version_dir: str, overwrite: bool = False,
                log: Callable[[str], None] = print) -> ArtifactResult:
  """`<version_dir>/onnx/` (see the module docstring)."""
  require_onnx()

  def make(tmp: str, reference) -> Dict[str, object]:
    function, specs, strings = numeric_function(reference)
    convert(function, specs, os.path.join(tmp, "model.onnx"))
    quantize(os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model_int8.onnx"))
    import onnx  # pylint: disable=g-import-not-at-top
    graph = onnx.load(os.path.join(tmp, "model.onnx"), load_external_data=False).graph
    return {"inputs": [i.name for i in graph.input], "outputs": [o.name for o in graph.output],
            "string_outputs": strings, "opset": OPSET}

  return write_artifacts(version_dir, ONNX_DIR, make,
                         {"model.onnx": FLOAT_TOLERANCE, "model_int8.onnx": INT8_TOLERANCE},
                         overwrite=overwrite, log=log)


def check_artifact_flags(export_dir: Optional[str], export_onnx: bool,
                         export_tflite: bool = False) -> None:
  """Before the training: --export_onnx / --export_tflite need --export_dir (and ONNX its
  packages)."""
  for flag, wanted in (("--export_onnx", export_onnx), ("--export_tflite", export_tflite)):
    if wanted and not export_dir:
      raise FlagError(f"{flag} writes beside the SavedModel of --export_dir: give --export_dir")
  if export_onnx:
    require_onnx()


def export_artifacts(version_dir: str, export_onnx: bool, export_tflite: bool = False,
                     log: Callable[[str], None] = print) -> List[ArtifactResult]:
  """The scripts' --export_onnx / --export_tflite after the version folder is written."""
  results = []
  if export_onnx:
    results.append(export_onnx_folder(version_dir, log=log))
  if export_tflite:
    from albert.export import tflite  # pylint: disable=g-import-not-at-top
    results.append(tflite.export_tflite(version_dir, log=log))
  return results


# ------------------------------------------------------------------------------ encoder
def export_encoder_onnx(saved_model_dir: str, onnx_path: str, overwrite: bool = False
                        ) -> Tuple[Dict[str, float], bool]:
  """The TF-Hub encoder's `serving_default` (input_word_ids, input_mask, input_type_ids ->
  sequence_output, pooled_output), free batch and length, to `onnx_path`; checked at lengths
  7 and 19 (float32 within FLOAT_TOLERANCE) before it is renamed into place. An existing file
  that matches the encoder is kept (a rerun) unless `overwrite`; one that does not is an
  error. Returns (max |diff| per output, kept)."""
  require_onnx("--onnx_path")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from albert.export import encoder  # pylint: disable=g-import-not-at-top
  loaded = tf.saved_model.load(saved_model_dir)
  config = encoder.AlbertConfig.from_json_file(
      os.path.join(saved_model_dir, "assets", encoder.CONFIG_ASSET))
  specs = [tf.TensorSpec([None, None], tf.int32, name=n) for n in encoder.HUB_INPUTS]

  @tf.function(input_signature=specs, autograph=False)
  def function(input_word_ids, input_mask, input_type_ids):
    out = loaded({"input_word_ids": input_word_ids, "input_mask": input_mask,
                  "input_type_ids": input_type_ids}, training=False)
    return {"sequence_output": out["sequence_output"], "pooled_output": out["pooled_output"]}

  def check(path: str) -> Dict[str, float]:
    import onnxruntime as ort  # pylint: disable=g-import-not-at-top
    try:
      session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own Fail / InvalidProtobuf
      raise ExportError(f"{path} is not a loadable ONNX model "
                        f"({str(e).splitlines()[0][-200:]})") from None
    diffs = {"sequence_output": 0.0, "pooled_output": 0.0}
    for length in (7, 19):
      x = encoder.sample_inputs(config, batch_size=3, seq_length=length)
      x = {k: x[k] for k in encoder.HUB_INPUTS}
      want = function(**{k: tf.constant(v) for k, v in x.items()})
      got = dict(zip(diffs, session.run(list(diffs), x)))
      found = runtime.compare(got, {k: want[k].numpy() for k in diffs}, FLOAT_TOLERANCE,
                              f"--onnx_path={onnx_path}")
      diffs = {k: max(diffs[k], found[k]) for k in diffs}
    return diffs

  if os.path.exists(onnx_path) and not overwrite:
    try:
      return check(onnx_path), True
    except ExportError as e:
      raise ExportError(f"--onnx_path={onnx_path} already exists and is not this encoder "
                        f"({e}); remove it or pass --overwrite") from None
  parent = os.path.dirname(os.path.abspath(onnx_path))
  files.make_dirs(parent)
  with tempfile.TemporaryDirectory(dir=parent, prefix=".onnx-") as tmp:
    staged = convert(function, specs, os.path.join(tmp, "encoder.onnx"))
    diffs = check(staged)
    os.replace(staged, onnx_path)
  return diffs, False
