"""Fine-tuning benchmark (GLUE): ours vs tf-models-official's `BertClassifier` over `AlbertEncoder`.

What is timed, for SST-2 and MRPC on the base configuration (configs/v2/base, vocabulary 30000,
random weights), with length buckets (`default_buckets(512)`: 32, 64, 128, 256, 512, the cap
512 of the original's run_glue.sh) and with every example padded to 128 and to 512:

  train  one fine-tuning step (forward with dropout, softmax cross-entropy, gradients, clipping
         to global norm 1.0, AdamW with the original's run_glue.sh learning rate and warmup);
  eval   one prediction step of the dev set (forward, `training=False`, logits and
         probabilities), as `Trainer.predict` runs it for `--do_eval`.

  ours   `albert.tasks.classifier.ClassifierTask` on `albert.train.trainer.Trainer`: the Trainer's own
         compiled host loop (`Trainer.make_train_loop()`) and prediction step
         (`trainer.evaluator.make_predict_step()`), the Trainer's AdamW.
  peer   `official.nlp.modeling.models.BertClassifier` (dropout 0.1 on the pooled output, a
         Dense head) over `networks.AlbertEncoder` of the same sizes, AdamW of
         `official.nlp.optimization.create_optimizer`, run through the same host loop
         (`albert.train.loop.make_train_loop`: the same loss, clipping and metrics; its
         embedding gradient left sparse, as tf-models-official's trainer leaves it).

Both get the same batches: real rows of the task's feature cache (written by
`albert.data.glue.cache.build_glue_cache` and shared by every worker), cut to the padded
length exactly as the input pipeline cuts them. Every occupied padded length (shape) is timed on
its own: a traced first call, `--warmup` untimed calls, then at least `--min-calls` timed calls
lasting at least `--min-seconds`. Epoch and dev-pass times are extrapolated from those step
times and the number of batches of each shape: one training epoch has n_b / batch batches of
bucket b (n_b: the train examples whose length falls in it, from the cache's `lengths`); one dev
pass has the batches the one-pass eval pipeline actually yields (each bucket padded to whole
batches). With fixed padding there is one shape. `examples_per_s` = examples / that time.

For ours with buckets, a `stream` check then runs the Trainer's loop on its real shuffled,
bucketed training input (`albert.train.distribute.distributed_dataset`, the iterator
`Trainer.run` uses) for 2 x `--stream-steps` steps after a warm-up call, and compares the time
with the sum of the per-shape step times of the batches it consumed (the same seeded pipeline,
iterated alongside): the extrapolation holds when `stream_over_estimate` is close to 1.

`conversion` measurements: `build_glue_cache` of SST-2 train (67,349 examples) at
max_seq_length 128 into an empty folder, in a fresh TF-free process (1 worker, the default for
a file of this size, and 2 spawned workers), beside the original's anchor
(../shared/fixtures/golden/finetune/classifier/sst2_train_conversion_timing.json): conversion
seconds, whole process wall time and peak RSS.

Two methods (`--methods`): `separate`, a fresh subprocess per impl and cell (its peak RSS is
the cell's own), ours and the peer back to back, the first of the pair alternating between
repeats; `interleaved`, both built in one subprocess and timed in rounds (one call of each, the
first of the round alternating), so that a load that drifts over seconds hits both alike: on a
shared machine its ratios are the ones to read (`pair_ratios` per shape), and the peak RSS is
the pair's.

JSON lines on stdout: `run`, `conversion`, `measurement` (one per impl and cell, with its
`method`; per shape: step time and calls; epoch / dev-pass time, examples/s, real and padded
tokens/s, peak RSS, the 1-minute load average before and after), `summary` (medians over
repeats), `ratio` (ours / peer at equal padding, paired per repeat), `buckets` (epoch time with
buckets vs padding to 128 and 512), `conversion_vs_anchor`, `load`; a table on stderr; the
records to `--out` (default benchmarks/results/finetune.jsonl). `--summarize FILE...` derives
the summaries again from the measurement lines of earlier outputs (runs stopped early, or one
run per method).

Run from the repository root:

  PYTHONPATH=. python benchmarks/finetune_benchmark.py             # everything (2-3 hours, 2 cores)
  PYTHONPATH=. python benchmarks/finetune_benchmark.py --quick     # smoke run, about a minute
  PYTHONPATH=. python benchmarks/finetune_benchmark.py --tasks sst-2 --paddings buckets,512
  PYTHONPATH=. python benchmarks/finetune_benchmark.py --methods interleaved --repeats 1

`main(argv)` returns the list of records it printed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

if __package__:
  from benchmarks import common
else:  # run as a script: benchmarks/ is sys.path[0]
  import common  # pylint: disable=import-error

REPO_DIR, RESULTS_DIR = common.REPO_DIR, common.RESULTS_DIR
GLUE_DIR = os.path.join(common.SHARED_DATA, "glue")
QUICK_GLUE_DIR = os.path.join(REPO_DIR, "tests", "testdata", "glue")
ANCHOR = os.path.join(common.SHARED_DIR, "fixtures", "golden", "finetune", "classifier",
                      "sst2_train_conversion_timing.json")
SPM_MODEL = os.path.join(REPO_DIR, "tests", "testdata", "albert_spm", "30k-clean.model")

IMPLS = ("ours", "peer")
MODES = ("train", "eval")
# task -> (learning rate, train steps, warmup steps) of the original's run_glue.sh (batch 32).
RUN_GLUE = {"sst-2": (1e-5, 20935, 1256), "mrpc": (2e-5, 800, 200)}


def padding_cap(padding: str, bucket_cap: int) -> int:
  """The records' max_seq_length of a padding setting ("buckets", or a fixed length "128")."""
  return bucket_cap if padding == "buckets" else int(padding)


