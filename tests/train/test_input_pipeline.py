"""albert.train.input_pipeline: one pass with padding rows, sharding over pipelines, length buckets."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from albert.train import input_pipeline
from support.toy_task import SCHEMA, write_toy_records


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


def _finetune_tasks(output_dir, seq):
  """(name, task) of every fine-tuning task and head: GLUE (classes, regression), SQuAD v1/v2,
  RACE, each with length buckets up to `seq`."""
  from albert.config import AlbertConfig
  from albert.tasks.classifier import ClassifierTask, ClassifierTaskConfig
  from albert.tasks.finetune import FinetuneConfig, default_buckets
  from albert.tasks.race import RaceTask, RaceTaskConfig
  from albert.tasks.squad import SquadTask, SquadTaskConfig
  from conftest import TESTDATA
  albert_config = AlbertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=8, embedding_size=8)

  def finetune():
    return FinetuneConfig(albert_config=albert_config, output_dir=str(output_dir),
                          max_seq_length=seq, bucket_boundaries=default_buckets(seq))
  glue_dir = f"{TESTDATA}/glue"
  return [("sst-2", ClassifierTask(ClassifierTaskConfig(finetune(), "SST-2", glue_dir))),
          ("sts-b", ClassifierTask(ClassifierTaskConfig(finetune(), "STS-B", glue_dir))),
          ("squad_v1", SquadTask(SquadTaskConfig(finetune(), max_query_length=8))),
          ("squad_v2", SquadTask(SquadTaskConfig(finetune(), version_2_with_negative=True,
                                                 max_query_length=8))),
          ("race", RaceTask(RaceTaskConfig(finetune(), f"{TESTDATA}/race")))]


def _records_of(schema, seq, path, count, rng):
  """`count` records of any schema: per [S] block (RACE: C blocks) a random length; every
  longer-than-one feature holds non-zero values before it and zeros after, scalars are small."""
  from albert.data import records
  serialized, blocks = [], []
  for _ in range(count):
    longest = seq // 2 if rng.rand() < 0.5 else seq  # half the rows fit a smaller bucket
    lengths = rng.randint(1, longest + 1, size=schema["input_mask"][1] // seq)
    live = np.concatenate([np.arange(seq) < n for n in lengths])
    row = {}
    for name, (dtype, size) in schema.items():
      values = (live.astype(int) if name == "input_mask" else
                rng.randint(1, 50, size=size) * live if size > 1 else rng.randint(0, 2, size=1))
      row[name] = (dtype, [float(v) for v in values] if dtype == "float32" else
                   [int(v) for v in values])
    serialized.append(records.encode_example(row))
    blocks.append(row)
  with records.AtomicRecordFile(path) as out:
    for framed in records.frame_records(serialized):
      out.write_framed(framed)
    out.commit()
  return blocks


@pytest.mark.parametrize("split", ["train", "eval"])
def test_every_per_position_feature_of_every_task_is_cut_to_the_bucket(tmp_path, split):
  """SQuAD's p_mask used to stay at max_seq_length while the ids were cut (v2 crashed)."""
  seq, rng = 64, np.random.RandomState(5)
  for name, task in _finetune_tasks(tmp_path, seq):
    schema = task.schema(split)
    per_position = [n for n, (_, size) in schema.items() if size > 1]
    path = str(tmp_path / f"{name}-{split}.tfrecord")
    rows = _records_of(schema, seq, path, 24, rng)
    task._caches[split] = (path, {})  # pylint: disable=protected-access
    widths = set()
    for batch in task.build_dataset(split, 4).take(6):
      batch = {k: v.numpy() for k, v in batch.items()}
      choices = schema["input_mask"][1] // seq
      width = batch["input_mask"].shape[1] // choices
      widths.add(width)
      for feature in per_position:  # [B, C * width] after the task's finalize
        assert batch[feature].shape == (4, choices * width), (name, feature)
      for i, index in enumerate(batch.get("row_index", [])):
        if index < 0:
          continue
        for feature in per_position:
          full = np.asarray(rows[index][feature][1]).reshape(choices, seq)
          np.testing.assert_array_equal(batch[feature][i].reshape(choices, width),
                                        full[:, :width], err_msg=f"{name} {feature}")
          assert not full[:, width:].any()
    assert min(widths) < seq, (name, widths)  # a bucket below the cap was used


@pytest.mark.parametrize("mode, buckets", [("train", None), ("stream", None),
                                           ("one_pass", None), ("one_pass", [2, 4])])
def test_an_input_without_record_is_named_not_looped_over(tmp_path, mode, buckets):
  """Repeated, an empty input never yields a batch (tf.data spun at 100% CPU for ever); in one
  pass with buckets, there was no bucket to batch (AttributeError)."""
  empty = tmp_path / "empty.tfrecord"
  empty.write_bytes(b"")
  with pytest.raises(input_pipeline.InputError, match=r"empty.tfrecord: no record in the "):
    input_pipeline.make_dataset([str(empty)], SCHEMA, 4, mode, bucket_boundaries=buckets)
