"""Which parts of an export are done: what made each SavedModel, recorded inside it.

`export_to_tfhub.py` writes up to three things (the encoder SavedModel, the preprocessing
SavedModel, the TFLite file). A run that stopped after the first can be completed by rerunning
the same command: a part that is already there is kept, untouched, when it was made from the
same inputs, and refused (unless `--overwrite`) when it was not. To tell, each SavedModel holds
`assets.extra/albert_export.json` (the SavedModel convention's folder for files that tools keep
beside a model; TensorFlow does not load it): the kind of export, the sha256 of every input file
(config, checkpoint, tokenizer) and the settings that change the result. The TFLite file has no
such record; it is checked against the encoder instead (`albert.export.encoder`).

This module owns the record: `make_record`, `write_record`, `read_record`, and `write_or_keep`
(whether a part is written anew or kept from an earlier run).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence

from albert import files
from albert.errors import ExportError

RECORD = os.path.join("assets.extra", "albert_export.json")
FORMAT_VERSION = 1
WRITE, KEEP = "write", "keep"


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def checkpoint_files(prefix: str) -> Sequence[str]:
  """The `.index` and `.data-*` files of a checkpoint prefix, sorted."""
  gfile = _gfile()
  return sorted([prefix + ".index"] + gfile.glob(prefix + ".data-*"))


def make_record(kind: str, inputs: Mapping[str, Optional[str]],
                settings: Mapping[str, Any]) -> Dict[str, Any]:
  """The record of an export: `{name: file}` inputs (None skipped) are hashed, settings kept."""
  digests = {name: files.file_digest(path) for name, path in inputs.items() if path}
  return {"format_version": FORMAT_VERSION, "kind": kind, "inputs": digests,
          "settings": dict(settings)}


def write_record(directory: str, record: Mapping[str, Any]) -> None:
  """Writes the record into a SavedModel directory (before it is moved into place)."""
  files.write_text(os.path.join(directory, RECORD), json.dumps(record, indent=1, sort_keys=True)
                   + "\n")


def read_record(directory: str) -> Optional[Dict[str, Any]]:
  """The record of an existing export, or None (none, unreadable, or written before records)."""
  return files.read_json(os.path.join(directory, RECORD))


def _exists(path: str) -> bool:
  if files.is_remote(path):
    gfile = _gfile()
    return gfile.exists(path) and (not gfile.isdir(path) or bool(gfile.listdir(path)))
  return os.path.exists(path) and (not os.path.isdir(path) or bool(os.listdir(path)))


def write_or_keep(path: str, record: Mapping[str, Any], overwrite: bool, flag: str,
                  complete: bool = True) -> str:
  """WRITE or KEEP for the SavedModel at `path`; raises ExportError if it cannot be either.

  Missing: WRITE. With `overwrite`: WRITE (replaced once the new one is complete). Present with
  the same record and `complete` (its files are all there): KEEP. Otherwise an error that says
  why and what to do.
  """
  if not _exists(path) or overwrite:
    return WRITE
  found = read_record(path)
  if found is None:
    raise ExportError(f"{flag}={path} already exists and was not written by this exporter (or "
                      "by an older version); choose a new path or pass --overwrite to replace it")
  if found.get("kind") != record["kind"]:
    raise ExportError(f"{flag}={path} already holds a {found.get('kind')} export, not a "
                      f"{record['kind']} export; choose a new path or pass --overwrite")
  changed = sorted(k for k in set(found.get("inputs", {})) | set(record["inputs"])
                   if found.get("inputs", {}).get(k) != record["inputs"].get(k))
  changed += sorted(f"--{k}" for k in set(found.get("settings", {})) | set(record["settings"])
                    if found.get("settings", {}).get(k) != record["settings"].get(k))
  if changed:
    raise ExportError(f"{flag}={path} already exists, exported from other inputs or settings "
                      f"({', '.join(changed)} differ); choose a new path or pass --overwrite "
                      "to replace it")
  if not complete:
    raise ExportError(f"{flag}={path} is incomplete (files are missing); pass --overwrite to "
                      "write it again")
  return KEEP
