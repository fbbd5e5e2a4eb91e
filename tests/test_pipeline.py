"""The main job (scripts/main_job.py) end to end on the embedded default, shortened."""

from __future__ import annotations

import os

from conftest import REPO_DIR, load_script

pipeline = load_script("main_job")


def test_pipeline_runs_end_to_end_and_resumes(tmp_path, capsys):
  args = ["--output_dir", str(tmp_path), "--vocab_size", "1500", "--dupe_factor", "1",
          "--num_train_steps", "20", "--train_batch_size", "16", "--no-check_baseline"]
  assert pipeline.main(args) == 0
  out = capsys.readouterr().out
  for piece in ("== 1.", "== 2.", "== 3.", "== 4.", "== 5.", "frequency baseline",
                "masked_lm_accuracy = ", "step 20/20"):
    assert piece in out
  model = tmp_path / "model"
  assert (model / "model.ckpt-20.index").exists() and (model / "model.ckpt-best.index").exists()
  assert (tmp_path / "spm.model").exists() and (tmp_path / "albert_config.json").exists()
  assert "global_step = 20" in (model / "eval_results.txt").read_text()
  # A rerun reuses the vocabulary, the records and the training state.
  assert pipeline.main(args) == 0
  out = capsys.readouterr().out
  assert "reusing" in out and "Resuming from" in out and "step 20/20" not in out


def test_default_corpus_is_shipped():
  corpus = os.path.join(REPO_DIR, "data", "default", "corpus.txt")
  with open(corpus, encoding="utf-8") as f:
    assert f.read().count("\n\n") == 53  # 54 chapters
