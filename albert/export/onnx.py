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

Each model is checked against the SavedModel before the folder appears (`albert.export.
artifacts`: batch sizes 1, 3, 8, several lengths; float32 within 1e-4, int8 within
`INT8_TOLERANCE`). A rerun over the same export keeps the folder (same `fingerprint`).
`export_artifacts(version_dir, export_onnx, export_tflite)` is what the scripts call.

`export_encoder_onnx(saved_model_dir, onnx_path)`: the TF-Hub encoder (`export_to_tfhub.py
--onnx_path`), its `serving_default` signature as one float32 `.onnx` file, checked likewise.
"""

from __future__ import annotations

import os
import tempfile
from typing import Callable, Dict, List, Optional, Tuple

from albert import files, noise
from albert.errors import ExportError, FlagError
from albert.export import artifacts, runtime
from albert.export.artifacts import FLOAT_TOLERANCE, INT8_TOLERANCE, ArtifactResult

OPSET = 17
ONNX_DIR = "onnx"
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


def convert_to_onnx(function, specs, path: str) -> str:
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
  # pylint: disable-next=g-import-not-at-top
  from onnxruntime.quantization import QuantType, quantize_dynamic
  with noise.python_logs_without("", logger="root"):
    quantize_dynamic(source, path, weight_type=QuantType.QInt8)
  return path


# ---------------------------------------------------------------------------- the folder
def export_onnx_folder(version_dir: str, overwrite: bool = False,
                       log: Callable[[str], None] = print) -> ArtifactResult:
  """`<version_dir>/onnx/` (see the module docstring)."""
  require_onnx()

  def make(tmp: str, reference) -> Dict[str, object]:
    function, specs, strings = artifacts.numeric_function(reference)
    convert_to_onnx(function, specs, os.path.join(tmp, "model.onnx"))
    quantize(os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model_int8.onnx"))
    import onnx  # pylint: disable=g-import-not-at-top
    graph = onnx.load(os.path.join(tmp, "model.onnx"), load_external_data=False).graph
    return {"inputs": [i.name for i in graph.input], "outputs": [o.name for o in graph.output],
            "string_outputs": strings, "opset": OPSET}

  return artifacts.write_artifacts(
      version_dir, ONNX_DIR, make, {"model.onnx": FLOAT_TOLERANCE,
                                    "model_int8.onnx": INT8_TOLERANCE},
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
    staged = convert_to_onnx(function, specs, os.path.join(tmp, "encoder.onnx"))
    diffs = check(staged)
    os.replace(staged, onnx_path)
  return diffs, False
