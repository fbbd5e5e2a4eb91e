r"""Serving on CPU: the float32 SavedModel against TF bfloat16, ONNX Runtime (float32, int8)
and TFLite int8, side by side; and the SST-2 dev accuracy of each artifact.

  PYTHONPATH=. python benchmarks/serving_benchmark.py --main_job_dir=output/default

Models: `base` (configs/v2/base, random weights: speed only) and `tiny` (the main job's
fine-tuned SST-2 model, `python scripts/main_job.py`: its checkpoint re-exported at seq 128).
Each is exported once into --work_dir as run_classifier.py does (`ClassifierServing`, then
`albert.export.onnx.export_artifacts`: onnx/ and tflite/ folders, each checked against the
SavedModel). Then, in ONE process per model, every artifact is loaded through
`albert.export.runtime.load` and timed in rounds, interleaved (each round runs every artifact
in turn): latency at batch 1 (p50, p95) and throughput at batch 8 and 32, sequence 128, full
rows. TF bfloat16 is the Keras model under `mixed_bfloat16` (where the CPU has AVX512-BF16 /
AMX) called as a tf.function. Peak memory: a fresh process per artifact (load + one batch of
32). Sizes: the files on disk. Accuracy: the main job's own export (seq 64) and its onnx/ and
tflite/ folders on the 872 GLUE SST-2 dev sentences.

JSON lines on stdout (and `--out`): `speed` records (model, artifact, batch, p50_ms, p95_ms,
examples_per_s, ratio_to_savedmodel), `memory`, `size`, `accuracy`, then the `load` line; a
table on stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from typing import Dict, List

if __package__:
  from benchmarks import common
else:  # run as a script: benchmarks/ is sys.path[0]
  import common  # pylint: disable=import-error

ARTIFACTS = ("savedmodel", "savedmodel_bf16", "onnx", "onnx_int8", "tflite_int8")
GLUE_DIR = os.path.join(common.SHARED_DATA, "glue")  # SST-2/dev.tsv: the 872 GLUE dev rows
SPM_30K = os.path.join(common.SHARED_DATA, "albert_spm", "30k-clean.model")


# ------------------------------------------------------------------------------ exports
def _latest_version(base: str) -> str:
  versions = sorted((n for n in os.listdir(base) if n.isdigit()), key=int)
  if not versions:
    raise SystemExit(f"{base}: no exported version (run python scripts/main_job.py)")
  return os.path.join(base, versions[-1])


def prepare(spec: Dict) -> Dict:
  """The model's SavedModel + onnx/ + tflite/ under work_dir (reused when there)."""
  common.import_tensorflow()
  import tf_keras  # pylint: disable=import-outside-toplevel
  from albert import checkpoint  # pylint: disable=import-outside-toplevel
  from albert.export import onnx, serving  # pylint: disable=import-outside-toplevel
  from albert.models import build_classifier_model  # pylint: disable=import-outside-toplevel
  work, name = spec["work_dir"], spec["model"]
  if name == "main":  # the main job's export as it is (accuracy)
    source = _latest_version(os.path.join(spec["main_job_dir"], "sst2_export"))
    path = os.path.join(work, "main", os.path.basename(source))
    if not os.path.isdir(path):
      shutil.copytree(source, path, ignore=shutil.ignore_patterns("onnx", "tflite"))
    onnx.export_artifacts(path, True, True, log=lambda m: None)
    return {"model": name, "path": path}
  config_file = common.BASE_CONFIG_FILE if name == "base" else os.path.join(
      spec["main_job_dir"], "albert_config.json")
  config = common.albert_config(config_file)
  prefix = os.path.join(work, name, "ckpt", "model.ckpt-1")
  model = build_classifier_model(config, 2)
  if name == "base":
    if not os.path.exists(prefix + ".index"):
      tf_keras.utils.set_random_seed(1)
      model = build_classifier_model(config, 2)
      checkpoint.save_tf1_checkpoint(model, prefix[:-len("-1")], global_step=1)
    spm = SPM_30K
  else:
    prefix = os.path.join(spec["main_job_dir"], "sst2_pretrained", "model.ckpt-best")
    spm = os.path.join(spec["main_job_dir"], "spm.model")
  checkpoint.load_tf1_checkpoint(model, prefix, require_all=True)
  classifier = serving.ClassifierSpec.for_task("sst-2", 128, spm, True)
  result = serving.ClassifierServing(model, classifier).export(
      os.path.join(work, name, "export"), version=1, log=lambda m: None)
  onnx.export_artifacts(result.path, True, True, log=lambda m: None)
  return {"model": name, "path": result.path, "config_file": config_file, "checkpoint": prefix}


