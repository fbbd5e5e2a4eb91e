"""albert.input_pipeline: one pass with padding rows, sharding over pipelines, length buckets."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from albert import input_pipeline
from toy_task import SCHEMA, write_toy_records


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
  return write_toy_records(str(tmp_path_factory.mktemp("pipe") / "toy.tfrecord"), 37, seed=2)


def _rows(dataset):
  rows = []
  for batch in dataset:
    batch = {k: v.numpy() for k, v in batch.items()}
    for i in range(len(batch["row_index"])):
      rows.append({k: v[i] for k, v in batch.items()})
  return rows


def _context(pipelines, pipeline, replicas):
  return tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=pipeline,
                                    num_replicas_in_sync=replicas)


def test_one_pass_pads_to_whole_global_batches_with_zero_weight_rows(toy):
  dataset = input_pipeline.make_dataset([toy], SCHEMA, 8, "one_pass")
  shapes = [b["input_ids"].shape for b in dataset]
  assert shapes == [(8, 4)] * 5
  rows = _rows(dataset)
  real = [r for r in rows if r["is_real_example"] == 1]
  assert [int(r["row_index"]) for r in real] == list(range(37))
  assert [int(r["example_id"][0]) for r in real] == list(range(37))
  padding = [r for r in rows if r["is_real_example"] == 0]
  assert len(padding) == 3 and all(r["row_index"] == -1 and not r["input_ids"].any()
                                   for r in padding)


def test_one_pass_over_two_pipelines_covers_every_row_once(toy):
  # 2 workers x 2 replicas, per-replica batch 4: global batch 16 -> 48 rows, 12 per pipeline-replica
  parts = [_rows(input_pipeline.make_dataset([toy], SCHEMA, 4, "one_pass", _context(2, p, 4)))
           for p in range(2)]
  assert [len(p) for p in parts] == [24, 24]
  indices = sorted(int(r["row_index"]) for p in parts for r in p if r["is_real_example"])
  assert indices == list(range(37))


def test_length_buckets_in_one_pass_keep_every_row_and_cut_only_padding(toy):
  fixed = {int(r["row_index"]): r for r in _rows(
      input_pipeline.make_dataset([toy], SCHEMA, 4, "one_pass")) if r["is_real_example"]}
  dataset = input_pipeline.make_dataset([toy], SCHEMA, 4, "one_pass", bucket_boundaries=[2, 4])
  widths = [b["input_ids"].shape[1] for b in dataset]
  assert set(widths) == {2, 4} and widths == sorted(widths)  # bucket by bucket
  rows = [r for r in _rows(dataset) if r["is_real_example"]]
  assert sorted(int(r["row_index"]) for r in rows) == list(range(37))
  for r in rows:
    full = fixed[int(r["row_index"])]
    width = len(r["input_ids"])
    assert full["input_mask"].sum() <= width
    np.testing.assert_array_equal(r["input_ids"], full["input_ids"][:width])
    assert not full["input_ids"][width:].any()
    assert int(r["example_id"][0]) == int(full["example_id"][0])


def test_length_buckets_in_training_group_rows_by_length(toy):
  dataset = input_pipeline.make_dataset([toy], SCHEMA, 4, "train", seed=1,
                                        bucket_boundaries=[2, 4])
  for batch in dataset.take(20):
    width = batch["input_ids"].shape[1]
    lengths = batch["input_mask"].numpy().sum(-1)
    assert width in (2, 4) and lengths.max() <= width
    if width == 4:  # rows go to the smallest bucket that holds them
      assert lengths.min() > 2


def test_check_first_record_names_the_file_and_the_flag(toy, tmp_path):
  schema = dict(SCHEMA, input_ids=("int64", 8))
  with pytest.raises(input_pipeline.InputError,
                     match=r"toy.tfrecord: feature 'input_ids' has length 4, but --max_seq_length=8"):
    input_pipeline.check_first_record(toy, schema, {"input_ids": "--max_seq_length"})
  with pytest.raises(input_pipeline.InputError, match=r"record has no feature 'label'"):
    input_pipeline.check_first_record(toy, dict(SCHEMA, label=("int64", 1)))
  empty = tmp_path / "empty.tfrecord"
  empty.write_bytes(b"")
  with pytest.raises(input_pipeline.InputError, match="contains no record"):
    input_pipeline.check_first_record(str(empty), SCHEMA)


@pytest.mark.parametrize("mode, buckets", [("train", None), ("stream", None),
                                           ("one_pass", None), ("one_pass", [2, 4])])
def test_an_input_without_record_is_named_not_looped_over(tmp_path, mode, buckets):
  """Repeated, an empty input never yields a batch (tf.data spun at 100% CPU for ever); in one
  pass with buckets, there was no bucket to batch (AttributeError)."""
  empty = tmp_path / "empty.tfrecord"
  empty.write_bytes(b"")
  with pytest.raises(input_pipeline.InputError, match=r"empty.tfrecord: no record in the "):
    input_pipeline.make_dataset([str(empty)], SCHEMA, 4, mode, bucket_boundaries=buckets)
