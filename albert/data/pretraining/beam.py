"""`create_pretraining_data` on Apache Beam: the local job's records, byte for byte, on any runner.

`run_beam(config, runner, pipeline_options)` builds the same shards as `job.py` for the same
settings and seed, whatever the runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner)
and its parallelism: every random choice already comes from (seed, dupe, document) or
(seed, shard), and the pipeline only moves the pieces.

1. Documents: each input file is read and tokenized by one worker (a file's documents end with
   it, as in the local job); each file's document count, summed over the files before it, gives
   the documents their corpus-wide numbers.
2. Units: the `dupe_factor x documents` work units, visited in the same keyed permutation and
   cut into the same shard ranges (`sharding.py`), each joined with its own document.
3. "Segment B from another document": a unit's instances may need other documents, and which
   one is drawn from its random generator after the ones before it. Beam has no random access,
   so the unit is run in rounds: each round runs it from the start with the documents it has;
   when it asks for one it lacks, the request (document number -> unit) is joined with the
   documents (only those asked for) and the unit goes to the next round with it. Only a unit
   with a single-sentence chunk needs another document; `max_rounds` bounds the rounds (a unit
   still asking after them is an error naming the setting).
4. Shards: each shard's records in permuted-position order through the same seeded shuffle
   buffer, written to a local temporary file and uploaded (or renamed) whole (`records.py`).

Apache Beam is imported only here, and only when the job runs.
"""

from __future__ import annotations

import os
import pickle
import random
import shlex
import time
from typing import Callable, Dict, List, Sequence

import numpy as np

from albert import files
from albert.data.pretraining import corpus as corpus_lib
from albert.data.pretraining import instances as instances_lib
from albert.data.pretraining import job as job_lib
from albert.data.pretraining import sharding
from albert.data import records as records_lib

RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner",
           "PrismRunner")


class NeedsDocument(Exception):
  """A unit asked for a document it has not been given yet."""

  def __init__(self, index: int):
    super().__init__(index)
    self.index = index


class GivenDocuments:
  """The corpus as a unit sees it: `len()` is the whole corpus, indexing has the documents it
  has been given, and raises `NeedsDocument` for the others."""

  def __init__(self, size: int, given: Dict[int, List[List[int]]]):
    self.size, self.given = size, given

  def __len__(self) -> int:
    return self.size

  def __getitem__(self, index: int) -> List[List[int]]:
    if index not in self.given:
      raise NeedsDocument(index)
    return self.given[index]


class _Worker:
  """One `job.WorkerState` per Beam worker process, built on first use."""
  _state = None
  _setup = None

  @classmethod
  def get(cls, setup: job_lib.WorkerSetup) -> job_lib.WorkerState:
    if cls._state is None or cls._setup != setup:
      cls._state, cls._setup = job_lib.WorkerState(setup), setup
    return cls._state


def file_documents(item, setup: job_lib.WorkerSetup, max_line_length: int):
  """(file index, path) -> (file index, [documents of the file, each a list of sentences])."""
  file_index, path = item
  state = _Worker.get(setup)
  documents, current = [], []
  for batch in corpus_lib.read_line_batches([path], max_line_length):
    tokenized = state.tokenize(batch)
    ids, start = tokenized.ids.tolist(), 0
    for length in tokenized.lengths.tolist():  # the token store's rules (corpus.py)
      if length < 0:  # a blank line ends the document
        if current:
          documents.append(current)
        current = []
        continue
      if length:
        current.append(ids[start:start + length])
        start += length
  if current:
    documents.append(current)
  return file_index, documents


def store_documents(item, work_dir: str) -> int:
  """Writes a file's documents to `work_dir/docs-<file>` (pickled, one after another) and their
  offsets to `.../docs-<file>.offsets`: what the units still asking after the join rounds read
  their documents from."""
  file_index, documents = item
  blobs = [pickle.dumps(d, protocol=4) for d in documents]
  offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
  base = os.path.join(work_dir, f"docs-{file_index:05d}")
  files.write_bytes(base, b"".join(blobs))
  files.write_bytes(base + ".offsets", offsets.tobytes())
  return len(documents)


