"""Records -> batches for every task: TFRecords of fixed-length features, read by tf.data.

Each task describes its records with a schema `{feature name: (dtype name, length)}` ("int64"
or "float32"; the original's feature names) and picks a mode:

* `train`: files sharded over the input pipelines (several workers or hosts), shuffled,
  interleaved, shuffled again in a bounded buffer (the original's 100 records) and repeated;
  with fewer files than pipelines, records are sharded instead, after the shuffles, so that N
  pipelines together make exactly the batches of one. Fixed-shape batches (drop remainder), as
  TPUs need. Every shuffle is seeded.
* `stream`: one ordered pass over the files, repeated forever (pretraining's evaluation, capped
  by `max_eval_steps`).
* `one_pass`: every record exactly once, in file order, for evaluation and prediction. The
  record count is padded up to a multiple of the global batch with rows whose
  `is_real_example` is 0 (the original's trick for fixed shapes; their features are zeros), so
  every replica of every step gets a full batch. Each row carries `row_index` (its position
  in the files; padding rows get -1) and `is_real_example` (added as 1 when the records have
  none), so that metrics can drop the padding and predictions can be put back in input order
  on any strategy.

Optionally (`bucket_boundaries`), batches are padded only to the smallest boundary that holds
their longest row (length = number of non-zero `input_mask` entries along the last axis; the
longest choice for multiple-choice rows of shape [C, S]), so that short examples do
not pay for `max_seq_length`: XLA compiles one shape per boundary. Every per-position feature
is cut to the boundary: by default those whose schema length is `input_mask`'s
(`sequence_features_of(schema)`: SQuAD's `p_mask` as well as the ids). Row order is kept in
`one_pass` mode (within each bucket; `row_index` restores the input order); in `train` mode
rows are grouped into per-bucket batches after the shuffle.

`expand_files` and `check_first_record` turn bad paths and records written with other flags into
errors that name the file and the flag, before any work starts; an input without any record is
an error naming its files (`check_not_empty`: repeated, it would never yield a batch), and a
broken record file is named with the byte where it breaks (`corrupted_records_error`).
"""

from __future__ import annotations

import glob
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from albert.data.records import parse_spec
from albert.errors import InputError

Schema = Dict[str, Tuple[str, int]]  # feature name -> (dtype name, length)
MODES = ("train", "stream", "one_pass")
ROW_INDEX = "row_index"
IS_REAL = "is_real_example"
# Checks inside the pipeline start their message with this, so that the Trainer reports them as
# input errors (naming the files), not as bugs.
INPUT_CHECK_MARK = "input check failed"


def expand_files(patterns: str, flag: str = "--input_file") -> List[str]:
  """The sorted files matching comma-separated globs; a clear error when one matches nothing."""
  found: List[str] = []
  for pattern in [p.strip() for p in (patterns or "").split(",") if p.strip()]:
    matches = sorted(tf.io.gfile.glob(pattern)) if "://" in pattern else sorted(glob.glob(pattern))
    if not matches:
      raise InputError(f"{flag}: no file matches {pattern!r}")
    found.extend(matches)
  if not found:
    raise InputError(f"{flag} is empty: give comma-separated file globs of TFRecord files")
  return sorted(dict.fromkeys(found))


def sequence_features_of(schema: Schema) -> Tuple[str, ...]:
  """The per-position features of a schema: those as long as `input_mask` (which buckets cut)."""
  if "input_mask" not in schema:
    return ()
  length = schema["input_mask"][1]
  return tuple(name for name, (_, size) in schema.items() if size == length)


def corrupted_records_error(path: str, error: tf.errors.OpError, then: str = "") -> InputError:
  """The error for a record file whose TFRecord framing or checksum is broken: names the file and
  where (`corrupted record at byte N`, without TensorFlow's node text); `then` says what now."""
  from albert.data.pretraining.inspection import describe_read_error  # pylint: disable=g-import-not-at-top
  return InputError(f"{path}: corrupted or truncated TFRecord data "
                    f"({describe_read_error(error.message)}){then}")