# ------------------------------------------------------------------------------------ worker
def _task(spec: Dict, scratch: str):
  """(ClassifierTask, FinetuneRun) of the cell (`finetune_run`): the original's run_glue.sh
  optimizer settings; the feature caches in the shared cache folder."""
  from albert.tasks.classifier import (  # pylint: disable=import-outside-toplevel
      ClassifierTask, ClassifierTaskConfig)
  from albert.tasks.finetune import finetune_run  # pylint: disable=import-outside-toplevel
  lr, steps, warmup = RUN_GLUE[spec["task"]]
  run = finetune_run(
      output_dir=scratch, albert_config=common.albert_config(spec["config_file"],
                                                             spec["overrides"]),
      spm_model_file=spec["spm_model_file"],
      max_seq_length=padding_cap(spec["padding"], spec["bucket_cap"]),
      cached_dir=spec["cache_dir"], length_buckets=spec["padding"] == "buckets", num_workers=1,
      seed=spec["seed"], train_batch_size=spec["train_batch"], eval_batch_size=spec["eval_batch"],
      num_train_steps=steps, save_checkpoints_steps=steps, iterations_per_loop=1,
      enable_xla=spec["xla"], optimizer="adamw", learning_rate=lr, num_warmup_steps=warmup)
  task = ClassifierTask(ClassifierTaskConfig(finetune=run.finetune, task_name=spec["task"],
                                             data_dir=spec["data_dir"]), log=lambda _: None)
  return task, run


def _ours(task, run):
  """(model, train_loop, predict_step, trainer) of the Trainer, built but not run."""
  from albert.train.trainer import Trainer  # pylint: disable=import-outside-toplevel
  trainer = Trainer(task, run.trainer, run.optimizer, log=lambda _: None)
  trainer.prepare(["train", "eval"])
  trainer.build()
  return (trainer.model, trainer.make_train_loop(), trainer.evaluator.make_predict_step(),
          trainer)


def _peer(spec: Dict, task, run):
  """(model, train_loop, predict_step) of tf-models-official, through our host loop, with the
  run's optimizer settings."""
  tf, tf_keras = common.import_tensorflow()
  from official.nlp import optimization  # pylint: disable=import-outside-toplevel
  from official.nlp.modeling import models  # pylint: disable=import-outside-toplevel
  from albert.train.input_pipeline import IS_REAL, ROW_INDEX  # pylint: disable=import-outside-toplevel
  from albert.train.loop import make_train_loop  # pylint: disable=import-outside-toplevel
  task.prepare("train")
  task.prepare("eval")
  c = task.albert_config
  tf_keras.utils.set_random_seed(spec["seed"])
  encoder = common.peer_albert_encoder(c)
  model = models.BertClassifier(encoder, num_classes=task.processor.num_labels,
                                initializer=common.peer_initializer(c), dropout_rate=0.1)

  def forward(features, training):
    logits = model([features["input_ids"], features["input_mask"], features["segment_ids"]],
                   training=training)
    return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

  optimizer = optimization.create_optimizer(
      run.optimizer.learning_rate, run.trainer.num_train_steps, run.optimizer.num_warmup_steps,
      optimizer_type="adamw")
  strategy = tf.distribute.get_strategy()
  train_loop = make_train_loop(strategy, lambda f: forward(f, True),
                               lambda: model.trainable_variables, optimizer, task,
                               task.build_metrics(), clip_norm=1.0, enable_xla=spec["xla"],
                               dense_gradients=False)

  def replica_step(features):  # what Evaluator.make_predict_step computes, for this model
    result = dict(task.prediction_outputs(features, forward(features, False)))
    result[ROW_INDEX] = features[ROW_INDEX]
    result[IS_REAL] = features[IS_REAL]
    return result

  if spec["xla"]:
    replica_step = tf.function(replica_step, jit_compile=True)
  return model, train_loop, common.gathered_step(strategy, replica_step)


