"""`create_pretraining_data`: raw text -> the original's pretraining TFRecords, streamed, parallel.

This module owns the run: the typed config and its validation, the worker processes, the two
phases, resuming, progress and the summary.

1. Tokenize: the input files are read as batches of lines, tokenized by the workers and written,
   in corpus order, to a token store on disk (`corpus.py`).
2. Instances: the `dupe_factor x documents` work units are visited in a seeded pseudo-random
   order and split into output shards (`sharding.py`); each unit's randomness is
   `random.Random(derive_seed(seed, "instances", dupe, document))`, so the output is the same
   for any number of workers. Workers cut, mask, serialize and frame the instances
   (`instances.py`, `records.py`); the main process shuffles each shard's records through a
   bounded buffer and writes the shard under a temporary name, renamed when complete.

Memory is bounded by the shuffle buffer, a few tasks in flight and the largest document; it does
not grow with the corpus or `dupe_factor`. A rerun with the same settings skips the shards that
are complete. Every output location is checked before anything is written; a run that fails
removes its temporary files and the folders it created (when they are still empty), and leaves
complete shards for a rerun. Nothing here reads absl flags: `create_pretraining_data.py` builds
the config.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence

from absl import logging

from albert import files
from albert import tokenization
from albert.data import DataError
from albert.data.pretraining import corpus as corpus_lib
from albert.data.pretraining import instances as instances_lib
from albert.data import records as records_lib
from albert.data.pretraining import sharding
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

  def tokenizer_spec(self) -> corpus_lib.TokenizerSpec:
    return corpus_lib.TokenizerSpec(spm_model_file=self.spm_model_file or None,
                                    vocab_file=self.vocab_file or None,
                                    do_lower_case=self.do_lower_case)

  def resolved_workers(self) -> int:
    if self.num_workers:
      return self.num_workers
    try:
      return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
      return max(1, os.cpu_count() or 1)

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


def load_tables(spec: corpus_lib.TokenizerSpec):
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
# Worker processes.


@dataclasses.dataclass(frozen=True)
class _WorkerSetup:
  tokenizer: corpus_lib.TokenizerSpec
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


class _WorkerState:
  """What a worker keeps between tasks: tokenizer, tables, encoder, open store, permutation."""

  def __init__(self, setup: _WorkerSetup, loaded=None):
    self.setup = setup
    self.tokenizer, self.tables = loaded or load_tables(setup.tokenizer)
    params = setup.params
    self.cdf = params.ngram_cdf()
    self.encoder = records_lib.ExampleEncoder(params.max_seq_length,
                                              params.max_predictions_per_seq,
                                              self.tables.vocab_size)
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
    params, tables, seed = self.setup.params, self.tables, self.setup.random_seed
    store = self.store(task.store_dir)
    order = self.permutation(task.dupe_factor * task.num_documents)
    stats = instances_lib.InstanceStats(params.ngram)
    serialized: List[bytes] = []
    for position in range(task.start, task.stop):
      dupe, document = divmod(order(position), task.num_documents)
      rng = random.Random(sharding.derive_seed(seed, "instances", dupe, document))
      draws = instances_lib.Draws(rng)
      for inst in instances_lib.create_instances_from_document(store, document, params, tables,
                                                               draws, self.cdf, stats):
        serialized.append(self.encoder.encode(inst.input_ids, inst.segment_ids,
                                              inst.token_boundary, inst.masked_lm_positions,
                                              inst.masked_lm_ids, inst.next_sentence_label))
    return _TaskResult(task.shard, records_lib.frame_records(serialized), stats,
                       task.stop - task.start)


_STATE: Optional[_WorkerState] = None


def _init_worker(setup: _WorkerSetup, loaded=None) -> None:
  """Worker state; `loaded` = (tokenizer, tables) already built in this process."""
  global _STATE
  _STATE = _WorkerState(setup, loaded)


def _can_fork() -> bool:
  """Fork only a single-threaded process without TensorFlow (forking threads is unsafe)."""
  return ("fork" in multiprocessing.get_all_start_methods() and "tensorflow" not in sys.modules
          and threading.active_count() == 1)


def _run_tokenize(batch):
  return _STATE.tokenize(batch)


def _run_instances(task):
  return _STATE.instances(task)


class _Workers:
  """`num_workers` processes (or the main process alone), results in submission order.

  Workers are forked when this process is single-threaded and has not loaded TensorFlow (the
  command line: the children share the loaded tokenizer and start at once), and spawned
  otherwise (forking a process with other threads is unsafe). The output does not depend on
  which.
  """

  def __init__(self, setup: _WorkerSetup, num_workers: int, loaded=None):
    self.num_workers = num_workers
    self._pool = None
    if num_workers > 1 and not _can_fork():
      context = multiprocessing.get_context("spawn")
      self._pool = context.Pool(num_workers, initializer=_init_worker, initargs=(setup,))
      return
    _init_worker(setup, loaded)
    if num_workers > 1:
      self._pool = multiprocessing.get_context("fork").Pool(num_workers)

  def ordered_map(self, fn: Callable, items: Iterable, window: int = 0) -> Iterator:
    """fn over items, at most `window` in flight, results in order."""
    if self._pool is None:
      for item in items:
        yield fn(item)
      return
    window = window or 2 * self.num_workers + 1
    pending = collections.deque()
    for item in items:
      pending.append(self._pool.apply_async(fn, (item,)))
      if len(pending) >= window:
        yield pending.popleft().get()
    while pending:
      yield pending.popleft().get()

  def close(self, ok: bool) -> None:
    global _STATE
    if self._pool is not None:
      if ok:
        self._pool.close()
      else:
        self._pool.terminate()
      self._pool.join()
      self._pool = None
    if _STATE is not None:
      _STATE.close()
      _STATE = None


# ---------------------------------------------------------------------------------------------
# Progress and summary.


class _Progress:
  """Logs done/total, rate and ETA at most every `interval` seconds."""

  def __init__(self, what: str, total: float, unit: str, interval: float,
               log: Callable[[str], None], scale: float = 1.0, extra: Optional[Callable] = None):
    self.what, self.total, self.unit, self.interval = what, total, unit, interval
    self.log, self.scale, self.extra = log, scale, extra
    self.start = self._last = time.monotonic()

  def update(self, done: float, force: bool = False) -> None:
    now = time.monotonic()
    if not force and now - self._last < self.interval:
      return
    self._last = now
    elapsed = max(now - self.start, 1e-9)
    rate = done / elapsed
    frac = done / self.total if self.total else 1.0
    eta = (self.total - done) / rate if rate > 0 else float("inf")
    eta_text = _clock(eta) if math.isfinite(eta) else "?"
    extra = f", {self.extra(elapsed)}" if self.extra else ""
    self.log(f"{self.what}: {done / self.scale:,.1f} of {self.total / self.scale:,.1f} "
             f"{self.unit} ({100 * frac:.1f}%), {rate / self.scale:,.2f} {self.unit}/s"
             f"{extra}, elapsed {_clock(elapsed)}, ETA {eta_text}")


def _clock(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclasses.dataclass
class Summary:
  """What a run did (also returned when every shard was already complete)."""
  input_files: int = 0
  input_bytes: int = 0
  documents: int = 0
  sentences: int = 0
  corpus_tokens: int = 0
  single_sentence_documents: int = 0
  dropped_documents: int = 0
  output_files: List[str] = dataclasses.field(default_factory=list)
  shards_written: int = 0
  shards_skipped: int = 0
  records_written: int = 0
  instance_stats: Dict = dataclasses.field(default_factory=dict)
  seconds_tokenize: float = 0.0
  seconds_instances: float = 0.0
  seconds_total: float = 0.0
  num_workers: int = 1
  warnings: List[str] = dataclasses.field(default_factory=list)

  @property
  def instances_per_second(self) -> float:
    return self.records_written / self.seconds_total if self.seconds_total else 0.0

  def as_dict(self) -> Dict:
    out = dataclasses.asdict(self)
    out["instances_per_second"] = round(self.instances_per_second, 1)
    return out

  def format(self) -> str:
    s = self.instance_stats or {}
    lines = [
        "*** create_pretraining_data summary ***",
        f"input: {self.input_files} file(s), {self.input_bytes / 1e6:,.1f} MB, "
        f"{self.documents:,} documents ({self.single_sentence_documents:,} of one sentence, "
        f"{self.dropped_documents:,} without tokens dropped), {self.sentences:,} sentences, "
        f"{self.corpus_tokens:,} tokens",
        f"output: {self.records_written:,} instances in {self.shards_written} shard(s) written"
        f"{f', {self.shards_skipped} complete shard(s) skipped' if self.shards_skipped else ''}",
    ]
    if s:
      replaced = s["replaced_mask_kept_random"]
      sop = s["sop_in_order_swapped_other"]
      ngram = ", ".join(f"{k + 1}: {100 * f:.1f}%" for k, f in
                        enumerate(s["ngram_words_fraction"]))
      lines += [
          f"tokens: {s['tokens']:,} ({s['tokens_per_instance']} per instance); masked "
          f"{s['masked']:,} = {100 * s['masked_fraction']:.2f}% ({s['masked_per_instance']} per "
          "instance)",
          f"replacements: {100 * replaced[0]:.1f}% [MASK], {100 * replaced[2]:.1f}% random, "
          f"{100 * replaced[1]:.1f}% kept",
          f"SOP labels: {100 * sop[0]:.1f}% in order (0), {100 * sop[1]:.1f}% swapped (1), "
          f"{100 * sop[2]:.1f}% B from another document (1)",
          f"masked n-grams by words: {ngram}",
      ]
    lines.append(f"time: {self.seconds_total:.1f} s (tokenize {self.seconds_tokenize:.1f} s, "
                 f"instances {self.seconds_instances:.1f} s), {self.num_workers} worker(s), "
                 f"{self.instances_per_second:,.0f} instances/s")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The run.


def _fingerprint(config: CreateDataConfig, files: Sequence[str], outputs: Sequence[str]) -> str:
  """Hash of everything that determines the output (not the number of workers)."""
  def file_id(path):
    if "://" in path:
      return [path]
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]

  def content_hash(path):
    if not path:
      return None
    with open(path, "rb") as f:
      return hashlib.sha256(f.read()).hexdigest()

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
                     "outputs": [os.path.abspath(p) for p in outputs]}, sort_keys=True)
  return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def check_output_locations(outputs: Sequence[str], work_dir: Optional[str] = None) -> None:
  """Every output file's folder (and `work_dir`) can be created and written; creates nothing."""
  try:
    for path in outputs:
      files.check_output_file(path, "--output_file")
    if work_dir:
      files.check_output_dir(work_dir, "--work_dir")
  except FlagError as error:
    raise SettingsError(str(error)) from None


