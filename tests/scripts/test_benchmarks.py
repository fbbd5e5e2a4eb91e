"""The benchmark scripts' smoke modes still run and report what they promise (slow target).

Speed is never asserted: only that every measurement ran, that the records hold their fields
and that the measured loops compute what they claim (ours and ours_mirror, the same model
through the Trainer and through `make_train_loop`, start from the same loss).
"""

from __future__ import annotations

import json
import math
import os

import pytest
from conftest import TESTDATA

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


def test_squad_benchmark_quick(tmp_path):
  from benchmarks import squad_benchmark as bench  # pylint: disable=g-import-not-at-top
  records = bench.main(["--quick", "--no-table", "--hf-python", "",
                        "--work-dir", str(tmp_path / "work")])
  assert records[0]["kind"] == "run" and records[0]["input"].endswith("dev-v1.1-first3.json")
  measurements = [r for r in records if r["kind"] == "measurement"]
  features = [m for m in measurements if m["part"] == "features"]
  assert [(m["impl"], m.get("workers"), m.get("hf_threads")) for m in features] == [
      ("ours", 1, None), ("ours", 2, None), ("ours_memory", 1, None), ("hf", None, 0),
      ("hf", None, 1)]
  # Without an interpreter that has transformers, the HuggingFace side says so (no figure).
  assert all("skipped" in m and "wall_s" not in m for m in features if m["impl"] == "hf")
  ours = [m for m in features if m["impl"] != "hf"]
  assert all("error" not in m for m in ours), ours
  # The first 3 articles of dev: 1,169 questions -> 1,196 features at 384/128/64, whatever
  # the path; the records are byte for byte the same with 1 and 2 workers, and the second
  # build_squad_cache call reuses the first's cache.
  assert {(m["questions"], m["features"]) for m in ours} == {(1169, 1196)}
  by_workers = {m["workers"]: m for m in ours if m["impl"] == "ours"}
  assert by_workers[1]["records_sha256"] == by_workers[2]["records_sha256"]
  assert by_workers[1]["reused"] and by_workers[2]["reused"]
  assert by_workers[2]["peak_rss_largest_worker_mb"] > 0  # two worker processes ran
  for m in ours:
    assert m["wall_s"] > 0 and m["cpu_s"] > 0 and m["peak_rss_mb"] > 10
  (ratio,) = [r for r in records if r["kind"] == "feature_ratio"]
  assert ratio["records_identical"] is True and ratio["wall_speedup"] > 0

  models = [m for m in measurements if m["part"] == "model"]
  assert sorted((m["impl"], m["mode"]) for m in models) == [
      ("ours", "predict"), ("ours", "train"), ("peer", "predict"), ("peer", "train")]
  for m in models:
    assert "error" not in m, m.get("error")
    assert m["examples_per_s"] > 0 and m["peak_rss_mb"] > 100 and m["seq"] == 64
  # The same sizes: our v1 model (encoder, pooler, cls/squad) and BertSpanLabeler over
  # AlbertEncoder have the same number of parameters.
  assert len({m["params"] for m in models}) == 1
  for m in models:
    if m["mode"] == "train":
      # A fresh v1 head is close to uniform over the 64 positions: loss near ln(64) = 4.16.
      assert m["batch"] == 4 and abs(m["first_loss"] - math.log(64)) < 0.25
      assert abs(m["last_loss"] - m["first_loss"]) < 0.25  # a few warm-up steps at lr ~0
    else:
      assert m["batch"] == 8 and m["output_shape"] == [8, 64] and m["logits_finite"]
  ratios = {r["mode"]: r for r in records if r["kind"] == "ratio"}
  assert sorted(ratios) == ["predict", "train"]
  assert all(r["speed_ratio"] > 0 and len(r["speed_ratio_paired_all"]) == 1
             for r in ratios.values())