def train_shapes(task, batch: int) -> List[Dict]:
  """Per occupied padded length of the train split: its examples and batches per epoch."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  lengths = np.asarray(task.metadata("train")["lengths"])
  shared = task.config.finetune
  boundaries = list(shared.bucket_boundaries or (shared.max_seq_length,))
  index = np.minimum(np.searchsorted(boundaries, lengths, side="left"), len(boundaries) - 1)
  shapes = []
  for b, boundary in enumerate(boundaries):
    members = np.nonzero(index == b)[0]
    if len(members):
      shapes.append({"length": boundary, "examples": int(len(members)),
                     "batches": len(members) / batch, "rows": members[:batch],
                     "real_tokens": int(lengths[members].sum())})
  return shapes


def train_batch(task, rows, length: int, batch: int):
  """A train batch of the given cache rows (cycled up to `batch`), cut to `length`."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  tf, _ = common.import_tensorflow()
  from albert.train import input_pipeline  # pylint: disable=import-outside-toplevel
  path = task.input_files("train")[0]
  spec = input_pipeline.parse_spec(task.schema("train"))
  keep = np.zeros(task.metadata("train")["num_examples"], bool)
  keep[rows] = True
  keep = tf.constant(keep)
  records = tf.data.TFRecordDataset(path).enumerate().filter(
      lambda i, _: tf.gather(keep, i)).map(lambda _, r: tf.io.parse_single_example(r, spec))
  found = list(records.take(len(rows)).as_numpy_iterator())
  picked = [found[i % len(found)] for i in range(batch)]
  out = {}
  for name in picked[0]:
    value = np.stack([p[name] for p in picked])
    if name in ("input_ids", "input_mask", "segment_ids"):
      value = value[:, :length]
    out[name] = tf.constant(value.astype(np.int32) if value.dtype == np.int64 else value)
  return out


def eval_shapes(task, batch: int) -> List[Dict]:
  """The dev pass's batches grouped by padded length: count and the first batch of each."""
  shapes: Dict[int, Dict] = {}
  for features in task.build_dataset("eval", batch):
    length = int(features["input_ids"].shape[1])
    if length not in shapes:
      shapes[length] = {"length": length, "batches": 0, "batch": features}
    shapes[length]["batches"] += 1
  return [shapes[k] for k in sorted(shapes)]


def _timed_shape(fns: Dict[str, object], spec: Dict) -> Dict[str, Dict]:
  """Per impl: first call (tracing), then the timed calls of one shape.

  With two impls (interleaved), every timed round calls both, the first of the pair
  alternating, so that both see the same machine load; `pair_ratios` are their step-time
  ratios (peer / ours: ours' speed over the peer's) round by round.
  """
  out: Dict[str, Dict] = {}
  for impl, fn in fns.items():
    t = time.perf_counter()
    value = fn()
    out[impl] = {"first_call_s": time.perf_counter() - t, "first_value": value}
  for _ in range(spec["warmup"]):
    for fn in fns.values():
      fn()
  times: Dict[str, List[float]] = {impl: [] for impl in fns}
  order = list(fns)
  rounds = 0
  while rounds < spec["max_calls"] and (rounds < spec["min_calls"] or sum(
      map(sum, times.values())) < spec["min_seconds"] * len(fns)):
    for impl in order:
      t = time.perf_counter()
      fns[impl]()
      times[impl].append(time.perf_counter() - t)
    order.reverse()
    rounds += 1
  for impl, timed in times.items():
    out[impl].update(step_s=statistics.median(timed), step_s_min=min(timed),
                     step_s_max=max(timed), calls=len(timed))
  if len(fns) == 2:
    ratios_ = [p / o for o, p in zip(times["ours"], times["peer"])]
    for impl in fns:
      out[impl].update(pair_ratios=ratios_, pair_ratio_median=statistics.median(ratios_))
  return out


def _stream_check(spec: Dict, trainer, task, train_loop, step_s: Dict[int, float]) -> Dict:
  """The Trainer's loop on its real bucketed train input vs the per-shape estimate."""
  tf, _ = common.import_tensorflow()
  k = spec["stream_steps"]
  batch = spec["train_batch"]
  from albert.train.distribute import distributed_dataset  # pylint: disable=import-outside-toplevel
  iterator = iter(distributed_dataset(trainer.strategy, task, "train", batch))
  seen = [(int(f["input_ids"].shape[1]),
           int(tf.reduce_sum(tf.cast(tf.not_equal(f["input_mask"], 0), tf.int64))))
          for f in task.build_dataset("train", batch).take(3 * k)]
  train_loop(iterator, tf.constant(k))  # warm-up: traces the loop for the input's shapes
  t = time.perf_counter()
  tokens = 0
  for _ in range(2):
    out = train_loop(iterator, tf.constant(k))
    tokens += int(out["tokens"].numpy())
  elapsed = time.perf_counter() - t
  timed = seen[k:]
  estimate = sum(step_s[length] for length, _ in timed)
  return {"stream_steps": 2 * k, "stream_s": elapsed, "stream_estimate_s": estimate,
          "stream_over_estimate": elapsed / estimate,
          "stream_lengths": [length for length, _ in timed],
          "stream_same_batches": tokens == sum(n for _, n in timed),
          "stream_examples_per_s": 2 * k * batch / elapsed}


