"""The GLUE classifier task on the Trainer and run_classifier.py, on real GLUE rows.

One tiny end-to-end run per task family (single sentence, pair, regression, MNLI with its extra
splits), the files the original writes, length buckets vs padding to the cap, starting points
(an init checkpoint that restores no encoder variable is an error), bad input.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from albert import checkpoint
from albert.config import AlbertConfig
from albert.errors import CheckpointError, DataError, FlagError, InputError, TrainingError
from albert.train.run_dir import parse_results
from albert.tasks.classifier import ClassifierTask, ClassifierTaskConfig
from albert.tasks.finetune import FinetuneConfig, default_buckets
from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig
from conftest import REPO_DIR, TESTDATA
from support.classifier_runs import GLUE, SPM, TINY, make_trainer


def _lines(path):
  with open(path, encoding="utf-8") as f:
    return f.read().splitlines()


@pytest.mark.parametrize("task_name, keys, best", [
    ("SST-2", {"eval_accuracy", "eval_loss"}, "eval_accuracy"),
    ("MRPC", {"eval_accuracy", "eval_loss", "f1"}, "eval_accuracy"),
    ("CoLA", {"eval_accuracy", "eval_loss", "matthew_corr"}, "matthew_corr"),
    ("STS-B", {"MSE", "eval_loss", "pearson", "spearman"}, "pearson"),
])
def test_train_eval_predict_writes_the_originals_files(tmp_path, task_name, keys, best):
  lines = []
  trainer = make_trainer(tmp_path, task_name, lines=lines)
  results = trainer.run(do_train=True, do_eval=True, do_predict=True)
  assert trainer.task.best_metric == best
  assert keys | {"global_step"} <= set(results)
  recorded = parse_results((tmp_path / "eval_results.txt").read_text())
  assert [int(r["global_step"]) for r in recorded] == [15, 30]
  assert all(set(r) == keys | {"global_step"} for r in recorded)
  step, best_step, value = (tmp_path / "best_trial.txt").read_text().split(":")
  chosen = max(recorded, key=lambda r: r[best])  # the first of equal bests
  assert int(step) == 30 and int(best_step) == int(chosen["global_step"])
  assert float(value) == pytest.approx(chosen[best])
  # predict: the original's test_results.tsv (probabilities) and submit_results.tsv, and the
  # GLUE server's file; 20 test rows each
  probabilities = _lines(tmp_path / "test_results.tsv")
  assert len(probabilities) == 20
  columns = 1 if task_name == "STS-B" else 2
  assert all(len(line.split("\t")) == columns for line in probabilities)
  if columns == 2:
    assert all(abs(sum(map(float, line.split("\t"))) - 1) < 1e-5 for line in probabilities)
  submit = _lines(tmp_path / "submit_results.tsv")
  assert submit[0] == "index\tprediction" and len(submit) == 21
  server = _lines(tmp_path / "submission" / f"{task_name}.tsv")
  assert server[0] == "index\tprediction" and len(server) == 21
  # predictions.jsonl (issue 20): one object per test row, in order, by label name
  rows = [json.loads(line) for line in _lines(tmp_path / "predictions.jsonl")]
  assert [r["id"] for r in rows] == [l.split("\t")[0] for l in submit[1:]]
  if columns == 2:
    assert all(r["label"] == max(r["probabilities"], key=r["probabilities"].get) for r in rows)
    assert [r["label"] for r in rows] == [l.split("\t")[1] for l in submit[1:]]
  assert any("Predicting predict with" in l and "model.ckpt-best" in l for l in lines)


def test_mnli_scores_matched_and_mismatched_and_predicts_ax(tmp_path):
  results = make_trainer(tmp_path, "MNLI", num_train_steps=10, save_checkpoints_steps=10).run(
      do_train=True, do_eval=True, do_predict=True)
  assert {"eval_accuracy", "eval_loss", "eval_accuracy_mm", "eval_loss_mm"} <= set(results)
  for name, rows in (("MNLI-m", 2), ("MNLI-mm", 2), ("AX", 20)):  # the test files' rows
    lines = _lines(tmp_path / "submission" / f"{name}.tsv")
    assert len(lines) == rows + 1
    assert {l.split("\t")[1] for l in lines[1:]} <= {"entailment", "neutral", "contradiction"}


def test_eval_counts_every_dev_example_once(tmp_path):
  trainer = make_trainer(tmp_path, "RTE", num_train_steps=5, save_checkpoints_steps=5,
                         eval_batch_size=8)
  trainer.run(do_train=True)
  predictions = trainer.predict("eval", checkpoint_path=None)
  assert len(predictions["logits"]) == 20  # 3 batches of 8: 4 padding rows dropped
  np.testing.assert_array_equal(predictions["row_index"], np.arange(20))
  meta = trainer.task.metadata("eval")
  assert meta["num_examples"] == 20


def test_length_buckets_give_the_predictions_of_fixed_padding(tmp_path):
  bucketed = make_trainer(tmp_path / "buckets", "SST-2", num_train_steps=8,
                          save_checkpoints_steps=8, max_seq_length=128)
  bucketed.run(do_train=True)
  fixed = make_trainer(tmp_path / "fixed", "SST-2", buckets=False, max_seq_length=128,
                       predict_checkpoint=str(tmp_path / "buckets" / "model.ckpt-8"))
  a = bucketed.predict("eval", checkpoint_path=str(tmp_path / "buckets" / "model.ckpt-8"))
  b = fixed.predict("eval")
  lengths = fixed.task.metadata("eval")["lengths"]
  assert max(lengths) < 64  # so buckets 32 and 64 were used, not the cap of 128
  np.testing.assert_allclose(a["logits"], b["logits"], atol=1e-5)
  np.testing.assert_array_equal(a["label_ids"], b["label_ids"])


def test_init_checkpoint_must_restore_the_encoder(tmp_path):
  model_dir = tmp_path / "pretrained"
  pre = make_trainer(tmp_path / "a", "SST-2", num_train_steps=2, save_checkpoints_steps=2)
  pre.run(do_train=True)
  # A fine-tuned checkpoint (encoder + head) starts a new run, head included.
  lines = []
  make_trainer(tmp_path / "b", "SST-2", lines=lines, num_train_steps=2, save_checkpoints_steps=2,
               init_checkpoint=str(tmp_path / "a" / "model.ckpt-2")).run(do_train=True)
  assert any(l.startswith("Loaded 27 variables") for l in lines)  # 25 encoder + 2 head
  # A head of another shape (3 labels) is left out and listed as new.
  lines = []
  make_trainer(tmp_path / "c", "MNLI", lines=lines, num_train_steps=1, save_checkpoints_steps=1,
               init_checkpoint=str(tmp_path / "a" / "model.ckpt-2")).run(do_train=True)
  assert any(l.startswith("Loaded 25 variables") for l in lines)
  assert "    output_weights (another shape in the checkpoint" in "\n".join(lines)
  # A checkpoint of something else restores none of the encoder: an error, not a random start.
  model_dir.mkdir()
  import tensorflow as tf
  other = tf.Variable(np.zeros([3], np.float32), name="something/else")
  checkpoint.save_tf1_checkpoint([other], str(model_dir / "model.ckpt"))
  with pytest.raises(CheckpointError, match=r"restores none of the encoder"):
    make_trainer(tmp_path / "d", "SST-2", init_checkpoint=str(model_dir / "model.ckpt")).run()


def test_a_head_that_starts_fresh_is_reported_as_new_not_unused(tmp_path):
  """Issue 18: the load report listed a fresh head (another label count, or a part the task
  starts fresh) under "in the checkpoint but unused" instead of "new or missing"."""
  golden = os.path.join(TESTDATA, "golden")
  config = AlbertConfig.from_json_file(os.path.join(golden, "model_A", "albert_config.json"))
  finetune = FinetuneConfig(albert_config=config, output_dir=str(tmp_path), max_seq_length=32,
                            spm_model_file=os.path.join(golden, "spm.model"))
  task = ClassifierTask(ClassifierTaskConfig(finetune=finetune, task_name="SST-2",
                                             data_dir=GLUE))
  model = task.build_model()
  cls3 = os.path.join(golden, "finetune", "classifier", "model_A_cls3", "init")
  report = task.initialize(model, cls3)  # a fine-tuned 3-label checkpoint into 2 labels
  assert len(report.loaded) == 25 and report.missing == [] and report.unused == []
  assert report.new == {
      "output_bias": "another shape in the checkpoint: [3], the model's [2]",
      "output_weights": "another shape in the checkpoint: [3, 32], the model's [2, 32]"}
  text = report.format()
  assert ("  new or missing from the checkpoint (start from their initial values): 2\n"
          "    output_bias (another shape in the checkpoint: [3], the model's [2])\n"
          "    output_weights (another shape in the checkpoint: [3, 32], the model's [2, 32])\n"
          "  in the checkpoint but unused: 0\n") in text
  # A pretraining checkpoint, the pooler started fresh (as the main job does): the head and
  # the pooler are new; the pretraining heads are what the checkpoint has unused.
  task.config.finetune.init_skip = ("bert/pooler/",)
  report = task.initialize(model, os.path.join(golden, "model_A"))
  assert report.missing == ["output_bias", "output_weights"]
  assert sorted(report.new) == ["bert/pooler/dense/bias", "bert/pooler/dense/kernel"]
  assert all(n.startswith(("cls/predictions/", "cls/seq_relationship/")) for n in report.unused)
  assert len(report.unused) == 7 and "new or missing from the checkpoint (start from their " \
      "initial values): 4" in report.format()


def test_prepare_only_needs_no_model_config(tmp_path):
  """Issue 18: --prepare_only builds the feature caches from the tokenizer and data flags alone
  (it required --albert_config_file or a hub handle); a training run then reuses them."""
  out = tmp_path / "run"
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_DIR, "run_classifier.py"), f"--data_dir={GLUE}",
       "--task_name=MRPC", f"--spm_model_file={SPM}", "--max_seq_length=64",
       f"--output_dir={out}", "--prepare_only", "--num_workers=1"],
      env=_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  built = sorted(n for n in os.listdir(out / "cache") if n.endswith(".tf_record"))
  assert [n.split("-")[0] for n in built] == ["mrpc_dev", "mrpc_train"]  # default: train, eval
  assert sorted(os.listdir(out)) == ["cache"]
  stamps = {n: os.stat(out / "cache" / n).st_mtime_ns for n in built}
  trainer = make_trainer(out, "MRPC", num_train_steps=1)
  for split in ("train", "eval"):
    trainer.task.prepare(split)
    assert os.path.basename(trainer.task.input_files(split)[0]) in built
  assert {n: os.stat(out / "cache" / n).st_mtime_ns for n in built} == stamps
  race = subprocess.run(
      [sys.executable, os.path.join(REPO_DIR, "run_race.py"),
       f"--data_dir={os.path.join(TESTDATA, 'race')}", f"--spm_model_file={SPM}",
       "--max_seq_length=64", "--max_qa_length=16", f"--output_dir={tmp_path / 'race'}",
       "--prepare_only", "--nodo_train", "--do_predict", "--num_workers=1"],
      env=_env(), capture_output=True, text=True, timeout=300)
  assert race.returncode == 0, race.stderr[-3000:]
  built = sorted(n.split("-")[0] for n in os.listdir(tmp_path / "race" / "cache")
                 if n.endswith(".tf_record"))
  assert built == ["race_dev", "race_test"]  # --do_eval (its default) and --do_predict


def test_bad_input_is_named(tmp_path):
  with pytest.raises(FlagError, match=r"unknown GLUE task 'sst3' \(--task_name\); known "
                     r"tasks: cola.*sst-2"):
    make_trainer(tmp_path / "a", "sst3")
  with pytest.raises(InputError, match=r"SST-2/train.tsv"):
    make_trainer(tmp_path / "b", "SST-2", data_dir=tmp_path / "nowhere").run()
  with pytest.raises(FlagError, match=r"--max_seq_length=256 exceeds max_position_embeddings"):
    make_trainer(tmp_path / "c", "SST-2", max_seq_length=256).run()
  with pytest.raises(FlagError, match=r"30000 pieces, but the albert config's vocab_size is 1000"):
    make_trainer(tmp_path / "d", "SST-2", albert_config=TINY.replace(vocab_size=1000)).run()
  data = tmp_path / "glue"
  shutil.copytree(GLUE, data)
  with open(data / "SST-2" / "train.tsv", "a", encoding="utf-8") as f:
    f.write("a sentence with a bad label\t7\n")
  with pytest.raises(DataError, match=r"SST-2/train.tsv, line 22: label '7' is not one of the "
                     r"sst-2 labels \(0, 1\)"):
    make_trainer(tmp_path / "e", "SST-2", data_dir=data).run()
  for name in "abcde":
    assert not (tmp_path / name / "model.ckpt-30.index").exists()


def test_a_corrupted_cache_is_rebuilt_or_named(tmp_path):
  trainer = make_trainer(tmp_path, "SST-2", num_train_steps=2, save_checkpoints_steps=2)
  trainer.run(do_train=True)
  path = trainer.task.input_files("train")[0]
  data = bytearray(open(path, "rb").read())
  data[len(data) // 2] ^= 0xFF
  open(path, "wb").write(bytes(data))  # same size, a flipped byte
  lines = []
  again = make_trainer(tmp_path / "again", "SST-2", lines=lines, num_train_steps=2,
                       save_checkpoints_steps=2)
  again.task.config.finetune.cache_dir = os.path.dirname(path)
  again.run(do_train=True)
  assert any("rebuild" in l.lower() for l in lines)
  with open(again.task.input_files("train")[0], "rb") as f:
    assert f.read() != bytes(data)


def _env():
  return dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2")


def test_run_classifier_script_and_its_one_line_errors(tmp_path):
  config = tmp_path / "albert_config.json"
  TINY.to_json_file(str(config))
  base = [sys.executable, os.path.join(REPO_DIR, "run_classifier.py"), f"--data_dir={GLUE}",
          f"--albert_config_file={config}", f"--spm_model_file={SPM}", "--max_seq_length=64",
          "--train_batch_size=8", "--train_step=4", "--save_checkpoints_steps=4",
          "--iterations_per_loop=4"]
  result = subprocess.run(base + ["--task_name=rte", f"--output_dir={tmp_path / 'run'}",
                                  "--do_train", "--do_eval"], env=_env(), capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "rte: eval_accuracy" in result.stdout
  assert (tmp_path / "run" / "model.ckpt-best.index").exists()
  # --do_eval alone: every checkpoint already scored, nothing scored twice
  again = subprocess.run(base + ["--task_name=rte", f"--output_dir={tmp_path / 'run'}",
                                 "--do_eval"], env=_env(), capture_output=True, text=True,
                         timeout=300)
  assert again.returncode == 0, again.stderr[-2000:]
  assert (tmp_path / "run" / "eval_results.txt").read_text().count("global_step") == 1
  bad = subprocess.run(base + ["--task_name=nope", f"--output_dir={tmp_path / 'bad'}",
                               "--do_train"], env=_env(), capture_output=True, text=True,
                       timeout=300)
  assert bad.returncode == 1 and "Traceback" not in bad.stderr
  assert "unknown GLUE task 'nope'" in bad.stderr.strip().splitlines()[-1]
  assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("handle_kind", ["tf2_export", "tf1_module"])
def test_fine_tuning_from_a_hub_handle_changes_the_encoder(tmp_path, tmp_path_factory,
                                                           handle_kind):
  """--albert_hub_module_handle: the config and tokenizer come from the module; fine-tuning
  moves the encoder's weights and saves them in TF1 names."""
  from support.hub_modules import hub_handle
  handle, body = hub_handle(handle_kind, tmp_path_factory)
  finetune = FinetuneConfig(albert_config=None, output_dir=str(tmp_path), max_seq_length=32,
                            hub_module_handle=handle, num_workers=1, seed=3,
                            bucket_boundaries=default_buckets(32))
  lines = []
  task = ClassifierTask(ClassifierTaskConfig(finetune=finetune, task_name="SST-2",
                                             data_dir=GLUE), log=lines.append)
  trainer = Trainer(task, TrainerConfig(output_dir=str(tmp_path), train_batch_size=8,
                                        eval_batch_size=8, num_train_steps=4,
                                        save_checkpoints_steps=4, max_eval_steps=None, seed=3),
                    OptimizerConfig(optimizer="adamw", learning_rate=1e-2, num_warmup_steps=0),
                    log=lines.append)
  results = trainer.run(do_train=True, do_eval=True)
  assert results["global_step"] == 4 and "eval_accuracy" in results
  assert any(l.startswith("Encoder weights from the hub module") for l in lines)
  _, start = checkpoint.read_checkpoint(body)
  _, tuned = checkpoint.read_checkpoint(str(tmp_path / "model.ckpt-4"))
  encoder = sorted(n for n in tuned if n.startswith("bert/"))
  assert len(encoder) == 25 and {"output_weights", "output_bias"} <= set(tuned)
  assert all(tuned[n].shape == start[n].shape for n in encoder)
  assert sum(not np.allclose(tuned[n], start[n]) for n in encoder) >= 20