class StoredDocuments:
  """The corpus as `store_documents` left it, read a document at a time (seek and read, local
  or remote), the last documents read kept."""

  def __init__(self, work_dir: str, counts: Dict[int, int]):
    self.work_dir = work_dir
    self.starts = np.cumsum([0] + [counts[f] for f in sorted(counts)]).astype(np.int64)
    self._offsets: Dict[int, np.ndarray] = {}
    self._cache: Dict[int, List[List[int]]] = {}

  def __len__(self) -> int:
    return int(self.starts[-1])

  def __getitem__(self, index: int) -> List[List[int]]:
    if index in self._cache:
      return self._cache[index]
    file_index = int(np.searchsorted(self.starts, index, side="right")) - 1
    base = os.path.join(self.work_dir, f"docs-{file_index:05d}")
    if file_index not in self._offsets:
      with files.open_file(base + ".offsets", "rb") as f:
        self._offsets[file_index] = np.frombuffer(f.read(), dtype=np.int64)
    offsets = self._offsets[file_index]
    k = index - int(self.starts[file_index])
    with files.open_file(base, "rb") as f:
      f.seek(int(offsets[k]))
      document = pickle.loads(f.read(int(offsets[k + 1] - offsets[k])))
    if len(self._cache) > 1024:
      self._cache.clear()
    self._cache[index] = document
    return document


def stored_unit(unit, setup: job_lib.WorkerSetup, work_dir: str, counts: Dict[int, int]):
  """A unit still asking after the join rounds, run against the stored documents."""
  shard, position, dupe, document, _ = unit
  state = _Worker.get(setup)
  stats = instances_lib.InstanceStats(setup.params.ngram)
  records = state.unit_records(StoredDocuments(work_dir, counts), dupe, document, stats)
  return shard, (position, records)


def unit_round(unit, setup: job_lib.WorkerSetup, num_documents: int):
  """Runs a unit with the documents it has: ("done", (shard, (position, records))) or
  ("needs", (document, unit))."""
  shard, position, dupe, document, given = unit
  state = _Worker.get(setup)
  stats = instances_lib.InstanceStats(setup.params.ngram)
  try:
    records = state.unit_records(GivenDocuments(num_documents, given), dupe, document, stats)
  except NeedsDocument as need:
    return "needs", (need.index, unit)
  return "done", (shard, (position, records))


def write_shard(item, outputs: Sequence[str], shuffle_buffer_size: int, seed: int) -> int:
  """(shard, [(position, records) ...]) -> the shard's file, written as the local job does."""
  shard, pieces = item
  buffer = sharding.ShuffleBuffer(
      shuffle_buffer_size, random.Random(sharding.derive_seed(seed, "shuffle", shard)))
  count = 0
  with records_lib.AtomicRecordFile(outputs[shard]) as out:
    for _, records in sorted(p for p in pieces if p is not None):
      for record in records:
        emitted = buffer.push(record)
        if emitted is not None:
          out.write_framed(emitted)
    for record in buffer.drain():
      out.write_framed(record)
    count = out.num_records
    out.commit()
  return count


def parse_pipeline_options(runner: str, options: str):
  """Beam's PipelineOptions for `--runner` and `--beam_pipeline_options` (a shell-quoted string
  of Beam flags); an unknown runner or option is a SettingsError naming the flag."""
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top
  if runner not in RUNNERS:
    raise job_lib.SettingsError(f"--runner={runner!r}: use one of {', '.join(RUNNERS)} (or "
                                "leave it empty for the local job)")
  try:
    words = shlex.split(options or "")
  except ValueError as error:
    raise job_lib.SettingsError(f"--beam_pipeline_options: {error}") from None
  pipeline_options = PipelineOptions(["--runner", runner] + words)
  unknown = [w for w in words if w.startswith("--")
             and w[2:].split("=", 1)[0] not in pipeline_options.get_all_options(
                 retain_unknown_options=False)]
  if unknown:
    raise job_lib.SettingsError(f"--beam_pipeline_options: unknown Beam option "
                                f"{unknown[0].split('=', 1)[0]} (see `python -m "
                                "apache_beam.examples.wordcount --help` for Beam's options)")
  return pipeline_options


def run_beam(config: job_lib.CreateDataConfig, runner: str = "DirectRunner",
             pipeline_options: str = "", max_rounds: int = 16,
             log: Callable[[str], None] = print) -> List[str]:
  """Runs the job as a Beam pipeline; returns the output files written (all of them)."""
  config.validate()
  options = parse_pipeline_options(runner, pipeline_options)
  import apache_beam as beam  # pylint: disable=g-import-not-at-top

  started = time.monotonic()
  input_files = corpus_lib.expand_input_files(config.input_file)
  try:
    outputs = sharding.output_paths(config.output_file, config.num_output_shards)
  except ValueError as e:
    raise job_lib.SettingsError(str(e)) from None
  job_lib.check_output_locations(outputs)
  job_lib.load_tables(config.tokenizer_spec())  # a bad model or vocabulary: named before any work
  setup = job_lib.WorkerSetup(config.tokenizer_spec(), config.instance_params(),
                              config.max_line_length, config.random_seed)
  log(f"Beam {runner}: {len(input_files)} file(s) -> {len(outputs)} shard(s)")
  num_shards = len(outputs)
  # The documents of the units that still ask after the rounds: in a folder every worker can
  # read (beside the first output; on Dataflow that is the bucket), removed at the end.
  work_dir = os.path.join(config.work_dir or os.path.dirname(outputs[0]) or ".",
                          f".{os.path.basename(outputs[0])}.beam-{os.getpid()}-{int(started)}")
  try:
    _run(beam, options, config, input_files, outputs, setup, max_rounds, work_dir)
  finally:
    files.remove_tree(work_dir)
  log(f"Beam {runner}: wrote {num_shards} shard(s) in {time.monotonic() - started:.1f} s")
  return list(outputs)