def _bf16_runner(config_file: str, prefix: str):
  """The Keras classifier under mixed_bfloat16 as a runtime runner (probabilities, logits)."""
  tf, _ = common.import_tensorflow()
  import tf_keras  # pylint: disable=import-outside-toplevel
  from albert import checkpoint  # pylint: disable=import-outside-toplevel
  from albert.export import runtime  # pylint: disable=import-outside-toplevel
  from albert.models import build_classifier_model  # pylint: disable=import-outside-toplevel
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    model = build_classifier_model(common.albert_config(config_file), 2)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
  checkpoint.load_tf1_checkpoint(model, prefix, require_all=True)
  spec = [tf.TensorSpec([None, None], tf.int32, name=n)
          for n in ("input_ids", "input_mask", "segment_ids")]

  @tf.function(input_signature=spec)
  def call(input_ids, input_mask, segment_ids):
    out = model({"input_ids": input_ids, "input_mask": input_mask,
                 "segment_ids": segment_ids}, training=False)
    return {"logits": out["logits"], "probabilities": out["probabilities"]}

  return runtime.FunctionRunner(lambda f: {k: v.numpy() for k, v in call(**f).items()},
                                ("input_ids", "input_mask", "segment_ids"),
                                {"task_kind": "classification"})


def _set_tf_threads(threads: int) -> None:
  """TensorFlow's thread pools (0: TF's default, every core); before any TF op runs."""
  tf, _ = common.import_tensorflow()
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _runner(prepared: Dict, artifact: str, threads: int = 0):
  from albert.export import runtime  # pylint: disable=import-outside-toplevel
  path = prepared["path"]
  if artifact == "savedmodel_bf16":
    return _bf16_runner(prepared["config_file"], prepared["checkpoint"])
  backend, _, int8 = artifact.partition("_")
  return runtime.load(path, backend, quantized=bool(int8), threads=threads)


def _rows(batch: int, length: int = 128, vocab: int = 4000):
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.RandomState(batch)
  ids = rng.randint(5, vocab, size=(batch, length)).astype(np.int32)
  ids[:, 0] = 2
  return {"input_ids": ids, "input_mask": np.ones_like(ids),
          "segment_ids": np.zeros_like(ids)}


def _bf16_available() -> bool:
  try:
    with open("/proc/cpuinfo") as f:
      flags = f.read()
  except OSError:
    return False
  return "avx512_bf16" in flags or "amx_bf16" in flags