# ------------------------------------------------------------------- one run per directory
def _flip_labels(path):
  """Every RTE label of a dev.tsv swapped: each prediction that was right is now wrong."""
  flip = {"entailment": "not_entailment", "not_entailment": "entailment"}
  lines = _lines(path)
  rows = [line.split("\t") for line in lines[1:]]
  path.write_text("\n".join([lines[0]] + ["\t".join(r[:-1] + [flip[r[-1]]]) for r in rows])
                  + "\n")


def test_a_changed_dev_set_scores_every_checkpoint_again_and_chooses_the_best_again(tmp_path):
  data = tmp_path / "glue"
  shutil.copytree(GLUE, data)
  out = tmp_path / "run"
  make_trainer(out, "RTE", data_dir=data, num_train_steps=12, save_checkpoints_steps=4,
               iterations_per_loop=4).run(do_train=True, do_eval=True)
  before = parse_results((out / "eval_results.txt").read_text())
  assert [int(r["global_step"]) for r in before] == [4, 8, 12]
  _flip_labels(data / "RTE" / "dev.tsv")
  lines = []
  results = make_trainer(out, "RTE", data_dir=data, lines=lines, num_train_steps=12,
                         save_checkpoints_steps=4).run(do_train=False, do_eval=True)
  assert ("The eval data changed since model.ckpt-4, model.ckpt-8, model.ckpt-12 were scored: "
          "scoring again on the current data, and choosing the best checkpoint again") in lines
  recorded = parse_results((out / "eval_results.txt").read_text())
  assert [int(r["global_step"]) for r in recorded] == [4, 8, 12, 4, 8, 12]
  for old, new in zip(recorded[:3], recorded[3:]):  # 20 binary labels, every one flipped
    assert new["eval_accuracy"] == pytest.approx(1 - old["eval_accuracy"], abs=1e-9)
  # The fresh score of the latest checkpoint is returned and printed as such.
  assert results["eval_accuracy"] == pytest.approx(recorded[-1]["eval_accuracy"])
  block = lines.index("***** Eval results *****", lines.index("Evaluating " + str(out) +
                                                               "/model.ckpt-12 (step 12)"))
  assert lines[block + 1] == f"  eval_accuracy = {results['eval_accuracy']}"
  # The best is chosen again on the new data (the first of equal bests).
  chosen = max(recorded[3:], key=lambda r: r["eval_accuracy"])
  step, best_step, value = (tmp_path / "run" / "best_trial.txt").read_text().split(":")
  assert (int(step), int(best_step)) == (12, int(chosen["global_step"]))
  assert float(value) == pytest.approx(chosen["eval_accuracy"])
  _, best = checkpoint.read_checkpoint(str(out / "model.ckpt-best"))
  _, source = checkpoint.read_checkpoint(str(out / f"model.ckpt-{int(chosen['global_step'])}"))
  assert all(np.array_equal(best[name], source[name]) for name in source)
  # Unchanged data: nothing scored again; the recorded result is shown as recorded.
  lines = []
  again = make_trainer(out, "RTE", data_dir=data, lines=lines, num_train_steps=12,
                       save_checkpoints_steps=4).run(do_train=False, do_eval=True)
  assert again == results
  assert not any(l.startswith(("Evaluating", "Scoring", "The eval data")) for l in lines)
  assert ("***** Recorded eval results of model.ckpt-12 (scored earlier on the same eval data) "
          "*****") in lines and "***** Eval results *****" not in lines
  assert len(parse_results((out / "eval_results.txt").read_text())) == 6