def run_cell_worker(spec: Dict) -> Dict:
  """One (task, padding) cell: train and eval step times per shape of `spec["impls"]`.

  One impl: a fresh process of its own (its peak RSS is the cell's). Both: built side by side
  in this process and timed in alternation (`_timed_shape`); the peak RSS is then the pair's.
  Returns {"cells": [one result per impl]}.
  """
  process_start = common.process_start()
  load_before = os.getloadavg()[0]
  t0 = time.time()
  tf, _ = common.import_tensorflow()
  impls = spec["impls"]
  if "peer" in impls:  # imported here so that import_s counts the peer's own import
    import official.nlp.modeling.models  # pylint: disable=import-outside-toplevel,unused-import
  import albert.train.trainer  # pylint: disable=import-outside-toplevel,unused-import
  t_import = time.time()
  scratch = tempfile.mkdtemp(prefix="albert-finetune-bench-")
  try:
    built = {}
    for impl in impls:
      task, run = _task(spec, os.path.join(scratch, impl))
      if impl == "ours":
        model, train_loop, predict_step, trainer = _ours(task, run)
      else:
        (model, train_loop, predict_step), trainer = _peer(spec, task, run), None
      built[impl] = (task, model, train_loop, predict_step, trainer)
    task = built[impls[0]][0]
    t_build = time.time()
    batch, eval_batch = spec["train_batch"], spec["eval_batch"]
    train: Dict[str, List[Dict]] = {impl: [] for impl in impls}
    for shape in train_shapes(task, batch):
      features = train_batch(task, shape.pop("rows"), shape["length"], batch)
      steps = {}
      for impl in impls:
        iterator = iter(tf.data.Dataset.from_tensors(features).repeat())

        def step(iterator=iterator, train_loop=built[impl][2]):
          return common.loop_call(train_loop, iterator, tf.constant(1))

        steps[impl] = step
      for impl, timed in _timed_shape(steps, spec).items():
        timed["first_loss"] = timed.pop("first_value")
        train[impl].append({**shape, **timed})
    evals: Dict[str, List[Dict]] = {impl: [] for impl in impls}
    for shape in eval_shapes(task, eval_batch):
      features = shape.pop("batch")
      steps = {impl: (lambda f=features, p=built[impl][3]: p(f)["logits"].numpy().shape[0])
               for impl in impls}
      for impl, timed in _timed_shape(steps, spec).items():
        timed.pop("first_value")
        evals[impl].append({**shape, **timed})
    stream = {}
    if impls == ["ours"] and spec["padding"] == "buckets" and spec["stream_steps"]:
      _, _, train_loop, _, trainer = built["ours"]
      stream = _stream_check(spec, trainer, task, train_loop,
                             {s["length"]: s["step_s"] for s in train["ours"]})
    num_train = task.metadata("train")["num_examples"]
    num_eval = task.metadata("eval")["num_examples"]
    eval_lengths = task.metadata("eval")["lengths"]
    params = {impl: common.count_params(b[1].weights) for impl, b in built.items()}
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  shared = {
      "task": spec["task"], "padding": spec["padding"],
      "method": "interleaved" if len(impls) > 1 else "separate",
      "max_seq_length": padding_cap(spec["padding"], spec["bucket_cap"]),
      "xla": spec["xla"], "train_batch": batch, "eval_batch": eval_batch,
      "train_examples": num_train, "eval_examples": num_eval,
      "peak_rss_mb": common.rss_peak_mb(), "startup_s": t_build - process_start,
      "import_s": t_import - t0, "build_s": t_build - t_import,
      "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0]}
  cells = []
  for impl in impls:
    epoch_s = sum(s["batches"] * s["step_s"] for s in train[impl])
    pass_s = sum(s["batches"] * s["step_s"] for s in evals[impl])
    padded = sum(s["batches"] * batch * s["length"] for s in train[impl])
    cells.append({
        "impl": impl, **shared, "params": params[impl],
        "train_epoch_s": epoch_s, "train_examples_per_s": num_train / epoch_s,
        "train_real_tokens_per_s": sum(s["real_tokens"] for s in train[impl]) / epoch_s,
        "train_padded_tokens_per_s": padded / epoch_s,
        "eval_pass_s": pass_s, "eval_examples_per_s": num_eval / pass_s,
        "eval_real_tokens_per_s": sum(eval_lengths) / pass_s,
        "train_shapes": train[impl], "eval_shapes": evals[impl],
        **(stream if impl == "ours" else {})})
  return {"cells": cells}


def run_conversion_worker(spec: Dict) -> Dict:
  """build_glue_cache of one split into an empty folder, in this fresh (TF-free) process."""
  import resource  # pylint: disable=import-outside-toplevel
  load_before = os.getloadavg()[0]
  t0 = time.perf_counter()
  from albert.data.glue import cache as glue_cache  # pylint: disable=import-outside-toplevel
  from albert.tokenization import TokenizerSpec  # pylint: disable=import-outside-toplevel
  t_import = time.perf_counter()
  scratch = tempfile.mkdtemp(prefix="albert-finetune-convert-")
  workers = spec["workers"]
  try:
    start = time.perf_counter()
    _, meta = glue_cache.build_glue_cache(
        spec["task"], spec["data_dir"], spec["split"],
        TokenizerSpec(spm_model_file=spec["spm_model_file"], vocab_file=None,
                      do_lower_case=True),
        spec["max_seq_length"], scratch, num_workers=workers,
        parallel_min_bytes=0 if workers > 1 else glue_cache.PARALLEL_MIN_BYTES)
    seconds = time.perf_counter() - start
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
  return {
      "task": spec["task"], "split": spec["split"], "max_seq_length": spec["max_seq_length"],
      "workers": meta["num_workers"], "num_examples": meta["num_examples"],
      "tfrecord_bytes": meta["num_bytes"], "conversion_s": seconds,
      "conversion_s_metadata": meta["seconds"], "import_s": t_import - t0,
      "peak_rss_mb": common.rss_peak_mb(), "children_peak_rss_mb": children or None,
      "tensorflow_loaded": "tensorflow" in sys.modules,
      "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0],
  }


def run_spec(spec: Dict, index: int) -> Dict:
  del index  # a fresh process per spec
  return run_conversion_worker(spec) if spec["kind"] == "conversion" else run_cell_worker(spec)


# ------------------------------------------------------------------------------ orchestrator
def prepare_caches(args, log) -> None:
  """Every cache the cells read (train and dev, per task and max_seq_length), built once."""
  sys.path.insert(0, REPO_DIR)
  from albert.data.glue import cache as glue_cache  # pylint: disable=import-outside-toplevel
  from albert.tokenization import TokenizerSpec  # pylint: disable=import-outside-toplevel
  spec = TokenizerSpec(spm_model_file=args.spm_model_file, vocab_file=None, do_lower_case=True)
  caps = sorted({padding_cap(p, args.bucket_cap) for p in args.paddings})
  for task in args.tasks:
    for cap in caps:
      for split in ("train", "dev"):
        glue_cache.build_glue_cache(task, args.data_dir, split, spec, cap, args.cache_dir,
                                       log=log)


def _method(record: Dict) -> str:
  return record.get("method", "separate")


def summarize(measurements: List[Dict]) -> List[Dict]:
  """Per (impl, task, padding, method): medians over the repeats."""
  groups: Dict[tuple, List[Dict]] = {}
  for m in measurements:
    if "error" not in m:
      groups.setdefault((m["impl"], m["task"], m["padding"], _method(m)), []).append(m)
  out = []
  for (impl, task, padding, method), group in groups.items():
    s = {"kind": "summary", "impl": impl, "task": task, "padding": padding, "method": method,
         "repeats": len(group), "train_batch": group[0]["train_batch"],
         "eval_batch": group[0]["eval_batch"], "max_seq_length": group[0]["max_seq_length"]}
    for key in ("train_examples_per_s", "train_epoch_s", "train_real_tokens_per_s",
                "train_padded_tokens_per_s", "eval_examples_per_s", "eval_pass_s",
                "peak_rss_mb", "startup_s", "stream_over_estimate"):
      s[key] = common.median_of(group, key)
    s["train_examples_per_s_all"] = [g["train_examples_per_s"] for g in group]
    s["eval_examples_per_s_all"] = [g["eval_examples_per_s"] for g in group]
    out.append(s)
  return out


def ratios(summary: List[Dict], measurements: List[Dict]) -> List[Dict]:
  """ours / peer at equal padding: of the medians, and paired per repeat (and method)."""
  by = {(s["impl"], s["task"], s["padding"], s["method"]): s for s in summary}
  runs = {(m["impl"], m["task"], m["padding"], _method(m), m["repeat"]): m
          for m in measurements if "error" not in m}
  out = []
  for (impl, task, padding, method), ours in by.items():
    peer = by.get(("peer", task, padding, method))
    if impl != "ours" or not peer:
      continue
    record = {"kind": "ratio", "task": task, "padding": padding, "method": method}
    for mode in MODES:
      key = f"{mode}_examples_per_s"
      pairs = [m[key] / runs[("peer",) + k[1:]][key] for k, m in runs.items()
               if k[:4] == ("ours", task, padding, method) and ("peer",) + k[1:] in runs]
      record.update({
          f"ours_{key}": ours[key], f"peer_{key}": peer[key],
          f"{mode}_ratio": common.ratio(ours[key], peer[key]),
          f"{mode}_ratio_paired_median": statistics.median(pairs) if pairs else None,
          f"{mode}_ratio_paired_all": pairs})
    if method == "separate":  # an interleaved pair shares one process, and its peak
      record["peak_rss_ratio"] = common.ratio(ours["peak_rss_mb"], peer["peak_rss_mb"])
    out.append(record)
  return out


def bucket_speedups(summary: List[Dict]) -> List[Dict]:
  """Per impl, task and method: epoch / dev-pass time with fixed padding over buckets'."""
  by = {(s["impl"], s["task"], s["padding"], s["method"]): s for s in summary}
  out = []
  for (impl, task, padding, method), buckets in by.items():
    if padding != "buckets":
      continue
    record = {"kind": "buckets", "impl": impl, "task": task, "method": method,
              "train_epoch_s_buckets": buckets["train_epoch_s"],
              "eval_pass_s_buckets": buckets["eval_pass_s"]}
    for fixed in sorted({k[2] for k in by if (k[0], k[1], k[3]) == (impl, task, method)
                         and k[2] != "buckets"}, key=int):
      other = by[(impl, task, fixed, method)]
      record[f"train_epoch_s_{fixed}"] = other["train_epoch_s"]
      record[f"train_speedup_vs_{fixed}"] = other["train_epoch_s"] / buckets["train_epoch_s"]
      record[f"eval_speedup_vs_{fixed}"] = other["eval_pass_s"] / buckets["eval_pass_s"]
    out.append(record)
  return out


def conversion_vs_anchor(conversions: List[Dict], anchor_file: str = ANCHOR) -> List[Dict]:
  """Medians per worker count beside the original's SST-2 anchor (when it is there)."""
  anchor = {}
  if os.path.exists(anchor_file):
    with open(anchor_file, encoding="utf-8") as f:
      anchor = json.load(f)
  out = []
  for workers in sorted({c["workers"] for c in conversions if "error" not in c}):
    group = [c for c in conversions if "error" not in c and c["workers"] == workers]
    record = {"kind": "conversion_vs_anchor", "task": group[0]["task"],
              "max_seq_length": group[0]["max_seq_length"], "workers": workers,
              "runs": len(group), "num_examples": group[0]["num_examples"],
              "tfrecord_bytes": group[0]["tfrecord_bytes"]}
    for key in ("conversion_s", "process_wall_s", "peak_rss_mb", "children_peak_rss_mb"):
      record[key] = common.median_of(group, key)
    for level in ("tf_logging_WARN", "tf_logging_INFO"):
      a = anchor.get(level)
      if not a or group[0]["task"] != "sst-2" or group[0]["max_seq_length"] != 128:
        continue
      name = level.rsplit("_", 1)[1].lower()
      convert = (a["seconds_read_examples"] + a["seconds_load_tokenizer"]
                 + a["seconds_file_based_convert_examples_to_features"])
      wall = a["usr_bin_time_v"]["elapsed_wall_clock"].split(":")
      record.update({
          f"anchor_{name}_conversion_s": convert,
          f"anchor_{name}_process_wall_s": 60 * float(wall[0]) + float(wall[1]),
          f"anchor_{name}_peak_rss_mb": a["usr_bin_time_v"]["maximum_resident_set_size_kbytes"]
          / 1024.0,
          f"anchor_{name}_tfrecord_bytes": a["tfrecord_bytes"],
          f"conversion_speedup_vs_{name}": convert / record["conversion_s"]})
    out.append(record)
  return out


def print_table(summary: List[Dict], ratio_records: List[Dict], bucket_records: List[Dict],
                conversion_records: List[Dict], stream=sys.stderr) -> None:
  by = {(s["impl"], s["task"], s["padding"], s["method"]): s for s in summary}
  paired = {(r["task"], r["padding"], r["method"]): r for r in ratio_records}
  header = ("task", "padding", "method", "impl", "train ex/s", "epoch", "eval ex/s", "peak MB",
            "train o/p", "eval o/p")
  widths = (6, 8, 11, 5, 10, 10, 9, 8, 9, 8)
  stream.write("\n" + "  ".join(h.rjust(w) for h, w in zip(header, widths)) + "\n")
  for key in sorted({k[1:] for k in by}):
    for impl in IMPLS:
      s = by.get((impl,) + key)
      if not s:
        continue
      r = paired.get(key) if impl == "ours" else None
      cells = key + (impl, common.fmt(s["train_examples_per_s"], ".2f"),
                     f"{s['train_epoch_s'] / 60:.0f} min",
                     common.fmt(s["eval_examples_per_s"], ".2f"),
                     common.fmt(s["peak_rss_mb"]),
                     common.fmt(r and r["train_ratio_paired_median"], ".2f"),
                     common.fmt(r and r["eval_ratio_paired_median"], ".2f"))
      stream.write("  ".join(c.rjust(w) for c, w in zip(cells, widths)) + "\n")
  for b in bucket_records:
    speedups = ", ".join(f"{k.rsplit('_', 1)[1]}: {v:.1f}x" for k, v in b.items()
                         if k.startswith("train_speedup_vs_"))
    stream.write(f"{b['task']} {b['impl']} ({b['method']}): epoch with buckets "
                 f"{b['train_epoch_s_buckets']:.0f} s, faster than fixed padding ({speedups})\n")
  for c in conversion_records:
    stream.write(f"conversion {c['task']} train at {c['max_seq_length']}, {c['workers']} "
                 f"worker(s): {c['conversion_s']:.1f} s, process {c['process_wall_s']:.1f} s, "
                 f"peak {c['peak_rss_mb']:.0f} MB (original, WARN: "
                 f"{common.fmt(c.get('anchor_warn_conversion_s'), '.1f')} s, "
                 f"{common.fmt(c.get('anchor_warn_process_wall_s'), '.1f')} s, "
                 f"{common.fmt(c.get('anchor_warn_peak_rss_mb'))} MB)\n")
  stream.flush()


def _paddings(value: str) -> List[str]:
  items = common.split(value.lower())
  for v in items:
    if v != "buckets" and not v.isdigit():
      raise SystemExit(f"unknown padding {v!r}; expected one of buckets or a length such as 128")
  return items


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--tasks", default=None, help="sst-2,mrpc (default both; --quick mrpc)")
  p.add_argument("--paddings", default=None,
                 help="buckets and/or fixed lengths (default buckets,128,512; --quick "
                 "buckets,64)")
  p.add_argument("--impls", default="ours,peer", help="ours,peer (default both)")
  p.add_argument("--methods", default="separate,interleaved",
                 help="separate (a fresh process per impl and cell: its own peak RSS) and/or "
                 "interleaved (ours and the peer in one process, timed in alternation: the "
                 "ratios under a drifting load); default both")
  p.add_argument("--bucket-cap", type=int, default=None,
                 help="max_seq_length with buckets (default 512, run_glue.sh's; --quick 128)")
  p.add_argument("--train-batch", type=int, default=8,
                 help="train batch (default 8: at 32 x 512 a base step needs more than the "
                 "machine's 24 GB and about a minute)")
  p.add_argument("--eval-batch", type=int, default=8, help="eval batch (default 8, the "
                 "original's --eval_batch_size)")
  p.add_argument("--xla", action="store_true", help="jit_compile the steps (default off)")
  p.add_argument("--repeats", type=int, default=None, help="paired repeats (default 2; "
                 "--quick 1)")
  p.add_argument("--first-repeat", type=int, default=0,
                 help="index of the first repeat (another run's repeats continue the pairing "
                 "and the alternation of who goes first; see --summarize)")
  p.add_argument("--warmup", type=int, default=None,
                 help="untimed calls per shape after the first (default 1; --quick 0)")
  p.add_argument("--min-calls", type=int, default=None,
                 help="timed calls per shape (default 3; --quick 2)")
  p.add_argument("--min-seconds", type=float, default=None,
                 help="timed seconds per shape (default 5; --quick 0)")
  p.add_argument("--max-calls", type=int, default=30, help="timed calls per shape at most")
  p.add_argument("--stream-steps", type=int, default=None,
                 help="steps per timed call of the real-input check (default 8; --quick 2; "
                 "0: none)")
  p.add_argument("--conversion-repeats", type=int, default=None,
                 help="conversion runs per worker count (default 3; --quick 1; 0: none)")
  p.add_argument("--config", default=None,
                 help="albert_config.json (default configs/v2/base; --quick configs/tiny)")
  p.add_argument("--data-dir", default=None,
                 help="the GLUE root (default ../shared/data/glue; --quick tests/testdata/glue, "
                 "20 rows per file)")
  p.add_argument("--spm-model-file", default=SPM_MODEL,
                 help="SentencePiece model (default tests/testdata/albert_spm/30k-clean.model)")
  p.add_argument("--cache-dir", default=os.path.join(REPO_DIR, "output", "benchmarks",
                                                       "finetune", "cache"),
                 help="feature caches (built once, reused)")
  p.add_argument("--jobs", type=int, default=None,
                 help="subprocesses at a time (default 1; --quick 2: its timings mean nothing)")
  p.add_argument("--out", default=None,
                 help="JSON lines file of every record (default benchmarks/results/"
                 "finetune.jsonl; --quick: none)")
  p.add_argument("--summarize", nargs="+", default=None, metavar="JSONL",
                 help="measure nothing: derive the summaries again from the measurement lines "
                 "of these earlier outputs (e.g. a run stopped before its last repeat)")
  common.add_common_arguments(
      p, "smoke run: tiny config (vocab 30000), the 20-row MRPC files of tests/testdata, "
      "buckets (cap 128) and 64, 2 subprocesses at a time (about a minute; its figures mean "
      "nothing)")
  args = p.parse_args(argv)
  q = args.quick
  args.tasks = common.split((args.tasks or ("mrpc" if q else "sst-2,mrpc")).lower(),
                            tuple(RUN_GLUE), "task")
  args.paddings = _paddings(args.paddings or ("buckets,64" if q else "buckets,128,512"))
  args.impls = common.split(args.impls.lower(), IMPLS, "implementation")
  args.methods = common.split(args.methods.lower(), ("separate", "interleaved"), "method")
  args.bucket_cap = args.bucket_cap or (128 if q else 512)
  args.repeats = args.repeats or (1 if q else 2)
  args.warmup = args.warmup if args.warmup is not None else (0 if q else 1)
  args.min_calls = args.min_calls or (2 if q else 3)
  args.min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if q else 5.0)
  args.stream_steps = args.stream_steps if args.stream_steps is not None else (2 if q else 8)
  args.conversion_repeats = (args.conversion_repeats if args.conversion_repeats is not None
                             else (1 if q else 3))
  args.config = args.config or (common.TINY_CONFIG_FILE if q else common.BASE_CONFIG_FILE)
  args.data_dir = args.data_dir or (QUICK_GLUE_DIR if q else GLUE_DIR)
  args.overrides = ({"vocab_size": 30000} if q and args.config == common.TINY_CONFIG_FILE
                    else {})
  args.jobs = args.jobs or (2 if q else 1)
  if args.out is None and not q:
    args.out = os.path.join(RESULTS_DIR, "finetune.jsonl")
  return args


