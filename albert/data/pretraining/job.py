"""`create_pretraining_data`: raw text -> the original's pretraining TFRecords, streamed, parallel.

This module owns the run: the typed config and its validation, the worker state, the two
phases. Workers are `albert.data.workers.OrderedPool` processes; resuming is `sharding.py`'s,
progress lines and the summary `progress.py`'s.

1. Tokenize: the input files are read as batches of lines, tokenized by the workers and written,
   in corpus order, to a token store on disk (`corpus.py`).
2. Instances: the `dupe_factor x documents` work units are visited in a seeded pseudo-random
   order and split into output shards (`sharding.py`); each unit's randomness is
   `random.Random(derive_seed(seed, "instances", dupe, document))`, so the output is the same
   for any number of workers. Workers cut, mask, serialize and frame the instances
   (`instances.py`, `records.py`); the main process shuffles each shard's records through a
   bounded buffer and writes the shard under a temporary name, renamed when complete.

Memory is bounded by the shuffle buffer, a few tasks in flight and the largest document. A
rerun with the same settings skips complete shards. Output locations are checked before anything
is written; a failed run removes its temporary files and the (empty) folders it created. The
same job on Apache Beam: `beam.py`. Nothing here reads absl flags.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from typing import Callable, Iterator, List, Optional, Sequence

from absl import logging

from albert import files as files_lib  # (`files` is a local name below)
from albert import tokenization
from albert.data import DataError
from albert.data.pretraining import corpus as corpus_lib
from albert.data.pretraining import instances as instances_lib
from albert.data.pretraining import sharding
from albert.data.pretraining.progress import Progress, Summary
from albert.data import records as records_lib
from albert.data import workers as workers_lib
from albert.errors import FlagError, output_error

FORMAT_VERSION = 1


class SettingsError(DataError):
  """A bad setting; the message names the flag."""


@dataclasses.dataclass
class CreateDataConfig:
  """Settings of a run; field names are the original's flags, plus the streaming additions."""
  input_file: str = ""
  output_file: str = ""
  vocab_file: Optional[str] = None
  spm_model_file: Optional[str] = None
  input_file_mode: str = "r"
  do_lower_case: bool = True
  do_whole_word_mask: bool = True
  do_permutation: bool = False
  favor_shorter_ngram: bool = True
  random_next_sentence: bool = False
  max_seq_length: int = 512
  ngram: int = 3
  max_predictions_per_seq: int = 20
  random_seed: int = 12345
  dupe_factor: int = 40
  masked_lm_prob: float = 0.15
  short_seq_prob: float = 0.1
  # Additions.
  num_workers: int = 0  # 0: one per CPU core
  num_output_shards: int = 0  # 0: the files of output_file as given
  shuffle_buffer_size: int = 10000  # records per shard shuffle buffer
  max_line_length: int = 100000  # characters
  work_dir: Optional[str] = None  # token store location (default: beside the first output)
  progress_interval: float = 10.0  # seconds between progress lines
  units_per_task: int = 0  # 0: automatic

  def instance_params(self) -> instances_lib.InstanceParams:
    return instances_lib.InstanceParams(
        max_seq_length=self.max_seq_length, short_seq_prob=self.short_seq_prob,
        masked_lm_prob=self.masked_lm_prob, max_predictions_per_seq=self.max_predictions_per_seq,
        ngram=self.ngram, favor_shorter_ngram=self.favor_shorter_ngram,
        do_whole_word_mask=self.do_whole_word_mask,
        random_next_sentence=self.random_next_sentence)

  def tokenizer_spec(self) -> tokenization.TokenizerSpec:
    return tokenization.TokenizerSpec(spm_model_file=self.spm_model_file or None,
                                    vocab_file=self.vocab_file or None,
                                    do_lower_case=self.do_lower_case)

  def resolved_workers(self) -> int:
    return workers_lib.resolve_workers(self.num_workers)

  def validate(self) -> None:
    """Raises SettingsError naming the flag for any setting the run cannot use."""
    if not self.input_file:
      raise SettingsError("--input_file is required: raw text, one sentence per line, a blank "
                        "line between documents (comma-separated globs)")
    if not self.output_file:
      raise SettingsError("--output_file is required: the TFRecord file(s) to write")
    if not self.spm_model_file and not self.vocab_file:
      raise SettingsError("give --spm_model_file (SentencePiece, the English ALBERT models) or "
                        "--vocab_file (WordPiece); with a SentencePiece model --vocab_file is "
                        "not needed")
    if self.input_file_mode not in ("r", "rb"):
      raise SettingsError(f"--input_file_mode={self.input_file_mode!r}: use 'r' or 'rb' (input "
                        "is read as UTF-8 either way)")
    if self.do_permutation:
      raise SettingsError(
          "--do_permutation is not supported: the original wrote masked_lm_* features of "
          "2 * max_predictions_per_seq entries with it, which its run_pretraining.py cannot "
          "read, and no released ALBERT model was trained with it")
    if self.max_seq_length < 5:
      raise SettingsError(f"--max_seq_length={self.max_seq_length} is too small: an instance is "
                        "[CLS] A [SEP] B [SEP] with at least one token in A and in B, so it "
                        "needs at least 5")
    for name in ("masked_lm_prob", "short_seq_prob"):
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise SettingsError(f"--{name}={value} is not a probability: it must be in [0, 1]")
    positive = {"max_predictions_per_seq": 1, "ngram": 1, "dupe_factor": 1,
                "max_line_length": 1}
    for name, minimum in positive.items():
      if getattr(self, name) < minimum:
        raise SettingsError(f"--{name}={getattr(self, name)} must be >= {minimum}")
    for name in ("num_workers", "num_output_shards", "shuffle_buffer_size", "units_per_task"):
      if getattr(self, name) < 0:
        raise SettingsError(f"--{name}={getattr(self, name)} must be >= 0")