def _first_example(path: str) -> tf.train.Example:
  """The first record of `path`, parsed; a clear error when there is none or it is no Example."""
  try:
    record = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
  except tf.errors.DataLossError as error:
    raise corrupted_records_error(path, error) from None
  except tf.errors.OpError as error:
    raise InputError(f"{path}: not a readable TFRecord file ({error.message})") from None
  if record is None:
    raise InputError(f"{path}: contains no record")
  try:
    return tf.train.Example.FromString(record.numpy())
  except Exception:  # google.protobuf.message.DecodeError
    raise InputError(f"{path}: the first record is not a tf.train.Example") from None


def schema_of_first_record(path: str) -> Schema:
  """The schema of the first record of `path`: each int64 or float feature with its length."""
  schema = {}
  for name, feature in sorted(_first_example(path).features.feature.items()):
    kind = feature.WhichOneof("kind")
    if kind not in ("int64_list", "float_list"):
      raise InputError(f"{path}: feature {name!r} holds {kind}; only int64 and float features "
                       "are read")
    values = getattr(feature, kind).value
    schema[name] = ("int64" if kind == "int64_list" else "float32", len(values))
  return schema


def check_first_record(path: str, schema: Schema, length_flags: Optional[Dict[str, str]] = None,
                       written_by: str = "this task's data preparation") -> None:
  """Reads the first record of `path` and checks every feature's presence, kind and length."""
  found = _first_example(path).features.feature
  for name, (dtype, want) in schema.items():
    if name not in found:
      raise InputError(f"{path}: record has no feature {name!r} (has {sorted(found)}); is it "
                       f"a file written by {written_by}?")
    values = found[name].float_list.value if dtype == "float32" else found[name].int64_list.value
    if len(values) != want:
      flag = (length_flags or {}).get(name)
      where = f"{flag}={want}" if flag else f"the expected {want}"
      raise InputError(f"{path}: feature {name!r} has length {len(values)}, but {where}; the "
                       "flag must equal the value the records were created with")


def check_not_empty(files: Sequence[str], what: str = "the input") -> None:
  """An error naming `files` when none of them holds a record (a repeated empty input would
  never yield a batch: tf.data would loop over it forever)."""
  for path in files:
    try:
      if next(iter(tf.data.TFRecordDataset(path).take(1)), None) is not None:
        return
    except tf.errors.DataLossError as error:
      raise corrupted_records_error(path, error) from None
  shown = ", ".join(files) if len(files) <= 3 else f"{', '.join(files[:3])}, ..."
  raise InputError(f"{shown or '(no file)'}: no record in {what}: nothing to read")


_COUNTS: Dict[Tuple[str, ...], int] = {}


def count_records(files: Sequence[str]) -> int:
  """The number of records in `files` (one fast pass, remembered for the process)."""
  key = tuple(files)
  if key not in _COUNTS:  # counted by batches: fast, and each step returns to Python (Ctrl-C)
    batches = tf.data.TFRecordDataset(list(files)).batch(4096)
    _COUNTS[key] = sum(int(batch.shape[0]) for batch in batches)
  return _COUNTS[key]


def _decode(record, spec):
  example = tf.io.parse_single_example(record, spec)
  return {name: tf.cast(value, tf.int32) if value.dtype == tf.int64 else value
          for name, value in example.items()}


def _length(features: Dict[str, tf.Tensor]) -> tf.Tensor:
  """A row's length: its non-zero `input_mask` entries (the longest choice for a [C, S] mask)."""
  counts = tf.reduce_sum(tf.cast(tf.not_equal(features["input_mask"], 0), tf.int32), axis=-1)
  return tf.reduce_max(counts)