def make_specs(args) -> tuple:
  """(conversion specs, cell specs) of the run."""
  convert_task, convert_cap = ("mrpc", 128) if args.quick else ("sst-2", 128)
  conversions = []
  for repeat in range(args.conversion_repeats):
    for workers in ((1, 2) if repeat % 2 == 0 else (2, 1)):
      conversions.append({"kind": "conversion", "task": convert_task, "split": "train",
                          "max_seq_length": convert_cap, "workers": workers,
                          "data_dir": args.data_dir, "spm_model_file": args.spm_model_file,
                          "repeat": repeat})
  settings = {"kind": "cell", "config_file": args.config, "overrides": args.overrides,
              "data_dir": args.data_dir, "spm_model_file": args.spm_model_file,
              "cache_dir": args.cache_dir, "bucket_cap": args.bucket_cap,
              "train_batch": args.train_batch, "eval_batch": args.eval_batch,
              "xla": args.xla, "warmup": args.warmup, "min_calls": args.min_calls,
              "min_seconds": args.min_seconds, "max_calls": args.max_calls,
              "stream_steps": args.stream_steps, "seed": 12345}
  cells = []
  for repeat in range(args.first_repeat, args.first_repeat + args.repeats):
    for method in args.methods:
      for task in args.tasks:
        for padding in args.paddings:
          order = args.impls if repeat % 2 == 0 else args.impls[::-1]  # who goes first alternates
          groups = [order] if method == "interleaved" and len(order) > 1 else [[i] for i in order]
          for impls in groups:
            cells.append({**settings, "impls": impls, "task": task, "padding": padding,
                          "repeat": repeat})
  return conversions, cells


