"""Runs on object storage (issue 24): every script with its inputs, outputs, caches and
checkpoints on a remote file system, end to end, on TensorFlow's in-memory `ram://` (the same
`tf.io.gfile` code path as gs:// and s3://, without a network). Each run is compared with the
same run on local files; an unreachable location is one error line."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from albert import checkpoint
from conftest import GOLDEN, REPO_DIR, TESTDATA
from support.classifier_runs import GLUE
from support.exports import write_albert_directory
from support.faults import assert_clean_error, run_script
from support.pretraining_runs import command
from support.ram_fs import run_on_ram

SPM = os.path.join(GOLDEN, "spm.model")
TOY = os.path.join(TESTDATA, "pretraining", "toy_corpus.txt")


def _local(script, *args):
  done = run_script(script, *args)
  assert done.returncode == 0, done.stderr[-3000:]
  return done


def _ok(done):
  assert done.returncode == 0, done.stderr[-3000:]
  assert "Traceback" not in done.stderr
  return done


def _tree(directory):
  return sorted(os.path.relpath(os.path.join(root, name), directory)
                for root, _, names in os.walk(directory) for name in names)


def _same_weights(a, b):
  wa, wb = checkpoint.read_checkpoint(a)[1], checkpoint.read_checkpoint(b)[1]
  assert wa.keys() == wb.keys()
  for name in wa:
    np.testing.assert_array_equal(wa[name], wb[name], err_msg=name)


def test_pretraining_data_on_ram_is_the_local_jobs_byte_for_byte(tmp_path):
  """Text and tokenizer model read from ram://, three shards written there by two worker
  processes (which get a local copy of the model): the local job's bytes."""
  settings = ["--max_seq_length=32", "--max_predictions_per_seq=5", "--dupe_factor=2",
              "--num_output_shards=3", "--num_workers=2"]
  _local("create_pretraining_data.py", f"--input_file={TOY}", f"--spm_model_file={SPM}",
         f"--output_file={tmp_path / 'local' / 'train.tfrecord'}", *settings)
  _ok(run_on_ram("create_pretraining_data.py", [
      "--input_file=ram://corpus/*.txt", "--spm_model_file=ram://models/spm.model",
      "--output_file=ram://bucket/data/train.tfrecord", *settings],
      {TOY: "ram://corpus/toy.txt", SPM: "ram://models/spm.model"},
      {"ram://bucket/data": str(tmp_path / "ram")}))
  shards = [f"train.tfrecord-0000{s}-of-00003" for s in range(3)]
  assert [n for n in _tree(tmp_path / "ram") if not n.startswith(".")] == shards
  for name in shards:
    assert filecmp.cmp(tmp_path / "local" / name, tmp_path / "ram" / name, shallow=False)