def test_finetune_benchmark_quick(tmp_path):
  import math

  import numpy as np

  from albert.data.glue import cache as glue_cache  # pylint: disable=g-import-not-at-top
  from albert.tokenization import TokenizerSpec  # pylint: disable=g-import-not-at-top
  from benchmarks import finetune_benchmark as bench  # pylint: disable=g-import-not-at-top
  cache = tmp_path / "cache"
  records = bench.main(["--quick", "--no-table", "--cache-dir", str(cache)])
  measurements = [r for r in records if r["kind"] == "measurement"]
  cells = [(m["impl"], m["padding"], m["method"]) for m in measurements]
  assert sorted(cells) == sorted((impl, padding, method) for impl in ("ours", "peer")
                                 for padding in ("64", "buckets")
                                 for method in ("interleaved", "separate"))
  for m in measurements:
    assert "error" not in m, m.get("error")
    assert m["train_examples_per_s"] > 0 and m["eval_examples_per_s"] > 0
    assert m["peak_rss_mb"] > 100
    # A fresh two-label head starts at a loss near log(2) on every shape.
    assert all(abs(s["first_loss"] - math.log(2)) < 0.1 for s in m["train_shapes"])
  assert len({m["params"] for m in measurements}) == 1  # the same sizes for ours and the peer
  # The shapes timed are the occupied buckets of the cached train and dev lengths, each with
  # its number of batches: n_b / batch per training epoch, whole padded batches per dev pass.
  spec = TokenizerSpec(spm_model_file=bench.SPM_MODEL, vocab_file=None, do_lower_case=True)
  for m in measurements:
    cap = m["max_seq_length"]
    boundaries = [32, 64, 128] if m["padding"] == "buckets" else [cap]
    for split, shapes in (("train", m["train_shapes"]), ("dev", m["eval_shapes"])):
      _, meta = glue_cache.build_glue_cache("mrpc", bench.QUICK_GLUE_DIR, split, spec, cap,
                                               str(cache))
      index = np.searchsorted(boundaries, meta["lengths"], side="left")
      counts = np.bincount(index, minlength=len(boundaries))
      occupied = [b for b, n in zip(boundaries, counts) if n]
      assert [s["length"] for s in shapes] == occupied
      want = [n / 8 if split == "train" else math.ceil(n / 8) for n in counts if n]
      assert [s["batches"] for s in shapes] == want
  by = {(m["impl"], m["padding"], m["method"]): m for m in measurements}
  ours = by[("ours", "buckets", "separate")]
  # The Trainer's real bucketed input fed the loop the batches the estimate counted.
  assert ours["stream_same_batches"] is True and ours["stream_steps"] == 4
  assert set(ours["stream_lengths"]) <= {s["length"] for s in ours["train_shapes"]}
  for padding in ("64", "buckets"):  # interleaved: one process, rounds of both, in turn
    a, b = by[("ours", padding, "interleaved")], by[("peer", padding, "interleaved")]
    assert a["peak_rss_mb"] == b["peak_rss_mb"]
    for x, y in zip(a["train_shapes"] + a["eval_shapes"], b["train_shapes"] + b["eval_shapes"]):
      assert x["calls"] == y["calls"] == len(x["pair_ratios"]) >= 2
      assert x["pair_ratios"] == y["pair_ratios"]
  ratios = {(r["padding"], r["method"]): r for r in records if r["kind"] == "ratio"}
  assert sorted(ratios) == [("64", "interleaved"), ("64", "separate"),
                            ("buckets", "interleaved"), ("buckets", "separate")]
  assert all(r["train_ratio"] > 0 and r["eval_ratio"] > 0 for r in ratios.values())
  buckets = [r for r in records if r["kind"] == "buckets"]
  assert sorted((r["impl"], r["method"]) for r in buckets) == [
      ("ours", "interleaved"), ("ours", "separate"), ("peer", "interleaved"),
      ("peer", "separate")]
  assert all(r["train_speedup_vs_64"] > 0 for r in buckets)
  conversions = [r for r in records if r["kind"] == "conversion"]
  assert sorted(c["workers"] for c in conversions) == [1, 2]
  for c in conversions:  # TF-free, 20 rows, the same bytes for any number of workers
    assert not c["tensorflow_loaded"] and c["num_examples"] == 20
  assert len({c["tfrecord_bytes"] for c in conversions}) == 1


