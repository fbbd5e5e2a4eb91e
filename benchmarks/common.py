"""What the benchmark scripts share; each script is then its own measurement.

* Where things are: the repository, `benchmarks/results/`, `../shared` (data, fixtures), the
  base and tiny `albert_config.json` (`albert_config`, `config_dict`).
* The worker entry: an orchestrator calls `run_subprocess(script, specs, timeout)`, which starts
  `python script --worker '<specs as JSON>'` in a fresh interpreter (so that start-up and peak
  RSS are the case's own); the script's `main` hands that to `worker_main(specs, run_spec)`,
  which emits one `emit_result(...)` line per spec. A spec that produced no line (crash,
  timeout) gets `{"error": ..., "stderr_tail": [...]}`.
* Common arguments (`add_common_arguments`: --timeout, --no-table, --quick, --worker), the
  `run` and `load` records, printing the records (`emitter`), writing them (`write_records`).
* Timing: `time_calls` (warm-up, then timed calls until a count and a duration), `loop_call`
  (one call of a compiled training loop, its loss), `gathered_step` (a predict step as the
  Trainer's: `strategy.run` and gather), `count_params`, `rss_peak_mb`; medians and ratios.
* Ours and the peer: our `Trainer`'s pieces (`built_trainer`, `trainer_train_loop`,
  `trainer_predict_step`, `trainer_train_input`), tf-models-official's `AlbertEncoder` of the
  same sizes (`peer_albert_encoder`).

This module imports only the standard library at load time (the SQuAD benchmark's HuggingFace
worker runs it in an interpreter without TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO_DIR, "benchmarks", "results")
SHARED_DIR = os.path.join(os.path.dirname(REPO_DIR), "shared")  # ../shared: data, fixtures
SHARED_DATA = os.path.join(SHARED_DIR, "data")
BASE_CONFIG_FILE = os.path.join(REPO_DIR, "configs", "v2", "base", "albert_config.json")
TINY_CONFIG_FILE = os.path.join(REPO_DIR, "configs", "tiny", "albert_config.json")
RESULT_PREFIX = "@@BENCHMARK_RESULT@@ "
# The albert_config.json keys of the original release that size an encoder.
CONFIG_KEYS = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
               "num_hidden_groups", "num_attention_heads", "intermediate_size",
               "inner_group_num", "hidden_act", "hidden_dropout_prob",
               "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
               "initializer_range")


# ------------------------------------------------------------------------------- configs
def albert_config(config_file: str, overrides: Optional[Dict] = None):
  """The `albert.config.AlbertConfig` of a file, with `overrides` (e.g. another vocab_size)."""
  from albert.config import AlbertConfig  # pylint: disable=import-outside-toplevel
  config = AlbertConfig.from_json_file(config_file)
  return config.replace(**overrides) if overrides else config


def config_dict(config_file: str, **overrides) -> Dict:
  """The original's keys (`CONFIG_KEYS`) of an albert_config.json, with `overrides`."""
  with open(config_file, encoding="utf-8") as f:
    config = json.load(f)
  return {**{k: config[k] for k in CONFIG_KEYS}, **overrides}


# --------------------------------------------------------------------------- TensorFlow
def import_tensorflow(log_level: str = "2"):
  """(tf, tf_keras), with tf_keras as tf.keras (tf-models-official needs it)."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", log_level)
  os.environ["TF_USE_LEGACY_KERAS"] = "1"
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import tf_keras  # pylint: disable=import-outside-toplevel
  return tf, tf_keras


def peer_initializer(config):
  """A fresh TruncatedNormal of the config's initializer_range (the original's initializer)."""
  _, tf_keras = import_tensorflow()
  return tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range)


def peer_albert_encoder(config):
  """tf-models-official's `networks.AlbertEncoder` with the sizes, dropout rates and initializer
  of an `albert.config.AlbertConfig` (dict outputs): the encoder every benchmark's peer is
  built on, so that the comparisons are of models of the same size."""
  import_tensorflow()
  from official.modeling import activations  # pylint: disable=import-outside-toplevel
  from official.nlp.modeling import networks  # pylint: disable=import-outside-toplevel
  return networks.AlbertEncoder(
      vocab_size=config.vocab_size, embedding_width=config.embedding_size,
      hidden_size=config.hidden_size, num_layers=config.num_hidden_layers,
      num_attention_heads=config.num_attention_heads,
      max_sequence_length=config.max_position_embeddings,
      type_vocab_size=config.type_vocab_size, intermediate_size=config.intermediate_size,
      activation=activations.gelu, dropout_rate=config.hidden_dropout_prob,
      attention_dropout_rate=config.attention_probs_dropout_prob,
      initializer=peer_initializer(config), dict_outputs=True)


def count_params(variables) -> int:
  """The number of scalars in `variables`."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  return int(sum(np.prod(v.shape) for v in variables))