def test_a_failed_start_leaves_nothing_and_the_corrected_rerun_runs(tmp_path):
  """A run that fails before its weights are loaded (here an init checkpoint of another albert
  config, then a dev file with a bad label) writes nothing into output_dir: the corrected rerun
  is not refused as a run of "another albert config"."""
  make_trainer(tmp_path / "a", "RTE", num_train_steps=2, save_checkpoints_steps=2).run()
  init = str(tmp_path / "a" / "model.ckpt-2")
  out = tmp_path / "run"
  other = TINY.replace(intermediate_size=48)  # the bad flag: another --albert_config_file
  with pytest.raises(CheckpointError, match="model.ckpt-2"):
    make_trainer(out, "RTE", albert_config=other, init_checkpoint=init, num_train_steps=4,
                 save_checkpoints_steps=4).run(do_train=True, do_eval=True)
  assert not out.exists()
  data = tmp_path / "glue"
  shutil.copytree(GLUE, data)
  dev = data / "RTE" / "dev.tsv"
  good = dev.read_text()
  dev.write_text(good + "20\ta premise\ta hypothesis\tmaybe\n")
  with pytest.raises(DataError, match=r"RTE/dev.tsv, line 22: label 'maybe'"):
    make_trainer(out, "RTE", data_dir=data, init_checkpoint=init, num_train_steps=4,
                 save_checkpoints_steps=4).run(do_train=True, do_eval=True)
  assert not out.exists()
  dev.write_text(good)
  results = make_trainer(out, "RTE", data_dir=data, init_checkpoint=init, num_train_steps=4,
                         save_checkpoints_steps=4).run(do_train=True, do_eval=True)
  assert results["global_step"] == 4 and (out / "model.ckpt-best.index").exists()