# ------------------------------------------------------------------------------ workers
def speed(spec: Dict) -> Dict:
  """Every artifact of one model in this process, timed in interleaved rounds."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  _set_tf_threads(spec["threads"])
  prepared = prepare(spec)
  artifacts = [a for a in spec["artifacts"] if a != "savedmodel_bf16" or _bf16_available()]
  runners = {a: _runner(prepared, a, spec["threads"]) for a in artifacts}
  batches = {b: _rows(b) for b in spec["batches"]}
  times: Dict = {(a, b): [] for a in runners for b in batches}
  for runner in runners.values():  # warm-up: every shape once
    for rows in batches.values():
      runner.run(rows)
  load = [os.getloadavg()[0]]
  for _ in range(spec["rounds"]):
    for name, runner in runners.items():
      for batch, rows in batches.items():
        for _ in range(spec["calls"][str(batch)]):
          t = time.perf_counter()
          runner.run(rows)
          times[(name, batch)].append(time.perf_counter() - t)
  load.append(os.getloadavg()[0])
  records = []
  for (name, batch), values in times.items():
    ms = np.array(values) * 1000
    records.append({"kind": "speed", "model": spec["model"], "artifact": name, "batch": batch,
                    "seq": 128, "threads": spec["threads"] or os.cpu_count(), "calls": len(values), "p50_ms": float(np.percentile(ms, 50)),
                    "p95_ms": float(np.percentile(ms, 95)),
                    "examples_per_s": float(batch * 1000 / np.median(ms)),
                    "load_avg_1m_before": load[0], "load_avg_1m_after": load[1]})
  return {"records": records}


def memory(spec: Dict) -> Dict:
  """Peak RSS of a fresh process that loads one artifact and runs one batch of 32; the ONNX
  ones without importing TensorFlow (as an onnxruntime-only server would run them)."""
  from albert.export import runtime  # pylint: disable=import-outside-toplevel
  path = os.path.join(spec["work_dir"], spec["model"], "export", "1")
  before = common.rss_peak_mb()
  if spec["artifact"].startswith("onnx"):
    runner = runtime.load(path, "onnx", quantized=spec["artifact"] == "onnx_int8",
                          threads=spec["threads"])
  else:
    _set_tf_threads(spec["threads"])
    runner = _runner(prepare(spec), spec["artifact"], spec["threads"])
  runner.run(_rows(32))
  return {"records": [{"kind": "memory", "model": spec["model"], "artifact": spec["artifact"],
                       "rss_before_mb": before, "peak_rss_mb": common.rss_peak_mb(),
                       "tensorflow_imported": "tensorflow" in sys.modules}]}


def accuracy(spec: Dict) -> Dict:
  """SST-2 dev accuracy of the main job's export and each of its artifacts."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from albert.data.glue import reader  # pylint: disable=import-outside-toplevel
  from albert.export import runtime, serving  # pylint: disable=import-outside-toplevel
  prepared = prepare({**spec, "model": "main"})
  processor = reader.get_processor("sst-2")
  rows = list(processor.raw_rows(processor.file_path(spec["glue_dir"], "dev"), "dev"))
  rows = rows[:spec.get("max_rows") or len(rows)]
  reference = runtime.load(prepared["path"])
  info = reference.info
  classifier = serving.ClassifierSpec.for_task(
      "sst-2", int(info["max_seq_length"]), serving_spm(prepared["path"]),
      bool(info["do_lower_case"]))
  features = serving.python_features(classifier, [(r.text_a, None) for r in rows])
  gold = np.array([int(r.label) for r in rows])
  records = []
  for name in ("savedmodel", "onnx", "onnx_int8", "tflite", "tflite_int8"):
    backend, _, int8 = name.partition("_")
    runner = runtime.load(prepared["path"], backend, quantized=bool(int8))
    predictions = runner.predict(features, batch_size=32)["predictions"]
    records.append({"kind": "accuracy", "model": "main_job_sst2", "artifact": name,
                    "rows": len(rows), "accuracy": float(np.mean(predictions == gold)),
                    "max_seq_length": int(info["max_seq_length"])})
  return {"records": records}


def serving_spm(path: str) -> str:
  from albert import hub  # pylint: disable=import-outside-toplevel
  return hub.find_asset(path, ["*.model"])


def sizes(prepared: Dict) -> List[Dict]:
  path = prepared["path"]

  def tree(folder):
    return sum(os.path.getsize(os.path.join(d, f)) for d, subdirs, names in os.walk(folder)
               for f in names if not os.path.relpath(d, folder).startswith(("onnx", "tflite",
                                                                            "assets")))
  found = {"savedmodel": tree(path)}
  for name, file in (("onnx", "onnx/model.onnx"), ("onnx_int8", "onnx/model_int8.onnx"),
                     ("tflite", "tflite/model.tflite"),
                     ("tflite_int8", "tflite/model_int8.tflite")):
    found[name] = os.path.getsize(os.path.join(path, file))
  return [{"kind": "size", "model": prepared["model"], "artifact": k, "mb": v / 1e6,
           "ratio_to_savedmodel": found["savedmodel"] / v} for k, v in found.items()]


def run_spec(spec: Dict, index: int) -> Dict:
  del index
  return {"prepare": lambda s: {"records": sizes(prepare(s))}, "speed": speed,
          "memory": memory, "accuracy": accuracy}[spec["job"]](spec)


# ------------------------------------------------------------------------- orchestrator
def table(records: List[Dict]) -> str:
  lines = ["| model | artifact | size MB (x smaller) | batch 1 p50 / p95 ms (speed-up) | "
           "batch 8 ex/s (x) | batch 32 ex/s (x) | peak RSS MB |", "|" + " --- |" * 7]
  by = {(r["kind"], r["model"], r["artifact"], r.get("batch")): r for r in records
        if "artifact" in r}
  for model in ("base", "tiny"):
    for artifact in ARTIFACTS:
      one = by.get(("speed", model, artifact, 1))
      anchor = by.get(("speed", model, "savedmodel", 1))
      if one is None or anchor is None:
        continue
      size = by.get(("size", model, artifact.replace("savedmodel_bf16", "savedmodel"), None))
      cells = [model, artifact,
               f"{size['mb']:.1f} ({size['ratio_to_savedmodel']:.1f}x)" if size else "-",
               f"{one['p50_ms']:.1f} / {one['p95_ms']:.1f} "
               f"({anchor['p50_ms'] / one['p50_ms']:.2f}x)"]
      for batch in (8, 32):
        r, a = by.get(("speed", model, artifact, batch)), by.get(("speed", model, "savedmodel",
                                                                  batch))
        cells.append(f"{r['examples_per_s']:.1f} ({r['examples_per_s'] / a['examples_per_s']:.2f}x)"
                     if r and a else "-")
      mem = by.get(("memory", model, artifact, None))
      cells.append(f"{mem['peak_rss_mb']:.0f}" if mem else "-")
      lines.append("| " + " | ".join(cells) + " |")
  accuracy_rows = [r for r in records if r.get("kind") == "accuracy"]
  if accuracy_rows:
    lines += ["", "| SST-2 dev (main job model) | accuracy | vs SavedModel |",
              "| --- | --- | --- |"]
    anchor = next(r["accuracy"] for r in accuracy_rows if r["artifact"] == "savedmodel")
    lines += [f"| {r['artifact']} | {r['accuracy']:.4f} | {100 * (r['accuracy'] - anchor):+.2f} "
              "points |" for r in accuracy_rows]
  return "\n".join(lines)