# ---------------------------------------------------------------------------------- timing
def time_calls(fn, warmup: int, min_calls: int, min_seconds: float,
               max_calls: int) -> Tuple[List[float], float]:
  """`warmup` untimed calls, then timed calls until at least `min_calls` lasting at least
  `min_seconds` in total (or `max_calls`). Returns (seconds per call, CPU cores used: this
  process's CPU time over the wall time of the timed calls)."""
  for _ in range(warmup):
    fn()
  cpu0, wall0 = os.times(), time.perf_counter()
  times: List[float] = []
  while True:
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
    if (len(times) >= min_calls and sum(times) >= min_seconds) or len(times) >= max_calls:
      break
  cpu1, wall = os.times(), time.perf_counter() - wall0
  return times, ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall


def loop_call(train_loop, iterator, steps) -> float:
  """One call of a compiled training loop (`make_train_loop`); its loss. A non-finite loss is
  an error (a benchmark must not time a diverged model)."""
  out = train_loop(iterator, steps)
  if int(out["bad_step"].numpy()) >= 0:
    raise RuntimeError(f"non-finite loss {float(out['loss'].numpy())}")
  return float(out["loss"].numpy())


def gathered_step(strategy, replica_step):
  """A predict step as the Trainer's: `replica_step` under `strategy.run`, every output
  gathered along the batch (for the peers, timed like our predict step)."""
  tf, _ = import_tensorflow()

  @tf.function(reduce_retracing=True)
  def predict_step(features):
    per_replica = strategy.run(replica_step, args=(features,))
    return tf.nest.map_structure(lambda v: strategy.gather(v, axis=0), per_replica)

  return predict_step


def rss_peak_mb() -> float:
  """Peak resident memory of this process so far, MB."""
  import resource  # pylint: disable=import-outside-toplevel
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def process_start() -> float:
  """When this process started (epoch seconds): start-up times count from it."""
  import psutil  # pylint: disable=import-outside-toplevel
  return psutil.Process().create_time()


# ---------------------------------------------------------------------------- the worker
def emit_result(result: Dict) -> None:
  """A worker's result line on stdout, for `run_subprocess` to read."""
  sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
  sys.stdout.flush()


def worker_main(spec_json: str, run_spec: Callable[[Dict, int], Dict]) -> List[Dict]:
  """A benchmark's `--worker` entry: runs the specs (a JSON list, or one spec) one after the
  other in this process, `run_spec(spec, index)`, and emits each result line; an exception is
  that spec's `{"error": ...}` (its traceback on stderr). Returns [] (`main`'s records)."""
  specs = json.loads(spec_json)
  for index, spec in enumerate(specs if isinstance(specs, list) else [specs]):
    try:
      result = run_spec(spec, index)
    except Exception as e:  # pylint: disable=broad-except
      traceback.print_exc()
      result = {"error": f"{type(e).__name__}: {e}"}
    emit_result(result)
  return []


