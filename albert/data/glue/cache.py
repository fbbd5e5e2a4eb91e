"""A GLUE split -> a feature cache of the original's records, converted once, on every core.

`build_glue_cache(task_name, data_dir, split, tokenizer_spec, max_seq_length, cache_dir)` returns
`(path, metadata)` of an `albert.data.cache.FeatureCache`: a TFRecord file of the original's
`tf.train.Example`s (`features.feature_schema`) and its JSON metadata. The fingerprint that names
the file covers the TSV's bytes, the tokenizer model's bytes, lower-casing, `max_seq_length`, the
task (the train file of `mnli` and `mismnli` is one cache) and the conversion's version, so a
changed input or flag builds a new file, and an unchanged one is reused (same path) after
checking that it is complete and intact (record count, size and sha256 in the metadata). A
damaged cache is rebuilt, with a log line saying why.

Metadata keys (besides FeatureCache's `fingerprint, num_records, num_bytes, format_version`):
`task, family, split, input_file, max_seq_length, do_lower_case, spm_model_file, vocab_file,
label_list, is_regression, num_labels, num_examples, guids` (input order, for submission files),
`lengths` (tokens before padding, for length buckets), `num_at_max_length, skipped_rows,
skipped_lines` (QQP's ragged rows), `feature_schema, records_sha256, num_workers, seconds`.

Parallel conversion: the main process reads the TSV (`csv` is C code) and sends chunks of raw
rows to the worker processes of `albert.data.workers` (forked where safe, else spawned without
re-running the main script), which process the text, tokenize, serialize and frame the records
(TFRecord CRCs); results come back in input order, so the file has the same bytes for any number
of workers. The main process only appends them to the cache file (`records.AtomicRecordFile`,
renamed into place when complete) and writes the metadata last, in FeatureCache's format
(FeatureCache.write would frame every record in the main process). Workers leave Ctrl-C to the
main process, which ends the pool (an interrupted conversion leaves no cache file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from albert import files
from albert.data import cache as cache_lib
from albert.data import records as records_lib
from albert.data import workers as workers_lib
from albert.data.glue import custom as glue_custom
from albert.data.glue import features as glue_features
from albert.data.glue import reader as glue
from albert.data.glue.tasks import TaskSpec
from albert.errors import DataError, FlagError, InputError
from albert.tokenization import TokenizerSpec

CONVERSION_VERSION = 1
CHUNK_ROWS = 1024
# Smaller files are converted in this process: starting workers costs ~0.5 s, and SST-2 train
# (3.8 MB, 67k examples) converts in ~2 s on one core. MNLI, QQP and QNLI train use workers.
PARALLEL_MIN_BYTES = 8 << 20


@dataclasses.dataclass(frozen=True)
class _Job:
  """What a worker needs to convert rows of one split (picklable)."""
  task: Union[str, TaskSpec]  # a GLUE task's name, or a custom task's row
  split: str
  path: str
  tokenizer: TokenizerSpec
  max_seq_length: int


class _RowConverter:
  """Raw rows -> (guids, lengths, framed records): a worker's state (one per process)."""

  def __init__(self, job: _Job):
    self.job = job
    use_spm = bool(job.tokenizer.spm_model_file)
    self.processor = glue_custom.processor_for(job.task, job.tokenizer.do_lower_case, use_spm)
    self.converter = glue_features.FeatureConverter(
        job.tokenizer.build(), self.processor.labels, job.max_seq_length,
        self.processor.is_regression, multi_label=self.processor.spec.multi_label)

  def convert(self, rows: List[glue.RawRow]) -> Tuple[List[str], List[int], List[bytes]]:
    """Guids, unpadded lengths and TFRecord-framed records of the rows' examples."""
    job = self.job
    examples = [self.processor.make_example(row, job.split, job.path) for row in rows]
    records, lengths = self.converter.records(examples)
    return [example.guid for example in examples], lengths, records_lib.frame_records(records)


