"""Encoder benchmark: ours (`albert`) vs tf-models-official's `AlbertEncoder`, side by side.

For every (implementation, case, mode, XLA, precision) a fresh Python subprocess imports
TensorFlow, builds the encoder, makes the first call (together: the start-up time), warms up
and then times N calls of a `tf.function` (`jit_compile` on or off):

  infer  forward pass, `training=False`, returning `sequence_output` and `pooled_output`;
  train  forward pass (`training=True`) + loss mean(seq^2) + mean(pooled^2) + gradients +
         `tf_keras.optimizers.SGD.apply_gradients`.

Each measurement is printed as one JSON line (`"kind": "measurement"`): tokens/s (batch x seq
/ median call time), the analytic GFLOP/s and its share of a float32 matmul ceiling measured
in the same run (`"kind": "ceiling"`), start-up time, peak RSS of the subprocess (ru_maxrss)
and its CPU use. At the end come `"kind": "ratio"` lines (ours / peer per case),
`"kind": "bf16"` lines (mixed_bfloat16 speed-up over float32, and the drift of the outputs
from the float32 model with the same weights) and, on stderr, a table. See README.md.

Run from the repository root:

  PYTHONPATH=. python benchmarks/encoder_benchmark.py              # everything (~1 hour)
  PYTHONPATH=. python benchmarks/encoder_benchmark.py --quick      # tiny smoke run, < 1 minute
  PYTHONPATH=. python benchmarks/encoder_benchmark.py --cases 8x128 --xla off --modes infer

`main(argv)` returns the list of records it printed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import sys
import time
from typing import Dict, List, Optional, Sequence

if __package__:
  from benchmarks import common
else:  # run as a script: benchmarks/ is sys.path[0]
  import common  # pylint: disable=import-error

REPO_DIR, RESULTS_DIR = common.REPO_DIR, common.RESULTS_DIR

IMPLS = ("ours", "peer")
MODES = ("infer", "train")
PRECISIONS = ("float32", "mixed_bfloat16")

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
# The base configuration (configs/v2/base), with the original's keys.
BASE_CONFIG = common.config_dict(common.BASE_CONFIG_FILE, **NO_DROPOUT)
# The --quick configuration: configs/tiny without dropout.
TINY_CONFIG = common.config_dict(common.TINY_CONFIG_FILE, **NO_DROPOUT)


# ------------------------------------------------------------------------------------- FLOPs
def forward_flops(config: Dict, batch: int, seq: int) -> float:
  """Analytic multiply-add FLOPs (2 per MAC) of one forward pass of the encoder.

  Per token: the E->H mapping 2EH (when E != H), per layer the q/k/v/output projections 8H^2,
  the FFN 4HI and the attention (scores QK^T and probs x V) 4SH; per sequence the pooler 2H^2.
  Embedding lookups, LayerNorm, softmax and activations are not counted.
  """
  e, h = config["embedding_size"], config["hidden_size"]
  i, layers = config["intermediate_size"], config["num_hidden_layers"]
  per_token = (2 * e * h if e != h else 0) + layers * (8 * h * h + 4 * h * i + 4 * seq * h)
  return float(batch * seq * per_token + batch * 2 * h * h)


def step_flops(config: Dict, batch: int, seq: int, mode: str) -> float:
  """Forward FLOPs for `infer`, 3x forward (forward + two backward matmuls) for `train`."""
  return forward_flops(config, batch, seq) * (3 if mode == "train" else 1)


def parse_case(case: str):
  """"8x128" -> (8, 128)."""
  batch, seq = case.lower().split("x")
  return int(batch), int(seq)


# ------------------------------------------------------------------------------------ worker
def build_encoder(impl: str, config: Dict):
  """(model, call) where call(ids, mask, seg, training) -> (sequence_output, pooled_output)."""
  tf, _ = common.import_tensorflow("3")
  from albert.config import AlbertConfig  # pylint: disable=import-outside-toplevel
  if impl == "ours":
    from albert.models import build_encoder_model  # pylint: disable=import-outside-toplevel
    model = build_encoder_model(AlbertConfig(**config))

    def call(ids, mask, seg, training):
      out = model({"input_ids": ids, "input_mask": mask, "segment_ids": seg}, training=training)
      return out["sequence_output"], out["pooled_output"]
  elif impl == "peer":
    model = common.peer_albert_encoder(AlbertConfig(**config))

    def call(ids, mask, seg, training):
      out = model([ids, mask, seg], training=training)
      return out["sequence_output"], out["pooled_output"]
  else:
    raise ValueError(f"unknown implementation {impl!r}; expected one of {IMPLS}")
  del tf
  return model, call


def make_inputs(config: Dict, batch: int, seq: int, seed: int = 0):
  """Random ids, a full mask, segment 0 for the first half and 1 for the second half."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.RandomState(seed)
  ids = rng.randint(0, config["vocab_size"], size=(batch, seq)).astype(np.int32)
  mask = np.ones((batch, seq), np.int32)
  seg = np.zeros((batch, seq), np.int32)
  seg[:, seq // 2:] = 1
  return ids, mask, seg


def _time_calls(fn, warmup: int, steps: Optional[int], min_seconds: float):
  """Warm-up calls, then timed calls: `steps` of them, or (None) >= 3 and >= min_seconds."""
  return common.time_calls(fn, warmup, steps or 3, min_seconds, steps or 200)


def run_worker(spec: Dict) -> Dict:
  """One measurement in this (fresh) process; see the module docstring."""
  process_start = common.process_start()
  load_before = os.getloadavg()[0]
  t0 = time.time()
  tf, tf_keras = common.import_tensorflow("3")
  import numpy as np  # pylint: disable=import-outside-toplevel
  impl, mode, xla, precision = spec["impl"], spec["mode"], spec["xla"], spec["precision"]
  config, batch, seq = spec["config"], spec["batch"], spec["seq"]
  if impl == "peer":
    import official.nlp.modeling.networks  # pylint: disable=import-outside-toplevel,unused-import
  else:
    import albert.models  # pylint: disable=import-outside-toplevel,unused-import
  t_import = time.time()

  tf_keras.utils.set_random_seed(spec.get("seed", 0))
  tf_keras.mixed_precision.set_global_policy(precision)
  model, call = build_encoder(impl, config)
  ids, mask, seg = (tf.constant(a) for a in make_inputs(config, batch, seq))
  t_build = time.time()

  if mode == "infer":
    @tf.function(jit_compile=xla)
    def step(ids, mask, seg):
      return call(ids, mask, seg, False)

    def run():
      return step(ids, mask, seg)[1].numpy()
  elif mode == "train":
    optimizer = tf_keras.optimizers.SGD(learning_rate=1e-4)
    variables = model.trainable_variables
    optimizer.build(variables)

    @tf.function(jit_compile=xla)
    def step(ids, mask, seg):
      with tf.GradientTape() as tape:
        sequence_output, pooled_output = call(ids, mask, seg, True)
        loss = (tf.reduce_mean(tf.square(tf.cast(sequence_output, tf.float32))) +
                tf.reduce_mean(tf.square(tf.cast(pooled_output, tf.float32))))
      grads = tape.gradient(loss, variables)
      optimizer.apply_gradients(zip(grads, variables))
      return loss

    def run():
      return step(ids, mask, seg).numpy()
  else:
    raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")

  run()
  t_first = time.time()
  times, cpu_util = _time_calls(run, spec["warmup"], spec.get("steps"), spec["min_seconds"])
  peak_mb = common.rss_peak_mb()
  median = statistics.median(times)
  flops = step_flops(config, batch, seq, mode)
  result = {
      "impl": impl, "case": f"{batch}x{seq}", "batch": batch, "seq": seq, "mode": mode,
      "xla": xla, "precision": precision,
      "tokens_per_s": batch * seq / median,
      "tokens_per_s_best": batch * seq / min(times),
      "step_ms_median": 1e3 * median, "step_ms_min": 1e3 * min(times),
      "step_ms_max": 1e3 * max(times), "steps": len(times),
      "gflops": flops / median / 1e9, "mflop_per_token": flops / (batch * seq) / 1e6,
      "startup_s": t_first - process_start, "import_s": t_import - t0,
      "build_s": t_build - t_import, "first_call_s": t_first - t_build,
      "peak_rss_mb": peak_mb, "cpu_util": cpu_util, "load_avg_1m": load_before,
      "params": common.count_params(model.weights),
  }

  if precision == "mixed_bfloat16" and mode == "infer" and spec.get("drift", True):
    # Drift from float32: the same weights in a float32 model, its (non-XLA) forward pass.
    got = [np.asarray(tf.cast(t, tf.float32)) for t in step(ids, mask, seg)]
    weights = model.get_weights()
    tf_keras.mixed_precision.set_global_policy("float32")
    ref_model, ref_call = build_encoder(impl, config)
    ref_model.set_weights(weights)
    want = [np.asarray(t) for t in tf.function(ref_call)(ids, mask, seg, False)]
    for name, g, w in zip(("sequence_output", "pooled_output"), got, want):
      diff = np.abs(g - w)
      result[f"drift_{name}_max_abs"] = float(diff.max())
      result[f"drift_{name}_mean_abs"] = float(diff.mean())
      result[f"ref_{name}_mean_abs"] = float(np.abs(w).mean())
  return result


def run_ceiling(spec: Dict) -> Dict:
  """Median GFLOP/s of an n x n x n matmul: float32 (the ceiling), float32 XLA, bfloat16."""
  tf, _ = common.import_tensorflow("3")
  n, repeats = spec["n"], spec["repeats"]
  result = {"n": n, "repeats": repeats, "load_avg_1m": os.getloadavg()[0]}
  for key, dtype, xla in (("float32", tf.float32, False), ("float32_xla", tf.float32, True),
                          ("bfloat16", tf.bfloat16, False)):
    a = tf.cast(tf.random.normal([n, n]), dtype)
    b = tf.cast(tf.random.normal([n, n]), dtype)
    fn = tf.function(lambda a, b: tf.matmul(a, b)[0, 0], jit_compile=xla)
    times, _ = _time_calls(lambda: fn(a, b).numpy(), 3, repeats, 0.0)
    result[f"{key}_gflops"] = 2.0 * n ** 3 / statistics.median(times) / 1e9
    result[f"{key}_gflops_best"] = 2.0 * n ** 3 / min(times) / 1e9
  return result


def run_spec(spec: Dict, index: int) -> Dict:
  """One spec of a worker process (several one after the other with --share-process)."""
  if spec.get("kind") == "ceiling":
    return run_ceiling(spec)
  if index:
    _, tf_keras = common.import_tensorflow("3")
    tf_keras.backend.clear_session()
  result = run_worker(spec)
  if index:  # not a fresh process: no import, peak RSS is the process's so far
    result.update(shared_process=True, startup_s=result["startup_s"] - result["import_s"])
  return result


# ------------------------------------------------------------------------------ orchestrator
def summarize(records: List[Dict]) -> List[Dict]:
  """Per (impl, case, mode, xla, precision): the median of every numeric field over repeats."""
  groups: Dict[tuple, List[Dict]] = {}
  for r in records:
    if "error" not in r:
      groups.setdefault((r["impl"], r["case"], r["mode"], r["xla"], r["precision"]), []).append(r)
  out = []
  for key, group in groups.items():
    s = {"kind": "summary", "impl": key[0], "case": key[1], "mode": key[2], "xla": key[3],
         "precision": key[4], "repeats": len(group)}
    for field, value in group[0].items():
      if isinstance(value, float) and field != "pct_of_start_ceiling":
        s[field] = common.median_of(group, field)
    out.append(s)
  return out


def ratios(summary: List[Dict]) -> List[Dict]:
  """ours / peer for every case both ran."""
  by_key = {(s["impl"], s["case"], s["mode"], s["xla"], s["precision"]): s for s in summary}
  out = []
  for (impl, case, mode, xla, precision), ours in by_key.items():
    peer = by_key.get(("peer", case, mode, xla, precision))
    if impl != "ours" or peer is None:
      continue
    out.append({
        "kind": "ratio", "case": case, "mode": mode, "xla": xla, "precision": precision,
        "ours_tokens_per_s": ours["tokens_per_s"], "peer_tokens_per_s": peer["tokens_per_s"],
        "speed_ratio": common.ratio(ours["tokens_per_s"], peer["tokens_per_s"]),
        "speed_ratio_best": common.ratio(ours["tokens_per_s_best"], peer["tokens_per_s_best"]),
        "startup_ratio": common.ratio(ours["startup_s"], peer["startup_s"]),
        "peak_rss_ratio": common.ratio(ours["peak_rss_mb"], peer["peak_rss_mb"]),
        "ours_pct_of_ceiling": ours.get("pct_of_ceiling"),
        "peer_pct_of_ceiling": peer.get("pct_of_ceiling"),
    })
  return out


def bf16_reports(summary: List[Dict]) -> List[Dict]:
  """mixed_bfloat16 speed-up over float32 (same impl/case/mode/xla) and drift."""
  by_key = {(s["impl"], s["case"], s["mode"], s["xla"], s["precision"]): s for s in summary}
  out = []
  for (impl, case, mode, xla, precision), bf in by_key.items():
    fp = by_key.get((impl, case, mode, xla, "float32"))
    if precision != "mixed_bfloat16" or fp is None:
      continue
    rec = {"kind": "bf16", "impl": impl, "case": case, "mode": mode, "xla": xla,
           "float32_tokens_per_s": fp["tokens_per_s"], "bf16_tokens_per_s": bf["tokens_per_s"],
           "speedup_vs_float32": common.ratio(bf["tokens_per_s"], fp["tokens_per_s"]),
           "speedup_vs_float32_best": common.ratio(bf["tokens_per_s_best"], fp["tokens_per_s_best"])}
    rec.update({k: v for k, v in bf.items() if k.startswith(("drift_", "ref_"))})
    out.append(rec)
  return out


def print_table(summary: List[Dict], ceiling: Dict, stream=sys.stderr) -> None:
  """A human-readable side-by-side table (ours | peer) of the summary."""
  by_key = {(s["impl"], s["case"], s["mode"], s["xla"], s["precision"]): s for s in summary}
  rows = sorted({k[1:] for k in by_key},
                key=lambda k: (k[3], parse_case(k[0]), k[1], k[2]))
  stream.write(f"\nfloat32 matmul ceiling {common.fmt(ceiling.get('float32_gflops'), '.1f')} GFLOP/s "
               f"(XLA {common.fmt(ceiling.get('float32_xla_gflops'), '.1f')}, bfloat16 "
               f"{common.fmt(ceiling.get('bfloat16_gflops'), '.1f')})\n")
  header = ("precision", "case", "mode", "xla", "ours tok/s", "peer tok/s", "ratio",
            "ours %ceil", "peer %ceil", "ours start s", "peer start s", "ours MB", "peer MB")
  widths = (14, 6, 5, 3, 10, 10, 5, 10, 10, 12, 12, 7, 7)
  stream.write("  ".join(h.rjust(w) for h, w in zip(header, widths)) + "\n")
  for case, mode, xla, precision in rows:
    o, p = by_key.get(("ours", case, mode, xla, precision), {}), by_key.get(
        ("peer", case, mode, xla, precision), {})
    cells = (precision, case, mode, "on" if xla else "off",
             common.fmt(o.get("tokens_per_s")), common.fmt(p.get("tokens_per_s")),
             common.fmt(common.ratio(o.get("tokens_per_s"), p.get("tokens_per_s")), ".2f"),
             common.fmt(o.get("pct_of_ceiling"), ".1f"), common.fmt(p.get("pct_of_ceiling"), ".1f"),
             common.fmt(o.get("startup_s"), ".1f"), common.fmt(p.get("startup_s"), ".1f"),
             common.fmt(o.get("peak_rss_mb")), common.fmt(p.get("peak_rss_mb")))
    stream.write("  ".join(c.rjust(w) for c, w in zip(cells, widths)) + "\n")
  stream.flush()


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--cases", default=None,
                 help="comma-separated BATCHxSEQ (default 1x128,8x128,8x512; --quick 2x32)")
  p.add_argument("--impls", default="ours,peer", help="ours,peer (default both)")
  p.add_argument("--modes", default="infer,train", help="infer,train (default both)")
  p.add_argument("--xla", choices=("both", "on", "off"), default=None,
                 help="jit_compile on, off or both (default both; --quick off)")
  p.add_argument("--precision", default="float32,mixed_bfloat16",
                 help="float32,mixed_bfloat16 (default both)")
  p.add_argument("--steps", type=int, default=None,
                 help="timed calls per measurement (default: >= 3 and >= --min-seconds)")
  p.add_argument("--min-seconds", type=float, default=None,
                 help="minimum timed seconds when --steps is not given (default 10; --quick 0)")
  p.add_argument("--warmup", type=int, default=None, help="untimed calls after the first "
                 "(default 2; --quick 1)")
  p.add_argument("--repeats", type=int, default=1,
                 help="fresh subprocesses per measurement; summaries take medians (default 1)")
  p.add_argument("--config", default=None,
                 help="albert_config.json to benchmark (default: the base configuration)")
  p.add_argument("--ceiling-n", type=int, default=None,
                 help="matmul size of the ceiling measurement (default 2048; --quick 256)")
  p.add_argument("--jobs", type=int, default=None,
                 help="subprocesses at a time (default 1; --quick 2: its timings are not "
                 "meaningful anyway)")
  p.add_argument("--out", default=None, help="also append the JSON lines to this file")
  p.add_argument("--share-process", action="store_true",
                 help="one subprocess per implementation instead of one per measurement "
                 "(faster; start-up and peak RSS then only meaningful for its first one)")
  common.add_common_arguments(
      p, "smoke run: tiny config, case 2x32, XLA off, 3 steps, --share-process, --jobs 3 "
      "(< 1 minute; its figures mean nothing)")
  args = p.parse_args(argv)
  quick = args.quick
  args.cases = args.cases or ("2x32" if quick else "1x128,8x128,8x512")
  args.xla = args.xla or ("off" if quick else "both")
  args.steps = args.steps if args.steps is not None else (3 if quick else None)
  args.min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if quick else 10.0)
  args.warmup = args.warmup if args.warmup is not None else (1 if quick else 2)
  args.jobs = args.jobs or (3 if quick else 1)
  args.share_process = args.share_process or quick
  args.ceiling_n = args.ceiling_n or (256 if quick else 2048)
  return args