def main(argv: Optional[Sequence[str]] = None) -> List[Dict]:
  """Runs the benchmark; prints (and returns) its JSON records."""
  args = parse_args(argv)
  if args.worker is not None:
    return common.worker_main(args.worker, run_spec)
  if args.summarize:
    return resummarize(args.summarize, args.out, table=not args.no_table)
  records: List[Dict] = []
  emit = common.emitter(records)
  started = time.time()
  emit(common.run_record(
      argv, tasks=args.tasks, paddings=args.paddings, impls=args.impls, methods=args.methods,
      repeats=args.repeats, config=os.path.relpath(args.config, REPO_DIR),
      overrides=args.overrides, train_batch=args.train_batch, eval_batch=args.eval_batch,
      bucket_cap=args.bucket_cap, xla=args.xla))
  log = lambda line: print(f"# {line}", file=sys.stderr, flush=True)  # noqa: E731
  prepare_caches(args, log)
  conversion_specs, cell_specs = make_specs(args)
  conversions = []
  for spec in conversion_specs:  # alone, one at a time: they time whole processes
    t = time.perf_counter()
    result = common.run_subprocess(__file__, [spec], args.timeout)[0]
    result = {"kind": "conversion", "repeat": spec["repeat"], **result,
              "process_wall_s": time.perf_counter() - t}
    conversions.append(result)
    emit(result)
  measurements = []
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
    run = lambda s: common.run_subprocess(__file__, [s], args.timeout)[0]  # noqa: E731
    for spec, result in zip(cell_specs, pool.map(run, cell_specs)):
      method = "interleaved" if len(spec["impls"]) > 1 else "separate"
      cells = result.get("cells") or [
          dict(result, impl=impl, task=spec["task"], padding=spec["padding"], method=method)
          for impl in spec["impls"]]
      for cell in cells:
        record = {"kind": "measurement", "repeat": spec["repeat"], **cell}
        measurements.append(record)
        emit(record)
  derive(measurements, conversions, emit, time.time() - started, table=not args.no_table)
  if args.out:
    common.write_records(args.out, records, lines=True)
  return records