def main(argv=None) -> List[Dict]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  common.add_common_arguments(parser, "tiny model only, a few calls, 64 dev rows")
  parser.add_argument("--models", default="base,tiny")
  parser.add_argument("--main_job_dir", default=os.path.join(common.REPO_DIR, "output",
                                                             "default"))
  parser.add_argument("--work_dir", default=os.path.join("/tmp", "albert-serving-benchmark"))
  parser.add_argument("--glue_dir", default=GLUE_DIR, help="the GLUE root (SST-2/dev.tsv)")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--threads", type=int, default=0,
                      help="threads of every runtime (0: every core; 1: per-core figures, "
                           "steadier when other processes share the cores)")
  parser.add_argument("--calls", type=float, default=1.0, help="scale the timed calls")
  parser.add_argument("--jobs", default="prepare,accuracy,speed,memory",
                      help="which measurements (comma-separated)")
  parser.add_argument("--out", default=None, help="also write the JSON lines here")
  args = parser.parse_args(argv)
  if args.worker:
    return common.worker_main(args.worker, run_spec)
  models = ["tiny"] if args.quick else common.split(args.models, ("base", "tiny"), "model")
  shared = {"work_dir": args.work_dir, "main_job_dir": args.main_job_dir,
            "glue_dir": args.glue_dir, "batches": [1, 8, 32], "threads": args.threads}
  records: List[Dict] = []
  emit = common.emitter(records)
  emit(common.run_record(argv if argv is not None else sys.argv[1:], quick=args.quick,
                         models=models, bf16=_bf16_available()))
  start = time.time()
  specs = [{**shared, "job": "prepare", "model": m} for m in models]
  jobs = common.split(args.jobs, ("prepare", "accuracy", "speed", "memory"), "job")
  if "accuracy" in jobs:
    specs.append({**shared, "job": "accuracy", "max_rows": 64 if args.quick else None})
  for m in models:
    calls = ({"1": 3, "8": 1, "32": 1} if args.quick else
             {"1": 20 if m == "base" else 100, "8": 4 if m == "base" else 20,
              "32": 2 if m == "base" else 10})
    calls = {k: max(1, round(v * args.calls)) for k, v in calls.items()}
    specs.append({**shared, "job": "speed", "model": m, "artifacts": list(ARTIFACTS),
                  "rounds": 1 if args.quick else args.rounds, "calls": calls})
    specs += [{**shared, "job": "memory", "model": m, "artifact": a} for a in ARTIFACTS
              if a != "savedmodel_bf16" or _bf16_available()]
  for spec in [s for s in specs if s["job"] in jobs]:
    for result in common.run_subprocess(__file__, [spec], args.timeout):
      for record in result.get("records", [{"kind": "error", **spec, **result}]):
        emit(record)
  for r in [r for r in records if r.get("kind") == "speed"]:
    anchor = next((a for a in records if a.get("kind") == "speed" and a["model"] == r["model"]
                   and a["batch"] == r["batch"] and a["artifact"] == "savedmodel"), None)
    if anchor and r["artifact"] != "savedmodel":
      emit({"kind": "ratio", "model": r["model"], "artifact": r["artifact"],
            "batch": r["batch"], "p50_speedup": anchor["p50_ms"] / r["p50_ms"],
            "throughput_ratio": r["examples_per_s"] / anchor["examples_per_s"]})
  emit(common.load_record([r for r in records if r.get("kind") == "speed"],
                          time.time() - start))
  if args.out:
    common.write_records(args.out, records, lines=True)
  if not args.no_table:
    print(table(records), file=sys.stderr)
  return records


if __name__ == "__main__":
  main()
