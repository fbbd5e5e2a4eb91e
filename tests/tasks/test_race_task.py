"""run_race.py end to end on the 15 real RACE files, and the RACE task's evaluation files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from albert.config import AlbertConfig
from conftest import REPO_DIR, TESTDATA

RACE = os.path.join(TESTDATA, "race", "RACE")
SPM = os.path.join(TESTDATA, "albert_spm", "30k-clean.model")
SCRIPT = os.path.join(REPO_DIR, "run_race.py")


def _env():
  return dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2")


def _config(path):
  AlbertConfig(vocab_size=30000, embedding_size=32, hidden_size=64, num_hidden_layers=2,
               num_attention_heads=4, intermediate_size=128, max_position_embeddings=128,
               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).to_json_file(path)
  return path


@pytest.fixture(scope="module")
def memorise(tmp_path_factory):
  """A data dir whose dev split is the training split: the model must fit what it saw."""
  base = tmp_path_factory.mktemp("race")
  data = base / "data" / "RACE"
  shutil.copytree(os.path.join(RACE, "train"), data / "train")
  shutil.copytree(os.path.join(RACE, "train"), data / "dev")
  shutil.copytree(os.path.join(RACE, "test"), data / "test")
  return base


def _command(base, out, *extra):
  return [sys.executable, SCRIPT, f"--data_dir={base / 'data'}", f"--output_dir={out}",
          f"--albert_config_file={_config(str(base / 'albert_config.json'))}",
          f"--spm_model_file={SPM}", "--max_seq_length=128", "--max_qa_length=32",
          "--train_batch_size=8", "--eval_batch_size=8", "--learning_rate=0.002",
          "--train_step=200", "--warmup_step=20", "--save_checkpoints_steps=100",
          "--iterations_per_loop=20", "--dropout_prob=0.0", "--seed=3", *extra]


def test_run_race_fits_the_questions_it_trained_on(memorise):
  out = memorise / "run"
  result = subprocess.run(_command(memorise, out, "--do_predict",
                                   f"--export_dir={memorise / 'export'}"), env=_env(),
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  text = (out / "eval_results.txt").read_text()
  assert "global_step = 100" in text and "global_step = 200" in text
  from albert.train.run_dir import parse_results
  results = {int(r["global_step"]): r for r in parse_results(text)}
  final = results[200]
  assert set(final) == {"eval_accuracy", "eval_loss", "global_step", "high_accuracy",
                        "middle_accuracy"}
  assert final["eval_accuracy"] >= 0.9  # 22 training questions, fitted
  assert final["middle_accuracy"] >= 0.9 and final["high_accuracy"] >= 0.9
  assert (out / "model.ckpt-best.index").exists() and (out / "best_trial.txt").exists()
  predictions = json.load(open(out / "dev_predictions.json"))
  assert len(predictions) == 22 and set(predictions["middle2.txt-0"]) == {"prediction",
                                                                          "probabilities"}
  assert json.load(open(out / "test_predictions.json")).keys() >= {"middle1.txt-0"}
  assert "eval_accuracy = " in (out / "predict_results.txt").read_text()
  assert "Traceback" not in result.stderr
  # The export of the best checkpoint: token ids [B, 4*S] -> logits, probabilities, answer.
  import numpy as np
  import tensorflow as tf
  best_step = int((out / "best_trial.txt").read_text().split(":")[1])
  loaded = tf.saved_model.load(str(memorise / "export" / str(best_step)))
  signature = loaded.signatures["serving_default"]
  ids = np.zeros([2, 4 * 16], np.int32)
  ids[:, ::16] = 2  # [CLS] at the start of each choice
  got = signature(input_ids=tf.constant(ids), input_mask=tf.constant((ids > 0).astype(np.int32)),
                  segment_ids=tf.constant(np.zeros_like(ids)))
  assert got["probabilities"].shape == (2, 4)
  assert got["answer"].numpy().tolist() == [b"ABCD"[int(i):int(i) + 1]
                                            for i in got["predictions"].numpy()]


@pytest.mark.parametrize("damage, message", [
    ("not json", "middle/2.txt"),
    ("bad answer", "answer"),
    ("no training step", "--train_step=0: --do_train needs at least one training step"),
])
def test_bad_race_files_give_one_clear_line(memorise, tmp_path, damage, message):
  data = tmp_path / "data" / "RACE"
  shutil.copytree(memorise / "data" / "RACE", data)
  path = data / "train" / "middle" / "2.txt"
  if damage == "not json":
    path.write_text("this is not RACE JSON")
  elif damage == "bad answer":
    article = json.loads(path.read_text())
    article["answers"][0] = "E"
    path.write_text(json.dumps(article))
  steps = "--train_step=0" if damage == "no training step" else "--train_step=2"
  args = [a.replace(str(memorise / "data"), str(tmp_path / "data")) for a in
          _command(memorise, tmp_path / "out", steps)]
  result = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  assert message in result.stderr.strip().splitlines()[-1]
  assert not (tmp_path / "out" / "train_state").exists()
  if damage == "no training step":  # refused before anything is written
    assert not (tmp_path / "out").exists()


def test_an_eval_only_looking_run_says_first_that_it_trains(tmp_path):
  """do_train defaults to True, as in the original: a run given --do_eval (or --do_predict) but
  not --do_train trains; its first line says so (here it then stops: no data)."""
  base = [sys.executable, SCRIPT, f"--data_dir={tmp_path / 'nowhere'}",
          f"--output_dir={tmp_path / 'out'}", f"--spm_model_file={SPM}", "--max_seq_length=64",
          f"--albert_config_file={_config(str(tmp_path / 'albert_config.json'))}"]
  looks = subprocess.run(base + ["--do_eval"], env=_env(), capture_output=True, text=True,
                         timeout=300)
  assert looks.stdout.splitlines()[0] == (
      "note: run_race.py trains by default (--do_train=true, as the original); pass "
      "--nodo_train to only evaluate or predict")
  assert looks.returncode == 1 and "RACE train split not found" in looks.stderr
  explicit = subprocess.run(base + ["--nodo_train", "--do_eval"], env=_env(),
                            capture_output=True, text=True, timeout=300)
  assert explicit.returncode == 1 and "note:" not in explicit.stdout
  assert "RACE dev split not found" in explicit.stderr


def test_length_buckets_give_the_predictions_of_fixed_padding(tmp_path):
  from albert.tasks.finetune import FinetuneConfig, default_buckets
  from albert.tasks.race import RaceTask, RaceTaskConfig
  from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig
  config = AlbertConfig.from_json_file(_config(str(tmp_path / "albert_config.json"))).replace(
      max_position_embeddings=512)
  predictions = {}
  for name, buckets in (("buckets", default_buckets(512)), ("fixed", None)):
    task = RaceTask(RaceTaskConfig(
        finetune=FinetuneConfig(albert_config=config, output_dir=str(tmp_path / name),
                                spm_model_file=SPM, max_seq_length=512, seed=3,
                                bucket_boundaries=buckets),
        data_dir=os.path.dirname(RACE), max_qa_length=128))
    trainer = Trainer(task, TrainerConfig(output_dir=str(tmp_path / name), eval_batch_size=8,
                                          max_eval_steps=None, seed=3),
                      OptimizerConfig(optimizer="adamw"), log=lambda line: None)
    trainer.build()
    if name == "fixed":  # the same weights in both
      for var, value in zip(trainer.model.weights, weights):
        var.assign(value)
    weights = [v.numpy() for v in trainer.model.weights]
    predictions[name] = trainer.predict("eval", checkpoint_path=None)
    lengths = task.metadata("eval")["lengths"]
  assert max(max(l) for l in lengths) < 512  # so shorter buckets were used
  import numpy as np
  np.testing.assert_allclose(predictions["buckets"]["probabilities"],
                             predictions["fixed"]["probabilities"], atol=1e-5)
  np.testing.assert_array_equal(predictions["buckets"]["label_ids"],
                                predictions["fixed"]["label_ids"])
