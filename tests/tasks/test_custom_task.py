"""run_classifier --task_name=custom end to end on a tiny model: your own files (GLUE rows
rewritten as CSV, JSON Lines and a multi-label TSV in tests/testdata/custom/), each task type
trained, scored and predicted; the GLUE-equality checks (SST-2's files as a custom task give
SST-2's records and results; STS-B's as a regression task give STS-B's); eval_results equal to
the metrics recomputed here with numpy from the predictions; labels.txt, a predict-only run on a
run directory, a restart with other labels refused, bad input in any file leaving nothing.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from albert import checkpoint
from albert.errors import DataError
from albert.tasks.classifier import CustomTaskConfig
from albert.train.run_dir import parse_results
from conftest import REPO_DIR
from support.classifier_runs import CUSTOM, GLUE, SPM, TINY, make_trainer

STEPS = dict(num_train_steps=10, save_checkpoints_steps=5, iterations_per_loop=5)


def _jsonl(path):
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def _results(path):
  return parse_results(open(path, encoding="utf-8").read())


def _log_softmax(logits):
  shifted = logits - logits.max(-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _f1(tp, fp, fn):
  return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


# -------------------------------------------------------------------------- equal to GLUE
def test_sst2_files_as_a_custom_task_give_sst2s_records_checkpoints_and_results(tmp_path):
  glue = make_trainer(tmp_path / "glue", "SST-2", **STEPS)
  glue.run(do_train=True, do_eval=True)
  mine = make_trainer(tmp_path / "custom", "custom", **STEPS, custom=CustomTaskConfig(
      train_file=os.path.join(GLUE, "SST-2", "train.tsv"),
      dev_file=os.path.join(GLUE, "SST-2", "dev.tsv")))
  mine.run(do_train=True, do_eval=True)
  for split in ("train", "eval"):
    with open(glue.task.input_files(split)[0], "rb") as a, \
        open(mine.task.input_files(split)[0], "rb") as b:
      assert a.read() == b.read()
  _, want = checkpoint.read_checkpoint(str(tmp_path / "glue" / "model.ckpt-10"))
  _, got = checkpoint.read_checkpoint(str(tmp_path / "custom" / "model.ckpt-10"))
  assert sorted(want) == sorted(got)
  assert all(np.array_equal(want[name], got[name]) for name in want)
  # eval_results.txt: SST-2's lines, byte for byte, plus the custom task's extra keys.
  glue_lines = (tmp_path / "glue" / "eval_results.txt").read_text().splitlines()
  mine_lines = (tmp_path / "custom" / "eval_results.txt").read_text().splitlines()
  assert [l for l in mine_lines if l.split(" = ")[0] in ("eval_accuracy", "eval_loss",
                                                          "global_step")] == glue_lines
  assert {l.split(" = ")[0] for l in mine_lines} == {
      "eval_accuracy", "eval_loss", "global_step", "macro_f1", "f1", "matthew_corr"}
  assert ((tmp_path / "glue" / "best_trial.txt").read_text()
          == (tmp_path / "custom" / "best_trial.txt").read_text())
  assert (tmp_path / "custom" / "labels.txt").read_text() == "0\n1\n"


def test_sts_b_files_as_a_regression_task_give_sts_bs_numbers(tmp_path):
  glue = make_trainer(tmp_path / "glue", "STS-B", **STEPS)
  glue.run(do_train=True, do_eval=True, do_predict=True)
  mine = make_trainer(tmp_path / "custom", "custom", **STEPS, custom=CustomTaskConfig(
      train_file=os.path.join(GLUE, "STS-B", "train.tsv"),
      dev_file=os.path.join(GLUE, "STS-B", "dev.tsv"),
      test_file=os.path.join(GLUE, "STS-B", "test.tsv"), task_type="regression",
      text_a_column="sentence1", text_b_column="sentence2", label_column="score",
      id_column="index"))
  mine.run(do_train=True, do_eval=True, do_predict=True)
  for name in ("eval_results.txt", "best_trial.txt"):
    assert (tmp_path / "glue" / name).read_bytes() == (tmp_path / "custom" / name).read_bytes()
  assert set(_results(tmp_path / "custom" / "eval_results.txt")[0]) == {
      "MSE", "eval_loss", "pearson", "spearman", "global_step"}
  # predictions.jsonl: the score as the label, no probabilities; GLUE writes it too.
  glue_rows = _jsonl(tmp_path / "glue" / "predictions.jsonl")
  rows = _jsonl(tmp_path / "custom" / "predictions.jsonl")
  assert [r["id"] for r in rows] == [str(i) for i in range(20)] == [r["id"] for r in glue_rows]
  assert [r["label"] for r in rows] == [r["label"] for r in glue_rows]
  assert all(set(r) == {"id", "label"} and isinstance(r["label"], float) for r in rows)
  assert not (tmp_path / "custom" / "labels.txt").exists()  # regression: no label list
  # eval_results of step 10 = the metrics recomputed from the dev predictions with numpy.
  dev = mine.predict("eval", checkpoint_path=str(tmp_path / "custom" / "model.ckpt-10"))
  scores, targets = dev["logits"].astype(np.float64), dev["label_ids"].astype(np.float64)
  from scipy import stats
  want = {"MSE": np.mean((scores - targets) ** 2), "eval_loss": np.mean((scores - targets) ** 2),
          "pearson": np.corrcoef(scores, targets)[0, 1],
          "spearman": stats.spearmanr(scores, targets)[0]}
  recorded = _results(tmp_path / "custom" / "eval_results.txt")[-1]
  for key, value in want.items():
    assert recorded[key] == pytest.approx(value, abs=1e-6), key


# ----------------------------------------------------------------------- each task type
def test_classification_on_a_csv_trains_scores_and_predicts_by_label_name(tmp_path):
  trainer = make_trainer(tmp_path, "custom", **STEPS, custom=CustomTaskConfig(
      train_file=os.path.join(CUSTOM, "mrpc_train.csv"),
      dev_file=os.path.join(CUSTOM, "mrpc_dev.csv"),
      test_file=os.path.join(CUSTOM, "mrpc_test.csv"), text_a_column="first",
      text_b_column="second", label_column="verdict", id_column="pair_id"))
  trainer.run(do_train=True, do_eval=True, do_predict=True)
  names = ["different", "paraphrase"]
  assert (tmp_path / "labels.txt").read_text() == "different\nparaphrase\n"
  # Predictions: one per test row, in input order, label names from the list, sums of 1.
  rows = _jsonl(tmp_path / "predictions.jsonl")
  with open(os.path.join(CUSTOM, "mrpc_test.csv"), encoding="utf-8", newline="") as f:
    ids = [row["pair_id"] for row in csv.DictReader(f)]
  assert [r["id"] for r in rows] == ids and len(rows) == 20
  for r in rows:
    assert list(r["probabilities"]) == names and r["label"] in names
    assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
  # eval_results of step 10 = the metrics recomputed from the dev predictions with numpy.
  dev = trainer.predict("eval", checkpoint_path=str(tmp_path / "model.ckpt-10"))
  logits, labels = dev["logits"].astype(np.float64), dev["label_ids"]
  predicted = logits.argmax(-1)
  recorded = _results(tmp_path / "eval_results.txt")[-1]
  assert recorded["global_step"] == 10
  counts = [(np.sum((labels == k) & (predicted == k)), np.sum((labels != k) & (predicted == k)),
             np.sum((labels == k) & (predicted != k))) for k in range(2)]
  present = [k for k in range(2) if k in labels or k in predicted]
  tp, tn = counts[1][0], np.sum((labels == 0) & (predicted == 0))
  fp, fn = counts[1][1], counts[1][2]
  denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
  want = {"eval_accuracy": np.mean(labels == predicted),
          "eval_loss": np.mean(-_log_softmax(logits)[np.arange(20), labels]),
          "macro_f1": np.mean([_f1(*counts[k]) for k in present]),
          "f1": _f1(tp, fp, fn),
          "matthew_corr": (tp * tn - fp * fn) / denominator if denominator else 0.0}
  for key, value in want.items():
    assert recorded[key] == pytest.approx(value, abs=1e-6), key
  # The per-label report of that evaluation: support and the confusion matrix.
  report = (tmp_path / "eval_reports" / "model.ckpt-10.txt").read_text().splitlines()
  matrix = [[int(v) for v in line.split()[1:]] for line in report[-2:]]
  assert matrix == [[int(np.sum((labels == i) & (predicted == j))) for j in range(2)]
                    for i in range(2)]
  supports = [int(line.split()[-1]) for line in report[3:5]]
  assert supports == [int(np.sum(labels == k)) for k in range(2)]


def test_multi_label_trains_scores_and_predicts_every_label_over_the_threshold(tmp_path):
  trainer = make_trainer(tmp_path, "custom", **STEPS, custom=CustomTaskConfig(
      train_file=os.path.join(CUSTOM, "topics_train.tsv"),
      dev_file=os.path.join(CUSTOM, "topics_dev.tsv"),
      test_file=os.path.join(CUSTOM, "topics_test.tsv"), label_column="tags",
      task_type="multi_label", multi_label_threshold=0.4))
  trainer.run(do_train=True, do_eval=True, do_predict=True)
  names = ["digits", "long", "negation", "short"]
  assert trainer.task.best_metric == "micro_f1"
  rows = _jsonl(tmp_path / "predictions.jsonl")
  assert len(rows) == 60 and [r["id"] for r in rows] == list(range(2, 62))
  for r in rows:
    assert list(r["probabilities"]) == names
    assert r["label"] == [n for n in names if r["probabilities"][n] >= 0.4]
  dev = trainer.predict("eval", checkpoint_path=str(tmp_path / "model.ckpt-10"))
  logits, labels = dev["logits"].astype(np.float64), dev["label_ids"].astype(bool)
  chosen = dev["probabilities"] >= 0.4
  tp = np.sum(chosen & labels, axis=0)
  fp, fn = np.sum(chosen & ~labels, axis=0), np.sum(~chosen & labels, axis=0)
  bce = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
  want = {"micro_f1": _f1(tp.sum(), fp.sum(), fn.sum()),
          "macro_f1": np.mean([_f1(*c) for c in zip(tp, fp, fn)]),
          "subset_accuracy": np.mean(np.all(chosen == labels, axis=-1)),
          "eval_loss": np.mean(bce.mean(-1))}
  recorded = _results(tmp_path / "eval_results.txt")[-1]
  for key, value in want.items():
    assert recorded[key] == pytest.approx(value, abs=1e-6), key
  with open(os.path.join(CUSTOM, "topics_dev.tsv"), encoding="utf-8") as f:
    tags = [line.rstrip("\n").split("\t")[1].split("|") for line in f][1:]
  np.testing.assert_array_equal(labels, [[n in t for n in names] for t in tags])
  report = (tmp_path / "eval_reports" / "model.ckpt-10.txt").read_text()
  assert [line.split()[0] for line in report.splitlines()[3:7]] == names


# ----------------------------------------------------------------------------- the script
def _env():
  return dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2")


def _snapshot(directory):
  return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
          if p.is_file()}


def test_run_classifier_on_json_lines_then_a_new_file_scored_with_one_command(tmp_path):
  config = tmp_path / "albert_config.json"
  TINY.to_json_file(str(config))
  script = [sys.executable, os.path.join(REPO_DIR, "run_classifier.py"), "--task_name=custom",
            f"--spm_model_file={SPM}", "--max_seq_length=64", "--num_workers=1"]
  out = tmp_path / "run"
  train = script + [
      f"--albert_config_file={config}", f"--output_dir={out}",
      f"--train_file={os.path.join(CUSTOM, 'rte_train.jsonl')}",
      f"--dev_file={os.path.join(CUSTOM, 'rte_dev.jsonl')}",
      f"--test_file={os.path.join(CUSTOM, 'rte_test.jsonl')}", "--id_column=id",
      "--train_batch_size=8", "--train_step=4", "--save_checkpoints_steps=4",
      "--iterations_per_loop=4", "--do_train", "--do_eval", "--do_predict"]
  done = subprocess.run(train, env=_env(), capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "custom: eval_accuracy" in done.stdout and "macro_f1" in done.stdout
  assert (out / "labels.txt").read_text() == "entailment\nnot_entailment\n"
  rows = _jsonl(out / "predictions.jsonl")
  assert [r["id"] for r in rows] == [f"rte-test-{i}" for i in range(20)]
  # A new file scored with the run directory alone: its labels.txt, albert_config.json and
  # model.ckpt-best (no --labels, --train_file or --albert_config_file).
  new = tmp_path / "new.csv"
  new.write_text("sentence1,sentence2\nA cat sat on the mat.,A cat is sitting.\n"
                 "\"Paris, the capital, is large.\",Paris is small.\n")
  score = script + [f"--output_dir={out}", f"--test_file={new}", "--do_predict"]
  done = subprocess.run(score, env=_env(), capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  rows = _jsonl(out / "predictions.jsonl")
  assert [r["id"] for r in rows] == [2, 3]
  assert all(r["label"] in ("entailment", "not_entailment") for r in rows)
  assert "model.ckpt-best" in done.stdout
  # Another label list for this run directory: refused, naming both, nothing changed.
  before = _snapshot(out)
  done = subprocess.run(score + ["--labels=yes,no"], env=_env(), capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
  last = done.stderr.strip().splitlines()[-1]
  assert last == (f"error: {out}/labels.txt holds the labels entailment,not_entailment of the "
                  f"run in {out}; --labels are yes,no. Use a new --output_dir, or the same "
                  "labels")
  assert _snapshot(out) == before


def test_bad_input_in_any_file_stops_the_run_before_anything_is_written(tmp_path):
  good = {"train_file": os.path.join(CUSTOM, "rte_train.jsonl"),
          "dev_file": os.path.join(CUSTOM, "rte_dev.jsonl"),
          "test_file": os.path.join(CUSTOM, "rte_test.jsonl")}
  bad = {
      "train_file": ('{"sentence1": "A.", "sentence2": "B.", "label": "entailment"}\n{"sen',
                     r"bad.jsonl, line 2, column 2: invalid JSON \(Unterminated string"),
      "dev_file": ('{"sentence1": "A.", "sentence2": "B.", "label": "entailment"}\n'
                   '{"sentence1": "C.", "sentence2": "D.", "label": "maybe"}\n',
                   r"bad.jsonl, line 2, column 'label': label 'maybe' is not one of the task's "
                   r"labels \(entailment, not_entailment: --labels, else the training file's\)"),
      "test_file": ('{"sentence1": "A.", "sentence2": "B."}\n{"sentence1": " ", "sentence2": '
                    '"D."}\n', r"bad.jsonl, line 2, column 'sentence1': empty text"),
  }
  for which, (text, message) in bad.items():
    path = tmp_path / which / "bad.jsonl"
    path.parent.mkdir()
    path.write_text(text)
    out = tmp_path / which / "run"
    with pytest.raises(DataError, match=message):
      make_trainer(out, "custom", **STEPS, custom=CustomTaskConfig(**dict(
          good, **{which: str(path)}))).run(do_train=True, do_eval=True, do_predict=True)
    assert not out.exists(), which