def _chunks(rows: Iterable[glue.RawRow], size: int) -> Iterator[List[glue.RawRow]]:
  chunk: List[glue.RawRow] = []
  for row in rows:
    chunk.append(row)
    if len(chunk) >= size:
      yield chunk
      chunk = []
  if chunk:
    yield chunk


def _settings(processor: glue.Processor, split: str, spec: TokenizerSpec,
              max_seq_length: int) -> Dict[str, Any]:
  settings = {"conversion_version": CONVERSION_VERSION,
              "task": processor.spec.family if split == "train" else processor.name,
              "split": split, "max_seq_length": max_seq_length,
              "do_lower_case": bool(spec.do_lower_case), "use_spm": bool(spec.spm_model_file)}
  row = processor.spec
  if row.source is not None:  # a custom task: its columns and labels shape the features too
    source = dataclasses.asdict(row.source)
    source.pop("files")
    settings["custom"] = dict(source, task_type=row.task_type, labels=list(row.labels))
  return settings


def _schema(processor: glue.Processor, max_seq_length: int) -> Dict[str, Tuple[str, int]]:
  multi = processor.num_labels if processor.spec.multi_label else 0
  return glue_features.feature_schema(max_seq_length, processor.is_regression, multi)


def _check_reusable(cache: cache_lib.FeatureCache) -> Tuple[Optional[Dict[str, Any]], str]:
  """(metadata, "") for a complete, intact cache; (None, why not) otherwise."""
  exists = files.exists(cache.path)
  meta = cache.metadata()
  if meta is None:
    return None, ("incomplete or truncated (no matching metadata)" if exists else "")
  count = meta.get("num_examples")
  if (meta.get("num_records") != count or len(meta.get("guids") or ()) != count
      or len(meta.get("lengths") or ()) != count or "records_sha256" not in meta):
    return None, "its metadata does not describe the records"
  if cache_lib.file_digest(cache.path) != meta["records_sha256"]:
    return None, "its records were changed after they were written (sha256 differs)"
  return meta, ""


