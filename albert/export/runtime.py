"""One way to call a fine-tuned export, whatever runs it: a TF SavedModel, ONNX Runtime, TFLite.

`load(path, backend="savedmodel" | "onnx" | "tflite", quantized=False)` -> a `Runner`:

* `savedmodel`: a version folder of `--export_dir` (its `token_ids` signature);
* `onnx`: the `onnx/` folder beside it (`albert.export.onnx`; the version folder itself is
  accepted and its `onnx/` used), `model.onnx`, or `model_int8.onnx` with `quantized=True`;
* `tflite`: the `tflite/` folder (`albert.export.tflite`, classifiers), fixed max_seq_length.

`runner.run(features)` runs one batch: int32 numpy arrays by input name (`runner.inputs`) ->
numpy outputs by name, the same names and values (within the artifact's tolerance) as the
SavedModel's `token_ids` signature, string outputs (`label`, `answer`) included: the ONNX and
TFLite graphs compute the numeric outputs, and the strings are looked up from the numbers with
the label names of `serving.json`. `runner.predict(features, batch_size)` runs many rows in
length buckets: rows sorted by length, each batch cut to its longest row (the TFLite model
pads to its fixed length), outputs back in the order of the rows. This is the one call the
Python APIs (`albert.export.answer.SquadAnswerer`, the text classifier) go through.

`serving.json` (written by the ONNX and TFLite exports, read here): the export's recorded
settings (`task_kind`, `labels`, `threshold`, `max_seq_length`, `do_lower_case`, ...), `inputs`,
`outputs` (the graph's), `string_outputs` (name -> [numeric source, names]), `files`, the
measured `max_abs_diff` and `tolerance` per model file, and `spm_model` (the SentencePiece model
copied beside it, or null).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from albert.errors import ExportError, InputError

BACKENDS = ("savedmodel", "onnx", "tflite")
SERVING_FILE = "serving.json"
RACE_ANSWERS = ("A", "B", "C", "D")  # the letters RaceServing serves (its `answer` output)
# Outputs with one value per position ([B,S]): a batch cut to its longest row gets them back
# padded to the full width with the masked log-prob value (-1e30), as no answer can be there.
SEQUENCE_OUTPUTS = ("start_logits", "end_logits", "start_log_probs", "end_log_probs")
MASKED = -1e30

Features = Mapping[str, np.ndarray]
Outputs = Dict[str, np.ndarray]


# ---------------------------------------------------------------------- serving.json
def string_outputs(info: Mapping[str, Any], names: Sequence[str]) -> Dict[str, List[Any]]:
  """The string outputs of a signature, each as [the numeric output it names, the names]."""
  labels = [str(l) for l in info.get("labels") or ()]
  known = {"label": ["predictions", labels],
           "thresholded_label": ["thresholded_predictions", labels],
           "answer": ["predictions", list(RACE_ANSWERS)],
           # multi-label: [B, L] bools -> the label's name where true, else ""
           "labels": ["above_threshold", labels]}
  unknown = [n for n in names if n not in known]
  if unknown:
    raise ExportError(f"string outputs {unknown} have no numeric source to serve them from")
  return {n: known[n] for n in names}


def read_serving(folder: str) -> Dict[str, Any]:
  path = os.path.join(folder, SERVING_FILE)
  if not os.path.isfile(path):
    raise ExportError(f"{folder} has no {SERVING_FILE}: not an ONNX or TFLite export folder "
                      "(run_classifier.py --export_onnx / --export_tflite)")
  try:
    with open(path) as f:
      return json.load(f)
  except ValueError as e:
    raise ExportError(f"{path} is not valid JSON ({e})") from None


def write_serving(folder: str, record: Mapping[str, Any]) -> str:
  from albert import files  # pylint: disable=g-import-not-at-top
  return files.write_text(os.path.join(folder, SERVING_FILE),
                          json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


# --------------------------------------------------------------------------- runners
class Runner:
  """A loaded export: `run` one batch, `predict` many rows in length buckets."""

  backend = ""
  fixed_length: Optional[int] = None  # the TFLite model's sequence length

  def __init__(self, path: str, info: Mapping[str, Any], inputs: Sequence[str],
               outputs: Sequence[str], strings: Optional[Mapping[str, List[Any]]] = None):
    self.path, self.info = path, dict(info)
    self.inputs, self.outputs = tuple(inputs), tuple(outputs)
    self.strings = dict(strings or {})

  @property
  def kind(self) -> str:
    return str(self.info.get("task_kind", ""))

  def _call(self, features: Features) -> Outputs:
    raise NotImplementedError

  def run(self, features: Features) -> Outputs:
    """One batch: int32 [B,S] arrays by input name -> the signature's outputs by name."""
    missing = [k for k in self.inputs if k not in features]
    if missing:
      raise InputError(f"{self.path}: missing inputs {missing} (it takes {list(self.inputs)})")
    arrays = {k: np.ascontiguousarray(features[k], np.int32) for k in self.inputs}
    width = arrays[self.inputs[0]].shape[1]
    if self.fixed_length is not None and width != self.fixed_length:
      if width > self.fixed_length:
        raise InputError(f"{self.path}: inputs of length {width} exceed the model's fixed "
                         f"length {self.fixed_length} (max_seq_length of the TFLite export)")
      arrays = {k: np.pad(v, [(0, 0), (0, self.fixed_length - width)])
                for k, v in arrays.items()}
    outputs = self._call(arrays)
    if self.fixed_length is not None and width != self.fixed_length:
      outputs = {k: v[:, :width] if k in SEQUENCE_OUTPUTS else v for k, v in outputs.items()}
    for name, (source, names) in self.strings.items():
      found = np.asarray(outputs[source])
      if found.dtype == np.bool_:  # a mask over the names (multi-label `labels`)
        outputs[name] = np.where(found, np.asarray(names, dtype=object), "").astype(bytes)
      else:
        outputs[name] = np.asarray(names, dtype=object)[found].astype(bytes)
    return outputs

  def predict(self, features: Features, batch_size: int = 32) -> Outputs:
    """Many rows in length buckets (see the module docstring), outputs in row order."""
    arrays = {k: np.asarray(features[k], np.int32) for k in self.inputs}
    count, width = arrays["input_mask"].shape
    if count == 0:
      raise InputError("nothing to predict: no rows")
    if self.kind == "race":  # choice-major [B, C*S] rows: no cutting
      lengths = np.full(count, width)
    else:
      lengths = np.where(arrays["input_mask"].any(1),
                         width - np.argmax(arrays["input_mask"][:, ::-1] > 0, axis=1), 1)
    order = np.argsort(lengths, kind="stable")
    parts: Dict[str, List[np.ndarray]] = {}
    for start in range(0, count, batch_size):
      rows = order[start:start + batch_size]
      cut = int(lengths[rows].max())
      out = self.run({k: v[rows, :cut] for k, v in arrays.items()})
      for key, value in out.items():
        if key in SEQUENCE_OUTPUTS and value.shape[1] < width:
          value = np.pad(value, [(0, 0), (0, width - value.shape[1])], constant_values=MASKED)
        parts.setdefault(key, []).append(value)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(count)
    return {k: np.concatenate(v)[inverse] for k, v in parts.items()}


