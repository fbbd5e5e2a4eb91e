"""How well this machine's accelerator is used: one command for a CPU, GPUs or a TPU.

    python benchmarks/accelerator_benchmark.py                 # the grid for this device
    python benchmarks/accelerator_benchmark.py --quick         # a small grid (CPU: < 3 min)
    python benchmarks/accelerator_benchmark.py --memory-study  # N = 1, 4, 16 and recompute

Each case runs in a fresh interpreter (its own peak memory, its own compilation) and times the
Trainer's compiled host loop (`Trainer.make_train_loop()`, `iterations_per_loop` optimizer steps
per call) on a synthetic batch: pretraining (MLM + SOP, LAMB) or fine-tuning (the GLUE
classifier head, AdamW). One JSON line per case (`kind: measurement`): optimizer steps/s,
examples/s, tokens/s, peak device memory (`peak_memory_kind`: `device` from TensorFlow's
allocator on a GPU/TPU; `rss` on a CPU: the process's peak resident memory, which includes
TensorFlow itself), the model FLOPs of one optimizer step (from the config, `model_flops`:
forward 2 x multiply-adds of every matmul, training 3 x forward; recomputation is not counted:
it is the hardware's extra work, not the model's) and the model FLOPs utilisation against two
ceilings: the device's published peak for the precision (`KNOWN_PEAKS`; none for a CPU) and a
measured matmul peak (`kind: matmul_peak`: the best of a few large square matmuls in the
compute dtype). `mfu` is the first when known, else the second. A short table goes to stderr.

The grid: base and large at 128 and 512, float32 / mixed_bfloat16 / mixed_float16, XLA off and
on, for pretraining; then at base-512 (the case that needs it) gradient accumulation (N = 4) and
recomputation, and fine-tuning; with `--max-micro-batch` (default on a GPU/TPU) the largest
micro-batch that fits, by doubling until the allocator runs out. `--quick` (the default on a
CPU): the tiny model at 128, both tasks, float32 and mixed_bfloat16, N = 1 / 2 and recompute.

`--memory-study`: one optimizer step of the base model at global batch `--study-batch` x
`--study-seq` with N = 1, 4, 16 and with recomputation (N = 1), each in a fresh process: its
peak memory and the time of the step (after one untimed step, which traces and compiles).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402  pylint: disable=wrong-import-position

LARGE_CONFIG_FILE = os.path.join(common.REPO_DIR, "configs", "v2", "large", "albert_config.json")
CONFIGS = {"tiny": common.TINY_CONFIG_FILE, "base": common.BASE_CONFIG_FILE,
           "large": LARGE_CONFIG_FILE}
PREDICTIONS = {128: 20, 512: 77}  # the original's max_predictions_per_seq per length
NUM_LABELS = 3

# Published dense peaks, TFLOP/s per device (one GPU; one TPU chip), by compute precision.
# float32 on Ampere and later: plain FP32 (TensorFlow does not use TF32 unless told to).
KNOWN_PEAKS = {
    "H100": {"float32": 67.0, "mixed_bfloat16": 989.0, "mixed_float16": 989.0},  # SXM
    "A100": {"float32": 19.5, "mixed_bfloat16": 312.0, "mixed_float16": 312.0},
    "V100": {"float32": 15.7, "mixed_float16": 125.0},  # SXM2; no bfloat16 units
    "T4": {"float32": 8.1, "mixed_float16": 65.0},
    "L4": {"float32": 30.3, "mixed_bfloat16": 121.0, "mixed_float16": 121.0},
    "A10G": {"float32": 31.2, "mixed_bfloat16": 70.0, "mixed_float16": 70.0},
    "TPU v3": {"mixed_bfloat16": 123.0},
    "TPU v4": {"mixed_bfloat16": 275.0},
    "TPU v5e": {"mixed_bfloat16": 197.0},
    "TPU v5 lite": {"mixed_bfloat16": 197.0},
}


# ----------------------------------------------------------------------------- model FLOPs
def model_flops_per_step(config: Dict, batch: int, seq: int, task: str = "pretraining",
                         predictions: int = 0) -> float:
  """Model FLOPs of one training step (forward + backward = 3 x forward) from the config."""
  h, e, i = config["hidden_size"], config["embedding_size"], config["intermediate_size"]
  layers, vocab = config["num_hidden_layers"], config["vocab_size"]
  per_token_layer = 2 * (4 * h * h + 2 * h * i) + 2 * 2 * seq * h  # projections, FFN, attention
  forward = batch * seq * (2 * e * h + layers * per_token_layer) + batch * 2 * h * h  # + pooler
  if task == "pretraining":  # the MLM head on the masked positions, the SOP head
    forward += batch * predictions * 2 * (h * e + e * vocab) + batch * 2 * h * 2
  else:
    forward += batch * 2 * h * NUM_LABELS
  return 3.0 * forward


def known_peak(device_name: str, precision: str) -> Optional[float]:
  """The published peak TFLOP/s of a device named `device_name`, or None."""
  for key, peaks in KNOWN_PEAKS.items():
    if key.lower() in device_name.lower():
      return peaks.get(precision)
  return None


# ---------------------------------------------------------------------------------- worker
def _device():
  """(kind, name, logical devices) of what TensorFlow computes on."""
  tf, _ = common.import_tensorflow()
  tpus = tf.config.list_logical_devices("TPU")
  if tpus:
    return "tpu", os.environ.get("TPU_ACCELERATOR_TYPE", "TPU"), tpus
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    details = tf.config.experimental.get_device_details(gpus[0])
    return "gpu", details.get("device_name", "GPU"), gpus
  import platform  # pylint: disable=import-outside-toplevel
  return "cpu", platform.processor() or platform.machine(), []


def _peak_memory_mb(kind: str) -> float:
  if kind == "cpu":
    return common.rss_peak_mb()
  tf, _ = common.import_tensorflow()
  return tf.config.experimental.get_memory_info(
      "GPU:0" if kind == "gpu" else "TPU:0")["peak"] / 2**20


def matmul_peak(precision: str, size: int, repeats: int = 5) -> float:
  """The best TFLOP/s of a [size,size] x [size,size] matmul in the precision's compute dtype."""
  tf, _ = common.import_tensorflow()
  dtype = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16,
           "mixed_float16": tf.float16}[precision]
  a = tf.random.uniform([size, size], dtype=tf.float32)
  a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
  matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[:1, :1], tf.float32)))
  float(matmul(a, b))
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    float(matmul(a, b))
    best = min(best, time.perf_counter() - t)
  return 2.0 * size**3 / best / 1e12