def test_finetune_benchmark_compares_conversion_with_the_originals_anchor():
  from benchmarks import finetune_benchmark as bench  # pylint: disable=g-import-not-at-top
  anchor = os.path.join(TESTDATA, "golden", "finetune",
                        "classifier", "sst2_train_conversion_timing.json")
  runs = [{"task": "sst-2", "max_seq_length": 128, "workers": 1, "num_examples": 67349,
           "tfrecord_bytes": 35533068, "conversion_s": s, "process_wall_s": s + 1,
           "peak_rss_mb": 100.0} for s in (4.0, 5.0, 9.0)]
  (record,) = bench.conversion_vs_anchor(runs, anchor)
  assert record["runs"] == 3 and record["conversion_s"] == 5.0
  # WARN: read 1.52 + tokenizer 0.06 + conversion 10.09 s; wall 0:23.38; 704,428 kB.
  assert record["anchor_warn_conversion_s"] == pytest.approx(11.67)
  assert record["anchor_warn_process_wall_s"] == pytest.approx(23.38)
  assert record["anchor_warn_peak_rss_mb"] == pytest.approx(704428 / 1024)
  assert record["conversion_speedup_vs_warn"] == pytest.approx(11.67 / 5.0)
  assert record["anchor_info_conversion_s"] == pytest.approx(1.58 + 0.09 + 16.6)
  assert record["anchor_info_process_wall_s"] == pytest.approx(33.41)


def test_serving_benchmark_quick(tmp_path):
  """A stand-in for the main job's outputs (tiny config, SST-2 checkpoint and export), then
  every artifact timed, sized, measured for memory and scored on the test SST-2 dev rows."""
  from albert import checkpoint  # pylint: disable=g-import-not-at-top
  from albert.config import AlbertConfig  # pylint: disable=g-import-not-at-top
  from albert.export import serving  # pylint: disable=g-import-not-at-top
  from albert.models import build_classifier_model  # pylint: disable=g-import-not-at-top
  from benchmarks import serving_benchmark as bench  # pylint: disable=g-import-not-at-top
  from conftest import randomize  # pylint: disable=g-import-not-at-top
  main_job = tmp_path / "main_job"
  config = AlbertConfig(vocab_size=30000, embedding_size=16, hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=128)
  os.makedirs(main_job)
  config.to_json_file(str(main_job / "albert_config.json"))
  spm = os.path.join(TESTDATA, "albert_spm", "30k-clean.model")
  with open(spm, "rb") as f, open(main_job / "spm.model", "wb") as out:
    out.write(f.read())
  model = build_classifier_model(config, 2)
  randomize(model, seed=1)
  prefix = checkpoint.save_tf1_checkpoint(model, str(main_job / "sst2_pretrained" / "model.ckpt"),
                                          global_step=4)
  os.rename(prefix + ".index", str(main_job / "sst2_pretrained" / "model.ckpt-best.index"))
  os.rename(prefix + ".data-00000-of-00001",
            str(main_job / "sst2_pretrained" / "model.ckpt-best.data-00000-of-00001"))
  serving.ClassifierServing(model, serving.ClassifierSpec.for_task("sst-2", 32, spm, True)).export(
      str(main_job / "sst2_export"), version=4, log=lambda line: None)
  records = bench.main(["--quick", "--no-table", f"--main_job_dir={main_job}",
                        f"--work_dir={tmp_path / 'work'}",
                        f"--glue_dir={os.path.join(TESTDATA, 'glue')}"])
  assert not [r for r in records if r["kind"] == "error"], records
  speed = [r for r in records if r["kind"] == "speed"]
  artifacts = {r["artifact"] for r in speed}
  assert {"savedmodel", "onnx", "onnx_int8", "tflite_int8"} <= artifacts
  assert {r["batch"] for r in speed} == {1, 8, 32}
  assert all(r["p50_ms"] > 0 and r["p95_ms"] >= r["p50_ms"] for r in speed)
  accuracy = {r["artifact"]: r for r in records if r["kind"] == "accuracy"}
  assert sorted(accuracy) == ["onnx", "onnx_int8", "savedmodel", "tflite", "tflite_int8"]
  assert accuracy["onnx"]["accuracy"] == accuracy["savedmodel"]["accuracy"]
  sizes = {r["artifact"]: r for r in records if r["kind"] == "size"}
  assert sizes["onnx_int8"]["mb"] < sizes["onnx"]["mb"]
  memory = {r["artifact"]: r for r in records if r["kind"] == "memory"}
  assert not memory["onnx_int8"]["tensorflow_imported"] and memory["savedmodel"]["peak_rss_mb"] > 0


