"""Pretraining benchmark: ours (`albert`) vs tf-models-official's `BertPretrainerV2` + `AlbertEncoder`.

One MLM + SOP pretraining step, the way the job runs it: forward pass (`training=True`), loss
= weight-normalised MLM cross-entropy + SOP cross-entropy (`albert.losses`, the same for both),
gradients, clipping to global norm 1.0, a LAMB update (weight decay 0.01, trust ratio, both
skipped for `LayerNorm`/`layer_norm`/`bias`) and the job's metrics. Every measurement runs in a
fresh subprocess (so that its peak RSS is its own) and times a `tf.function` loop of N steps
over an in-memory synthetic batch:

  ours    `albert.train.trainer.Trainer`'s own compiled host loop (`Trainer.make_train_loop()`), on
          the `albert.tasks.pretraining.PretrainingTask` model and the Trainer's LAMB: exactly
          the step `run_pretraining.py` runs (XLA: `TrainerConfig(enable_xla=True)`, which
          compiles the replica step with `jit_compile`).
  peer    `official.nlp.modeling.models.BertPretrainerV2` over `networks.AlbertEncoder` of the
          same sizes (MLM head: `layers.MaskedLM`, gelu transform, tied decoder), the SOP layer
          (Dense(2) on the encoder's `pooled_output`, as the original), LAMB from
          `official.modeling.optimization.lamb` (`--peer-optimizer ours`: our LAMB on its
          variables), `tf.clip_by_global_norm(grads, 1.0)`, run by the Trainer's host loop
          itself (`albert.train.loop.make_train_loop`: same `strategy.run`, reduce, finiteness
          check, metrics, XLA on the replica step), its embedding gradients left sparse as
          tf-models-official's trainer leaves them.
  ours_mirror  (optional) our model and LAMB built outside the Trainer, through the same
          `make_train_loop` as the peer: checks that the loop is not what makes a difference.
  trainer (ours only) the real `Trainer.run()` on records written by `create_pretraining_data`
          (`data/default/corpus.txt`, seeded): steps/s from its own progress lines, first loop
          (tracing) excluded. Shows whether the input pipeline keeps up with the step.

Cases (`--cases`): `base-8x128` (configs/v2/base: V 30000, E 128, H 768, 12 layers; batch 8,
seq 128, 20 predictions), `base-8x512` (batch 8, seq 512, 20 predictions - the original's
max_predictions_per_seq for 512), `tiny-64x64` (configs/tiny with vocab 4000 - the main job's
model -, batch 64, seq 64, 10 predictions; its dropout 0.1 is kept for both). Each is run with
XLA off and on, ours and peer alternating (the first of the pair alternates between repeats),
`--repeats` times; summaries take medians and ratios are ours / peer (robust to the machine's
load, which is recorded with every measurement). `--precision mixed_bfloat16` runs every
measurement under that Keras policy (ours through `TrainerConfig(mixed_precision=...)`).

Every measurement is one JSON line on stdout (`"kind": "measurement"`): steps/s, tokens/s
(batch x seq x steps/s), step time median/min/max, peak RSS (MB), start-up, compile time,
parameter count, CPU utilisation, the 1-minute load average before and after. Then
`"kind": "summary"` (medians over repeats), `"kind": "ratio"` (ours / peer) and
`"kind": "trainer"` (real Trainer vs the synthetic loop) lines, and a table on stderr.
`--breakdown` adds forward-only and forward+backward timings per measurement (where the time
goes); `--out` writes the records to a JSON file (default
benchmarks/results/pretraining.json).

Run from the repository root:

  PYTHONPATH=. python benchmarks/pretraining_benchmark.py              # all (~45 min, quiet machine)
  PYTHONPATH=. python benchmarks/pretraining_benchmark.py --quick      # smoke run, < 1 minute
  PYTHONPATH=. python benchmarks/pretraining_benchmark.py --cases tiny-64x64 --xla off

`main(argv)` returns the list of records it printed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
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

IMPLS = ("ours", "peer", "ours_mirror", "trainer")
LEARNING_RATE, WARMUP_STEPS = 0.00176, 3125  # the original's defaults
EXCLUDE = ["LayerNorm", "layer_norm", "bias"]

# name -> (albert_config.json, overrides, batch, seq, predictions)
CASES = {
    "base-8x128": (common.BASE_CONFIG_FILE, {}, 8, 128, 20),
    "base-8x512": (common.BASE_CONFIG_FILE, {}, 8, 512, 20),
    "tiny-64x64": (common.TINY_CONFIG_FILE, {"vocab_size": 4000}, 64, 64, 10),
    # --quick: the tiny model on a small batch
    "tiny-8x32": (common.TINY_CONFIG_FILE, {"vocab_size": 4000}, 8, 32, 5),
}
DEFAULT_CASES = "base-8x128,base-8x512,tiny-64x64"


def case_spec(name: str) -> Dict:
  if name not in CASES:
    raise SystemExit(f"unknown case {name!r}; expected one of {', '.join(CASES)}")
  config_file, overrides, batch, seq, predictions = CASES[name]
  return {"case": name, "config_file": config_file,
          "overrides": overrides, "batch": batch, "seq": seq, "predictions": predictions}


# ------------------------------------------------------------------------------------ worker
def _albert_config(spec: Dict):
  return common.albert_config(spec["config_file"], spec["overrides"])


def synthetic_batch(vocab_size: int, batch: int, seq: int, predictions: int, seed: int = 0):
  """A pretraining batch (numpy) with the features of `create_pretraining_data`'s records.

  Full-length sequences ([CLS] a [SEP] b [SEP], no padding), `predictions` distinct sorted
  masked positions per sequence (never [CLS]), all weights 1, random SOP labels.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.RandomState(seed)
  ids = rng.randint(5, vocab_size, size=(batch, seq)).astype(np.int32)
  ids[:, 0] = 2  # [CLS]
  ids[:, seq // 2 - 1] = 3  # [SEP]
  ids[:, -1] = 3
  segments = np.zeros((batch, seq), np.int32)
  segments[:, seq // 2:] = 1
  positions = np.stack([np.sort(rng.choice(np.arange(1, seq), predictions, replace=False))
                        for _ in range(batch)]).astype(np.int32)
  return {
      "input_ids": ids, "input_mask": np.ones((batch, seq), np.int32),
      "segment_ids": segments, "masked_lm_positions": positions,
      "masked_lm_ids": rng.randint(5, vocab_size, size=(batch, predictions)).astype(np.int32),
      "masked_lm_weights": np.ones((batch, predictions), np.float32),
      "next_sentence_labels": rng.randint(0, 2, size=(batch, 1)).astype(np.int32),
  }


def _rss_mb() -> float:
  import psutil  # pylint: disable=import-outside-toplevel
  return psutil.Process().memory_info().rss / 2**20


def _ours_trainer(spec: Dict, output_dir: str, train_data=None):
  """A Trainer on the PretrainingTask with the original's LAMB settings (not run yet)."""
  from albert.tasks.pretraining import (  # pylint: disable=import-outside-toplevel
      PretrainingTask, PretrainingTaskConfig)
  from albert.train.trainer import (  # pylint: disable=import-outside-toplevel
      OptimizerConfig, Trainer, TrainerConfig)
  task = PretrainingTask(PretrainingTaskConfig(_albert_config(spec), train_data=train_data))
  steps = spec.get("trainer_total_steps", 10**6)
  trainer_config = TrainerConfig(
      output_dir=output_dir, train_batch_size=spec["batch"], eval_batch_size=spec["batch"],
      num_train_steps=steps, save_checkpoints_steps=steps,
      iterations_per_loop=spec.get("steps_per_call", 1), enable_xla=spec["xla"],
      mixed_precision=spec.get("precision", "float32"), seed=spec.get("seed", 0))
  optimizer_config = OptimizerConfig(optimizer="lamb", learning_rate=LEARNING_RATE,
                                     num_warmup_steps=WARMUP_STEPS)
  return Trainer(task, trainer_config, optimizer_config, log=spec.get("log", lambda _: None))


def _peer_model(spec: Dict):
  """(pretrainer, sop layer, forward(features, training) -> outputs) of tf-models-official."""
  tf, tf_keras = common.import_tensorflow()
  from official.modeling import activations  # pylint: disable=import-outside-toplevel
  from official.nlp.modeling import models  # pylint: disable=import-outside-toplevel
  c = _albert_config(spec)
  init = lambda: common.peer_initializer(c)  # noqa: E731
  encoder = common.peer_albert_encoder(c)
  pretrainer = models.BertPretrainerV2(encoder_network=encoder, mlm_activation=activations.gelu,
                                       mlm_initializer=init())
  # SOP: the original's head, a [H,2] projection of the encoder's pooled output. (BertPretrainerV2's
  # classification heads read the sequence output and add their own pooler instead.)
  sop = tf_keras.layers.Dense(2, kernel_initializer=init(), name="sentence_order")
  sop.build([None, c.hidden_size])

  def forward(features, training):
    outputs = pretrainer({"input_word_ids": features["input_ids"],
                          "input_mask": features["input_mask"],
                          "input_type_ids": features["segment_ids"],
                          "masked_lm_positions": features["masked_lm_positions"]},
                         training=training)
    return {"mlm_logits": outputs["mlm_logits"], "sop_logits": sop(outputs["pooled_output"])}

  del tf
  return pretrainer, sop, forward


def _peer_optimizer(kind: str):
  """LAMB of tf-models-official with the original's hyperparameters, or ours (`kind`)."""
  if kind == "ours":
    from albert import optimization  # pylint: disable=import-outside-toplevel
    return optimization.create_optimizer(LEARNING_RATE, 10**6, WARMUP_STEPS, optimizer="lamb")
  _, tf_keras = common.import_tensorflow()
  from official.modeling.optimization import lamb, lr_schedule  # pylint: disable=import-outside-toplevel
  decay = tf_keras.optimizers.schedules.PolynomialDecay(LEARNING_RATE, 10**6, 0.0, power=1.0)
  schedule = lr_schedule.LinearWarmup(decay, WARMUP_STEPS, 0.0)
  return lamb.LAMB(learning_rate=schedule, weight_decay_rate=0.01, beta_1=0.9, beta_2=0.999,
                   epsilon=1e-6, exclude_from_weight_decay=EXCLUDE,
                   exclude_from_layer_adaptation=EXCLUDE)


def run_loop_worker(spec: Dict) -> Dict:
  """ours / peer / ours_mirror: times the compiled host loop on a synthetic batch."""
  process_start = common.process_start()
  load_before = os.getloadavg()[0]
  t0 = time.time()
  tf, tf_keras = common.import_tensorflow()
  impl, xla, batch, seq = spec["impl"], spec["xla"], spec["batch"], spec["seq"]
  if impl == "peer":  # imported here so that import_s counts the peer's own import
    import official.nlp.modeling.models  # pylint: disable=import-outside-toplevel,unused-import
  from albert.tasks.pretraining import (  # pylint: disable=import-outside-toplevel
      PretrainingTask, PretrainingTaskConfig)
  from albert.train.loop import make_train_loop  # pylint: disable=import-outside-toplevel
  t_import = time.time()

  config = _albert_config(spec)
  features = synthetic_batch(config.vocab_size, batch, seq, spec["predictions"],
                             spec.get("seed", 0))
  dataset = tf.data.Dataset.from_tensors({k: tf.constant(v) for k, v in features.items()})
  dataset = dataset.repeat()
  strategy = tf.distribute.get_strategy()
  scratch = tempfile.mkdtemp(prefix="albert-bench-")
  try:
    if impl == "ours":
      trainer = _ours_trainer(spec, scratch)
      trainer.build()
      train_loop = trainer.make_train_loop()
      model, optimizer = trainer.model, trainer.optimizer
      variables = model.trainable_variables
      task = trainer.task

      def forward(feats, training):
        return model({k: feats[k] for k in ("input_ids", "input_mask", "segment_ids",
                                            "masked_lm_positions")}, training=training)
    else:
      tf_keras.utils.set_random_seed(spec.get("seed", 0))
      tf_keras.mixed_precision.set_global_policy(spec.get("precision", "float32"))
      task = PretrainingTask(PretrainingTaskConfig(config))
      metrics = task.build_metrics()
      if impl == "peer":
        pretrainer, sop, forward = _peer_model(spec)
        # BertPretrainerV2 builds its MaskedLM head (transform, LayerNorm, bias) on the first
        # call: call it once before collecting the variables to train.
        forward({k: tf.constant(v[:1]) for k, v in features.items()}, False)
        variables = pretrainer.trainable_variables + sop.trainable_variables
        optimizer = _peer_optimizer(spec.get("peer_optimizer", "official"))
      else:  # ours_mirror
        from albert import optimization  # pylint: disable=import-outside-toplevel
        model = task.build_model()
        variables = model.trainable_variables
        optimizer = optimization.create_optimizer(LEARNING_RATE, 10**6, WARMUP_STEPS, "lamb")

        def forward(feats, training):
          return model({k: feats[k] for k in ("input_ids", "input_mask", "segment_ids",
                                              "masked_lm_positions")}, training=training)
      if hasattr(optimizer, "build") and not isinstance(
          optimizer, tf_keras.optimizers.legacy.Optimizer):
        optimizer.build(variables)
      # The Trainer's own host loop around the other model and optimizer; the peer keeps its
      # embedding gradients sparse, as tf-models-official's trainer does.
      train_loop = make_train_loop(strategy, lambda feats: forward(feats, True),
                                   lambda: variables, optimizer, task, metrics,
                                   enable_xla=xla, dense_gradients=(impl == "ours_mirror"))
    iterator = iter(strategy.distribute_datasets_from_function(lambda _: dataset))
    t_build = time.time()
    rss_built = _rss_mb()

    steps = tf.constant(spec["steps_per_call"])

    def run():
      return common.loop_call(train_loop, iterator, steps)

    first_loss = run()  # tracing (and XLA compilation) + the first steps
    t_first = time.time()
    times, cpu_util = common.time_calls(run, spec["warmup"], spec["min_calls"],
                                        spec["min_seconds"], max_calls=100)
    last_loss = run()
    peak_mb = common.rss_peak_mb()
    per_step = [t / spec["steps_per_call"] for t in times]
    median = statistics.median(per_step)
    result = {
        "impl": impl, "case": spec["case"], "xla": xla, "batch": batch, "seq": seq,
        "precision": spec.get("precision", "float32"), "predictions": spec["predictions"],
        "steps_per_call": spec["steps_per_call"],
        "calls": len(times), "steps_per_s": 1.0 / median, "steps_per_s_best": 1.0 / min(per_step),
        "tokens_per_s": batch * seq / median, "step_ms_median": 1e3 * median,
        "step_ms_min": 1e3 * min(per_step), "step_ms_max": 1e3 * max(per_step),
        "peak_rss_mb": peak_mb, "rss_after_build_mb": rss_built,
        "startup_s": t_build - process_start, "import_s": t_import - t0,
        "first_call_s": t_first - t_build, "cpu_util": cpu_util,
        "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0],
        "params": common.count_params(variables),
        "first_loss": first_loss, "last_loss": last_loss,
        "optimizer": type(optimizer).__module__ + "." + type(optimizer).__name__,
    }
    if spec.get("breakdown"):
      result.update(_breakdown(spec, forward, variables, task, features))
    return result
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def _breakdown(spec: Dict, forward, variables, task, features) -> Dict:
  """Median ms of forward+loss and of forward+loss+gradients (+clip), same XLA setting."""
  tf, _ = common.import_tensorflow()
  feats = {k: tf.constant(v) for k, v in features.items()}

  @tf.function(jit_compile=spec["xla"])
  def fwd(f):
    loss, _ = task.compute_loss(f, forward(f, True))
    return loss

  @tf.function(jit_compile=spec["xla"])
  def fwd_bwd(f):
    with tf.GradientTape() as tape:
      loss, _ = task.compute_loss(f, forward(f, True))
    grads = tape.gradient(loss, variables)
    grads = [tf.convert_to_tensor(g) for g in grads]
    _, norm = tf.clip_by_global_norm(grads, 1.0)
    return norm

  out = {}
  for name, fn in (("forward", fwd), ("forward_backward", fwd_bwd)):
    times, _ = common.time_calls(lambda fn=fn: fn(feats).numpy(), 1, spec["min_calls"],
                                 spec["min_seconds"] / 2, max_calls=100)
    out[f"{name}_ms"] = 1e3 * statistics.median(times)
  return out


_PROGRESS = re.compile(r"\| ([0-9.]+) examples/s")


def run_trainer_worker(spec: Dict) -> Dict:
  """The real `Trainer.run()` on records on disk; steps/s from its progress lines."""
  process_start = common.process_start()
  load_before = os.getloadavg()[0]
  common.import_tensorflow()
  from albert.tasks.pretraining import PretrainingDataConfig  # pylint: disable=import-outside-toplevel
  lines: List[str] = []
  stamps: List[float] = []  # when each progress line was logged

  def log(line: str) -> None:
    lines.append(line)
    if _PROGRESS.search(line):
      stamps.append(time.perf_counter())

  spec = dict(spec, log=log,
              trainer_total_steps=spec["steps_per_call"] * (1 + spec["trainer_loops"]))
  data = PretrainingDataConfig(input_file=spec["records"], max_seq_length=spec["seq"],
                               max_predictions_per_seq=spec["predictions"], seed=12345)
  scratch = tempfile.mkdtemp(prefix="albert-bench-trainer-")
  try:
    trainer = _ours_trainer(spec, scratch, train_data=data)
    t_start = time.time()
    trainer.run(do_train=True, do_eval=False)
    wall = time.time() - t_start
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  rates = [float(m.group(1)) for m in map(_PROGRESS.search, lines) if m]
  if len(rates) < 2:
    raise RuntimeError(f"expected >= 2 progress lines, got: {lines[-5:]}")
  # Loops after the first (which traces and compiles). The progress lines' own examples/s
  # (the loop's time, rounded to 0.1 example/s) and, more precisely, the time between two
  # progress lines (the loop plus the Trainer's logging and summaries between loops).
  line_rate = statistics.median(rates[1:]) / spec["batch"]
  per_step = [(b - a) / spec["steps_per_call"] for a, b in zip(stamps, stamps[1:])]
  median = statistics.median(per_step)
  return {
      "impl": "trainer", "case": spec["case"], "xla": spec["xla"], "batch": spec["batch"],
      "precision": spec.get("precision", "float32"),
      "seq": spec["seq"], "predictions": spec["predictions"],
      "steps_per_call": spec["steps_per_call"], "calls": len(per_step),
      "steps_per_s": 1.0 / median, "steps_per_s_best": 1.0 / min(per_step),
      "steps_per_s_progress_line": line_rate,
      "tokens_per_s": spec["batch"] * spec["seq"] / median, "step_ms_median": 1e3 * median,
      "peak_rss_mb": common.rss_peak_mb(), "run_wall_s": wall, "startup_s": t_start - process_start,
      "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0],
      "records": spec["records"], "progress_lines": lines[-3:],
  }


def run_spec(spec: Dict, index: int) -> Dict:
  del index  # a fresh process per spec
  return run_trainer_worker(spec) if spec["impl"] == "trainer" else run_loop_worker(spec)


# --------------------------------------------------------------------------------- records
def make_records(work_dir: str, cases: List[Dict], quick: bool, log) -> Dict[str, str]:
  """Records (create_pretraining_data on data/default/corpus.txt) per (seq, predictions).

  The SentencePiece model is `output/default/spm.model` (the main job's) when present,
  otherwise a 4,000-piece model trained here. Reused when already written.
  """
  sys.path.insert(0, REPO_DIR)
  from albert.data.pretraining.job import (  # pylint: disable=import-outside-toplevel
      CreateDataConfig, create_pretraining_data)
  corpus = os.path.join(REPO_DIR, "data", "default", "corpus.txt")
  os.makedirs(work_dir, exist_ok=True)
  if quick:  # a slice of the corpus: the first 6 chapters
    sliced = os.path.join(work_dir, "corpus_quick.txt")
    if not os.path.exists(sliced):
      with open(corpus, encoding="utf-8") as f:
        docs = f.read().strip("\n").split("\n\n")[:6]
      with open(sliced, "w", encoding="utf-8") as f:
        f.write("\n\n".join(docs) + "\n")
    corpus = sliced
  spm_model = os.path.join(REPO_DIR, "output", "default", "spm.model")
  if not os.path.exists(spm_model):
    from albert.data.pretraining.vocab import VocabConfig, train_vocab  # pylint: disable=import-outside-toplevel
    prefix = os.path.join(work_dir, "spm")
    spm_model = prefix + ".model"
    if not os.path.exists(spm_model):
      train_vocab(VocabConfig(input_file=corpus, model_prefix=prefix,
                              vocab_size=1000 if quick else 4000), log=lambda _: None)
  records = {}
  for case in cases:
    key = f"{case['seq']}x{case['predictions']}"
    path = os.path.join(work_dir, f"train-{'quick-' if quick else ''}{key}.tfrecord")
    if not os.path.exists(path):
      t = time.time()
      create_pretraining_data(
          CreateDataConfig(input_file=corpus, output_file=path, spm_model_file=spm_model,
                           max_seq_length=case["seq"],
                           max_predictions_per_seq=case["predictions"],
                           dupe_factor=1 if quick else 2, random_seed=12345),
          log=lambda _: None)
      log(f"wrote {path} ({time.time() - t:.0f} s)")
    records[case["case"]] = path
  return records


# ------------------------------------------------------------------------------ orchestrator
def summarize(records: List[Dict]) -> List[Dict]:
  """Per (impl, case, xla): the median of every numeric field over the repeats."""
  groups: Dict[tuple, List[Dict]] = {}
  for r in records:
    if "error" not in r:
      groups.setdefault((r["impl"], r["case"], r["xla"]), []).append(r)
  out = []
  for (impl, case, xla), group in groups.items():
    s = {"kind": "summary", "impl": impl, "case": case, "xla": xla, "repeats": len(group),
         "batch": group[0]["batch"], "seq": group[0]["seq"],
         "predictions": group[0]["predictions"]}
    for field, value in group[0].items():
      if isinstance(value, float):
        values = [g[field] for g in group if isinstance(g.get(field), (int, float))]
        s[field] = statistics.median(values)
    s["steps_per_s_all"] = [g["steps_per_s"] for g in group]
    out.append(s)
  return out


def paired_ratios(records: List[Dict]) -> Dict[tuple, List[float]]:
  """ours/peer steps/s per repeat (the two ran back to back under similar load)."""
  by = {}
  for r in records:
    if "error" not in r:
      by[(r["impl"], r["case"], r["xla"], r.get("repeat"))] = r
  out: Dict[tuple, List[float]] = {}
  for (impl, case, xla, repeat), ours in by.items():
    peer = by.get(("peer", case, xla, repeat))
    if impl == "ours" and peer:
      out.setdefault((case, xla), []).append(ours["steps_per_s"] / peer["steps_per_s"])
  return out


def ratios(summary: List[Dict], records: List[Dict]) -> List[Dict]:
  """ours / peer (and trainer / synthetic loop) per case and XLA setting."""
  by = {(s["impl"], s["case"], s["xla"]): s for s in summary}
  paired = paired_ratios(records)
  out = []
  for (impl, case, xla), ours in by.items():
    if impl != "ours":
      continue
    peer = by.get(("peer", case, xla))
    if peer:
      pairs = paired.get((case, xla), [])
      out.append({
          "kind": "ratio", "case": case, "xla": xla,
          "ours_steps_per_s": ours["steps_per_s"], "peer_steps_per_s": peer["steps_per_s"],
          "ours_tokens_per_s": ours["tokens_per_s"], "peer_tokens_per_s": peer["tokens_per_s"],
          "speed_ratio": common.ratio(ours["steps_per_s"], peer["steps_per_s"]),
          "speed_ratio_paired_median": statistics.median(pairs) if pairs else None,
          "speed_ratio_paired_all": pairs,
          "speed_ratio_best": common.ratio(ours["steps_per_s_best"], peer["steps_per_s_best"]),
          "ours_peak_rss_mb": ours["peak_rss_mb"], "peer_peak_rss_mb": peer["peak_rss_mb"],
          "peak_rss_ratio": common.ratio(ours["peak_rss_mb"], peer["peak_rss_mb"]),
          "first_call_ratio": common.ratio(ours.get("first_call_s"), peer.get("first_call_s")),
      })
    trainer = by.get(("trainer", case, xla))
    if trainer:
      out.append({"kind": "trainer", "case": case, "xla": xla,
                  "trainer_steps_per_s": trainer["steps_per_s"],
                  "loop_steps_per_s": ours["steps_per_s"],
                  "trainer_over_loop": common.ratio(trainer["steps_per_s"], ours["steps_per_s"])})
  return out


def print_table(summary: List[Dict], ratio_records: List[Dict], stream=sys.stderr) -> None:
  by = {(s["impl"], s["case"], s["xla"]): s for s in summary}
  paired = {(r["case"], r["xla"]): r for r in ratio_records if r["kind"] == "ratio"}
  header = ("case", "xla", "impl", "steps/s", "tokens/s", "step ms", "peak MB", "ours/peer")
  widths = (11, 3, 11, 8, 9, 9, 8, 9)
  stream.write("\n" + "  ".join(h.rjust(w) for h, w in zip(header, widths)) + "\n")
  for case in dict.fromkeys(k[1] for k in by):
    for xla in (False, True):
      for impl in IMPLS:
        s = by.get((impl, case, xla))
        if not s:
          continue
        r = paired.get((case, xla)) if impl == "ours" else None
        cells = (case, "on" if xla else "off", impl, common.fmt(s["steps_per_s"], ".3f"),
                 common.fmt(s["tokens_per_s"]), common.fmt(s["step_ms_median"], ".1f"),
                 common.fmt(s["peak_rss_mb"]), common.fmt(r and r["speed_ratio_paired_median"], ".2f"))
        stream.write("  ".join(c.rjust(w) for c, w in zip(cells, widths)) + "\n")
  stream.flush()


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--cases", default=None,
                 help=f"comma-separated cases of {', '.join(CASES)} (default {DEFAULT_CASES}; "
                 "--quick tiny-8x32)")
  p.add_argument("--impls", default=None,
                 help="comma-separated of ours,peer,ours_mirror,trainer (default ours,peer,"
                 "trainer)")
  p.add_argument("--xla", choices=("both", "on", "off"), default=None,
                 help="jit_compile of the step on, off or both (default both; --quick off)")
  p.add_argument("--trainer-xla", choices=("both", "on", "off"), default="off",
                 help="XLA settings of the real-Trainer measurement (default off)")
  p.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32",
                 help="Keras dtype policy of every measurement in the run (default float32)")
  p.add_argument("--peer-optimizer", choices=("official", "ours"), default="official",
                 help="LAMB of official.modeling.optimization (default) or ours for the peer")
  p.add_argument("--repeats", type=int, default=None,
                 help="fresh subprocesses per measurement (default 2; --quick 1)")
  p.add_argument("--min-seconds", type=float, default=None,
                 help="minimum timed seconds per measurement (default 20; --quick 0)")
  p.add_argument("--min-calls", type=int, default=None,
                 help="minimum timed loop calls (default 3; --quick 2)")
  p.add_argument("--warmup", type=int, default=None,
                 help="untimed loop calls after the first (default 1)")
  p.add_argument("--steps-per-call", type=int, default=None,
                 help="steps per loop call (default: about 1 s worth per case)")
  p.add_argument("--trainer-loops", type=int, default=None,
                 help="timed Trainer loops after the first (default 3; --quick 2)")
  p.add_argument("--breakdown", action="store_true",
                 help="also time forward and forward+backward alone (where the time goes; "
                 "first repeat only)")
  p.add_argument("--jobs", type=int, default=None,
                 help="subprocesses at a time (default 1; --quick 3: its timings mean nothing)")
  p.add_argument("--work-dir", default=os.path.join(REPO_DIR, "output", "benchmarks",
                                                      "pretraining"),
                 help="records for the Trainer measurement (reused)")
  p.add_argument("--out", default=None,
                 help="JSON file of all records (default benchmarks/results/pretraining.json, "
                 "pretraining_mixed_bfloat16.json with that precision; --quick: none)")
  common.add_common_arguments(
      p, "smoke run: tiny-8x32, XLA off, 3 subprocesses at a time (< 1 minute)")
  args = p.parse_args(argv)
  q = args.quick
  args.cases = args.cases or ("tiny-8x32" if q else DEFAULT_CASES)
  args.impls = args.impls or "ours,peer,trainer"
  args.xla = args.xla or ("off" if q else "both")
  args.repeats = args.repeats or (1 if q else 2)
  args.min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if q else 20.0)
  args.min_calls = args.min_calls or (2 if q else 3)
  args.warmup = args.warmup if args.warmup is not None else 1
  args.trainer_loops = args.trainer_loops or (2 if q else 3)
  args.jobs = args.jobs or (3 if q else 1)
  if args.out is None and not q:
    suffix = "" if args.precision == "float32" else f"_{args.precision}"
    args.out = os.path.join(RESULTS_DIR, f"pretraining{suffix}.json")
  return args