def _run(beam, options, config, input_files, outputs, setup, max_rounds, work_dir) -> None:
  """Builds and runs the pipeline (see the module docstring)."""
  num_shards = len(outputs)
  dupe_factor, seed = config.dupe_factor, config.random_seed

  def first_units(counts: Dict[int, int]):
    """Every unit of the run: (shard, position, dupe, document), keyed by its document."""
    num_documents = sum(counts.values())
    if num_documents == 0:
      raise corpus_lib.CorpusError(
          f"--input_file: the corpus is empty: no document with any token in "
          f"{', '.join(input_files)}")
    order = sharding.Permutation(dupe_factor * num_documents,
                                 sharding.derive_seed(seed, "unit-order"))
    ranges = sharding.shard_ranges(dupe_factor * num_documents, num_shards)
    for shard, (start, stop) in enumerate(ranges):
      for position in range(start, stop):
        dupe, document = divmod(order(position), num_documents)
        yield document, (shard, position, dupe, document)

  def numbered(item, counts: Dict[int, int]):
    file_index, documents = item
    offset = sum(n for f, n in counts.items() if f < file_index)
    for k, document in enumerate(documents):
      yield offset + k, document

  def give(joined, key: str):
    """Each unit of the group gets the group's document (if any) among its own."""
    index, grouped = joined
    found = list(grouped["document"])
    for unit in grouped[key]:
      shard, position, dupe, document, given = unit if len(unit) == 5 else (*unit, {})
      if found:
        given = dict(given)
        given[index] = found[0]
      yield shard, position, dupe, document, given

  with beam.Pipeline(options=options) as pipeline:
    per_file = (pipeline
                | "Files" >> beam.Create(list(enumerate(input_files)))
                | "Reshuffle files" >> beam.Reshuffle()
                | "Tokenize" >> beam.Map(file_documents, setup, config.max_line_length))
    counts = beam.pvalue.AsDict(per_file | "Count" >> beam.Map(lambda fd: (fd[0], len(fd[1]))))
    documents = per_file | "Number" >> beam.FlatMap(numbered, counts)
    num_documents = beam.pvalue.AsSingleton(
        per_file | "Sizes" >> beam.Map(lambda fd: len(fd[1])) | beam.CombineGlobally(sum))
    units = ((pipeline | "Start" >> beam.Create([None])
              | "Units" >> beam.FlatMap(lambda _, c: first_units(c), counts))
             | "Reshuffle units" >> beam.Reshuffle())
    wanting = ({"document": documents, "unit": units}
               | "Own document" >> beam.CoGroupByKey()
               | "Give own" >> beam.FlatMap(give, "unit"))
    done = []
    for r in range(max_rounds):
      results = wanting | f"Round {r}" >> beam.Map(unit_round, setup, num_documents)
      done.append(results | f"Done {r}" >> beam.Filter(lambda x: x[0] == "done")
                  | f"Records {r}" >> beam.Map(lambda x: x[1]))
      needs = (results | f"Needs {r}" >> beam.Filter(lambda x: x[0] == "needs")
               | f"Need {r}" >> beam.Map(lambda x: x[1]))
      wanting = ({"document": documents, "need": needs}
                 | f"Join {r}" >> beam.CoGroupByKey()
                 | f"Give {r}" >> beam.FlatMap(give, "need"))
    stored = beam.pvalue.AsList(per_file | "Store" >> beam.Map(store_documents, work_dir))
    done.append(wanting | "Stored" >> beam.Map(lambda unit, s, c: stored_unit(
        unit, setup, work_dir, c), stored, counts))
    empty = pipeline | "Shards" >> beam.Create([(s, None) for s in range(num_shards)])
    _ = ((done + [empty]) | "All records" >> beam.Flatten()
         | "By shard" >> beam.GroupByKey()
         | "Write" >> beam.Map(write_shard, outputs, config.shuffle_buffer_size, seed))