def test_vocabulary_training_and_inspect_read_and_write_ram(tmp_path):
  """train_vocab reads its text from ram:// and writes the model there; inspect reads records
  and the model from ram://: the local command's model and figures."""
  slices = [os.path.join(TESTDATA, "pretraining", n) for n in ("books_slice.txt", "wiki_slice.txt")]
  vocab = ["train_vocab", "--vocab_size=400", "--num_workers=1"]
  _local("create_pretraining_data.py", *vocab, f"--input_file={','.join(slices)}",
         f"--model_prefix={tmp_path / 'local' / 'new'}")
  _ok(run_on_ram("create_pretraining_data.py", vocab + [
      "--input_file=ram://corpus/books_slice.txt,ram://corpus/wiki_slice.txt",
      "--model_prefix=ram://bucket/vocab/new"],
      {slices[0]: "ram://corpus/books_slice.txt", slices[1]: "ram://corpus/wiki_slice.txt"},
      {"ram://bucket/vocab": str(tmp_path / "ram")}))
  assert filecmp.cmp(tmp_path / "ram" / "new.vocab", tmp_path / "local" / "new.vocab",
                     shallow=False)
  from albert import tokenization  # pylint: disable=g-import-not-at-top
  ram, local = (tokenization.load_sp_model(str(tmp_path / d / "new.model")) for d in ("ram", "local"))
  assert ram.GetPieceSize() == local.GetPieceSize() == 400  # (the model records its temp input)
  assert all(ram.IdToPiece(i) == local.IdToPiece(i) for i in range(400))
  records = tmp_path / "records.tfrecord"
  _local("create_pretraining_data.py", f"--input_file={TOY}", f"--spm_model_file={SPM}",
         f"--output_file={records}", "--max_seq_length=32", "--max_predictions_per_seq=5")
  inspect = ["inspect", "--num_examples=1"]
  local = _local("create_pretraining_data.py", *inspect, f"--input_file={records}",
                 f"--spm_model_file={SPM}")
  remote = _ok(run_on_ram("create_pretraining_data.py", inspect + [
      "--input_file=ram://bucket/records/*", "--spm_model_file=ram://models/spm.model"],
      {str(records): "ram://bucket/records/train.tfrecord", SPM: "ram://models/spm.model"}, {}))
  assert json.loads(remote.stdout.strip().splitlines()[-1]) == \
      json.loads(local.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("script, flag, args", [
    ("create_pretraining_data.py", "--output_file",
     [f"--input_file={TOY}", f"--spm_model_file={SPM}", "--output_file=nosuch://bucket/x"]),
    ("create_pretraining_data.py", "--input_file",
     ["--input_file=nosuch://bucket/*.txt", f"--spm_model_file={SPM}", "--output_file=x"]),
    ("run_pretraining.py", "--output_dir",
     ["--input_file=x.tfrecord", "--output_dir=nosuch://bucket/run", "--do_train",
      f"--albert_config_file={os.path.join(REPO_DIR, 'configs', 'v2', 'base', 'albert_config.json')}"]),
])
def test_an_unreachable_location_is_one_line(tmp_path, script, flag, args):
  done = run_script(script, *args)
  assert_clean_error(done, flag, "nosuch://bucket", "not implemented")


@pytest.mark.slow
def test_pretraining_on_ram_ends_with_the_local_runs_weights_and_resumes_there(tmp_path):
  local = command(tmp_path, tmp_path / "local")
  _ok(subprocess.run(local, env=dict(os.environ, PYTHONPATH=REPO_DIR), capture_output=True,
                     text=True, timeout=300))
  config, records = local[2].split("=", 1)[1], local[3].split("=", 1)[1]
  remote = [a.replace(config, "ram://in/albert_config.json").replace(records, "ram://in/train")
            .replace(str(tmp_path / "local"), "ram://bucket/run") for a in local[2:]]
  copy_in = {config: "ram://in/albert_config.json", records: "ram://in/train"}
  _ok(run_on_ram("run_pretraining.py", remote, copy_in, {"ram://bucket/run": str(tmp_path / "ram")}))
  # The same files (no lock on object storage: a remote run directory is not locked).
  files = lambda d: [n for n in _tree(d) if n.split("/")[0] != "summaries"  # noqa: E731
                     and n != "train_state/lock"]
  assert files(tmp_path / "ram") == files(tmp_path / "local")
  for step in (2, 8):
    _same_weights(str(tmp_path / "local" / f"model.ckpt-{step}"),
                  str(tmp_path / "ram" / f"model.ckpt-{step}"))
  assert (tmp_path / "ram" / "checkpoint").read_text() == \
      (tmp_path / "local" / "checkpoint").read_text()
  # The same command again, on the run directory as it was left: the state is read back.
  again = _ok(run_on_ram("run_pretraining.py", remote,
                         dict(copy_in, **{str(tmp_path / "ram"): "ram://bucket/run"}), {}))
  assert "Resuming from ram://bucket/run/train_state/ckpt-8 at step 8" in again.stdout


@pytest.mark.slow
def test_fine_tuning_on_ram_with_a_remote_init_checkpoint_and_cache(tmp_path):
  """The GLUE files, albert config, SentencePiece model and init checkpoint (a released
  model's folder) on ram://, the run directory and the feature cache too."""
  model = tmp_path / "albert"
  write_albert_directory(str(model))
  settings = ["--task_name=rte", "--max_seq_length=64", "--train_batch_size=8", "--train_step=4",
              "--save_checkpoints_steps=4", "--iterations_per_loop=4", "--do_train", "--do_eval",
              "--do_predict"]
  flags = lambda glue, albert, run, cache: [  # noqa: E731
      f"--data_dir={glue}", f"--albert_config_file={albert}/albert_config.json",
      f"--spm_model_file={albert}/30k-clean.model", f"--init_checkpoint={albert}/model.ckpt-0",
      f"--output_dir={run}", f"--cached_dir={cache}", *settings]
  _local("run_classifier.py", *flags(GLUE, model, tmp_path / "local", tmp_path / "local_cache"))
  _ok(run_on_ram("run_classifier.py",
                 flags("ram://glue", "ram://models/albert", "ram://bucket/run", "ram://bucket/cache"),
                 {os.path.join(GLUE, "RTE"): "ram://glue/RTE", str(model): "ram://models/albert"},
                 {"ram://bucket/run": str(tmp_path / "ram"),
                  "ram://bucket/cache": str(tmp_path / "cache")}))
  local, ram = tmp_path / "local", tmp_path / "ram"
  for name in ("eval_results.txt", "best_trial.txt", "test_results.tsv", "submit_results.tsv",
               "submission/RTE.tsv", "checkpoint"):
    assert (ram / name).read_text() == (local / name).read_text(), name
  _same_weights(str(local / "model.ckpt-best"), str(ram / "model.ckpt-best"))
  assert _tree(tmp_path / "cache") == _tree(tmp_path / "local_cache")
  for name in _tree(tmp_path / "cache"):
    if name.endswith(".tf_record"):
      assert filecmp.cmp(tmp_path / "cache" / name, tmp_path / "local_cache" / name,
                         shallow=False)


@pytest.mark.parametrize("script, data, flags", [
    ("run_race.py", ("race", "ram://data/race"),
     ["--max_seq_length=64", "--max_qa_length=16", "--nodo_train", "--do_predict"]),
    ("run_squad.py", ("squad/dev-v1.1-first2.json", "ram://data/squad/dev-v1.1-first2.json"),
     ["--max_seq_length=64", "--doc_stride=32", "--max_query_length=16", "--do_predict"]),
])
def test_race_and_squad_features_from_and_to_ram(tmp_path, script, data, flags):
  """The feature caches of RACE (a folder tree) and SQuAD (a JSON file) built from ram:// into
  ram://: the local run's files, byte for byte."""
  spm = os.path.join(TESTDATA, "albert_spm", "30k-clean.model")
  source = os.path.join(TESTDATA, data[0])
  data_flag = "--data_dir" if script == "run_race.py" else "--predict_file"
  common = ["--prepare_only", "--num_workers=1", *flags]
  _local(script, f"{data_flag}={source}", f"--spm_model_file={spm}",
         f"--output_dir={tmp_path / 'local'}", *common)
  _ok(run_on_ram(script, [f"{data_flag}={data[1]}", "--spm_model_file=ram://models/spm.model",
                          "--output_dir=ram://bucket/run", *common],
                 {source: data[1], spm: "ram://models/spm.model"},
                 {"ram://bucket/run": str(tmp_path / "ram")}))
  built = _tree(tmp_path / "local")
  assert built and any(n.endswith(".tf_record") for n in built) and _tree(tmp_path / "ram") == built
  for name in built:
    if name.endswith(".tf_record"):
      assert filecmp.cmp(tmp_path / "ram" / name, tmp_path / "local" / name, shallow=False)


@pytest.mark.slow
def test_export_from_and_to_ram(tmp_path):
  write_albert_directory(str(tmp_path / "albert"))
  args = lambda source, target: [f"--albert_directory={source}",  # noqa: E731
                                 "--checkpoint_name=model.ckpt-0", f"--export_path={target}"]
  _local("export_to_tfhub.py", *args(tmp_path / "albert", tmp_path / "local"))
  _ok(run_on_ram("export_to_tfhub.py", args("ram://models/albert", "ram://bucket/hub/1"),
                 {str(tmp_path / "albert"): "ram://models/albert"},
                 {"ram://bucket/hub": str(tmp_path / "ram")}))
  assert _tree(tmp_path / "ram" / "1") == _tree(tmp_path / "local")
  for name in ("assets/30k-clean.model", "assets/albert_config.json"):
    assert filecmp.cmp(tmp_path / "ram" / "1" / name, tmp_path / "local" / name, shallow=False)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  ram, local = (tf.train.load_checkpoint(str(d / "variables" / "variables"))
                for d in (tmp_path / "ram" / "1", tmp_path / "local"))
  weights = lambda reader: sorted(  # noqa: E731  (not the state of the noise's seed generator)
      n for n, dtype in reader.get_variable_to_dtype_map().items()
      if "/.ATTRIBUTES/VARIABLE_VALUE" in n and dtype.is_floating)
  names = weights(local)
  assert len(names) > 30 and names == weights(ram)
  for name in names:
    np.testing.assert_array_equal(ram.get_tensor(name), local.get_tensor(name), err_msg=name)
  # The export's record of its inputs (their contents' digests) is the local export's.
  record = "assets.extra/albert_export.json"
  assert json.loads((tmp_path / "ram" / "1" / record).read_text()) == \
      json.loads((tmp_path / "local" / record).read_text())