class FunctionRunner(Runner):
  """A Python function of one batch (e.g. a Keras model's call) as a Runner."""

  backend = "function"

  def __init__(self, function, inputs: Sequence[str], info: Mapping[str, Any]):
    super().__init__("<function>", info, inputs, ())
    self._function = function

  def _call(self, features):
    return {k: np.asarray(v) for k, v in self._function(dict(features)).items()}


class SavedModelRunner(Runner):
  backend = "savedmodel"

  def __init__(self, path: str):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from albert.export import versioned  # pylint: disable=g-import-not-at-top
    info = versioned.read_info(path)
    if info is None:
      raise ExportError(f"{path} is not a fine-tuned export (no {versioned.INFO_FILE}); export "
                        "one with run_classifier.py, run_squad.py or run_race.py --export_dir")
    if info.get("raw_text"):
      import tensorflow_text  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    loaded = tf.saved_model.load(path)
    self.loaded = loaded
    self._signature = loaded.signatures["token_ids"]
    io = info.get("signature_io", {}).get("token_ids", {})
    _, specs = self._signature.structured_input_signature
    super().__init__(path, info, sorted(specs), io.get("outputs", []))
    self._tf = tf
    self.vocab_size = next((int(v.shape[0]) for v in getattr(loaded, "model_variables", ())
                            if "word_embeddings" in v.name), 100)

  def _call(self, features):  # the SavedModel serves its string outputs itself
    out = self._signature(**{k: self._tf.constant(v) for k, v in features.items()})
    return {k: v.numpy() for k, v in out.items()}


def _artifact(folder: str, model_file: str, what: str):
  """(serving.json record, model path) of an ONNX / TFLite folder; a missing model is one line."""
  record = read_serving(folder)
  path = os.path.join(folder, model_file)
  if not os.path.isfile(path):
    raise ExportError(f"{path}: no such file (the {what} export folder lacks {model_file})")
  return record, path