@pytest.fixture(scope="module")
def rte_run(tmp_path_factory):
  """run_classifier.py --task_name=rte, 4 steps with eval, in a fresh --output_dir."""
  base = tmp_path_factory.mktemp("rte")
  config = base / "albert_config.json"
  TINY.to_json_file(str(config))
  command = [sys.executable, os.path.join(REPO_DIR, "run_classifier.py"), f"--data_dir={GLUE}",
             f"--albert_config_file={config}", f"--spm_model_file={SPM}",
             "--train_batch_size=8", "--train_step=4", "--save_checkpoints_steps=4",
             "--iterations_per_loop=4", f"--output_dir={base / 'run'}", "--do_train",
             "--do_eval"]
  done = subprocess.run(command + ["--task_name=rte", "--max_seq_length=64"], env=_env(),
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  return command, base / "run"


def _snapshot(directory):
  return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
          if p.is_file()}


def test_a_run_directory_of_another_task_is_refused_naming_both(rte_run):
  command, out = rte_run
  before = _snapshot(out)
  done = subprocess.run(command + ["--task_name=mrpc", "--max_seq_length=64", "--do_predict"],
                        env=_env(), capture_output=True, text=True, timeout=300)
  assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: {out} already holds a run of another task or other settings")
  assert "task_name: 'rte' there, 'mrpc' now" in last
  assert _snapshot(out) == before  # no MRPC submission, no mixed eval_results.txt


