"""The pretraining input pipeline: TFRecords of `create_pretraining_data.py` -> batches of features.

The record schema is owned by `albert.data.records` (the original's names, types and lengths);
this pipeline reads the `FEATURES` the original's `input_fn` reads (not `token_boundary`). Ids
arrive as int32, as the original's `_decode_record` delivers them, and `next_sentence_labels`
holds the SOP label.
Files come from comma-separated globs; for training they are sharded per input pipeline
(several workers or hosts), shuffled, interleaved, shuffled again in a bounded buffer and
repeated (with fewer files than pipelines, records are sharded instead, after the shuffles, so
that N pipelines together make exactly the batches of one); batches have a fixed shape (drop remainder) as TPUs need. Every shuffle is seeded.
`check_records` reads the first record before any work, so that a `max_seq_length` or
`max_predictions_per_seq` that does not match the files is a clear error, not a parse failure
deep inside the input pipeline.
"""

from __future__ import annotations

import dataclasses
import glob
from typing import Dict, List, Optional

import tensorflow as tf

from albert.data import records as records_lib

# The features pretraining reads, in the record's order.
FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
            "masked_lm_weights", "next_sentence_labels")
# The flag that sets each feature's length (None: always 1).
_LENGTH_FLAG = {"input_ids": "--max_seq_length", "input_mask": "--max_seq_length",
                "segment_ids": "--max_seq_length",
                "masked_lm_positions": "--max_predictions_per_seq",
                "masked_lm_ids": "--max_predictions_per_seq",
                "masked_lm_weights": "--max_predictions_per_seq", "next_sentence_labels": None}


class InputError(ValueError):
  """Input files that cannot feed the run; the message names the file or flag."""


@dataclasses.dataclass
class PretrainingDataConfig:
  input_file: str  # comma-separated globs
  max_seq_length: int = 512
  max_predictions_per_seq: int = 20
  shuffle_buffer_size: int = 100  # records, after interleaving (the original's 100)
  cycle_length: int = 4  # files read at once
  seed: int = 12345


def expand_files(patterns: str, flag: str = "--input_file") -> List[str]:
  """The sorted files matching comma-separated globs; a clear error when one matches nothing."""
  files: List[str] = []
  for pattern in [p.strip() for p in (patterns or "").split(",") if p.strip()]:
    matches = sorted(tf.io.gfile.glob(pattern)) if "://" in pattern else sorted(glob.glob(pattern))
    if not matches:
      raise InputError(f"{flag}: no file matches {pattern!r}")
    files.extend(matches)
  if not files:
    raise InputError(f"{flag} is empty: give comma-separated file globs of TFRecord files")
  return sorted(dict.fromkeys(files))


def feature_spec(config: PretrainingDataConfig) -> Dict[str, tf.io.FixedLenFeature]:
  """`tf.io.parse_single_example` spec of the features pretraining reads."""
  spec = records_lib.parse_spec(config.max_seq_length, config.max_predictions_per_seq)
  return {name: spec[name] for name in FEATURES}


def check_records(files: List[str], config: PretrainingDataConfig) -> None:
  """Reads the first record of the first file and checks every feature's presence and length."""
  first = files[0]
  try:
    record = next(iter(tf.data.TFRecordDataset(first).take(1)), None)
  except tf.errors.OpError as error:
    raise InputError(f"{first}: not a readable TFRecord file ({error.message})") from None
  if record is None:
    raise InputError(f"{first}: contains no record")
  example = tf.train.Example.FromString(record.numpy())
  found = example.features.feature
  spec = records_lib.feature_spec(config.max_seq_length, config.max_predictions_per_seq)
  for name in FEATURES:
    dtype, want = spec[name]
    if name not in found:
      raise InputError(f"{first}: record has no feature {name!r} (has {sorted(found)}); is it "
                       "a file written by create_pretraining_data.py?")
    values = found[name].float_list.value if dtype == "float32" else found[name].int64_list.value
    if len(values) != want:
      flag = _LENGTH_FLAG[name]
      where = f"{flag}={want}" if flag else "1"
      raise InputError(f"{first}: feature {name!r} has length {len(values)}, but {where}; the "
                       "flag must equal the value the records were created with")


def _decode(record, spec):
  example = tf.io.parse_single_example(record, spec)
  return {name: tf.cast(value, tf.int32) if value.dtype == tf.int64 else value
          for name, value in example.items()}


def make_dataset(files: List[str], config: PretrainingDataConfig, batch_size: int,
                 is_training: bool,
                 input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
  """Batches of `batch_size` (per replica) feature dicts; endless (repeated) in both modes."""
  spec = feature_spec(config)
  pipelines = input_context.num_input_pipelines if input_context else 1
  pipeline = input_context.input_pipeline_id if input_context else 0
  d = tf.data.Dataset.from_tensor_slices(files)
  shard_records = pipelines > 1 and len(files) < pipelines
  if pipelines > 1 and not shard_records:
    d = d.shard(pipelines, pipeline)
  if is_training:
    d = d.shuffle(len(files), seed=config.seed, reshuffle_each_iteration=True).repeat()
    d = d.interleave(tf.data.TFRecordDataset, cycle_length=min(config.cycle_length, len(files)),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    d = d.shuffle(config.shuffle_buffer_size, seed=config.seed + 1)
    if shard_records:  # every pipeline shuffles alike, then takes its share: the global batch
      d = d.shard(pipelines, pipeline)  # is the one a single pipeline would make
  else:
    d = tf.data.TFRecordDataset(d)
    if shard_records:
      d = d.shard(pipelines, pipeline)
    d = d.repeat()
  d = d.map(lambda r: _decode(r, spec), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  d = d.batch(batch_size, drop_remainder=True)
  return d.prefetch(tf.data.AUTOTUNE)