def build_glue_cache(task_name: Union[str, TaskSpec], data_dir: str, split: str,
                     tokenizer_spec: TokenizerSpec, max_seq_length: int, cache_dir: str,
                     num_workers: Optional[int] = None,
                     log: Optional[Callable[[str], None]] = None,
                     parallel_min_bytes: int = PARALLEL_MIN_BYTES) -> Tuple[str, Dict[str, Any]]:
  """Features of one GLUE split in a fingerprinted cache; returns `(records path, metadata)`.

  Args:
    task_name: as `--task_name` accepts it (`tasks.canonical_task_name`), or a task's row (a
      custom task's: `custom.custom_spec`, whose files are its own).
    data_dir: the GLUE root (`SST-2/train.tsv`, `MNLI/dev_matched.tsv`, ...).
    split: "train", "dev" or "test".
    tokenizer_spec: `albert.tokenization.TokenizerSpec(spm_model_file, vocab_file,
      do_lower_case)`; with a SentencePiece model, texts are `preprocess_text`-ed as the original.
    max_seq_length: the padded length of every record (and the truncation length).
    cache_dir: where the cache lives (created if needed).
    num_workers: worker processes (`workers.resolve_workers`: None or 0, one per available
      core). Files under
      `parallel_min_bytes` are converted in this process.
    log: called with progress lines (None: quiet).
  """
  log = log or (lambda message: None)
  glue_features.check_max_seq_length(max_seq_length)
  if not (tokenizer_spec.spm_model_file or tokenizer_spec.vocab_file):
    raise FlagError("--spm_model_file (or --vocab_file) is required to convert GLUE examples")
  processor = glue_custom.processor_for(task_name, tokenizer_spec.do_lower_case,
                                       bool(tokenizer_spec.spm_model_file))
  path = processor.file_path(data_dir, split)
  model_file = tokenizer_spec.spm_model_file or tokenizer_spec.vocab_file
  if not files.isfile(model_file):
    raise InputError(f"tokenizer model not found: {model_file} (--spm_model_file)")
  settings = _settings(processor, split, tokenizer_spec, max_seq_length)
  key = cache_lib.fingerprint([path], settings, [model_file])
  cache = cache_lib.FeatureCache(cache_dir, f"{settings['task']}_{split}", key)
  meta, why = _check_reusable(cache)
  if meta is not None:
    log(f"GLUE {processor.name} {split}: reusing {meta['num_examples']} examples in {cache.path}")
    return cache.path, meta
  if why:
    log(f"GLUE {processor.name} {split}: the cache {cache.path} is {why}; rebuilding it")

  workers = 1 if files.size(path) < parallel_min_bytes else \
      workers_lib.resolve_workers(num_workers)
  job = _Job(processor.spec if processor.spec.source else processor.name, split, path,
             tokenizer_spec, max_seq_length)
  log(f"GLUE {processor.name} {split}: converting {path} at max_seq_length={max_seq_length} "
      f"({workers} worker{'s' if workers > 1 else ''})")
  start = time.monotonic()
  guids: List[str] = []
  lengths: List[int] = []
  digest = hashlib.sha256()
  chunks = _chunks(processor.raw_rows(path, split), CHUNK_ROWS)
  try:
    with records_lib.AtomicRecordFile(cache.path) as out:
      for chunk_guids, chunk_lengths, framed in workers_lib.ordered_map(
          _RowConverter.convert, chunks, workers, _RowConverter, (job,)):
        guids.extend(chunk_guids)
        lengths.extend(chunk_lengths)
        for record in framed:
          out.write_framed(record)
          digest.update(record)
      out.commit()
      num_bytes = out.num_bytes
  except OSError as error:
    raise DataError(f"cannot write the feature cache {cache.path}: "
                    f"{error.strerror or error}") from None
  # The metadata is written last, in FeatureCache's format (its `metadata()` reads it back).
  meta = _write_metadata(cache.metadata_path, {
      "fingerprint": key, "num_records": len(guids), "num_bytes": num_bytes,
      "format_version": cache_lib.FORMAT_VERSION,
      "task": settings["task"], "family": processor.spec.family, "split": split,
      "input_file": os.path.abspath(path), "max_seq_length": max_seq_length,
      "do_lower_case": bool(tokenizer_spec.do_lower_case),
      "spm_model_file": tokenizer_spec.spm_model_file, "vocab_file": tokenizer_spec.vocab_file,
      "label_list": processor.labels, "is_regression": processor.is_regression,
      "num_labels": processor.num_labels, "num_examples": len(guids), "guids": guids,
      "lengths": lengths, "num_at_max_length": sum(1 for n in lengths if n == max_seq_length),
      "skipped_rows": processor.skipped, "skipped_lines": processor.skipped_lines,
      "feature_schema": _schema(processor, max_seq_length),
      "records_sha256": digest.hexdigest(), "num_workers": workers,
      "seconds": round(time.monotonic() - start, 3)})
  skipped = (f"; {processor.skipped} ragged rows skipped (lines "
             f"{', '.join(map(str, processor.skipped_lines))}"
             f"{', ...' if processor.skipped > len(processor.skipped_lines) else ''})"
             if processor.skipped else "")
  log(f"GLUE {processor.name} {split}: {len(guids)} examples -> {cache.path} in "
      f"{meta['seconds']:.1f} s{skipped}")
  return cache.path, meta


def _write_metadata(path: str, meta: Dict[str, Any]) -> Dict[str, Any]:
  """Writes the metadata (atomically) and returns it as a reader will see it."""
  text = json.dumps(meta, sort_keys=True)
  files.write_text(path, text + "\n")
  return json.loads(text)