def test_another_max_seq_length_is_refused_naming_the_flag(rte_run):
  command, out = rte_run
  before = _snapshot(out)
  done = subprocess.run(command + ["--task_name=rte", "--max_seq_length=32", "--train_step=8"],
                        env=_env(), capture_output=True, text=True, timeout=300)
  assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: {out} already holds a run of another task or other settings")
  assert "max_seq_length: 64 there, 32 now" in last
  assert _snapshot(out) == before


def test_resuming_on_other_training_data_is_refused(tmp_path):
  """The resume state holds the input position in the old training features: continuing it
  over a changed train.tsv would read other records from that position."""
  data = tmp_path / "glue"
  shutil.copytree(GLUE, data)
  out = tmp_path / "run"
  make_trainer(out, "RTE", data_dir=data, num_train_steps=4, save_checkpoints_steps=4).run()
  train = data / "RTE" / "train.tsv"
  train.write_text("\n".join(_lines(train)[:-3]) + "\n")  # three rows fewer
  with pytest.raises(TrainingError, match=r"the training data changed since the resume state "
                     rf"in {out}/train_state was saved \(features [0-9a-f]{{16}} there, "
                     r"[0-9a-f]{16} now"):
    make_trainer(out, "RTE", data_dir=data, num_train_steps=8, save_checkpoints_steps=4).run()
  assert not (out / "model.ckpt-8.index").exists()