def _make_dirs(path: str) -> List[str]:
  """Creates `path` and its missing parents; returns the folders created, outermost first."""
  missing = []
  probe = os.path.abspath(path)
  while not os.path.exists(probe):
    missing.append(probe)
    probe = os.path.dirname(probe)
  files.make_dirs(path)
  return missing[::-1]


def _remove_if_empty(folders: Sequence[str]) -> None:
  """Removes the folders a failed run created, innermost first, where nothing else was put."""
  for folder in reversed(folders):
    try:
      os.rmdir(folder)
    except OSError:
      return


def _remove_stale_token_stores(directory: str, prefix: str, log) -> None:
  """Token stores left by a killed run (their process is gone)."""
  if not os.path.isdir(directory):
    return
  for name in os.listdir(directory):
    if not name.startswith(prefix):
      continue
    try:
      pid = int(name[len(prefix):].split("-")[0])
      os.kill(pid, 0)
      continue  # still running
    except (ValueError, ProcessLookupError):
      pass
    except PermissionError:
      continue
    log(f"removing a token store left by an interrupted run: {os.path.join(directory, name)}")
    shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def _tokenize_corpus(workers: _Workers, files: Sequence[str], store_dir: str, vocab_size: int,
                     config: CreateDataConfig, log) -> corpus_lib.CorpusStats:
  total_bytes = sum(corpus_lib.file_size(p) for p in files)
  progress = _Progress("tokenizing", total_bytes, "MB", config.progress_interval, log, scale=1e6)
  writer = corpus_lib.TokenStoreWriter(store_dir, vocab_size)
  try:
    batches = corpus_lib.read_line_batches(files, config.max_line_length)
    for result in workers.ordered_map(_run_tokenize, batches):
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


