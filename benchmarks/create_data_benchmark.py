"""create_pretraining_data benchmark: instances/s and peak memory vs corpus size, dupe, workers.

Each case runs `create_pretraining_data.py` as a fresh subprocess (start-up included, as a user
sees it) on a corpus made of `--corpus` repeated `scale` times, with the genuine SentencePiece
model, `max_seq_length` 512 and 20 predictions (the issue's settings), and prints one JSON line
(`"kind": "case"`):

  instances, wall seconds, instances/s (wall), CPU seconds of the whole process tree and
  instances per CPU second (a figure that other load on the machine disturbs less), peak RSS of
  the process tree (main process + workers, sampled every 20 ms) and of the main process alone,
  the machine's load average before the case.

Then `"kind": "ratio"` lines: speed-up over the original's ~170 instances/s measured on this
machine (issue 3; target >= 5x), and peak memory at 10x the corpus and at dupe 2 over 1x /
dupe 1 (target: within 20%).

Run from the repository root:

  PYTHONPATH=. python benchmarks/create_data_benchmark.py            # 5 cases, ~1 minute
  PYTHONPATH=. python benchmarks/create_data_benchmark.py --quick    # 1x only, dupe 1
  PYTHONPATH=. python benchmarks/create_data_benchmark.py --cases 1x:1:2,10x:1:2

`main(argv)` returns the records it printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

import psutil

if __package__:
  from benchmarks import common
else:  # run as a script: benchmarks/ is sys.path[0]
  import common  # pylint: disable=import-error

REPO_DIR, SHARED = common.REPO_DIR, common.SHARED_DATA
ORIGINAL_INSTANCES_PER_SECOND = 170.0  # issue 3: 1,787 instances in ~11 s, single process
ORIGINAL_PEAK_MB = 723.0  # issue 3, mostly the TensorFlow import


def _sample_rss(pid: int, stop: threading.Event, out: Dict[str, float]) -> None:
  """Peak RSS (MB) of the process tree and of the root process, sampled until `stop`."""
  try:
    root = psutil.Process(pid)
  except psutil.NoSuchProcess:
    return
  while not stop.is_set():
    try:
      procs = [root] + root.children(recursive=True)
      total = main = 0
      for proc in procs:
        try:
          rss = proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
          continue
        total += rss
        if proc.pid == pid:
          main = rss
      out["tree"] = max(out.get("tree", 0.0), total / 2**20)
      out["main"] = max(out.get("main", 0.0), main / 2**20)
    except psutil.NoSuchProcess:
      break
    stop.wait(0.02)


def _corpus(source: str, scale: int, directory: str) -> str:
  if scale == 1:
    return source
  path = os.path.join(directory, f"corpus_x{scale}.txt")
  if not os.path.exists(path):
    with open(source, "rb") as f:
      text = f.read()
    if not text.endswith(b"\n\n"):
      text = text.rstrip(b"\n") + b"\n\n"
    with open(path, "wb") as f:
      for _ in range(scale):
        f.write(text)
  return path


def run_case(corpus: str, spm_model: str, scale: int, dupe: int, workers: int,
             directory: str, extra: Sequence[str] = ()) -> Dict:
  source = _corpus(corpus, scale, directory)
  out_dir = tempfile.mkdtemp(dir=directory)
  summary_file = os.path.join(out_dir, "summary.json")
  cmd = [sys.executable, os.path.join(REPO_DIR, "create_pretraining_data.py"),
         f"--input_file={source}", f"--output_file={os.path.join(out_dir, 'train.tfrecord')}",
         f"--spm_model_file={spm_model}", "--max_seq_length=512", "--max_predictions_per_seq=20",
         f"--dupe_factor={dupe}", f"--num_workers={workers}", "--num_output_shards=4",
         f"--summary_file={summary_file}", "--progress_interval=1000", *extra]
  env = dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2")
  load = os.getloadavg()[0]
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.monotonic()
  proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  peaks: Dict[str, float] = {}
  stop = threading.Event()
  sampler = threading.Thread(target=_sample_rss, args=(proc.pid, stop, peaks), daemon=True)
  sampler.start()
  stdout, stderr = proc.communicate()
  wall = time.monotonic() - start
  stop.set()
  sampler.join()
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  if proc.returncode != 0:
    raise RuntimeError(f"case failed: {' '.join(cmd)}\n{stderr.decode()[-3000:]}")
  with open(summary_file) as f:
    summary = json.load(f)
  shutil.rmtree(out_dir, ignore_errors=True)
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  instances = summary["records_written"]
  del stdout
  return {
      "kind": "case", "corpus_scale": scale, "corpus_mb": round(summary["input_bytes"] / 1e6, 2),
      "dupe_factor": dupe, "num_workers": workers, "instances": instances,
      "wall_s": round(wall, 2), "instances_per_s": round(instances / wall, 1),
      "cpu_s": round(cpu, 2), "instances_per_cpu_s": round(instances / cpu, 1),
      "pipeline_s": round(summary["seconds_total"], 2),
      "tokenize_s": round(summary["seconds_tokenize"], 2),
      "instances_s": round(summary["seconds_instances"], 2),
      "peak_rss_tree_mb": round(peaks.get("tree", 0.0), 1),
      "peak_rss_main_mb": round(peaks.get("main", 0.0), 1),
      "load_average": round(load, 2),
  }


def _ratios(records: List[Dict], baseline: float) -> List[Dict]:
  def find(scale, dupe, workers=None):
    for r in records:
      if (r["corpus_scale"], r["dupe_factor"]) == (scale, dupe) and (
          workers is None or r["num_workers"] == workers):
        return r
    return None

  out = []
  for r in records:
    if r["corpus_scale"] == 1 and r["dupe_factor"] == 1:
      out.append({"kind": "ratio", "what": f"speed-up over the original ({baseline:g} "
                  f"instances/s), {r['num_workers']} worker(s), wall",
                  "value": round(r["instances_per_s"] / baseline, 2), "target": ">= 5"})
      out.append({"kind": "ratio", "what": f"speed-up over the original ({baseline:g} "
                  f"instances/s), {r['num_workers']} worker(s), per CPU second",
                  "value": round(r["instances_per_cpu_s"] / baseline, 2)})
      out.append({"kind": "ratio", "what": f"peak RSS (tree) / the original's {ORIGINAL_PEAK_MB:g} "
                  f"MB, {r['num_workers']} worker(s)",
                  "value": round(r["peak_rss_tree_mb"] / ORIGINAL_PEAK_MB, 3)})
  for workers in sorted({r["num_workers"] for r in records}):
    base = find(1, 1, workers)
    for scale, dupe in ((10, 1), (1, 2), (1, 10)):
      other = find(scale, dupe, workers)
      if base and other:
        out.append({"kind": "ratio", "what": f"peak RSS (tree) corpus {scale}x dupe {dupe} / "
                    f"1x dupe 1, {workers} worker(s)",
                    "value": round(other["peak_rss_tree_mb"] / base["peak_rss_tree_mb"], 3),
                    "target": "<= 1.2"})
  return out


def main(argv: Optional[Sequence[str]] = None) -> List[Dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--corpus", default=os.path.join(SHARED, "corpus", "albert_format",
                                                       "books_train.txt"))
  parser.add_argument("--spm_model_file", default=os.path.join(SHARED, "albert_spm",
                                                               "30k-clean.model"))
  parser.add_argument("--cases", default="1x:1:1,1x:1:2,10x:1:2,1x:2:2,1x:10:2",
                      help="comma-separated SCALEx:DUPE:WORKERS")
  parser.add_argument("--quick", action="store_true", help="only 1x, dupe 1, 1 and 2 workers")
  parser.add_argument("--work_dir", default=None, help="for the scaled corpora and outputs")
  parser.add_argument("--baseline_instances_per_s", type=float,
                      default=ORIGINAL_INSTANCES_PER_SECOND,
                      help="the original's rate on this input (measure it under the same load)")
  args = parser.parse_args(argv)
  cases = "1x:1:1,1x:1:2" if args.quick else args.cases
  directory = args.work_dir or tempfile.mkdtemp(prefix="create_data_benchmark-")
  os.makedirs(directory, exist_ok=True)
  records: List[Dict] = []
  emit = common.emitter(records)
  try:
    for case in common.split(cases):
      scale, dupe, workers = case.split(":")
      emit(run_case(args.corpus, args.spm_model_file, int(scale.rstrip("x")), int(dupe),
                    int(workers), directory))
    for record in _ratios(records, args.baseline_instances_per_s):
      emit(record)
  finally:
    if not args.work_dir:
      shutil.rmtree(directory, ignore_errors=True)
  return records


if __name__ == "__main__":
  main()