def main(argv: Optional[Sequence[str]] = None) -> List[Dict]:
  """Runs the benchmark; prints (and returns) its JSON records."""
  args = parse_args(argv)
  if args.worker is not None:
    return common.worker_main(args.worker, run_spec)
  if args.config:
    sys.path.insert(0, REPO_DIR)
    from albert.config import AlbertConfig  # pylint: disable=import-outside-toplevel
    config = AlbertConfig.from_json_file(args.config).to_dict()
    config = {k: v for k, v in config.items() if k in BASE_CONFIG or k == "cross_layer_sharing"}
  else:
    config = TINY_CONFIG if args.quick else BASE_CONFIG
  cases = [parse_case(c) for c in args.cases.split(",") if c.strip()]
  impls = common.split(args.impls, IMPLS, "implementation")
  modes = common.split(args.modes, MODES, "mode")
  precisions = common.split(args.precision, PRECISIONS, "precision")
  xlas = {"both": [False, True], "on": [True], "off": [False]}[args.xla]
  out_file = open(args.out, "a", encoding="utf-8") if args.out else None  # pylint: disable=consider-using-with
  records: List[Dict] = []
  emit = common.emitter(records, out_file)

  ceiling_spec = {"kind": "ceiling", "n": args.ceiling_n, "repeats": 5 if args.quick else 20}
  specs = []
  for repeat in range(args.repeats):
    for batch, seq in cases:
      for precision in precisions:
        for xla in xlas:
          for mode in modes:
            # ours and peer back to back (similar machine load), the order alternating
            # with the repeat so that neither always runs first
            for impl in (impls if repeat % 2 == 0 else impls[::-1]):
              specs.append({"impl": impl, "batch": batch, "seq": seq, "mode": mode, "xla": xla,
                            "precision": precision, "config": config, "steps": args.steps,
                            "warmup": args.warmup, "min_seconds": args.min_seconds, "seed": 0,
                            "repeat": repeat})
  if args.share_process:  # one process per (implementation, repeat)
    groups = [[s for s in specs if (s["impl"], s["repeat"]) == key]
              for key in dict.fromkeys((s["impl"], s["repeat"]) for s in specs)]
  else:  # a fresh process per measurement
    groups = [[s] for s in specs]

  ceilings = []
  if args.jobs == 1:  # alone on the machine (as far as we are concerned), before everything
    ceilings.append(common.run_subprocess(__file__, [ceiling_spec], args.timeout, "3")[0])
    emit({"kind": "ceiling", "when": "start", **ceilings[0]})
  measurements = []
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
    late_ceiling = pool.submit(common.run_subprocess, __file__, [ceiling_spec], args.timeout, "3") if (
        args.jobs > 1) else None
    for group, results in zip(groups, pool.map(
        lambda g: common.run_subprocess(__file__, g, args.timeout, "3"), groups)):  # in order
      for spec, result in zip(group, results):
        record = {"kind": "measurement", "repeat": spec["repeat"], **result}
        if "error" in result:
          record.update({k: spec[k] for k in ("impl", "mode", "xla", "precision")},
                        case=f"{spec['batch']}x{spec['seq']}")
        elif ceilings and ceilings[0].get("float32_gflops"):
          record["pct_of_start_ceiling"] = (100.0 * result["gflops"] /
                                            ceilings[0]["float32_gflops"])
        measurements.append(record)
        emit(record)
    if late_ceiling is not None:
      ceilings.append(late_ceiling.result()[0])
      emit({"kind": "ceiling", "when": "concurrent", **ceilings[-1]})
  if not args.quick:  # the ceiling again, after
    ceilings.append(common.run_subprocess(__file__, [ceiling_spec], args.timeout, "3")[0])
    emit({"kind": "ceiling", "when": "end", **ceilings[-1]})
  best = {}  # each ceiling: the higher median of the start and end runs (the less disturbed)
  for key in ("float32_gflops", "float32_xla_gflops", "bfloat16_gflops"):
    values = [c[key] for c in ceilings if c.get(key)]
    if values:
      best[key] = max(values)
  emit({"kind": "ceiling", "when": "used", **best})
  if best.get("float32_gflops"):
    for m in measurements:
      if "gflops" in m:
        m["pct_of_ceiling"] = 100.0 * m["gflops"] / best["float32_gflops"]
        if best.get("bfloat16_gflops"):
          m["pct_of_bf16_ceiling"] = 100.0 * m["gflops"] / best["bfloat16_gflops"]
  summary = summarize(measurements)
  for s in summary:
    emit(s)
  for r in ratios(summary):
    emit(r)
  for r in bf16_reports(summary):
    emit(r)
  if not args.no_table:
    print_table(summary, best)
  if out_file:
    out_file.close()
  return records


if __name__ == "__main__":
  main(sys.argv[1:])