def test_accelerator_benchmark_quick(tmp_path):
  """The CPU grid: every case ran; its records hold their fields in their units; the model
  FLOPs utilisation is in (0, 1] against the measured matmul peak."""
  from benchmarks import accelerator_benchmark as bench  # pylint: disable=g-import-not-at-top
  output = tmp_path / "accelerator.jsonl"
  records = bench.main(["--quick", "--no-table", "--output", str(output)])
  assert [json.loads(line) for line in output.read_text().splitlines()] == records
  assert records[0]["kind"] == "run" and records[0]["device"] == "cpu"
  peaks = [r for r in records if r["kind"] == "matmul_peak"]
  assert {p["precision"] for p in peaks} == {"float32", "mixed_bfloat16"}
  assert all(p["tflops"] > 0 for p in peaks)
  measurements = [r for r in records if r["kind"] == "measurement"]
  assert len(measurements) == 8 and all("error" not in m for m in measurements), measurements
  assert {(m["task"], m["accumulation"], m["recompute"]) for m in measurements} == {
      (t, n, r) for t in ("pretraining", "finetuning") for n, r in ((1, False), (2, False),
                                                                     (1, True))}
  for m in measurements:
    assert m["steps_per_s"] == pytest.approx(1 / m["step_s"])
    assert m["tokens_per_s"] == pytest.approx(m["batch"] * m["seq"] * m["steps_per_s"])
    assert m["micro_batch"] * m["accumulation"] == m["batch"]
    assert m["peak_memory_kind"] == "rss" and m["peak_memory_mb"] > 100
    assert m["known_peak_tflops"] is None and m["mfu_known_peak"] is None  # no CPU table
    assert m["achieved_tflops"] == pytest.approx(m["model_flops"] * m["steps_per_s"] / 1e12)
    assert 0 < m["mfu"] == m["mfu_measured_peak"] <= 1
    assert math.isfinite(m["first_loss"])
  assert records[-1]["kind"] == "load" and records[-1]["wall_s"] > 0


def test_model_flops_and_known_peaks():
  from benchmarks import accelerator_benchmark as bench  # pylint: disable=g-import-not-at-top
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  config = json.load(open(common.BASE_CONFIG_FILE, encoding="utf-8"))
  # Base at 128: ~ 6 x 7.1M encoder parameters per token, plus attention and the heads.
  flops = bench.model_flops_per_step(config, 1, 128, "pretraining", 20)
  layer = 4 * 768 * 768 + 2 * 768 * 3072
  assert flops > 6 * 128 * 12 * layer and flops < 1.5 * 6 * 128 * 12 * layer
  assert bench.known_peak("NVIDIA A100-SXM4-40GB", "mixed_bfloat16") == 312.0
  assert bench.known_peak("Tesla T4", "mixed_bfloat16") is None
  assert bench.known_peak("Intel Xeon", "float32") is None