def derive(measurements: List[Dict], conversions: List[Dict], emit, wall_s: Optional[float],
           table: bool = True) -> None:
  """Emits the summary, ratio, buckets, conversion_vs_anchor and load records of a run."""
  summary = summarize(measurements)
  for s in summary:
    emit(s)
  ratio_records = ratios(summary, measurements)
  bucket_records = bucket_speedups(summary)
  conversion_records = conversion_vs_anchor(conversions)
  for r in ratio_records + bucket_records + conversion_records:
    emit(r)
  emit(common.load_record(measurements + conversions, wall_s))
  if table:
    print_table(summary, ratio_records, bucket_records, conversion_records)


def resummarize(paths: Sequence[str], out: Optional[str], table: bool = True) -> List[Dict]:
  """The run, conversion and measurement lines of earlier runs (e.g. one stopped before its
  last repeat), with their summaries derived again; written to `out`."""
  kept: List[Dict] = []
  for path in paths:
    with open(path, encoding="utf-8") as f:
      kept += [r for r in map(json.loads, f) if r["kind"] in ("run", "conversion", "measurement")]
  records = list(kept)
  derive([r for r in kept if r["kind"] == "measurement"],
         [r for r in kept if r["kind"] == "conversion"], common.emitter(records), None, table)
  if out:
    common.write_records(out, records, lines=True)
  return records


if __name__ == "__main__":
  main(sys.argv[1:])