def _synthetic(task: str, batch: int, seq: int, predictions: int, vocab: int, seed: int = 0):
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.RandomState(seed)
  features = {"input_ids": rng.randint(5, vocab, size=(batch, seq)).astype(np.int32),
              "input_mask": np.ones((batch, seq), np.int32),
              "segment_ids": (np.arange(seq)[None, :] >= seq // 2).repeat(batch, 0)
                             .astype(np.int32)}
  if task == "pretraining":
    features.update(
        masked_lm_positions=np.sort(rng.rand(batch, seq).argsort(1)[:, :predictions], 1)
        .astype(np.int32),
        masked_lm_ids=rng.randint(5, vocab, size=(batch, predictions)).astype(np.int32),
        masked_lm_weights=np.ones((batch, predictions), np.float32),
        next_sentence_labels=rng.randint(0, 2, size=(batch, 1)).astype(np.int32))
  else:
    features["label_ids"] = rng.randint(0, NUM_LABELS, size=(batch,)).astype(np.int32)
  return features


def _trainer(spec: Dict, output_dir: str):
  """A built Trainer of the case's task (not run: its loop is timed on synthetic batches)."""
  from albert.config import AlbertConfig  # pylint: disable=import-outside-toplevel
  from albert.models import build_classifier_model  # pylint: disable=import-outside-toplevel
  from albert.tasks.pretraining import (  # pylint: disable=import-outside-toplevel
      PretrainingTask, PretrainingTaskConfig)
  from albert.train.task import Task  # pylint: disable=import-outside-toplevel
  from albert.train.trainer import (  # pylint: disable=import-outside-toplevel
      OptimizerConfig, Trainer, TrainerConfig)
  config = AlbertConfig.from_json_file(CONFIGS[spec["model"]])

  class Classifier(Task):
    name = "classifier"

    def build_model(self):
      return build_classifier_model(config, NUM_LABELS)

  pretraining = spec["task"] == "pretraining"
  task = (PretrainingTask(PretrainingTaskConfig(config)) if pretraining else Classifier())
  trainer_config = TrainerConfig(
      output_dir=output_dir, train_batch_size=spec["batch"], eval_batch_size=spec["batch"],
      num_train_steps=10**6, iterations_per_loop=spec["steps_per_call"],
      enable_xla=spec["xla"], mixed_precision=spec["precision"],
      gradient_accumulation_steps=spec["accumulation"], recompute_grad=spec["recompute"],
      seed=0)
  optimizer = OptimizerConfig(optimizer="lamb" if pretraining else "adamw",
                              learning_rate=1e-4, num_warmup_steps=100)
  trainer = Trainer(task, trainer_config, optimizer, log=lambda _: None)
  trainer.build()
  return trainer, config.to_dict()


def run_case(spec: Dict, index: int) -> Dict:
  """One measurement (see the module docstring)."""
  del index
  started = time.time()
  tf, _ = common.import_tensorflow()
  kind, device_name, devices = _device()
  batch, seq = spec["batch"], spec["seq"]
  predictions = PREDICTIONS.get(seq, max(1, seq * 15 // 100))
  trainer, config = _trainer(spec, tempfile.mkdtemp(prefix="albert-accel-"))
  features = _synthetic(spec["task"], batch, seq, predictions, config["vocab_size"])
  dataset = tf.data.Dataset.from_tensors({k: tf.constant(v) for k, v in features.items()})
  iterator = iter(trainer.strategy.distribute_datasets_from_function(
      lambda _: dataset.repeat()))
  train_loop = trainer.make_train_loop()
  steps = tf.constant(spec["steps_per_call"])
  first_loss = common.loop_call(train_loop, iterator, steps)  # traces and compiles
  times, cores = common.time_calls(lambda: common.loop_call(train_loop, iterator, steps),
                                   warmup=spec.get("warmup", 1), min_calls=spec["min_calls"],
                                   min_seconds=spec["min_seconds"],
                                   max_calls=spec["max_calls"])
  seconds = sorted(times)[len(times) // 2] / spec["steps_per_call"]
  flops = model_flops_per_step(config, batch, seq, spec["task"], predictions)
  achieved = flops / seconds / 1e12
  known = known_peak(device_name, spec["precision"]) if kind != "cpu" else None
  measured = spec.get("matmul_peak_tflops")
  return {
      "kind": "measurement", **{k: spec[k] for k in (
          "task", "model", "seq", "batch", "precision", "xla", "accumulation", "recompute")},
      "micro_batch": batch // spec["accumulation"], "device": kind, "device_name": device_name,
      "devices": max(len(devices), 1), "step_s": seconds, "steps_per_s": 1.0 / seconds,
      "examples_per_s": batch / seconds, "tokens_per_s": batch * seq / seconds,
      "model_flops": flops, "achieved_tflops": achieved, "known_peak_tflops": known,
      "matmul_peak_tflops": measured,
      "mfu_known_peak": achieved / known if known else None,
      "mfu_measured_peak": achieved / measured if measured else None,
      "mfu": achieved / known if known else (achieved / measured if measured else None),
      "peak_memory_mb": _peak_memory_mb(kind),
      "peak_memory_kind": "rss" if kind == "cpu" else "device",
      "first_loss": first_loss, "calls": len(times), "cpu_cores_used": cores,
      "wall_s": time.time() - started, "load_avg_1m_after": os.getloadavg()[0]}


def run_matmul(spec: Dict, index: int) -> Dict:
  del index
  kind, device_name, _ = _device()
  return {"kind": "matmul_peak", "precision": spec["precision"], "size": spec["size"],
          "device": kind, "device_name": device_name,
          "tflops": matmul_peak(spec["precision"], spec["size"])}


def worker(spec: Dict, index: int) -> Dict:
  return run_matmul(spec, index) if spec.get("matmul") else run_case(spec, index)


# ----------------------------------------------------------------------------- orchestrator
def _case(task="pretraining", model="base", seq=128, batch=32, precision="float32",
          xla=False, accumulation=1, recompute=False, **timing) -> Dict:
  spec = dict(task=task, model=model, seq=seq, batch=batch, precision=precision, xla=xla,
              accumulation=accumulation, recompute=recompute, steps_per_call=2, min_calls=3,
              min_seconds=3.0, max_calls=20)
  spec.update(timing)
  return spec


def grid(device: str, quick: bool) -> List[Dict]:
  """The cases of the grid for `device` (see the module docstring)."""
  if quick or device == "cpu":
    fast = dict(steps_per_call=2, min_calls=2, min_seconds=1.0, max_calls=5)
    return [_case(task, "tiny", 128, 16, precision, accumulation=n, recompute=r, **fast)
            for task in ("pretraining", "finetuning")
            for precision, n, r in (("float32", 1, False), ("mixed_bfloat16", 1, False),
                                    ("float32", 2, False), ("float32", 1, True))]
  precisions = ["float32", "mixed_bfloat16"] + (["mixed_float16"] if device == "gpu" else [])
  cases = [_case("pretraining", model, seq, {128: 32, 512: 8}[seq] // (2 if model == "large"
                                                                       else 1), p, xla)
           for model in ("base", "large") for seq in (128, 512) for p in precisions
           for xla in (False, True)]
  best = precisions[1]
  cases += [_case("pretraining", "base", 512, 32, best, True, accumulation=4),
            _case("pretraining", "base", 512, 8, best, True, recompute=True),
            _case("pretraining", "base", 512, 32, best, True, accumulation=4, recompute=True)]
  cases += [_case("finetuning", model, seq, 32, best, True)
            for model in ("base", "large") for seq in (128, 512)]
  return cases


def find_max_micro_batch(base: Dict, timeout: float, cap: int) -> Dict:
  """The largest micro-batch (powers of two) whose step runs, each try in a fresh process."""
  fits, batch = None, 1
  while batch <= cap:
    spec = dict(base, batch=batch, accumulation=1, min_calls=1, min_seconds=0.0, max_calls=1)
    result = common.run_subprocess(__file__, [spec], timeout)[0]
    if "error" in result:
      break
    fits, batch = batch, batch * 2
  return {"kind": "max_micro_batch", **{k: base[k] for k in (
      "task", "model", "seq", "precision", "xla", "recompute")}, "max_micro_batch": fits,
      "tried_up_to": min(batch, cap)}


def memory_study(args) -> List[Dict]:
  """N = 1, 4, 16 and recompute at base `--study-batch` x `--study-seq`, fresh processes."""
  cases = [_case("pretraining", "base", args.study_seq, args.study_batch, "float32",
                 accumulation=n, recompute=r, steps_per_call=1, min_calls=1, min_seconds=0.0,
                 max_calls=1, warmup=0)
           for n, r in ((1, False), (4, False), (16, False), (1, True))]
  return [common.run_subprocess(__file__, [spec], args.timeout)[0] for spec in cases]


def table(records: List[Dict]) -> str:
  rows = [f"{'task':<11} {'model':<5} {'seq':>4} {'batch':>5} {'N':>2} {'rc':>2} "
          f"{'precision':<14} {'xla':>3} {'steps/s':>8} {'tokens/s':>9} {'peak MB':>8} "
          f"{'TFLOP/s':>8} {'MFU':>6}"]
  for r in records:
    if r.get("kind") != "measurement":
      continue
    if "error" in r:
      rows.append(f"{r.get('task', '?'):<11} error: {r['error']}")
      continue
    rows.append(
        f"{r['task']:<11} {r['model']:<5} {r['seq']:>4} {r['batch']:>5} {r['accumulation']:>2} "
        f"{'y' if r['recompute'] else 'n':>2} {r['precision']:<14} "
        f"{'y' if r['xla'] else 'n':>3} {r['steps_per_s']:>8.3f} {r['tokens_per_s']:>9.0f} "
        f"{r['peak_memory_mb']:>8.0f} {r['achieved_tflops']:>8.3f} "
        f"{common.fmt(r['mfu'], '.3f'):>6}")
  return "\n".join(rows)


def main(argv: Optional[List[str]] = None) -> List[Dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  common.add_common_arguments(parser, "the small grid (the default on a CPU)", timeout=900.0)
  parser.add_argument("--output", default=None, help="also write the JSON lines here")
  parser.add_argument("--max-micro-batch", choices=("auto", "on", "off"), default="auto",
                      help="search the largest micro-batch that fits (auto: on a GPU/TPU)")
  parser.add_argument("--max-micro-batch-cap", type=int, default=1024)
  parser.add_argument("--memory-study", action="store_true",
                      help="only N = 1, 4, 16 and recompute at base --study-batch x --study-seq")
  parser.add_argument("--study-batch", type=int, default=32)
  parser.add_argument("--study-seq", type=int, default=512)
  args = parser.parse_args(argv)
  if args.worker:
    return common.worker_main(args.worker, worker)
  records: List[Dict] = []
  stream = open(args.output, "w", encoding="utf-8") if args.output else None  # noqa: SIM115
  emit = common.emitter(records, stream)
  started = time.time()
  probe = common.run_subprocess(__file__, [{"matmul": True, "precision": "float32",
                                            "size": 512}], args.timeout)[0]
  device = probe.get("device", "cpu")
  emit(common.run_record(argv, benchmark="accelerator", device=device,
                         device_name=probe.get("device_name")))
  if args.memory_study:
    for record in memory_study(args):
      emit(record)
  else:
    cases = grid(device, args.quick)
    size = 1024 if device == "cpu" else 8192
    peaks = {}
    for precision in sorted({c["precision"] for c in cases}):
      result = common.run_subprocess(__file__, [{"matmul": True, "precision": precision,
                                                 "size": size}], args.timeout)[0]
      emit(result)
      peaks[precision] = result.get("tflops")
    for spec in cases:
      spec["matmul_peak_tflops"] = peaks.get(spec["precision"])
      emit(common.run_subprocess(__file__, [spec], args.timeout)[0])
    if args.max_micro_batch == "on" or (args.max_micro_batch == "auto" and device != "cpu"):
      for seq in (128, 512):
        base = _case("pretraining", "base", seq, 1, cases[-1]["precision"], True)
        emit(find_max_micro_batch(base, args.timeout, args.max_micro_batch_cap))
  emit(common.load_record([r for r in records if r.get("kind") == "measurement"],
                          time.time() - started))
  if stream is not None:
    stream.close()
  if not args.no_table:
    print(table(records), file=sys.stderr)
  return records


if __name__ == "__main__":
  main()
