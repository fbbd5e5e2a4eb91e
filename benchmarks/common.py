"""What the benchmark scripts share: fresh worker subprocesses, their result lines, the peer
encoder, small helpers.

A benchmark's orchestrator calls `run_subprocess(script, specs, timeout)`, which starts
`python script --worker '<specs as JSON>'` in a fresh interpreter (so that start-up and peak
RSS are the case's own) and reads back one `emit_result(...)` line per spec. A spec that
produced no line (crash, timeout) gets `{"error": ..., "stderr_tail": [...]}`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from typing import Dict, List, Optional

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO_DIR, "benchmarks", "results")
RESULT_PREFIX = "@@BENCHMARK_RESULT@@ "


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


def load_record(measurements: List[Dict], wall_s: float) -> Dict:
  """The run's "load" line: min/median/max of the 1-minute load averages the measurements saw
  (before and after each), the machine's CPU count and the wall time."""
  loads = [m[k] for m in measurements for k in ("load_avg_1m_before", "load_avg_1m_after")
           if isinstance(m.get(k), (int, float))]
  return {"kind": "load", "load_avg_1m_min": min(loads) if loads else None,
          "load_avg_1m_median": statistics.median(loads) if loads else None,
          "load_avg_1m_max": max(loads) if loads else None, "cpus": os.cpu_count(),
          "wall_s": wall_s}


def write_records(path: str, records: List[Dict]) -> None:
  """The run's records as one JSON list, written atomically (`albert.files.write_text`)."""
  from albert import files  # pylint: disable=import-outside-toplevel
  files.write_text(path, json.dumps(records, indent=1))
  print(f"# wrote {path}", file=sys.stderr)


def rss_peak_mb() -> float:
  """Peak resident memory of this process so far, MB."""
  import resource  # pylint: disable=import-outside-toplevel
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def emit_result(result: Dict) -> None:
  """A worker's result line on stdout, for `run_subprocess` to read."""
  sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
  sys.stdout.flush()


def run_subprocess(script: str, specs: List[Dict], timeout: float,
                   log_level: str = "2") -> List[Dict]:
  """Runs the specs one after the other in one fresh interpreter; a result per spec."""
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_DIR, env.get("PYTHONPATH")) if p)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", log_level)
  env["TF_USE_LEGACY_KERAS"] = "1"
  cmd = [sys.executable, os.path.abspath(script), "--worker", json.dumps(specs)]
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


def median_of(records: List[Dict], key: str) -> Optional[float]:
  """Median of `key` over the records that have it; None when none has."""
  values = [r[key] for r in records if r.get(key) is not None]
  return statistics.median(values) if values else None


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
  return a / b if a is not None and b else None


def fmt(value, spec: str = ".0f", none: str = "-") -> str:
  return none if value is None else format(value, spec)