def default_steps_per_call(case: Dict, quick: bool) -> int:
  """Steps per loop call: 1 for the base model (seconds per step), 50 for the tiny one."""
  if quick:
    return 10
  return 1 if case["config_file"].endswith(os.path.join("base", "albert_config.json")) else 50


def main(argv: Optional[Sequence[str]] = None) -> List[Dict]:
  """Runs the benchmark; prints (and returns) its JSON records."""
  args = parse_args(argv)
  if args.worker is not None:
    return common.worker_main(args.worker, run_spec)
  cases = [case_spec(c) for c in common.split(args.cases)]
  impls = common.split(args.impls, IMPLS, "implementation")
  xlas = {"both": [False, True], "on": [True], "off": [False]}
  records: List[Dict] = []
  emit = common.emitter(records)
  started = time.time()
  emit(common.run_record(argv, cases=[c["case"] for c in cases], impls=impls,
                         repeats=args.repeats, peer_optimizer=args.peer_optimizer,
                         precision=args.precision))
  settings = {"min_seconds": args.min_seconds, "min_calls": args.min_calls,
              "warmup": args.warmup, "peer_optimizer": args.peer_optimizer,
              "precision": args.precision,
              "breakdown": args.breakdown, "seed": 0, "trainer_loops": args.trainer_loops}
  records_by_case = {}
  if "trainer" in impls:
    records_by_case = make_records(args.work_dir, cases, args.quick,
                                   log=lambda line: print(f"# {line}", file=sys.stderr))
  specs = []
  loop_impls = [i for i in impls if i != "trainer"]
  for repeat in range(args.repeats):
    for case in cases:
      steps = args.steps_per_call or default_steps_per_call(case, args.quick)
      for xla in xlas[args.xla]:
        order = loop_impls if repeat % 2 == 0 else loop_impls[::-1]  # alternate who goes first
        for impl in order:
          specs.append({**settings, **case, "impl": impl, "xla": xla, "steps_per_call": steps,
                        "repeat": repeat, "breakdown": args.breakdown and repeat == 0})
      if "trainer" in impls and repeat == 0:
        for xla in xlas[args.trainer_xla]:
          specs.append({**settings, **case, "impl": "trainer", "xla": xla,
                        "steps_per_call": steps, "repeat": repeat,
                        "records": records_by_case[case["case"]]})
  measurements = []
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
    run = lambda s: common.run_subprocess(__file__, [s], args.timeout)[0]  # noqa: E731
    for spec, result in zip(specs, pool.map(run, specs)):
      record = {"kind": "measurement", "repeat": spec["repeat"], **result}
      if "error" in result:
        record.update(impl=spec["impl"], case=spec["case"], xla=spec["xla"])
      measurements.append(record)
      emit(record)
  summary = summarize(measurements)
  for s in summary:
    emit(s)
  ratio_records = ratios(summary, measurements)
  for r in ratio_records:
    emit(r)
  emit(common.load_record(measurements, time.time() - started))
  if not args.no_table:
    print_table(summary, ratio_records)
  if args.out:
    common.write_records(args.out, records)
  return records


if __name__ == "__main__":
  main(sys.argv[1:])
