"""The benchmark scripts' smoke modes still run and report what they promise (slow target).

Speed is never asserted: only that every measurement ran, that the records hold their fields
and that the measured loops compute what they claim (ours and ours_mirror, the same model
through the Trainer and through `make_train_loop`, start from the same loss).
"""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.slow


def test_pretraining_benchmark_quick(tmp_path):
  from benchmarks import pretraining_benchmark as bench  # pylint: disable=g-import-not-at-top
  records = bench.main(["--quick", "--impls", "ours,peer,ours_mirror,trainer", "--no-table",
                        "--work-dir", str(tmp_path / "work")])
  measurements = [r for r in records if r["kind"] == "measurement"]
  assert sorted(m["impl"] for m in measurements) == ["ours", "ours_mirror", "peer", "trainer"]
  for m in measurements:
    assert "error" not in m, m.get("error")
    assert m["steps_per_s"] > 0 and m["peak_rss_mb"] > 100
  by = {m["impl"]: m for m in measurements}
  # The same model and optimizer, from the same seed, through the Trainer's loop and through
  # make_train_loop: the same losses.
  assert by["ours"]["params"] == by["ours_mirror"]["params"] == by["peer"]["params"]
  assert by["ours"]["first_loss"] == pytest.approx(by["ours_mirror"]["first_loss"], abs=1e-5)
  assert by["ours"]["last_loss"] == pytest.approx(by["ours_mirror"]["last_loss"], abs=1e-5)
  ratio = [r for r in records if r["kind"] == "ratio"]
  assert len(ratio) == 1 and ratio[0]["speed_ratio"] > 0 and ratio[0]["peak_rss_ratio"] > 0
  assert [r["kind"] for r in records if r["kind"] == "trainer"] == ["trainer"]


def test_pretraining_benchmark_quick_mixed_bfloat16(tmp_path):
  from benchmarks import pretraining_benchmark as bench  # pylint: disable=g-import-not-at-top
  records = bench.main(["--quick", "--precision", "mixed_bfloat16", "--impls", "ours,ours_mirror",
                        "--no-table", "--work-dir", str(tmp_path / "work")])
  assert records[0]["kind"] == "run" and records[0]["precision"] == "mixed_bfloat16"
  by = {m["impl"]: m for m in records if m["kind"] == "measurement"}
  assert sorted(by) == ["ours", "ours_mirror"]
  assert all(m["precision"] == "mixed_bfloat16" and "error" not in m for m in by.values())
  # The Trainer (policy from TrainerConfig) and the mirror (global policy) run the same model.
  assert by["ours"]["first_loss"] == pytest.approx(by["ours_mirror"]["first_loss"], abs=1e-5)
  assert by["ours"]["last_loss"] == pytest.approx(by["ours_mirror"]["last_loss"], abs=1e-5)


def test_learning_curve_quick(tmp_path):
  from benchmarks import learning_curve  # pylint: disable=g-import-not-at-top
  result = learning_curve.main(["--quick", "--work_dir", str(tmp_path / "work"),
                                "--results_dir", str(tmp_path / "results")])
  steps = result["settings"]["num_train_steps"]
  assert result["final"]["global_step"] == steps
  evals = result["eval"]
  assert evals and evals[-1]["step"] == steps
  assert [e["step"] for e in evals] == sorted({e["step"] for e in evals})
  for e in evals:
    assert 0 <= e["masked_lm_accuracy"] <= 1 and 0 <= e["sentence_order_accuracy"] <= 1
  with open(tmp_path / "results" / "learning_curve.json", encoding="utf-8") as f:
    assert json.load(f)["final"] == result["final"]
  with open(tmp_path / "results" / "learning_curve.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert os.path.getsize(tmp_path / "results" / "learning_curve.png") > 10_000


def test_encoder_benchmark_quick():
  from benchmarks import encoder_benchmark as bench  # pylint: disable=g-import-not-at-top
  records = bench.main(["--quick", "--no-table"])
  measurements = [r for r in records if r["kind"] == "measurement"]
  assert measurements and all("error" not in m for m in measurements), measurements
  assert {m["impl"] for m in measurements} == {"ours", "peer"}
  for m in measurements:
    assert m["tokens_per_s"] > 0 and m["peak_rss_mb"] > 100
  cells = {(m["case"], m["mode"], m["xla"], m["precision"]) for m in measurements}
  ratios = [r for r in records if r["kind"] == "ratio"]
  assert len(ratios) == len(cells) and all(r["speed_ratio"] > 0 for r in ratios)
  assert [r for r in records if r["kind"] == "ceiling"]
