"""SQuAD feature caches: records + prediction metadata, fingerprinted, rebuilt when stale.

`build_squad_cache(path, is_training, version_2_with_negative, tokenizer_spec, settings,
cache_dir, num_workers)` reads a SQuAD file (`examples.py`), converts it (`features.py`)
and stores:

* `<cache_dir>/squad_<train|eval>_<file>-<fingerprint>.tf_record` (or `path_override`, the
  original's `--train_feature_file` / `--predict_feature_file`): one `tf.train.Example` per
  feature, int64 `unique_ids, input_ids, input_mask, segment_ids, p_mask` and, for training,
  `start_positions, end_positions, is_impossible` (the original's FeatureWriter);
* `<record>.meta.npz` (numpy, no pickles): the `SquadFeatures` arrays without the model inputs
  (for prediction: unique ids, example index, window pieces' character offsets, max-context
  flags, paragraph_len; for training only the per-feature arrays) and, for prediction, the
  examples (`examples_json`: qas_id, question, paragraph index, title, answers) with the
  distinct paragraphs (`paragraphs_json`), as UTF-8 JSON bytes;
* `<record>.json`, written last (`albert.data.cache.FeatureCache`): counts, settings, the
  read report, timings and the sha256 of the npz.

The fingerprint covers the input file's bytes, the SentencePiece model's bytes, lower-casing,
max_seq_length, doc_stride, max_query_length, is_training, version_2_with_negative, the
reader's options and the converter's version: any change builds a new cache, an unchanged run
reuses it (checked: fingerprint, record size, npz digest). The original reused a feature file
whatever had made it. Bad input fails before anything is written; an interrupted build leaves
no file under a final name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
from absl import logging

from albert import files
from albert.data import cache as cache_lib
from albert.data.squad import examples as squad
from albert.data.squad import features as features_lib
from albert.errors import DataError, TokenizerError
from albert.tokenization import TokenizerSpec

CONVERTER_VERSION = "albert-squad-features-1"


@dataclasses.dataclass
class SquadCache:
  """A built or reused cache: where the records are, and what prediction needs."""

  record_path: str
  input_file: str
  is_training: bool
  examples: List[squad.SquadExample]  # [] for training caches
  features: features_lib.SquadFeatures  # without the model inputs
  info: Dict[str, Any]  # the JSON metadata
  reused: bool

  @property
  def num_features(self) -> int:
    return int(self.info["num_records"])

  def dataset(self) -> List[Dict[str, Any]]:
    """The input file's `data` list (the official scorers' `dataset`)."""
    return squad.load_squad_json(self.input_file)["data"]

  def summary(self) -> str:
    info = self.info
    what = "reused" if self.reused else f"built in {info['seconds']:.1f} s"
    text = (f"{self.input_file}: {info['num_examples']} examples -> {info['num_records']} "
            f"features ({info['num_impossible_features']} without an answer) in "
            f"{self.record_path} ({what})")
    skipped = info["num_skipped_reading"] + info["num_skipped_features"]
    return text + (f"; {skipped} questions skipped" if skipped else "")


def fingerprint_settings(is_training: bool, version_2_with_negative: bool,
                         spec: TokenizerSpec,
                         settings: features_lib.FeatureSettings,
                         multiple_answers: str, check_answers: bool) -> Dict[str, Any]:
  return {"converter": CONVERTER_VERSION, "is_training": bool(is_training),
          "version_2_with_negative": bool(version_2_with_negative),
          "do_lower_case": bool(spec.do_lower_case),
          "max_seq_length": settings.max_seq_length, "doc_stride": settings.doc_stride,
          "max_query_length": settings.max_query_length,
          "multiple_answers": multiple_answers, "check_answers": bool(check_answers)}


def build_squad_cache(path: str, is_training: bool, version_2_with_negative: bool,
                      tokenizer_spec: TokenizerSpec,
                      settings: features_lib.FeatureSettings, cache_dir: str,
                      num_workers: int = 0, path_override: Optional[str] = None,
                      multiple_answers: str = "error", check_answers: bool = True,
                      log: Callable[[str], None] = logging.info) -> Tuple[str, SquadCache]:
  """Builds (or reuses) the feature cache of one SQuAD file; returns (record path, cache).

  `num_workers`: 0 = one per core. `path_override`: the record file to write (the original's
  --train_feature_file / --predict_feature_file); its metadata files go beside it.
  `multiple_answers`, `check_answers`: the reader's options (`squad.read_squad_examples`).
  `log` gets a progress line every 10 s and the summary.
  """
  spec = features_lib.check_spec(tokenizer_spec)
  if not files.isfile(path):
    raise DataError(f"SQuAD file not found: {path}")
  if not files.isfile(spec.spm_model_file):
    raise TokenizerError(f"SentencePiece model file (spm_model_file) not found: "
                         f"{spec.spm_model_file!r}")
  options = fingerprint_settings(is_training, version_2_with_negative, spec, settings,
                                 multiple_answers, check_answers)
  key = cache_lib.fingerprint([path], options, [spec.spm_model_file])
  stem = os.path.splitext(os.path.basename(path))[0]
  feature_cache = cache_lib.FeatureCache(
      cache_dir, f"squad_{'train' if is_training else 'eval'}_{stem}", key, path_override)
  found = _load(feature_cache, path, is_training)
  if found is not None:
    log(found.summary())
    return found.record_path, found
  started = time.time()
  report = squad.ReadReport(path)
  examples = squad.read_squad_examples(path, is_training, version_2_with_negative,
                                       multiple_answers, check_answers, report)
  if not examples:
    raise DataError(f"{path}: no questions to convert")
  collector = features_lib.FeatureCollector(is_training, keep_inputs=False,
                                            keep_windows=not is_training)
  done: Dict[str, features_lib.SquadFeatures] = {}
  metadata: Dict[str, Any] = {"input_file": os.path.abspath(path), "settings": options,
                              "spm_model_file": os.path.abspath(spec.spm_model_file)}
  sidecar = feature_cache.path + ".meta.npz"

  def records() -> Iterator[bytes]:
    last_log, questions = time.time(), 0
    for chunk in features_lib.iter_chunks(examples, spec, settings, is_training, num_workers,
                                          keep_inputs=False, with_records=True):
      yield from collector.add(chunk)
      questions += chunk.num_examples
      if time.time() - last_log > 10:
        last_log = time.time()
        log(f"SQuAD features of {path}: {questions}/{len(examples)} questions, {collector.count} "
            f"features, {last_log - started:.0f} s")
    # All records are out: the npz goes next, then FeatureCache.write adds the JSON last.
    feats = done["features"] = collector.features()
    blob = _sidecar_bytes(feats, examples if not is_training else [], key)
    files.write_bytes(sidecar, blob)
    impossible = feats.is_impossible
    metadata.update(
        num_examples=len(examples), num_skipped_reading=len(report.skipped),
        skipped_reading=report.skipped[:100], num_skipped_features=len(feats.skipped),
        skipped_features=[[i, examples[i].qas_id, why] for i, why in feats.skipped[:100]],
        num_impossible_features=int(impossible.sum()) if impossible is not None else 0,
        sidecar=os.path.basename(sidecar), sidecar_sha256=hashlib.sha256(blob).hexdigest(),
        seconds=round(time.time() - started, 3))

  info = feature_cache.write(records(), metadata)
  built = SquadCache(feature_cache.path, path, is_training,
                     examples if not is_training else [], done["features"], info,
                     reused=False)
  log(built.summary())
  return built.record_path, built


def _sidecar_bytes(feats: features_lib.SquadFeatures, examples: List[squad.SquadExample],
                   key: str) -> bytes:
  arrays = feats.arrays(with_inputs=False)
  if examples:
    paragraphs: Dict[str, int] = {}
    rows = []
    for e in examples:
      index = paragraphs.setdefault(e.paragraph_text, len(paragraphs))
      rows.append({"qas_id": e.qas_id, "question_text": e.question_text, "paragraph": index,
                   "title": e.title, "answers": e.answers, "is_impossible": e.is_impossible,
                   "orig_answer_text": e.orig_answer_text, "start_position": e.start_position})
    arrays["examples_json"] = _json_bytes(rows)
    arrays["paragraphs_json"] = _json_bytes(list(paragraphs))
  arrays["skipped_json"] = _json_bytes(feats.skipped)
  arrays["fingerprint"] = np.frombuffer(key.encode("ascii"), dtype=np.uint8)
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  return buffer.getvalue()


def _json_bytes(value: Any) -> np.ndarray:
  return np.frombuffer(json.dumps(value).encode("utf-8"), dtype=np.uint8)


def _load(feature_cache: cache_lib.FeatureCache, path: str, is_training: bool
          ) -> Optional[SquadCache]:
  """The cache if complete and made by the same inputs and settings, else None."""
  info = feature_cache.metadata()
  if info is None:
    return None
  sidecar = os.path.join(os.path.dirname(feature_cache.path), info.get("sidecar", ""))
  try:
    with files.open_file(sidecar, "rb") as f:
      blob = f.read()
  except OSError:
    return None
  if hashlib.sha256(blob).hexdigest() != info.get("sidecar_sha256"):
    return None
  with np.load(io.BytesIO(blob), allow_pickle=False) as data:
    arrays = {name: data[name] for name in data.files}
  examples = []
  if "examples_json" in arrays:
    paragraphs = json.loads(arrays.pop("paragraphs_json").tobytes().decode("utf-8"))
    for row in json.loads(arrays.pop("examples_json").tobytes().decode("utf-8")):
      row["paragraph_text"] = paragraphs[row.pop("paragraph")]
      examples.append(squad.SquadExample(**row))
  skipped = [tuple(s) for s in json.loads(arrays.pop("skipped_json").tobytes().decode("utf-8"))]
  arrays.pop("fingerprint", None)
  feats = features_lib.SquadFeatures.from_arrays(arrays, skipped)
  return SquadCache(feature_cache.path, path, is_training, examples, feats, info, reused=True)