def load_tables(spec: tokenization.TokenizerSpec):
  """The tokenizer and its vocabulary tables; errors name the flag and file."""
  try:
    tokenizer = spec.build()
  except (FileNotFoundError, ValueError, OSError) as e:
    flag = "--spm_model_file" if spec.spm_model_file else "--vocab_file"
    raise SettingsError(f"{flag}: {e}") from None
  try:
    tables = instances_lib.VocabTables.from_vocab(tokenizer.vocab,
                                                  sentencepiece=tokenizer.sp_model is not None)
  except ValueError as e:
    if spec.spm_model_file:
      where = f"--spm_model_file {spec.spm_model_file!r}"
      hint = ("; train a model with the control symbols [CLS], [SEP], [MASK] "
              "(create_pretraining_data.py train_vocab does)")
    else:
      where, hint = f"--vocab_file {spec.vocab_file!r}", "; add them to the vocabulary"
    raise SettingsError(f"{where}: {e}{hint}") from None
  return tokenizer, tables


# ---------------------------------------------------------------------------------------------
# The worker state (one per process of an `albert.data.workers.OrderedPool`).


@dataclasses.dataclass(frozen=True)
class WorkerSetup:
  tokenizer: tokenization.TokenizerSpec
  params: instances_lib.InstanceParams
  max_line_length: int
  random_seed: int


@dataclasses.dataclass(frozen=True)
class _InstanceTask:
  store_dir: str
  num_documents: int
  dupe_factor: int
  shard: int
  start: int  # permuted unit positions [start, stop)
  stop: int


@dataclasses.dataclass
class _TaskResult:
  shard: int
  records: List[bytes]  # framed TFRecords
  stats: instances_lib.InstanceStats
  units: int