def _write_shards(workers: _Workers, tasks: Iterator[_InstanceTask], outputs: Sequence[str],
                  todo: Sequence[int], num_units_todo: int, config: CreateDataConfig,
                  summary: Summary, log) -> instances_lib.InstanceStats:
  """Consumes task results in order; each shard goes through its shuffle buffer into its file."""
  stats = instances_lib.InstanceStats(config.ngram)
  progress = _Progress("instances", num_units_todo, "documents", config.progress_interval, log,
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
    for result in workers.ordered_map(_run_instances, tasks):
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


def _resume_plan(config: CreateDataConfig, files: Sequence[str], outputs: Sequence[str], log):
  """(marker, resume, shards to write): shards beside a marker of these settings are complete."""
  marker = sharding.SettingsMarker(outputs[0], _fingerprint(config, files, outputs))
  resume = marker.exists()
  todo = [s for s, path in enumerate(outputs) if not (resume and os.path.exists(path))]
  if len(todo) < len(outputs):
    log(f"{len(outputs) - len(todo)} of {len(outputs)} output file(s) are complete from an "
        "earlier run with the same settings; skipping them")
  return marker, resume, todo


def _replace_outputs(outputs: Sequence[str], marker: sharding.SettingsMarker, log) -> None:
  """Removes output files of other settings and writes the marker of these."""
  old = [p for p in outputs if os.path.exists(p)]
  if old:
    log(f"{len(old)} existing output file(s) were not written with these settings; "
        "replacing them")
    for path in old:
      os.remove(path)
  marker.write()


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
  inputs_abs = {os.path.abspath(p) for p in files if "://" not in p}
  for path in outputs:
    if os.path.abspath(path) in inputs_abs:
      raise SettingsError(f"--output_file {path!r} is also an input file")
  spec = config.tokenizer_spec()
  tokenizer, tables = load_tables(spec)
  num_workers = config.resolved_workers()
  summary = Summary(input_files=len(files), output_files=list(outputs), num_workers=num_workers)

  marker, resume, todo = _resume_plan(config, files, outputs, log)
  summary.shards_skipped = len(outputs) - len(todo)
  if not todo:  # complete: nothing is written (the outputs may even be read-only now)
    summary.seconds_total = time.monotonic() - t_start
    return summary  # the plan said so; a summary of zeros would only confuse
  check_output_locations(outputs, config.work_dir)
  for path in sharding.stale_temp_files(outputs, records_lib.AtomicRecordFile.TEMP_MARK):
    log(f"removing a partial file left by an interrupted run: {path}")
    os.remove(path)

  work_root = config.work_dir or os.path.dirname(os.path.abspath(outputs[0]))
  created = _make_dirs(work_root)  # removed again (if still empty) when the run fails
  store_prefix = f".{os.path.basename(outputs[0])}.tokens-"
  _remove_stale_token_stores(work_root, store_prefix, log)
  try:
    store_dir = tempfile.mkdtemp(prefix=f"{store_prefix}{os.getpid()}-", dir=work_root)
  except OSError as error:
    _remove_if_empty(created)
    error.filename = work_root  # not the temporary name
    raise output_error(error, "cannot write in") from None
  setup = _WorkerSetup(spec, config.instance_params(), config.max_line_length,
                       config.random_seed)
  ok = False
  workers = None
  try:
    log(f"reading {len(files)} file(s) with {num_workers} worker(s)")
    workers = _Workers(setup, num_workers, loaded=(tokenizer, tables))
    t0 = time.monotonic()
    corpus_stats = _tokenize_corpus(workers, files, store_dir, tables.vocab_size, config, log)
    summary.seconds_tokenize = time.monotonic() - t0
    _check_corpus(corpus_stats, files, summary, log)
    if not resume:  # only now that the input has been read without error
      _replace_outputs(outputs, marker, log)
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
