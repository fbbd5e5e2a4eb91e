"""The Trainer's generic seams on a toy task: one-pass eval, predict, scoring every checkpoint,
epochs (the house rules are in tests/contracts/test_house_rules.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig
from conftest import REPO_DIR, TESTS_DIR
from support.toy_task import ToyTask, write_toy_records


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
  directory = tmp_path_factory.mktemp("toy")
  return (write_toy_records(str(directory / "train.tfrecord"), 64, seed=1),
          write_toy_records(str(directory / "eval.tfrecord"), 37, seed=2))


def toy_trainer(output_dir, toy_files, lines=None, by_predict=False, num_examples=None,
                **overrides):
  settings = dict(output_dir=str(output_dir), train_batch_size=8, eval_batch_size=8,
                  num_train_steps=6, save_checkpoints_steps=2, iterations_per_loop=2,
                  max_eval_steps=None, seed=3)
  settings.update(overrides)
  log = (lambda line: lines.append(line)) if lines is not None else (lambda line: None)
  return Trainer(ToyTask(*toy_files, by_predict=by_predict, num_examples=num_examples),
                 TrainerConfig(**settings),
                 OptimizerConfig(optimizer="adamw", learning_rate=0.05, num_warmup_steps=0),
                 log=log)


def _numpy_scores(predictions):
  labels = predictions["label_ids"].reshape(-1)
  logits = predictions["logits"].astype(np.float64)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  return {"eval_accuracy": float((logits.argmax(-1) == labels).mean()),
          "eval_loss": float(-log_probs[np.arange(len(labels)), labels].mean())}


def test_one_pass_eval_counts_every_example_once_and_predict_keeps_input_order(tmp_path, toy_files):
  trainer = toy_trainer(tmp_path, toy_files)
  trainer.run(do_train=True)
  results = trainer.evaluate()
  assert results["count"] == 37  # 5 batches of 8: 3 padding rows weigh 0
  predictions = trainer.predict("eval", checkpoint_path=None)
  np.testing.assert_array_equal(predictions["example_id"].reshape(-1), np.arange(37))
  np.testing.assert_array_equal(predictions["row_index"], np.arange(37))
  assert predictions["is_real_example"].tolist() == [1] * 37
  assert set(predictions) == {"logits", "example_id", "label_ids", "row_index",
                              "is_real_example"}
  expected = _numpy_scores(predictions)
  assert results["eval_accuracy"] == pytest.approx(expected["eval_accuracy"], abs=1e-7)
  assert results["eval_loss"] == pytest.approx(expected["eval_loss"], abs=1e-5)
  assert 0.0 < expected["eval_accuracy"] < 1.0


def test_one_pass_eval_and_predict_on_two_replicas_equal_one():
  """MirroredStrategy over two logical CPUs (a fresh process): the same 37 rows and scores."""
  script = textwrap.dedent(f"""
      import json, sys, tempfile
      import tensorflow as tf
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      sys.path.insert(0, {TESTS_DIR!r})
      from support.toy_task import ToyTask, write_toy_records
      from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig
      d = tempfile.mkdtemp()
      files = (write_toy_records(d + "/train.tfrecord", 64, seed=1),
               write_toy_records(d + "/eval.tfrecord", 37, seed=2))
      out = {{}}
      for name, strategy in (("one", tf.distribute.get_strategy()),
                             ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        trainer = Trainer(ToyTask(*files), TrainerConfig(output_dir=d + "/" + name,
                          train_batch_size=8, eval_batch_size=8, num_train_steps=4,
                          save_checkpoints_steps=4, max_eval_steps=None, seed=3),
                          OptimizerConfig(optimizer="adamw", learning_rate=0.05,
                          num_warmup_steps=0), strategy=strategy, log=lambda line: None)
        trainer.run(do_train=True)
        results = trainer.evaluate()
        predictions = trainer.predict("eval", checkpoint_path=None)
        out[name] = {{"results": results, "ids": predictions["example_id"].ravel().tolist(),
                      "logits": predictions["logits"].tolist(), "replicas": trainer.replicas}}
      print(json.dumps(out))
  """)
  env = dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  assert out["one"]["replicas"] == 1 and out["two"]["replicas"] == 2
  for name in ("one", "two"):
    assert out[name]["results"]["count"] == 37
    assert out[name]["ids"] == list(range(37))
  np.testing.assert_allclose(out["two"]["logits"], out["one"]["logits"], atol=1e-5)
  for key in ("eval_accuracy", "eval_loss"):
    assert out["two"]["results"][key] == pytest.approx(out["one"]["results"][key], abs=1e-6)


def test_eval_by_predict_and_postprocess(tmp_path, toy_files):
  trainer = toy_trainer(tmp_path, toy_files, by_predict=True, num_train_steps=2)
  results = trainer.run(do_train=True, do_eval=True)
  assert results["count"] == 37 and results["global_step"] == 2
  assert json.load(open(tmp_path / "eval_predictions.json")) == list(range(37))


def test_evaluate_checkpoints_scores_each_once_keeps_the_best_and_deletes_nothing(tmp_path,
                                                                                  toy_files):
  toy_trainer(tmp_path, toy_files).run(do_train=True)  # model.ckpt-2, -4, -6, no eval
  before = sorted(os.listdir(tmp_path))
  assert not (tmp_path / "eval_results.txt").exists()
  lines = []
  results = toy_trainer(tmp_path, toy_files, lines=lines).run(do_train=False, do_eval=True)
  assert results["global_step"] == 6
  text = (tmp_path / "eval_results.txt").read_text()
  assert re.findall(r"global_step = (\d+)", text) == ["2", "4", "6"]
  assert all(re.fullmatch(r"\w+ = [-0-9.e]+", line) for line in text.splitlines())
  from albert.train.run_dir import parse_results
  scores = {int(r["global_step"]): r["eval_accuracy"] for r in parse_results(text)}
  best_step = max(sorted(scores), key=lambda s: scores[s])  # the first of equal bests
  trial = (tmp_path / "best_trial.txt").read_text().split(":")
  assert int(trial[0]) == 6 and int(trial[1]) == best_step
  assert float(trial[2]) == pytest.approx(scores[best_step])
  from albert import checkpoint
  _, best = checkpoint.read_checkpoint(str(tmp_path / "model.ckpt-best"))
  _, chosen = checkpoint.read_checkpoint(str(tmp_path / f"model.ckpt-{best_step}"))
  for name in chosen:
    np.testing.assert_array_equal(best[name], chosen[name])
  after = set(os.listdir(tmp_path))
  assert set(before) <= after  # nothing deleted
  # A rerun scores nothing twice and changes no result.
  lines = []
  again = toy_trainer(tmp_path, toy_files, lines=lines).run(do_train=False, do_eval=True)
  assert (tmp_path / "eval_results.txt").read_text() == text
  assert not any(l.startswith("Evaluating") for l in lines)
  assert again == results


def test_epoch_based_run_computes_its_steps(tmp_path, toy_files):
  lines = []
  trainer = toy_trainer(tmp_path, toy_files, lines=lines, num_examples=37,
                        num_train_steps=None, num_train_epochs=2.0)
  trainer.optimizer_config.warmup_proportion = 0.25
  trainer.run(do_train=True)
  assert trainer.num_train_steps == int(37 / 8 * 2.0) == 9
  assert trainer.num_warmup_steps == int(9 * 0.25) == 2
  assert trainer.global_step == 9
  assert any("2 epoch(s) of 37 examples at batch 8: 9 steps, 2 warmup steps" in l for l in lines)


def test_predict_alone_uses_the_best_checkpoint(tmp_path, toy_files):
  toy_trainer(tmp_path, toy_files).run(do_train=True, do_eval=True)
  lines = []
  trainer = toy_trainer(tmp_path, toy_files, lines=lines, by_predict=True)
  results = trainer.run(do_train=False, do_predict=True)
  assert results["predict/count"] == 37
  assert any("Predicting predict with" in l and l.split()[3].endswith("model.ckpt-best")
             for l in lines)


# ------------------------------------------------------------------------------ house rules


def test_other_eval_data_scores_every_checkpoint_again_and_restores_a_pruned_best(tmp_path,
                                                                                   toy_files):
  """The toy's records have no content fingerprint: their path, size and time key the results.
  The best's source, pruned since, is restored from model.ckpt-best to be scored again."""
  evaluation = str(tmp_path / "eval.tfrecord")
  files = (toy_files[0], write_toy_records(evaluation, 37, seed=2))
  out = tmp_path / "run"
  toy_trainer(out, files).run(do_train=True, do_eval=True)  # model.ckpt-2, -4, -6 scored
  best = json.load(open(out / "train_state" / "best_checkpoint.json"))["step"]
  for suffix in (".index", ".data-00000-of-00001"):
    os.remove(out / f"model.ckpt-{best}{suffix}")  # pruned, as keep_checkpoint_max does
  write_toy_records(evaluation, 29, seed=5)  # another eval set
  lines = []
  results = toy_trainer(out, files, lines=lines).run(do_train=False, do_eval=True)
  assert (f"{out}/model.ckpt-best was chosen on other eval data, and its source was pruned "
          f"since: restored {out}/model.ckpt-{best} from it, to score it again") in lines
  assert any(l.startswith("The eval data changed since model.ckpt-") for l in lines)
  from albert.train.run_dir import parse_results
  recorded = parse_results((out / "eval_results.txt").read_text())
  assert [int(r["global_step"]) for r in recorded] == [2, 4, 6, 2, 4, 6]
  assert [r["count"] for r in recorded] == [37] * 3 + [29] * 3
  assert results == recorded[-1] and results["count"] == 29
  chosen = max(recorded[3:], key=lambda r: r["eval_accuracy"])  # the first of equal bests
  trial = (out / "best_trial.txt").read_text().split(":")
  assert int(trial[1]) == int(chosen["global_step"])
  assert float(trial[2]) == pytest.approx(chosen["eval_accuracy"])