class WorkerState:
  """What a worker keeps between tasks: tokenizer, tables, encoder, open store, permutation."""

  def __init__(self, setup: WorkerSetup, loaded=None):
    self.setup = setup
    self.tokenizer, self.tables = loaded or load_tables(setup.tokenizer)
    params = setup.params
    self.cdf = params.ngram_cdf()
    self.encoder = records_lib.ExampleEncoder(
        max(self.tables.vocab_size, params.max_seq_length, 128) + 1)
    self._sp_ids = (corpus_lib.SentencePieceIds(self.tokenizer)
                    if self.tokenizer.sp_model is not None else None)
    self._store: Optional[corpus_lib.TokenStore] = None
    self._permutation: Optional[sharding.Permutation] = None

  def store(self, directory: str) -> corpus_lib.TokenStore:
    if self._store is None or self._store.directory != directory:
      if self._store is not None:
        self._store.close()
      self._store = corpus_lib.TokenStore(directory)
    return self._store

  def permutation(self, size: int) -> sharding.Permutation:
    if self._permutation is None or self._permutation.size != size:
      key = sharding.derive_seed(self.setup.random_seed, "unit-order")
      self._permutation = sharding.Permutation(size, key)
    return self._permutation

  def close(self) -> None:
    if self._store is not None:
      self._store.close()
      self._store = None

  def tokenize(self, batch: corpus_lib.LineBatch) -> corpus_lib.TokenizedBatch:
    return corpus_lib.tokenize_batch(self.tokenizer, batch, self.setup.max_line_length,
                                     self._sp_ids)

  def instances(self, task: _InstanceTask) -> _TaskResult:
    store = self.store(task.store_dir)
    order = self.permutation(task.dupe_factor * task.num_documents)
    stats, framed = instances_lib.InstanceStats(self.setup.params.ngram), []
    for position in range(task.start, task.stop):
      dupe, document = divmod(order(position), task.num_documents)
      framed.extend(self.unit_records(store, dupe, document, stats))
    return _TaskResult(task.shard, framed, stats, task.stop - task.start)

  def unit_records(self, documents, dupe: int, document: int, stats) -> List[bytes]:
    """The framed records of unit (dupe, document), from its own generator; `documents`: any
    sequence of the corpus's documents (the token store; in the Beam job, those it was given)."""
    p = self.setup.params
    rng = random.Random(sharding.derive_seed(self.setup.random_seed, "instances", dupe, document))
    return records_lib.frame_records([self.encoder.encode_instance(
        p.max_seq_length, p.max_predictions_per_seq, i.input_ids, i.segment_ids, i.token_boundary,
        i.masked_lm_positions, i.masked_lm_ids, i.next_sentence_label)
        for i in instances_lib.create_instances_from_document(
            documents, document, p, self.tables, instances_lib.Draws(rng), self.cdf, stats)])


# ---------------------------------------------------------------------------------------------
# The run.


def _fingerprint(config: CreateDataConfig, files: Sequence[str], outputs: Sequence[str]) -> str:
  """Hash of everything that determines the output (not the number of workers)."""
  def file_id(path):
    if files_lib.is_remote(path):
      return [path, files_lib.size(path)]
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]

  def content_hash(path):
    if not path:
      return None
    return files_lib.file_digest(path)

  settings = dataclasses.asdict(config)
  for name in ("num_workers", "work_dir", "progress_interval", "units_per_task", "input_file",
               "output_file"):
    settings.pop(name)
  settings["spm_model_file"] = content_hash(config.spm_model_file)
  settings["vocab_file"] = None if config.spm_model_file else content_hash(config.vocab_file)
  code = hashlib.sha256()
  for module in (corpus_lib, instances_lib, records_lib, sharding, tokenization):
    with open(module.__file__, "rb") as f:
      code.update(f.read())
  blob = json.dumps({"version": FORMAT_VERSION, "code": code.hexdigest(), "settings": settings,
                     "inputs": [file_id(p) for p in files],
                     "outputs": [_absolute(p) for p in outputs]}, sort_keys=True)
  return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _absolute(path: str) -> str:
  return path if files_lib.is_remote(path) else os.path.abspath(path)


def check_output_locations(outputs: Sequence[str], work_dir: Optional[str] = None) -> None:
  """Every output file's folder (and `work_dir`) can be created and written; creates nothing."""
  try:
    for path in outputs:
      files_lib.check_output_file(path, "--output_file")
    if work_dir:
      files_lib.check_output_dir(work_dir, "--work_dir")
  except FlagError as error:
    raise SettingsError(str(error)) from None


def _make_dirs(path: str) -> List[str]:
  """Creates `path` and its missing parents; returns the folders created, outermost first."""
  missing = []
  probe = os.path.abspath(path)
  while not os.path.exists(probe):
    missing.append(probe)
    probe = os.path.dirname(probe)
  files_lib.make_dirs(path)
  return missing[::-1]


def _remove_if_empty(folders: Sequence[str]) -> None:
  """Removes the folders a failed run created, innermost first, where nothing else was put."""
  for folder in reversed(folders):
    try:
      os.rmdir(folder)
    except OSError:
      return


