"""Feature caches of the fine-tuning tasks: TFRecords named by a fingerprint of what made them.

The original reused `<task>_train.tf_record` whenever a file of that name existed, whatever
input, tokenizer or flags had produced it (a changed `max_seq_length` silently trained on stale
features). Here a cache file is named `<name>-<fingerprint>.tf_record`, the fingerprint being
a hash of the input files' contents, the tokenizer model's bytes, every setting that changes the
features (lower-casing, lengths, task) and the format version, so that any change builds a new
file and an unchanged run reuses the old one. Beside it, `<file>.json` holds the metadata the
task needs without reading the records (counts, the prediction side's per-feature data,
settings) and is written last: a cache without its metadata is incomplete and is rebuilt. Both
are written atomically (a temporary name, then rename).

TF-free: records are framed by `albert.data.records`, so conversion workers never import
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Dict, Iterable, Optional, Sequence

from albert import files
from albert.data import records as records_lib
from albert.errors import DataError, OutputError
from albert.files import file_digest  # the sha256 of a file's bytes (TF-free for local files)

FORMAT_VERSION = 1


def files_identity(paths: Sequence[str]) -> str:
  """A hex digest of the files' absolute paths, sizes and modification times (not their bytes:
  for inputs too large to hash at each run, such as pretraining records)."""
  blob = []
  for path in paths:
    if files.is_remote(path):  # an object store's listing gives the size (no local clock)
      blob.append([path, files.size(path)])
      continue
    stat = os.stat(path)
    blob.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
  return hashlib.sha256(json.dumps(blob).encode()).hexdigest()


def fingerprint(input_files: Sequence[str], settings: Dict[str, Any],
                model_files: Sequence[Optional[str]] = ()) -> str:
  """A hex digest of the inputs' and model files' contents and of `settings`."""
  blob = {"version": FORMAT_VERSION,
          "inputs": [file_digest(p) for p in input_files],
          "models": [file_digest(p) if p else None for p in model_files],
          "settings": settings}
  return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


@dataclasses.dataclass
class FeatureCache:
  """One cache file `<directory>/<name>-<fingerprint[:16]>.tf_record` and its metadata."""

  directory: str
  name: str
  key: str  # the fingerprint
  path_override: Optional[str] = None  # a fixed file name (the original's --*_feature_file)

  @property
  def path(self) -> str:
    if self.path_override:
      return self.path_override
    return os.path.join(self.directory, f"{self.name}-{self.key[:16]}.tf_record")

  @property
  def metadata_path(self) -> str:
    return self.path + ".json"

  def metadata(self) -> Optional[Dict[str, Any]]:
    """The metadata if the cache is complete and made by the same fingerprint, else None."""
    if not (files.exists(self.path) and files.exists(self.metadata_path)):
      return None
    try:
      with files.open_file(self.metadata_path, encoding="utf-8") as f:
        meta = json.load(f)
    except (OSError, json.JSONDecodeError):
      return None
    if meta.get("fingerprint") != self.key:
      return None
    if meta.get("num_bytes") != files.size(self.path):
      return None  # truncated or replaced: rebuilt
    return meta

  def write(self, records: Iterable[bytes], metadata: Dict[str, Any],
            batch: int = 2048) -> Dict[str, Any]:
    """Frames and writes serialized examples, then the metadata; returns the metadata."""
    num_records = 0
    try:
      with records_lib.AtomicRecordFile(self.path) as out:
        pending = []
        for record in records:
          pending.append(record)
          if len(pending) >= batch:
            for framed in records_lib.frame_records(pending):
              out.write_framed(framed)
            num_records += len(pending)
            pending = []
        for framed in records_lib.frame_records(pending):
          out.write_framed(framed)
        num_records += len(pending)
        out.commit()
        num_bytes = out.num_bytes
    except OutputError:
      raise  # names the file and the cause already
    except OSError as error:
      raise DataError(f"cannot write the feature cache {self.path}: {error.strerror or error}"
                      ) from None
    meta = dict(metadata, fingerprint=self.key, num_records=num_records, num_bytes=num_bytes,
                format_version=FORMAT_VERSION)
    _write_json(self.metadata_path, meta)
    return meta


def _write_json(path: str, value: Dict[str, Any]) -> None:
  files.write_text(path, json.dumps(value, sort_keys=True) + "\n")
