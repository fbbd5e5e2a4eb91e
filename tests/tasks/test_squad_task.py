"""run_squad.py end to end, v1.1 and v2.0, on a few real SQuAD questions.

The model must reach a high F1 on the questions it trained on (labels, heads and decoding agree
end to end); predict-only runs work on an unseen file; v2 reports the original's dev-tuned figure
and the honest held-out one; bad input gives one clear line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from albert.config import AlbertConfig
from albert.train.run_dir import parse_results
from conftest import REPO_DIR, TESTDATA

SPM = os.path.join(TESTDATA, "albert_spm", "30k-clean.model")
V1 = os.path.join(TESTDATA, "squad", "dev-v1.1-first2.json")
V2 = os.path.join(TESTDATA, "golden", "finetune", "squad", "squad_v2_mini.json")
SCRIPT = os.path.join(REPO_DIR, "run_squad.py")


# Answers that cover only part of a SentencePiece piece ("gold" in "golden", "8" in "18", "2" in
# "2½"): no span of whole pieces gives them (the round-trip misses), so no model can learn them.
UNREACHABLE = {"gold", "8", "2"}


def _slice(source, path, articles, paragraphs, questions=None):
  data = json.load(open(source))
  data["data"] = data["data"][:articles]
  for article in data["data"]:
    article["paragraphs"] = article["paragraphs"][:paragraphs]
    for paragraph in article["paragraphs"]:
      if questions:
        paragraph["qas"] = [qa for qa in paragraph["qas"][:questions]
                            if not qa["answers"] or qa["answers"][0]["text"] not in UNREACHABLE]
      for qa in paragraph["qas"]:
        qa["answers"] = qa["answers"][:1]  # training takes one answer per question
  with open(path, "w") as f:
    json.dump(data, f)
  return str(path)


def _env():
  return dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2")


def _command(tmp_path, out, *extra):
  config = tmp_path / "albert_config.json"
  AlbertConfig(vocab_size=30000, embedding_size=32, hidden_size=128, num_hidden_layers=2,
               num_attention_heads=4, intermediate_size=256, max_position_embeddings=128,
               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).to_json_file(config)
  return [sys.executable, SCRIPT, f"--albert_config_file={config}", f"--spm_model_file={SPM}",
          f"--output_dir={out}", "--max_seq_length=128", "--doc_stride=64",
          "--max_query_length=32", "--train_batch_size=8", "--predict_batch_size=8",
          "--learning_rate=0.003", "--iterations_per_loop=50", "--dropout_prob=0.0",
          "--seed=3", *extra]


def test_v1_fits_the_questions_it_trained_on_and_predicts_an_unseen_file(tmp_path):
  train = _slice(V1, tmp_path / "train.json", 1, 3, questions=6)
  out = tmp_path / "v1"
  result = subprocess.run(_command(tmp_path, out, "--do_train", "--do_predict",
                                   f"--train_file={train}", f"--predict_file={train}",
                                   "--num_train_epochs=150", "--warmup_proportion=0.1",
                                   "--save_checkpoints_steps=140", "--learning_rate=0.001",
                                   f"--export_dir={tmp_path / 'export'}"),
                          env=_env(), capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Training 150 epoch(s) of 15 examples at batch 8: 281 steps" in result.stdout
  scores = parse_results((out / "eval_results.txt").read_text())
  assert scores and all({"exact_match", "f1", "global_step"} == set(s) for s in scores)
  # A tiny model from scratch, 30 s of training: far above chance (an untrained model scores
  # a few points); the misses are near-duplicate questions of one paragraph (AFC vs NFC team).
  assert max(s["f1"] for s in scores) > 70.0, scores
  predictions = json.load(open(out / "predictions.json"))
  questions = sum(len(p["qas"]) for a in json.load(open(train))["data"] for p in a["paragraphs"])
  assert len(predictions) == questions
  nbest = json.load(open(out / "nbest_predictions.json"))
  assert set(nbest) == set(predictions) and len(next(iter(nbest.values()))) <= 20
  # The Python API answers (question, context) pairs from the checkpoint and from the export
  # exactly as --do_predict did (same windows, same decoding).
  from albert.export.answer import SquadAnswerer
  data = json.load(open(train))["data"]
  pairs = [(qa["question"], p["context"]) for p in data[0]["paragraphs"] for qa in p["qas"]][:4]
  ids = [qa["id"] for p in data[0]["paragraphs"] for qa in p["qas"]][:4]
  settings = dict(max_seq_length=128, doc_stride=64, max_query_length=32)
  from_checkpoint = SquadAnswerer.from_checkpoint(
      str(tmp_path / "albert_config.json"), str(out / "model.ckpt-best"), SPM,
      version_2_with_negative=False, **settings).answer(pairs)
  assert [a["answer"] for a in from_checkpoint] == [predictions[i] for i in ids]
  assert all(0 < a["probability"] <= 1 and a["start"] >= 0 for a in from_checkpoint)
  step = (out / "best_trial.txt").read_text().split(":")[1]
  from_export = SquadAnswerer.from_export(str(tmp_path / "export" / step)).answer(pairs)
  assert [a["answer"] for a in from_export] == [a["answer"] for a in from_checkpoint]
  # Predict-only on a file the model never saw (no answers: nothing scored), from output_dir.
  unseen = json.load(open(V1))
  unseen["data"] = unseen["data"][1:2]
  for paragraph in unseen["data"][0]["paragraphs"]:
    for qa in paragraph["qas"]:
      qa["answers"] = []
  unseen_path = tmp_path / "unseen.json"
  unseen_path.write_text(json.dumps(unseen))
  alone = tmp_path / "alone"
  result = subprocess.run(_command(tmp_path, out, "--do_predict", f"--predict_file={unseen_path}",
                                   f"--cached_dir={alone}"),
                          env=_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  predicted = json.load(open(out / "predictions.json"))
  assert len(predicted) == sum(len(p["qas"]) for p in unseen["data"][0]["paragraphs"])
  assert "Traceback" not in result.stderr


def test_v2_reports_the_original_and_the_heldout_figures(tmp_path):
  train = _slice(V2, tmp_path / "train.json", 4, 1, questions=8)
  out = tmp_path / "v2"
  result = subprocess.run(_command(tmp_path, out, "--version_2_with_negative", "--do_train",
                                   "--do_predict", f"--train_file={train}",
                                   f"--predict_file={train}", "--heldout_fraction=0.25",
                                   "--num_train_epochs=150", "--warmup_proportion=0.1",
                                   "--save_checkpoints_steps=100", "--learning_rate=0.001"),
                          env=_env(), capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Held out 1 of 4 training articles" in result.stdout
  scores = parse_results((out / "eval_results.txt").read_text())
  keys = {"exact", "f1", "null_score_diff_threshold", "heldout_exact", "heldout_f1",
          "heldout_threshold", "HasAns_f1", "NoAns_f1", "global_step"}
  assert all(keys <= set(s) for s in scores)
  assert (out / "null_odds.json").exists() and (out / "predictions.json").exists()
  threshold = json.load(open(out / "null_threshold.json"))
  assert threshold["tuned_on"] == "held-out training articles"
  best = max(scores, key=lambda s: s["heldout_f1"])
  assert threshold["null_score_diff_threshold"] == pytest.approx(best["heldout_threshold"])
  assert max(s["f1"] for s in scores) > 60.0, scores
  # --export_dir alone: the export of model.ckpt-best records the held-out threshold stored
  # with it, the feature settings a client needs, and the SentencePiece model as an asset.
  from albert.export.versioned import read_info
  export = tmp_path / "export"
  done = subprocess.run(_command(tmp_path, out, "--version_2_with_negative",
                                 f"--export_dir={export}"),
                        env=_env(), capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  step = int(best["global_step"])
  info = read_info(str(export / str(step)))
  assert (info["task_kind"], info["global_step"], info["max_seq_length"], info["doc_stride"],
          info["max_query_length"], info["do_lower_case"]) == ("squad_v2", step, 128, 64, 32,
                                                                True)
  assert info["null_score_diff_threshold"] == pytest.approx(best["heldout_threshold"])
  assert (export / str(step) / "assets" / "30k-clean.model").is_file()


@pytest.mark.parametrize("case, message", [
    ("v2 file without the flag", "is a SQuAD 2.0 file"),
    ("malformed json", "bad.json: malformed JSON at line 1, column 11"),
])
def test_bad_input_gives_one_clear_line(tmp_path, case, message):
  extra = ["--do_train", f"--train_file={V2}"]
  if case == "malformed json":
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [')
    extra = ["--do_train", f"--train_file={bad}"]
  result = subprocess.run(_command(tmp_path, tmp_path / "out", *extra), env=_env(),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert message in result.stderr.strip().splitlines()[-1]
  assert not (tmp_path / "out").exists()


def test_prepare_only_builds_the_features_and_stops(tmp_path):
  out = tmp_path / "prep"
  result = subprocess.run(_command(tmp_path, out, "--prepare_only", f"--train_file={V1}",
                                   f"--predict_file={V1}"),
                          env=_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  summaries = [l for l in result.stdout.splitlines() if "examples ->" in l]
  assert len(summaries) == 2 and all("features" in l for l in summaries)
  assert sorted(os.listdir(out)) == ["albert_config.json", "cache"] or \
      sorted(os.listdir(out)) == ["cache"]
  assert not any(n.startswith("model.ckpt") for n in os.listdir(out))
  # A second run reuses both caches.
  again = subprocess.run(_command(tmp_path, out, "--prepare_only", f"--train_file={V1}",
                                  f"--predict_file={V1}"),
                         env=_env(), capture_output=True, text=True, timeout=300)
  assert again.stdout.count("(reused)") == 2, again.stdout


# Short paragraphs: every window fits a length bucket below --max_seq_length (32 or 64 of 128).
_FACTS = [
    ("Birds", [("The robin built a nest in the old oak tree last April.",
                [("What did the robin build?", "a nest"), ("When was the nest built?",
                                                           "last April")],
                "What did the eagle build?"),
               ("Swallows fly south to Africa every autumn.",
                [("Where do swallows fly?", "south to Africa")], "Where do crows fly?")]),
    ("Rivers", [("The Danube flows through Vienna and Budapest into the Black Sea.",
                 [("Which sea does the Danube reach?", "the Black Sea"),
                  ("Which cities does the Danube flow through?", "Vienna and Budapest")],
                 "Which sea does the Rhine reach?"),
                ("The Nile is the longest river in Africa.",
                 [("What is the longest river in Africa?", "The Nile")],
                 "What is the longest river in Asia?")]),
    ("Bread", [("Bakers knead the dough for ten minutes before it rises.",
                [("How long is the dough kneaded?", "ten minutes"),
                 ("Who kneads the dough?", "Bakers")], "Who bakes the cake?"),
               ("Rye bread is dark and dense.",
                [("What is dark and dense?", "Rye bread")], "What is light and sweet?")]),
]


def _short_v2(path, answers=True):
  """A SQuAD 2.0 file of short paragraphs, each with answerable questions and one that is not."""
  data, n = [], 0
  for title, paragraphs in _FACTS:
    article = {"title": title, "paragraphs": []}
    for context, answerable, impossible in paragraphs:
      qas = []
      for question, text in answerable:
        n += 1
        qas.append({"id": f"q{n}", "question": question, "is_impossible": False, "answers": [
            {"text": text, "answer_start": context.index(text)}] if answers else []})
      n += 1
      qas.append({"id": f"q{n}", "question": impossible, "is_impossible": True, "answers": [],
                  "plausible_answers": [{"text": context.split()[0], "answer_start": 0}]})
      article["paragraphs"].append({"context": context, "qas": qas})
    data.append(article)
  path.write_text(json.dumps({"version": "v2.0", "data": data}))
  return str(path), n


def _run(command, timeout=600):
  result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=timeout)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  return result


def test_v2_with_default_buckets_trains_and_predicts_then_predicts_without_train_file(tmp_path):
  """The v2 head's p_mask followed the bucket (it crashed: 64 vs 128); predict-only v2 runs
  need no --train_file and use the threshold stored with the checkpoint, or say there is none."""
  dev, count = _short_v2(tmp_path / "short.json")
  command = _command(tmp_path, tmp_path / "v2", "--do_train", "--do_predict",
                     f"--train_file={dev}", f"--predict_file={dev}", "--num_train_epochs=3")
  command[1] = os.path.join(REPO_DIR, "run_squad_v2.py")  # the original's command, default flags
  first = _run(command)
  out = tmp_path / "v2"
  scores = parse_results((out / "eval_results.txt").read_text())
  assert len(scores) == 1 and {"exact", "f1", "heldout_f1", "heldout_threshold"} <= set(scores[0])
  stored = json.load(open(out / "null_threshold.json"))
  assert stored["null_score_diff_threshold"] == pytest.approx(scores[0]["heldout_threshold"])
  assert len(json.load(open(out / "predictions.json"))) == count
  assert "heldout_exact/heldout_f1 use the held-out threshold" in first.stdout
  # Predict-only on the same run, no --train_file: every checkpoint is scored already.
  again = _run(_command(tmp_path, out, "--version_2_with_negative", "--do_predict",
                        f"--predict_file={dev}"))
  assert len(parse_results((out / "eval_results.txt").read_text())) == 1
  assert (f"held-out threshold {stored['null_score_diff_threshold']:.4f} stored with "
          f"{out / 'model.ckpt-best'}") in again.stdout
  # Predict-only from that checkpoint into a new directory, on a file without answers: the
  # threshold stored beside the checkpoint decides the null answers; nothing is written there.
  unlabelled, _ = _short_v2(tmp_path / "unlabelled.json", answers=False)
  before = sorted(os.listdir(out))
  fresh = tmp_path / "fresh"
  third = _run(_command(tmp_path, fresh, "--version_2_with_negative", "--do_predict",
                        f"--predict_file={unlabelled}",
                        f"--init_checkpoint={out / 'model.ckpt-best'}"))
  assert sorted(os.listdir(out)) == before
  assert "predictions.json uses the null threshold" in third.stdout
  predictions = json.load(open(fresh / "predictions.json"))
  null_odds = json.load(open(fresh / "null_odds.json"))
  nbest = json.load(open(fresh / "nbest_predictions.json"))
  threshold = stored["null_score_diff_threshold"]
  assert len(predictions) == count
  assert predictions == {q: "" if null_odds[q] > threshold else nbest[q][0]["text"]
                         for q in predictions}
  # A checkpoint without a stored threshold: said, and every question is answered.
  bare = tmp_path / "bare"
  bare.mkdir()
  for suffix in (".index", ".data-00000-of-00001"):
    shutil.copy(out / f"model.ckpt-best{suffix}", bare / f"model.ckpt-best{suffix}")
  fourth = _run(_command(tmp_path, tmp_path / "fourth", "--version_2_with_negative",
                         "--do_predict", f"--predict_file={unlabelled}",
                         f"--init_checkpoint={bare / 'model.ckpt-best'}"))
  assert "no null threshold is stored with" in fourth.stdout
  predictions = json.load(open(tmp_path / "fourth" / "predictions.json"))
  assert predictions == {q: n[0]["text"] for q, n in nbest.items()}


def _duplicate_id(tmp_path):
  data = json.load(open(V1))
  data["data"] = data["data"][:1]
  qas = data["data"][0]["paragraphs"][1]["qas"]
  qas[1]["id"] = data["data"][0]["paragraphs"][0]["qas"][0]["id"]
  path = tmp_path / "dup.json"
  path.write_text(json.dumps(data))
  return str(path), qas[1]["id"]


@pytest.mark.parametrize("case", ["duplicate id", "n_best_size 0", "v1 file, v2 command",
                                  "v2 file, v1 command", "predict-only, no checkpoint"])
def test_bad_runs_are_refused_in_one_line_before_anything_is_written(tmp_path, case):
  command = _command(tmp_path, tmp_path / "out", "--do_predict", f"--predict_file={V1}")
  if case == "duplicate id":
    path, qas_id = _duplicate_id(tmp_path)
    command += ["--do_train", f"--train_file={V1}", f"--predict_file={path}"]
    message = f"{path}: question id '{qas_id}' is used twice"
  elif case == "n_best_size 0":
    command += ["--n_best_size=0"]
    message = "--n_best_size must be at least 1, got 0"
  elif case == "v1 file, v2 command":
    command[1] = os.path.join(REPO_DIR, "run_squad_v2.py")
    command += ["--init_checkpoint=" + str(tmp_path)]
    message = f"{V1} looks like a SQuAD 1.1 file (no question has an \"is_impossible\" key " \
              "(version '1.1')): use run_squad_v1.py"
  elif case == "v2 file, v1 command":
    command[1] = os.path.join(REPO_DIR, "run_squad_v1.py")
    command += [f"--predict_file={V2}", "--init_checkpoint=" + str(tmp_path)]
    message = f"{V2} is a SQuAD 2.0 file"
  else:
    message = f"--do_predict needs a checkpoint: none in --output_dir ({tmp_path / 'out'})"
  result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert message in last, last
  assert "--do_eval" not in last and "--version_2_with_negative" not in last
  if case == "v2 file, v1 command":
    assert last.endswith(": use run_squad_v2.py")
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("setting, message", [
    ({"n_best_size": 0}, "--n_best_size must be at least 1, got 0"),
    ({"max_answer_length": 0}, "--max_answer_length must be at least 1, got 0"),
    ({"doc_stride": 0}, "--doc_stride must be at least 1, got 0"),
    ({"max_query_length": -1}, "--max_query_length must be at least 1, got -1"),
    ({"start_n_top": 0, "version_2_with_negative": True}, "--start_n_top must be at least 1"),
    ({"end_n_top": 0, "version_2_with_negative": True}, "--end_n_top must be at least 1"),
    ({"dropout_prob": 1.0}, "--dropout_prob must be in [0, 1), got 1.0"),
])
def test_squad_settings_that_leave_nothing_to_compute_are_refused(tmp_path, setting, message):
  from albert.errors import FlagError
  from albert.tasks.finetune import FinetuneConfig
  from albert.tasks.squad import SquadTask, SquadTaskConfig
  finetune = FinetuneConfig(albert_config=AlbertConfig(vocab_size=100), output_dir=str(tmp_path),
                            max_seq_length=128)
  with pytest.raises(FlagError) as error:
    SquadTask(SquadTaskConfig(finetune, **setting))
  assert message in str(error.value)


def test_stored_threshold_is_read_without_writing(tmp_path):
  """The threshold recorded for a checkpoint's step, else null_threshold.json when it names that
  checkpoint; reading writes nothing (it used to write null_threshold.json)."""
  from albert.errors import DataError
  from albert.train.run_dir import RunDir
  from albert.tasks.finetune import FinetuneConfig
  from albert.tasks.squad import SquadTask, SquadTaskConfig
  run = RunDir(str(tmp_path / "run"))
  os.makedirs(run.state_dir)
  for step in (5, 9):
    for suffix in (".index", ".data-00000-of-00001"):
      (tmp_path / "run" / f"model.ckpt-{step}{suffix}").write_bytes(b"x")
  run.append_results({"global_step": 5, "heldout_f1": 50.0, "heldout_threshold": 0.25})
  run.append_results({"global_step": 9, "heldout_f1": 40.0, "heldout_threshold": -1.5})
  run.update_best(5, "heldout_f1", 50.0)
  task = SquadTask(SquadTaskConfig(
      FinetuneConfig(albert_config=AlbertConfig(vocab_size=100), output_dir=run.path,
                     max_seq_length=128), version_2_with_negative=True))
  before = sorted(os.listdir(run.path))
  best = task.stored_threshold(run.best_prefix)
  assert (best["threshold"], best["global_step"], best["checkpoint"]) == (0.25, 5,
                                                                          "model.ckpt-best")
  assert task.stored_threshold(run.prefix(9))["threshold"] == -1.5
  assert sorted(os.listdir(run.path)) == before
  # A copied checkpoint with its null_threshold.json (no eval_results.txt beside it).
  copy = tmp_path / "copy"
  copy.mkdir()
  for name in os.listdir(run.path):
    if name.startswith("model.ckpt-best"):
      shutil.copy(os.path.join(run.path, name), copy / name)
  assert task.stored_threshold(str(copy / "model.ckpt-best")) is None
  (copy / "null_threshold.json").write_text(json.dumps(
      {"null_score_diff_threshold": 0.25, "global_step": 5, "checkpoint": "model.ckpt-best"}))
  assert task.stored_threshold(str(copy / "model.ckpt-best"))["threshold"] == 0.25
  shutil.copy(copy / "model.ckpt-best.index", copy / "model.ckpt-7.index")
  assert task.stored_threshold(str(copy / "model.ckpt-7")) is None  # another checkpoint's
  (copy / "null_threshold.json").write_text("{")
  with pytest.raises(DataError, match=r"null_threshold.json: not a null threshold file"):
    task.stored_threshold(str(copy / "model.ckpt-best"))


def test_predict_on_a_changed_file_reports_its_own_scores(tmp_path):
  """--do_predict on another file with answers scores the checkpoints again on it: the plain
  exact_match / f1 printed and recorded are the new file's, not those of the first file."""
  train = _slice(V1, tmp_path / "train.json", 1, 2, questions=4)
  out = tmp_path / "out"
  first = subprocess.run(_command(tmp_path, out, "--do_train", "--do_predict",
                                  f"--train_file={train}", f"--predict_file={train}",
                                  "--num_train_epochs=4", "--save_checkpoints_steps=1000"),
                         env=_env(), capture_output=True, text=True, timeout=600)
  assert first.returncode == 0, first.stderr[-3000:]
  (before,) = parse_results((out / "eval_results.txt").read_text())
  assert before["exact_match"] < 100.0  # a few steps from scratch
  # The same questions, each answered by what the model predicted: a perfect score.
  predictions = json.load(open(out / "predictions.json"))
  data = json.load(open(train))
  for article in data["data"]:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        text = predictions[qa["id"]]
        qa["answers"] = [{"text": text, "answer_start": max(paragraph["context"].find(text), 0)}]
  changed = tmp_path / "changed.json"
  changed.write_text(json.dumps(data))
  again = subprocess.run(_command(tmp_path, out, "--do_predict", f"--predict_file={changed}"),
                         env=_env(), capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert ("SQuAD 1.1: exact_match 100.000, f1 100.000, predict/exact_match 100.000, "
          "predict/f1 100.000") in again.stdout
  assert "The eval data changed since model.ckpt-" in again.stdout
  after = parse_results((out / "eval_results.txt").read_text())
  assert len(after) == 2 and after[0] == before
  assert (after[1]["exact_match"], after[1]["f1"]) == (100.0, 100.0)