def _tokenize_corpus(workers: workers_lib.OrderedPool, files: Sequence[str], store_dir: str,
                     vocab_size: int, config: CreateDataConfig, log) -> corpus_lib.CorpusStats:
  total_bytes = sum(corpus_lib.file_size(p) for p in files)
  progress = Progress("tokenizing", total_bytes, "MB", config.progress_interval, log, scale=1e6)
  writer = corpus_lib.TokenStoreWriter(store_dir, vocab_size)
  try:
    batches = corpus_lib.read_line_batches(files, config.max_line_length)
    for result in workers.map(WorkerState.tokenize, batches):
      writer.add(result, files[result.file_index])
      progress.update(writer.stats.bytes)
  except BaseException:
    writer.abort()
    raise
  stats = writer.close()
  progress.update(stats.bytes, force=True)
  return stats


def _instance_tasks(store_dir: str, num_documents: int, config: CreateDataConfig,
                    shards: Sequence[int], ranges, units_per_task: int) -> Iterator[_InstanceTask]:
  for shard in shards:
    start, stop = ranges[shard]
    if start == stop:
      yield _InstanceTask(store_dir, num_documents, config.dupe_factor, shard, start, stop)
    for first in range(start, stop, units_per_task):
      yield _InstanceTask(store_dir, num_documents, config.dupe_factor, shard, first,
                          min(stop, first + units_per_task))


def _write_shards(workers: workers_lib.OrderedPool, tasks: Iterator[_InstanceTask],
                  outputs: Sequence[str], todo: Sequence[int], num_units_todo: int,
                  config: CreateDataConfig, summary: Summary, log) -> instances_lib.InstanceStats:
  """Consumes task results in order; each shard goes through its shuffle buffer into its file."""
  stats = instances_lib.InstanceStats(config.ngram)
  progress = Progress("instances", num_units_todo, "documents", config.progress_interval, log,
                       extra=lambda t: f"{stats.instances:,} instances "
                                       f"({stats.instances / t:,.0f}/s)")
  units_done = 0
  current = None  # (shard, AtomicRecordFile, ShuffleBuffer)

  def finish(state):
    shard, out, buffer = state
    for record in buffer.drain():
      out.write_framed(record)
    out.commit()
    summary.shards_written += 1
    summary.records_written += out.num_records

  try:
    for result in workers.map(WorkerState.instances, tasks):
      if current is None or current[0] != result.shard:
        if current is not None:
          finish(current)
        shard = result.shard
        buffer = sharding.ShuffleBuffer(
            config.shuffle_buffer_size,
            random.Random(sharding.derive_seed(config.random_seed, "shuffle", shard)))
        current = (shard, records_lib.AtomicRecordFile(outputs[shard]), buffer)
      out, buffer = current[1], current[2]
      for record in result.records:
        emitted = buffer.push(record)
        if emitted is not None:
          out.write_framed(emitted)
      stats.merge(result.stats)
      units_done += result.units
      progress.update(units_done)
    if current is not None:
      finish(current)
      current = None
  except BaseException:
    if current is not None:
      current[1].abort()
    raise
  progress.update(units_done, force=True)
  return stats


def _check_corpus(stats: corpus_lib.CorpusStats, files: Sequence[str], summary: Summary,
                  log) -> None:
  """Copies the corpus figures into the summary; an empty corpus is an error."""
  summary.input_bytes = stats.bytes
  summary.documents = stats.documents
  summary.sentences = stats.sentences
  summary.corpus_tokens = stats.tokens
  summary.single_sentence_documents = stats.single_sentence_documents
  summary.dropped_documents = stats.dropped_documents
  summary.warnings = list(stats.warnings)
  if stats.documents == 0:
    raise corpus_lib.CorpusError(
        f"--input_file: the corpus is empty: no document with any token in "
        f"{', '.join(files)} (expected one sentence per line, a blank line between documents)")
  if stats.documents == 1:
    summary.warnings.append("the corpus has one document: B segments 'from another "
                            "document' come from the same document (as in the original)")
  for warning in summary.warnings:
    log(f"warning: {warning}")


