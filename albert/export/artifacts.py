"""What the ONNX and TFLite exports of a fine-tuned model share (`albert.export.onnx`,
`albert.export.tflite`): the numeric `token_ids` function they convert, the checks against the
SavedModel, and writing `<version folder>/<backend>/` atomically with its `serving.json`.

Each model file of such a folder is loaded through `albert.export.runtime.load` and compared
with the SavedModel on seeded rows at batch sizes 1, 3, 8 and lengths 5, 16, 33 (and, for a
classifier with a SentencePiece model, the features of `serving.CHECK_TEXTS`) before the folder
appears: float32 models within `FLOAT_TOLERANCE`, int8 ones within `INT8_TOLERANCE` (max |diff|
relative to max(1, max |output|); their decisions are compared through the task metric, not
row by row). The measured values go into `serving.json`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from albert import files
from albert.errors import ExportError
from albert.export import runtime

FLOAT_TOLERANCE = 1e-4
# Dynamic int8 quantization (weights, and activations at run time): measured 0.026 (TFLite)
# and 0.034 (ONNX) on the main job's SST-2 model, whose dev accuracy it leaves within 0.1
# point (benchmarks/serving_benchmark.py); up to 0.12 on the tests' random-weight models.
# Loose on purpose: it catches a wrong graph (differences of the outputs' own size), while
# the decisions are judged by the task metric on real rows.
INT8_TOLERANCE = 0.25


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



# ---------------------------------------------------------------------------- the folder
def sample_batches(kind: str, vocab_size: int, seq_lengths: Sequence[int] = (5, 16, 33),
                   batch_sizes: Sequence[int] = (1, 3, 8)) -> List[Dict[str, np.ndarray]]:
  """Seeded inputs of a task kind at every batch size and length (the exports' checks)."""
  from albert.export import serving  # pylint: disable=g-import-not-at-top
  return [serving.sample_features(kind, vocab_size, batch_size=b, seq_length=s, seed=i)
          for i, (b, s) in enumerate((b, s) for b in batch_sizes for s in seq_lengths)]


def check_batches(reference: "runtime.SavedModelRunner") -> List[Dict[str, np.ndarray]]:
  """What every artifact is checked on: seeded rows at batch 1, 3, 8 and lengths 5, 16, 33
  (cut to max_seq_length), and the classifiers' CHECK_TEXTS features."""
  from albert.export import serving  # pylint: disable=g-import-not-at-top
  max_length = int(reference.info.get("max_seq_length") or 33)
  lengths = sorted({min(n, max_length) for n in (5, 16, 33)})
  batches = sample_batches(reference.kind, reference.vocab_size, lengths)
  spm_model = spm_file(reference.path)
  if reference.info.get("labels") is not None and spm_model:
    spec = serving.ClassifierSpec.from_info(reference.info, spm_model, max_length)
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
