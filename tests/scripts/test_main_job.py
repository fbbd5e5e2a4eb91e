"""The main job (scripts/main_job.py) end to end on the embedded default, shortened."""

from __future__ import annotations

import os

import pytest

from conftest import REPO_DIR, load_script

pipeline = load_script("main_job")


def test_pipeline_runs_end_to_end_and_resumes(tmp_path, capsys):
  args = ["--output_dir", str(tmp_path), "--vocab_size", "1500", "--dupe_factor", "1",
          "--num_train_steps", "20", "--train_batch_size", "16", "--no-check_baseline",
          "--finetune_steps", "20"]
  assert pipeline.main(args) == 0
  out = capsys.readouterr().out
  for piece in ("== 1.", "== 2.", "== 3.", "== 4.", "== 5.", "frequency baseline",
                "masked_lm_accuracy = ", "step 20/20", "== 6a.", "== 6b.", "== 7.",
                "SST-2 dev accuracy (872 sentences): ", "majority baseline 0.5092"):
    assert piece in out
  # The three raw sentences went through the reloaded export: a label and P(positive) each.
  for sentence in pipeline.SENTENCES:
    assert any(line.strip().endswith(repr(sentence)) and "P(positive) 0." in line
               for line in out.splitlines())
  assert (tmp_path / "sst2_export" / "20" / "saved_model.pb").exists()
  for run in ("sst2_pretrained", "sst2_random"):
    assert "global_step = 20" in (tmp_path / run / "eval_results.txt").read_text()
  model = tmp_path / "model"
  assert (model / "model.ckpt-20.index").exists() and (model / "model.ckpt-best.index").exists()
  assert (tmp_path / "spm.model").exists() and (tmp_path / "albert_config.json").exists()
  assert "global_step = 20" in (model / "eval_results.txt").read_text()
  made = {p: os.stat(tmp_path / p).st_mtime_ns for p in (
      "corpus/train.txt", "corpus/eval.txt", "spm.model", "main_job.json",
      "records/train.tfrecord", "records/eval.tfrecord", "albert_config.json")}
  # A rerun reuses the split, the vocabulary, the records and the training state: nothing of
  # the data is rewritten (the split's time stamps are part of the records' fingerprint).
  assert pipeline.main(args) == 0
  out = capsys.readouterr().out
  assert "reusing" in out and "Resuming from" in out and "step 20/20" not in out
  assert out.count("Resuming from") == 3  # pretraining and both fine-tunings
  assert "(unchanged, kept: the records stay valid)" in out
  assert out.count("1 of 1 output file(s) are complete from an earlier run") == 2
  assert {p: os.stat(tmp_path / p).st_mtime_ns for p in made} == made
  # Other data settings over the trained run are refused before anything is written.
  with pytest.raises(SystemExit) as stopped:
    pipeline.main(args[:3] + ["1400"] + args[4:])
  assert stopped.value.code == 1
  err = capsys.readouterr().err
  assert f"--output_dir={tmp_path} holds a run trained on other data (--vocab_size 1500 then, " \
      "1400 now" in err
  assert {p: os.stat(tmp_path / p).st_mtime_ns for p in made} == made


def test_default_corpus_is_shipped():
  corpus = os.path.join(REPO_DIR, "data", "default", "corpus.txt")
  with open(corpus, encoding="utf-8") as f:
    assert f.read().count("\n\n") == 53  # 54 chapters
  for name, rows in (("train.tsv", 8000), ("dev.tsv", 872)):
    with open(os.path.join(REPO_DIR, "data", "default", "SST-2", name), encoding="utf-8") as f:
      assert len(f.read().splitlines()) == rows + 1  # and a header