def make_dataset(files: Sequence[str], schema: Schema, batch_size: int, mode: str,
                 input_context: Optional[tf.distribute.InputContext] = None, *,
                 seed: int = 12345, shuffle_buffer_size: int = 100, cycle_length: int = 4,
                 decode: Optional[Callable[[Dict[str, tf.Tensor]], Dict[str, tf.Tensor]]] = None,
                 bucket_boundaries: Optional[Sequence[int]] = None,
                 sequence_features: Optional[Sequence[str]] = None,
                 finalize: Optional[Callable[[Dict[str, tf.Tensor]], Dict[str, tf.Tensor]]] = None,
                 ) -> tf.data.Dataset:
  """Batches of `batch_size` (per replica) feature dicts; see the module docstring for `mode`.

  `decode` maps each parsed record (ints as int32) to the features the task wants (e.g. a check
  of the ids, or a reshape). `bucket_boundaries` (ascending, the last one the records' length)
  pads each batch's `sequence_features` (default: `sequence_features_of(schema)`, every feature
  as long as `input_mask`) only to the boundary that holds its longest row.
  `finalize` maps each batch (e.g. multiple-choice rows [B, C, S] back to the records' [B, C*S]).
  """
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
  files = list(files)
  spec = parse_spec(schema)
  if sequence_features is None:
    sequence_features = sequence_features_of(schema)
  pipelines = input_context.num_input_pipelines if input_context else 1
  pipeline = input_context.input_pipeline_id if input_context else 0
  replicas = input_context.num_replicas_in_sync if input_context else 1

  def parse(record):
    features = _decode(record, spec)
    return decode(features) if decode else features

  if mode == "one_pass":
    d = _one_pass(files, schema, parse, batch_size, pipelines, pipeline, replicas,
                  bucket_boundaries, sequence_features)
    return d.map(finalize) if finalize else d

  check_not_empty(files, f"the {mode} input")  # an empty repeated input would spin forever
  d = tf.data.Dataset.from_tensor_slices(files)
  shard_records = pipelines > 1 and len(files) < pipelines
  if pipelines > 1 and not shard_records:
    d = d.shard(pipelines, pipeline)
  if mode == "train":
    d = d.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    d = d.interleave(tf.data.TFRecordDataset, cycle_length=min(cycle_length, len(files)),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    d = d.shuffle(shuffle_buffer_size, seed=seed + 1)
    if shard_records:  # every pipeline shuffles alike, then takes its share: the global batch
      d = d.shard(pipelines, pipeline)  # is the one a single pipeline would make
  else:
    d = tf.data.TFRecordDataset(d)
    if shard_records:
      d = d.shard(pipelines, pipeline)
    d = d.repeat()
  d = d.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if bucket_boundaries:
    d = _bucketed_batches(d, batch_size, bucket_boundaries, sequence_features)
  else:
    d = d.batch(batch_size, drop_remainder=True)
  if finalize:
    d = d.map(finalize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return d.prefetch(tf.data.AUTOTUNE)


def check_ids_below(features: Dict[str, tf.Tensor], names: Sequence[str], limit: int,
                    what: str) -> Dict[str, tf.Tensor]:
  """`features` after asserting that the id features `names` are all below `limit`.

  An out-of-range id is an error naming `what` (on GPU an embedding lookup would silently
  return zeros for it).
  """
  ids = tf.concat([tf.reshape(features[n], [-1]) for n in names], axis=0)
  check = tf.debugging.assert_less(ids, tf.cast(limit, ids.dtype),
                                   message=f"{INPUT_CHECK_MARK}: {what}")
  with tf.control_dependencies([check]):
    return {k: tf.identity(v) for k, v in features.items()}


def _zeros_like_row(element_spec: Dict[str, tf.TensorSpec]) -> Dict[str, tf.Tensor]:
  return {name: tf.zeros(spec.shape, spec.dtype) for name, spec in element_spec.items()}


def _one_pass(files, schema, parse, batch_size, pipelines, pipeline, replicas,
              bucket_boundaries, sequence_features) -> tf.data.Dataset:
  """Every record once, padded per bucket to whole global batches, then sharded and batched."""
  global_batch = batch_size * replicas
  count = count_records(files)
  if not count:
    check_not_empty(files, "the evaluation or prediction input")
  rows = tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE,
                                            deterministic=True)

  def with_index(index, features):
    features = dict(features)
    features.setdefault(IS_REAL, tf.constant(1, tf.int32))
    features[IS_REAL] = tf.reshape(tf.cast(features[IS_REAL], tf.int32), [])
    features[ROW_INDEX] = tf.cast(index, tf.int32)
    return features

  rows = rows.enumerate().map(with_index, num_parallel_calls=tf.data.AUTOTUNE,
                              deterministic=True)
  padding_row = _zeros_like_row(rows.element_spec)
  padding_row[ROW_INDEX] = tf.constant(-1, tf.int32)

  def padded(dataset, size):
    missing = -size % global_batch
    if missing:
      dataset = dataset.concatenate(tf.data.Dataset.from_tensors(padding_row).repeat(missing))
    return dataset

  if bucket_boundaries:
    lengths = _row_lengths(files, parse)
    boundaries = list(bucket_boundaries)
    buckets = np.searchsorted(np.asarray(boundaries), lengths, side="left")
    buckets = np.minimum(buckets, len(boundaries) - 1)
    parts = None
    for b, boundary in enumerate(boundaries):
      members = np.nonzero(buckets == b)[0]
      if not len(members):
        continue
      keep = tf.constant(np.isin(np.arange(count), members))
      part = rows.filter(lambda features, keep=keep: tf.gather(keep, features[ROW_INDEX]))
      part = padded(part, len(members))
      part = part.map(lambda f, n=boundary: _cut(f, n, sequence_features))
      if pipelines > 1:
        part = part.shard(pipelines, pipeline)
      part = part.batch(batch_size, drop_remainder=True)
      parts = part if parts is None else parts.concatenate(part)
    return parts.prefetch(tf.data.AUTOTUNE)

  rows = padded(rows, count)
  if pipelines > 1:
    rows = rows.shard(pipelines, pipeline)
  return rows.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


_LENGTHS: Dict[Tuple[str, ...], np.ndarray] = {}


def _row_lengths(files: Sequence[str], parse) -> np.ndarray:
  """The number of non-zero `input_mask` entries of every record (one pass, remembered)."""
  key = tuple(files)
  if key not in _LENGTHS:
    dataset = tf.data.TFRecordDataset(list(files)).map(
        lambda r: _length(parse(r)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    _LENGTHS[key] = np.fromiter(dataset.batch(4096).unbatch().as_numpy_iterator(), np.int64)
  return _LENGTHS[key]


def _cut(features: Dict[str, tf.Tensor], length: int,
         sequence_features: Sequence[str]) -> Dict[str, tf.Tensor]:
  """Keeps the first `length` positions of the sequence features (the rest is padding)."""
  return {name: (value[..., :length] if name in sequence_features else value)
          for name, value in features.items()}


def _bucketed_batches(d: tf.data.Dataset, batch_size: int, boundaries: Sequence[int],
                      sequence_features: Sequence[str]) -> tf.data.Dataset:
  """Training batches of rows grouped by the smallest boundary that holds them."""
  boundaries = tf.constant(list(boundaries), tf.int32)

  def bucket(features):
    index = tf.searchsorted(boundaries, tf.reshape(_length(features), [1]), side="left")[0]
    return tf.cast(tf.minimum(index, tf.size(boundaries) - 1), tf.int64)

  def batch(key, window):
    length = tf.gather(boundaries, key)
    return window.batch(batch_size, drop_remainder=True).map(
        lambda f: _cut(f, length, sequence_features))

  return d.group_by_window(bucket, batch, window_size=batch_size)
