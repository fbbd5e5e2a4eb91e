"""TFLite exports of a fine-tuned classifier: `<export_dir>/<version>/tflite/` (--export_tflite).

`export_tflite(version_dir)` converts the SavedModel's `token_ids` signature (its numeric
outputs; label names from `serving.json`, as `albert.export.runtime` serves them) with the
sequence length fixed at the export's `max_seq_length` and the batch size free, TFLite builtin
ops only:

* `model.tflite`: float32, checked within `artifacts.FLOAT_TOLERANCE`;
* `model_int8.tflite`: dynamic-range quantization (`tf.lite.Optimize.DEFAULT`: int8 weights,
  activations quantized at run time by the kernels that can), checked within
  `artifacts.INT8_TOLERANCE`;
* the SentencePiece model and `serving.json`, as the ONNX folder.

Rows shorter than `max_seq_length` are padded by the runner (`runtime.TfliteRunner`); a longer
input is an InputError naming both lengths. The folder appears only once every model matched
the SavedModel (`artifacts.write_artifacts`).
"""

from __future__ import annotations

import os
from typing import Callable, Dict

from albert import files, noise
from albert.errors import ExportError
from albert.export import artifacts, encoder

TFLITE_DIR = "tflite"
CLASSIFIER_KINDS = ("classification", "regression", "multi_label")


def convert_classifier_tflite(reference, path: str, quantized: bool) -> str:
  """The numeric `token_ids` signature of `reference` at its fixed max_seq_length -> `path`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  length = int(reference.info["max_seq_length"])
  function, _, _ = artifacts.numeric_function(reference, seq_length=length)
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [function.get_concrete_function()], reference.loaded)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if quantized:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  try:
    with noise.stderr_without(*encoder.TFLITE_NOISE):
      blob = converter.convert()
  except Exception as e:  # the converter raises its own ConverterError
    raise ExportError(f"TFLite conversion of {reference.path} failed: "
                      f"{str(e).splitlines()[0][:300]}") from e
  return files.write_bytes(path, blob)


def export_tflite(version_dir: str, overwrite: bool = False,
                  log: Callable[[str], None] = print) -> artifacts.ArtifactResult:
  """`<version_dir>/tflite/` (see the module docstring)."""

  def make(tmp: str, reference) -> Dict[str, object]:
    if reference.kind not in CLASSIFIER_KINDS:
      raise ExportError(f"--export_tflite serves classifiers; {reference.path} is a "
                        f"{reference.kind} export")
    convert_classifier_tflite(reference, os.path.join(tmp, "model.tflite"), quantized=False)
    convert_classifier_tflite(reference, os.path.join(tmp, "model_int8.tflite"), quantized=True)
    _, _, strings = artifacts.numeric_function(reference)
    details = encoder.interpreter(os.path.join(tmp, "model.tflite")).get_signature_list()
    (signature,) = details.values()
    return {"inputs": list(reference.inputs), "outputs": sorted(signature["outputs"]),
            "string_outputs": strings}

  return artifacts.write_artifacts(version_dir, TFLITE_DIR, make,
                              {"model.tflite": artifacts.FLOAT_TOLERANCE,
                               "model_int8.tflite": artifacts.INT8_TOLERANCE},
                              overwrite=overwrite, log=log)