def create_pretraining_data(config: CreateDataConfig,
                            log: Callable[[str], None] = logging.info) -> Summary:
  """Runs the whole pipeline for `config`; returns the summary (also logged).

  Raises:
    SettingsError: a bad setting (names the flag).
    corpus.CorpusError: bad input text (names the file and line).
  """
  t_start = time.monotonic()
  config.validate()
  files = corpus_lib.expand_input_files(config.input_file)
  try:
    outputs = sharding.output_paths(config.output_file, config.num_output_shards)
  except ValueError as e:
    raise SettingsError(str(e)) from None
  inputs_abs = {_absolute(p) for p in files}
  for path in outputs:
    if _absolute(path) in inputs_abs:
      raise SettingsError(f"--output_file {path!r} is also an input file")
  spec = config.tokenizer_spec()
  tokenizer, tables = load_tables(spec)
  num_workers = config.resolved_workers()
  summary = Summary(input_files=len(files), output_files=list(outputs), num_workers=num_workers)

  check_output_locations([p for p in outputs if files_lib.is_remote(p)])  # reachable at all?
  marker, resume, todo = sharding.resume_plan(outputs, _fingerprint(config, files, outputs), log)
  summary.shards_skipped = len(outputs) - len(todo)
  if not todo:  # complete: nothing is written (the outputs may even be read-only now)
    summary.seconds_total = time.monotonic() - t_start
    return summary  # the plan said so; a summary of zeros would only confuse
  check_output_locations(outputs, config.work_dir)
  for path in sharding.stale_temp_files(outputs, records_lib.AtomicRecordFile.TEMP_MARK):
    log(f"removing a partial file left by an interrupted run: {path}")
    files_lib.remove(path)

  # The token store is local (random access): beside the first output, or in the temporary
  # folder when the outputs are remote.
  work_root = config.work_dir or (tempfile.gettempdir() if files_lib.is_remote(outputs[0])
                                  else os.path.dirname(os.path.abspath(outputs[0])))
  created = _make_dirs(work_root)  # removed again (if still empty) when the run fails
  store_prefix = f".{os.path.basename(outputs[0])}.tokens-"
  corpus_lib.remove_stale_token_stores(work_root, store_prefix, log)
  try:
    store_dir = tempfile.mkdtemp(prefix=f"{store_prefix}{os.getpid()}-", dir=work_root)
  except OSError as error:
    _remove_if_empty(created)
    error.filename = work_root  # not the temporary name
    raise output_error(error, "cannot write in") from None
  ok = False
  workers = None
  try:
    setup = WorkerSetup(spec.localized(store_dir), config.instance_params(),
                         config.max_line_length, config.random_seed)
    log(f"reading {len(files)} file(s) with {num_workers} worker(s)")
    workers = workers_lib.OrderedPool(num_workers, WorkerState, (setup,),
                                      local_args=(setup, (tokenizer, tables)))
    t0 = time.monotonic()
    corpus_stats = _tokenize_corpus(workers, files, store_dir, tables.vocab_size, config, log)
    summary.seconds_tokenize = time.monotonic() - t0
    _check_corpus(corpus_stats, files, summary, log)
    if not resume:  # only now that the input has been read without error
      sharding.replace_outputs(outputs, marker, log)
    num_units = config.dupe_factor * corpus_stats.documents
    ranges = sharding.shard_ranges(num_units, len(outputs))
    units_todo = sum(ranges[s][1] - ranges[s][0] for s in todo)
    units_per_task = config.units_per_task or max(1, min(16, units_todo // (num_workers * 4)))
    empty = [s for s in todo if ranges[s][0] == ranges[s][1]]
    if empty:
      summary.warnings.append(f"{len(empty)} output file(s) get no instances: there are only "
                              f"{num_units} document passes for {len(outputs)} files")
      log(f"warning: {summary.warnings[-1]}")
    log(f"creating instances: {corpus_stats.documents:,} documents x dupe_factor "
        f"{config.dupe_factor} into {len(todo)} file(s)")
    t1 = time.monotonic()
    tasks = _instance_tasks(store_dir, corpus_stats.documents, config, todo, ranges,
                            units_per_task)
    stats = _write_shards(workers, tasks, outputs, todo, units_todo, config, summary, log)
    summary.seconds_instances = time.monotonic() - t1
    summary.instance_stats = stats.as_dict()
    ok = True
  finally:
    if workers is not None:
      workers.close(ok)
    shutil.rmtree(store_dir, ignore_errors=True)
    if not ok:
      _remove_if_empty(created)
  summary.seconds_total = time.monotonic() - t_start
  log(summary.format())
  return summary