def run_subprocess(script: str, specs: List[Dict], timeout: float, log_level: str = "2",
                   python: Optional[str] = None) -> List[Dict]:
  """Runs the specs one after the other in one fresh interpreter; a result per spec.

  `python`: another interpreter (e.g. one with HuggingFace's libraries), started without the
  project's PYTHONPATH and virtualenv; default: this one, with the repository on the path.
  """
  if python:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
  else:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_DIR, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", log_level)
    env["TF_USE_LEGACY_KERAS"] = "1"
  cmd = [python or sys.executable, os.path.abspath(script), "--worker", json.dumps(specs)]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO_DIR, check=False)
    stdout, error = proc.stdout, f"exit code {proc.returncode}"
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
  except subprocess.TimeoutExpired as e:
    stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    error, tail = f"timeout after {timeout:.0f} s", []
  results = [json.loads(line[len(RESULT_PREFIX):]) for line in stdout.splitlines()
             if line.startswith(RESULT_PREFIX)]
  for r in results:
    if "error" in r:
      r["stderr_tail"] = tail
  return results + [{"error": error, "stderr_tail": tail}] * (len(specs) - len(results))


# ------------------------------------------------------------------------ the orchestrator
def add_common_arguments(parser: argparse.ArgumentParser, quick_help: str,
                         timeout: float = 3600.0) -> None:
  """--timeout, --no-table, --quick (alias --smoke) and the hidden --worker of every
  subprocess-based benchmark."""
  parser.add_argument("--timeout", type=float, default=timeout, help="seconds per subprocess")
  parser.add_argument("--no-table", action="store_true", help="no table on stderr")
  parser.add_argument("--quick", "--smoke", action="store_true", help=quick_help)
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)


def split(value: str, allowed: Optional[Sequence[str]] = None, what: str = "value"
          ) -> List[str]:
  """The items of a comma-separated argument; each must be one of `allowed` when given."""
  items = [v.strip() for v in value.split(",") if v.strip()]
  for v in items:
    if allowed is not None and v not in allowed:
      raise SystemExit(f"unknown {what} {v!r}; expected one of {', '.join(allowed)}")
  return items


def emitter(records: List[Dict], stream=None) -> Callable[[Dict], None]:
  """`emit(record)`: appends it to `records` and prints it as one JSON line (also to the open
  file `stream` when given)."""
  def emit(record: Dict) -> None:
    records.append(record)
    line = json.dumps(record)
    print(line, flush=True)
    if stream is not None:
      stream.write(line + "\n")
      stream.flush()
  return emit


def run_record(argv: Optional[Sequence[str]], **fields) -> Dict:
  """The run's first record: its arguments, `fields`, the load average, CPUs and start."""
  return {"kind": "run", "argv": list(argv or []), **fields,
          "load_avg": list(os.getloadavg()), "cpus": os.cpu_count(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def load_record(measurements: List[Dict], wall_s: Optional[float]) -> Dict:
  """The run's "load" line: min/median/max of the 1-minute load averages the measurements saw
  (before and after each), the machine's CPU count and the wall time."""
  loads = [m[k] for m in measurements for k in ("load_avg_1m_before", "load_avg_1m_after")
           if isinstance(m.get(k), (int, float))]
  return {"kind": "load", "load_avg_1m_min": min(loads) if loads else None,
          "load_avg_1m_median": statistics.median(loads) if loads else None,
          "load_avg_1m_max": max(loads) if loads else None, "cpus": os.cpu_count(),
          "wall_s": wall_s}


def write_records(path: str, records: List[Dict], lines: bool = False) -> None:
  """The run's records as one JSON list (`lines`: one JSON line each), written atomically
  (`albert.files.write_text`)."""
  from albert import files  # pylint: disable=import-outside-toplevel
  text = ("".join(json.dumps(r) + "\n" for r in records) if lines
          else json.dumps(records, indent=1))
  files.write_text(path, text)
  print(f"# wrote {path}", file=sys.stderr)


def median_of(records: List[Dict], key: str) -> Optional[float]:
  """Median of `key` over the records that have it; None when none has."""
  values = [r[key] for r in records if r.get(key) is not None]
  return statistics.median(values) if values else None


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
  return a / b if a is not None and b else None


def fmt(value, spec: str = ".0f", none: str = "-") -> str:
  return none if value is None else format(value, spec)