class OnnxRunner(Runner):
  backend = "onnx"

  def __init__(self, folder: str, model_file: str, threads: int = 0):
    import onnxruntime as ort  # pylint: disable=g-import-not-at-top
    record, path = _artifact(folder, model_file, "ONNX")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    # No busy-waiting threads between kernels: on cores shared with other processes spinning
    # costs more than it saves (measured here: batch 8 of the tiny model 49 ms vs 66 ms).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
      self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail / InvalidProtobuf
      raise ExportError(f"{path} is not a loadable ONNX model "
                        f"({str(e).splitlines()[0][-200:]})") from None
    names = [o.name for o in self.session.get_outputs()]
    super().__init__(path, record, [i.name for i in self.session.get_inputs()], names,
                     record.get("string_outputs"))

  def _call(self, features):
    names = [o for o in self.outputs]
    return dict(zip(names, self.session.run(names, dict(features))))


class TfliteRunner(Runner):
  backend = "tflite"

  def __init__(self, folder: str, model_file: str, threads: int = 0):
    from albert.export import encoder  # pylint: disable=g-import-not-at-top
    record, path = _artifact(folder, model_file, "TFLite")
    try:
      self._runner = encoder.interpreter(path, threads or os.cpu_count()).get_signature_runner()
    except (ValueError, RuntimeError) as e:
      raise ExportError(f"{path} is not a loadable TFLite model ({str(e)[:200]})") from None
    super().__init__(path, record, record["inputs"], record["outputs"],
                     record.get("string_outputs"))
    self.fixed_length = int(record["max_seq_length"])

  def _call(self, features):
    return {k: np.asarray(v) for k, v in self._runner(**features).items()}


def artifact_folder(path: str, backend: str) -> str:
  """The ONNX / TFLite folder of `path`: the folder itself, or `<version folder>/<backend>`."""
  if os.path.isfile(path):
    return os.path.dirname(path)
  nested = os.path.join(path, backend)
  return nested if os.path.isdir(nested) and not os.path.isfile(
      os.path.join(path, SERVING_FILE)) else path


def load(path: str, backend: str = "savedmodel", quantized: bool = False,
         threads: int = 0) -> Runner:
  """The export at `path` run by `backend` (see the module docstring); `quantized`: the int8
  model of an ONNX or TFLite folder; `threads`: ONNX Runtime's / TFLite's threads (0: every
  core)."""
  if backend not in BACKENDS:
    raise ExportError(f"backend={backend!r}: expected one of {', '.join(BACKENDS)}")
  if not os.path.exists(path):
    raise ExportError(f"{path}: no such export")
  if backend == "savedmodel":
    if quantized:
      raise ExportError("quantized=True: the SavedModel export is float32 (use the onnx or "
                        "tflite backend)")
    return SavedModelRunner(path)
  folder = artifact_folder(path, backend)
  if os.path.isfile(path):
    model_file = os.path.basename(path)
  else:
    model_file = f"model_int8.{backend}" if quantized else f"model.{backend}"
  if backend == "onnx":
    return OnnxRunner(folder, model_file, threads)
  return TfliteRunner(folder, model_file, threads)


def compare(got: Outputs, want: Outputs, tolerance: float, what: str) -> Dict[str, float]:
  """max |diff| per numeric output of `got` vs `want`, relative to max(1, max |want|) of each
  output; ExportError when above `tolerance` or when an integer or string output differs."""
  diffs: Dict[str, float] = {}
  for key in want:
    if key not in got:
      raise ExportError(f"{what}: output {key} missing (has {sorted(got)})")
    a, b = np.asarray(got[key]), np.asarray(want[key])
    if a.shape != b.shape:
      raise ExportError(f"{what}: output {key} has shape {a.shape}, the SavedModel's {b.shape}")
    if b.dtype.kind == "f":
      scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
      diffs[key] = float(np.max(np.abs(a.astype(np.float64) - b))) / scale if b.size else 0.0
    else:
      diffs[key] = 0.0 if np.array_equal(a, b) else float("inf")
  bad = {k: v for k, v in diffs.items() if not v <= tolerance}
  if bad:
    raise ExportError(f"{what} does not reproduce the SavedModel within {tolerance:g}: "
                      + ", ".join(f"{k} {v:.3g}" for k, v in sorted(bad.items())))
  return diffs


def same_predictions(got: Outputs, want: Outputs) -> float:
  """The fraction of rows whose `predictions` agree (1.0 without such an output)."""
  if "predictions" not in want:
    return 1.0
  a, b = np.asarray(got["predictions"]), np.asarray(want["predictions"])
  return float(np.mean(a == b)) if b.dtype.kind in "iu" else 1.0

