"""SQuAD benchmark: feature conversion of dev-v1.1, and v1 train / predict examples/s at seq 384.

Two parts, every measurement in a fresh subprocess (so that its peak RSS and CPU are its own),
each printed as one JSON line (`"kind": "measurement"`):

features  The whole `--predict_file` (default ../shared/data/squad/dev-v1.1.json, 10,570
          questions) at 384 / 128 / 64, `is_training=False`, with 30k-clean.model, lower-cased:
  ours    `albert.data.squad.cache.build_squad_cache` into a fresh (cold) cache directory, as
          `run_squad.py --prepare_only` runs it: read the JSON, convert, write the TFRecords,
          the .meta.npz and the JSON last; then the same call again (the reuse path). With
          `num_workers` 1 and 2 (`--workers`). Records: wall, CPU of the process and its
          workers (os.times, children reaped), peak RSS of the main process and of the
          largest worker, features, the records' sha256 (identical for any worker count).
  ours_memory  `read_squad_examples` + `convert_examples_to_features(keep_inputs=True)`, in
          memory (no files): the like-for-like counterpart of the HuggingFace path.
  hf      HuggingFace's fast-tokenizer preparation of `run_qa.py` (`prepare_validation_features`
          logic written here: questions left-stripped, `truncation="only_second"`,
          `stride=doc_stride` overlap, overflowing windows, offsets kept for context tokens
          only, batches of 1,000 questions as `datasets.map` would), in memory, to numpy
          arrays at the end. The tokenizer is `AlbertTokenizerFast` converted offline from
          the same 30k-clean.model (tokenizers' SentencePiece converter; conversion time is
          `tokenizer_load_s`, not counted in the preparation). It runs in a separate
          interpreter that has `transformers` + `tokenizers` (`--hf-python`, default
          $ALBERT_HF_PYTHON; never the project's venv); without one it is reported as
          skipped. `hf_threads` 0 = tokenizers' default parallelism (all cores), 1 =
          TOKENIZERS_PARALLELISM=false. Its windows differ: `stride` is the overlap between
          windows, the original's `doc_stride` the step, so it makes fewer features.
  The original's recorded cost (`ORIGINAL_CPU_S`: 239 s of CPU here, 22.6 ms a question,
  1.3 GB peak; issue 12) is the reference of the `"kind": "feature_ratio"` lines.

model     v1 SQuAD model on the base configuration (configs/v2/base, random weights, dropout 0
          as configured), seq 384, synthetic features ([CLS] 16-piece question [SEP] document
          [SEP], full length; gold spans inside the document):
  ours    `albert.tasks.squad.SquadTask` (v1: `cls/squad` head) on the `Trainer`: train = its
          compiled host loop (`Trainer.make_train_loop()`, AdamW lr 5e-5 as run_squad.py);
          predict = its predict step (`trainer.evaluator.make_predict_step()`, logits to
          numpy).
  peer    tf-models-official `models.BertSpanLabeler` over `networks.AlbertEncoder` of the
          same sizes (its `SpanLabeling` Dense(2) is the v1 head); train = the same host loop
          (`albert.train.loop.make_train_loop`, the same loss `losses.squad_v1_loss`, clipping
          1.0) with `official.nlp.optimization.create_optimizer` AdamW, embedding gradients
          left sparse as tf-models-official's trainer leaves them; predict = the same
          strategy.run + gather step around `model(..., training=False)`.
  Train batch 4, predict batch 8 (the original's --predict_batch_size) on 2 cores; one step
  (train) or batch (predict) per call, untimed first call and warm-up, then `--min-calls`
  timed calls. Ours and peer alternate who runs first, `--repeats` times; `"kind": "ratio"`
  lines give ours / peer examples/s (median, and per back-to-back pair).

The 1-minute load average is recorded with every measurement (the machine is shared: read the
ratios). `--quick` is a smoke run (< 2 minutes): the first 3 articles of dev, the tiny config
at seq 64. Run from the repository root:

  PYTHONPATH=. python benchmarks/squad_benchmark.py                  # all (~30 min)
  PYTHONPATH=. python benchmarks/squad_benchmark.py --parts features --hf-python /tmp/hf/bin/python
  PYTHONPATH=. python benchmarks/squad_benchmark.py --quick

`main(argv)` returns the list of records it printed. This module imports only the standard
library at load time, so that the HuggingFace interpreter can run its worker.
"""

from __future__ import annotations

import argparse
import hashlib
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
DEV_FILE = os.path.join(common.SHARED_DATA, "squad", "dev-v1.1.json")
SPM_MODEL = os.path.join(common.SHARED_DATA, "albert_spm", "30k-clean.model")
# The original's convert_examples_to_features on the whole dev-v1.1 at 384/128/64 (issue 12).
ORIGINAL_CPU_S, ORIGINAL_MS_PER_QUESTION, ORIGINAL_PEAK_MB = 239.0, 22.6, 1300.0
LEARNING_RATE, WARMUP_STEPS = 5e-5, 10**5
QUERY_LENGTH = 16  # pieces of the synthetic features' question (the task's max_query_length)

# name -> (albert_config.json, overrides, seq, train batch, predict batch)
MODEL_CASES = {
    "base-384": (common.BASE_CONFIG_FILE, {}, 384, 4, 8),
    "tiny-64": (common.TINY_CONFIG_FILE, {"vocab_size": 1000}, 64, 4, 8),  # --quick
}


# ------------------------------------------------------------------------ feature workers
def _cpu_s() -> float:
  """CPU seconds of this process and its reaped children (the conversion's workers)."""
  t = os.times()
  return t.user + t.system + t.children_user + t.children_system


def _peaks_mb() -> Dict[str, float]:
  import resource  # pylint: disable=import-outside-toplevel
  return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
          "peak_rss_largest_worker_mb":
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}


def _sha256_file(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _feature_common(spec: Dict, wall: float, cpu: float, questions: int) -> Dict:
  return {"impl": spec["impl"], "input": spec["input"], "wall_s": wall, "cpu_s": cpu,
          "questions": questions, "ms_cpu_per_question": 1e3 * cpu / questions,
          "questions_per_s": questions / wall, **_peaks_mb()}


def run_ours_features(spec: Dict) -> Dict:
  """`build_squad_cache` (impl ours) or the in-memory conversion (ours_memory), cold."""
  load_before = os.getloadavg()[0]
  from albert.data.squad import examples as squad  # pylint: disable=import-outside-toplevel
  from albert.data.squad import cache as squad_cache
  from albert.data.squad import features as features_lib  # pylint: disable=import-outside-toplevel
  token_spec = features_lib.sentencepiece_spec(spec["spm_model_file"], do_lower_case=True)
  settings = features_lib.FeatureSettings(spec["max_seq_length"], spec["doc_stride"],
                                          spec["max_query_length"])
  scratch = tempfile.mkdtemp(prefix="albert-sqbench-")
  try:
    wall0, cpu0 = time.perf_counter(), _cpu_s()
    if spec["impl"] == "ours":
      record_path, cache = squad_cache.build_squad_cache(
          spec["input"], False, False, token_spec, settings, os.path.join(scratch, "cache"),
          num_workers=spec["workers"], log=lambda _: None)
      wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
      questions, features = int(cache.info["num_examples"]), cache.num_features
      result = _feature_common(spec, wall, cpu, questions)
      t = time.perf_counter()
      _, again = squad_cache.build_squad_cache(
          spec["input"], False, False, token_spec, settings, os.path.join(scratch, "cache"),
          num_workers=spec["workers"], log=lambda _: None)
      result.update(reuse_wall_s=time.perf_counter() - t, reused=again.reused,
                    records_sha256=_sha256_file(record_path),
                    records_mb=os.path.getsize(record_path) / 2**20,
                    build_seconds_recorded=cache.info["seconds"])
    else:
      examples = squad.read_squad_examples(spec["input"], False, False)
      read_s = time.perf_counter() - wall0
      feats, _ = features_lib.convert_examples_to_features(
          examples, token_spec, settings, False, num_workers=spec["workers"], keep_inputs=True)
      wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
      questions, features = len(examples), len(feats)
      result = _feature_common(spec, wall, cpu, questions)
      result.update(read_s=read_s,
                    input_ids_sha256=hashlib.sha256(feats.input_ids.tobytes()).hexdigest())
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  result.update(workers=spec["workers"], features=features, load_avg_1m_before=load_before,
                load_avg_1m_after=os.getloadavg()[0])
  return result


def _read_squad_lists(path: str) -> Dict[str, list]:
  """id / question / context columns of a SQuAD file (what `datasets`' squad loader gives)."""
  with open(path, encoding="utf-8") as f:
    data = json.load(f)["data"]
  columns: Dict[str, list] = {"id": [], "question": [], "context": []}
  for article in data:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        columns["id"].append(qa["id"])
        columns["question"].append(qa["question"])
        columns["context"].append(paragraph["context"])
  return columns


def prepare_validation_features(tokenizer, batch: Dict[str, list], max_seq_length: int,
                                doc_stride: int) -> Dict[str, list]:
  """`run_qa.py`'s validation preparation: windows with `doc_stride` overlap, context offsets."""
  questions = [q.lstrip() for q in batch["question"]]
  encoded = tokenizer(questions, batch["context"], truncation="only_second",
                      max_length=max_seq_length, stride=doc_stride,
                      return_overflowing_tokens=True, return_offsets_mapping=True,
                      padding="max_length", return_token_type_ids=True)
  sample_mapping = encoded.pop("overflow_to_sample_mapping")
  example_ids, offsets = [], []
  for i, sample in enumerate(sample_mapping):
    sequence_ids = encoded.sequence_ids(i)
    example_ids.append(batch["id"][sample])
    offsets.append([o if sequence_ids[k] == 1 else None
                    for k, o in enumerate(encoded["offset_mapping"][i])])
  return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
          "token_type_ids": encoded["token_type_ids"], "example_id": example_ids,
          "offset_mapping": offsets}


def run_hf_features(spec: Dict) -> Dict:
  """HuggingFace's fast-tokenizer preparation (run in the interpreter that has transformers)."""
  load_before = os.getloadavg()[0]
  if spec["hf_threads"] == 1:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
  os.environ["HF_HUB_OFFLINE"] = "1"
  os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
  scratch = tempfile.mkdtemp(prefix="albert-sqbench-hf-")
  try:
    t = time.perf_counter()
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tokenizers  # pylint: disable=import-outside-toplevel
    import transformers  # pylint: disable=import-outside-toplevel
    shutil.copy(spec["spm_model_file"], os.path.join(scratch, "spiece.model"))
    tokenizer = transformers.AlbertTokenizerFast.from_pretrained(scratch, do_lower_case=True)
    if not tokenizer.is_fast or len(tokenizer) != 30000:
      raise RuntimeError(f"expected a fast tokenizer of 30,000 pieces, got {type(tokenizer)} "
                         f"of {len(tokenizer)}")
    tokenizer_load_s = time.perf_counter() - t
    wall0, cpu0 = time.perf_counter(), _cpu_s()
    columns = _read_squad_lists(spec["input"])
    questions = len(columns["id"])
    parts: Dict[str, list] = {}
    for start in range(0, questions, 1000):
      batch = {k: v[start:start + 1000] for k, v in columns.items()}
      for name, values in prepare_validation_features(
          tokenizer, batch, spec["max_seq_length"], spec["doc_stride"]).items():
        parts.setdefault(name, []).extend(values)
    arrays = {name: np.asarray(parts[name], dtype=np.int32)
              for name in ("input_ids", "attention_mask", "token_type_ids")}
    wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  result = _feature_common(spec, wall, cpu, questions)
  result.update(hf_threads=spec["hf_threads"], features=int(arrays["input_ids"].shape[0]),
                tokenizer_load_s=tokenizer_load_s, transformers=transformers.__version__,
                tokenizers=tokenizers.__version__,
                input_ids_sha256=hashlib.sha256(arrays["input_ids"].tobytes()).hexdigest(),
                load_avg_1m_before=load_before, load_avg_1m_after=os.getloadavg()[0])
  return result


# -------------------------------------------------------------------------- model workers
def synthetic_features(vocab_size: int, batch: int, seq: int, seed: int = 0):
  """v1 SQuAD features (numpy): [CLS] 16-piece question [SEP] document [SEP], full length."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.RandomState(seed)
  query = QUERY_LENGTH
  doc_start, doc_end = query + 2, seq - 2  # document positions, inclusive
  ids = rng.randint(5, vocab_size, size=(batch, seq)).astype(np.int32)
  ids[:, 0] = 2  # [CLS]
  ids[:, query + 1] = 3  # [SEP]
  ids[:, -1] = 3
  segments = np.zeros((batch, seq), np.int32)
  segments[:, doc_start:] = 1
  p_mask = np.ones((batch, seq), np.int32)
  p_mask[:, 0] = 0
  p_mask[:, doc_start:doc_end + 1] = 0
  starts = rng.randint(doc_start, doc_end - 10, size=batch).astype(np.int32)
  return {
      "unique_ids": np.arange(1000000000, 1000000000 + batch, dtype=np.int32),
      "input_ids": ids, "input_mask": np.ones((batch, seq), np.int32),
      "segment_ids": segments, "p_mask": p_mask, "start_positions": starts,
      "end_positions": starts + rng.randint(0, 10, size=batch).astype(np.int32),
      "is_impossible": np.zeros(batch, np.int32),
      "row_index": np.arange(batch, dtype=np.int32),
      "is_real_example": np.ones(batch, np.int32),
  }


def _squad_run(spec: Dict, output_dir: str):
  """(SquadTask, FinetuneRun) of the v1 model (`finetune_run`): AdamW as run_squad.py, the
  spec's batch for training and prediction."""
  from albert.tasks.finetune import finetune_run  # pylint: disable=import-outside-toplevel
  from albert.tasks.squad import (  # pylint: disable=import-outside-toplevel
      SquadTask, SquadTaskConfig)
  batch = spec["batch"]
  run = finetune_run(
      output_dir=output_dir, albert_config=common.albert_config(spec["config_file"],
                                                                spec["overrides"]),
      max_seq_length=spec["seq"], length_buckets=False, train_batch_size=batch,
      eval_batch_size=batch, predict_batch_size=batch, num_train_steps=10**6,
      save_checkpoints_steps=5000, iterations_per_loop=1, seed=spec["seed"], optimizer="adamw",
      learning_rate=LEARNING_RATE, num_warmup_steps=WARMUP_STEPS)
  task = SquadTask(SquadTaskConfig(run.finetune, version_2_with_negative=False,
                                   max_query_length=QUERY_LENGTH), log=lambda _: None)
  return task, run


def _peer_model(config):
  """tf-models-official's BertSpanLabeler over AlbertEncoder; forward(features, training)."""
  tf, _ = common.import_tensorflow()
  from official.nlp.modeling import models  # pylint: disable=import-outside-toplevel
  encoder = common.peer_albert_encoder(config)
  model = models.BertSpanLabeler(network=encoder, initializer=common.peer_initializer(config))

  def forward(features, training):
    start, end = model([features["input_ids"], features["input_mask"],
                        features["segment_ids"]], training=training)
    return {"start_logits": tf.cast(start, tf.float32), "end_logits": tf.cast(end, tf.float32)}

  return model, forward


def _peer_predict_step(strategy, forward):
  """The Trainer's predict step (strategy.run + gather) around the peer's forward pass."""
  def replica_step(features):
    out = forward(features, False)
    return {"unique_ids": features["unique_ids"], **out, "row_index": features["row_index"],
            "is_real_example": features["is_real_example"]}

  return common.gathered_step(strategy, replica_step)


def run_model_worker(spec: Dict) -> Dict:
  """One (impl, mode) of the v1 model: examples/s of the train step or the predict step."""
  process_start = common.process_start()
  load_before = os.getloadavg()[0]
  tf, tf_keras = common.import_tensorflow()
  import numpy as np  # pylint: disable=import-outside-toplevel
  from albert.train.loop import make_train_loop  # pylint: disable=import-outside-toplevel
  from albert.train.trainer import Trainer  # pylint: disable=import-outside-toplevel
  impl, mode, batch, seq = spec["impl"], spec["mode"], spec["batch"], spec["seq"]
  strategy = tf.distribute.get_strategy()
  scratch = tempfile.mkdtemp(prefix="albert-sqbench-model-")
  try:
    task, run = _squad_run(spec, scratch)
    config = task.albert_config
    features = synthetic_features(config.vocab_size, batch, seq, spec["seed"])
    feats = {k: tf.constant(v) for k, v in features.items()}
    if impl == "ours":
      trainer = Trainer(task, run.trainer, run.optimizer, log=lambda _: None)
      trainer.build()
      variables = trainer.model.trainable_variables
      optimizer = trainer.optimizer
      if mode == "train":
        train_loop = trainer.make_train_loop()
      else:
        predict_step = trainer.evaluator.make_predict_step()
    else:
      from official.nlp import (  # pylint: disable=import-outside-toplevel
          optimization as tfm_optimization)
      tf_keras.utils.set_random_seed(spec["seed"])
      model, forward = _peer_model(config)
      variables = model.trainable_variables
      optimizer = tfm_optimization.create_optimizer(
          run.optimizer.learning_rate, run.trainer.num_train_steps,
          run.optimizer.num_warmup_steps, optimizer_type="adamw")
      if mode == "train":
        train_loop = make_train_loop(strategy, lambda f: forward(f, True), lambda: variables,
                                     optimizer, task, task.build_metrics(),
                                     dense_gradients=False)
      else:
        predict_step = _peer_predict_step(strategy, forward)
    t_build = time.time()

    if mode == "train":
      dataset = tf.data.Dataset.from_tensors(feats).repeat()
      iterator = iter(strategy.distribute_datasets_from_function(lambda _: dataset))
      steps = tf.constant(1)
      losses: List[float] = []

      def call():
        losses.append(common.loop_call(train_loop, iterator, steps))
    else:
      outputs: Dict = {}

      def call():
        outputs.update({k: v.numpy() for k, v in predict_step(feats).items()})

    call()  # tracing + the first step
    t_first = time.time()
    times, cpu_util = common.time_calls(call, spec["warmup"], spec["min_calls"],
                                        spec["min_seconds"], max_calls=50)
    median = statistics.median(times)
    result = {
        "impl": impl, "mode": mode, "case": spec["case"], "batch": batch, "seq": seq,
        "calls": len(times), "examples_per_s": batch / median,
        "examples_per_s_best": batch / min(times), "call_ms_median": 1e3 * median,
        "call_ms_min": 1e3 * min(times), "call_ms_max": 1e3 * max(times),
        "peak_rss_mb": common.rss_peak_mb(), "startup_s": t_build - process_start,
        "first_call_s": t_first - t_build, "cpu_util": cpu_util,
        "params": common.count_params(variables),
        "optimizer": type(optimizer).__module__ + "." + type(optimizer).__name__,
        "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0],
    }
    if mode == "train":
      result.update(first_loss=losses[0], last_loss=losses[-1])
    else:
      start_logits = outputs["start_logits"]
      result.update(output_shape=list(start_logits.shape),
                    logits_finite=bool(np.isfinite(start_logits).all()))
    return result
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def run_spec(spec: Dict, index: int) -> Dict:
  del index  # a fresh process per spec
  if spec["part"] == "features":
    return run_hf_features(spec) if spec["impl"] == "hf" else run_ours_features(spec)
  return run_model_worker(spec)


# --------------------------------------------------------------------------- orchestrator
def quick_input(work_dir: str, source: str, articles: int = 3) -> str:
  """The first `articles` articles of `source` as a SQuAD file in `work_dir` (reused)."""
  path = os.path.join(work_dir, f"{os.path.splitext(os.path.basename(source))[0]}-first"
                      f"{articles}.json")
  if not os.path.exists(path):
    with open(source, encoding="utf-8") as f:
      data = json.load(f)
    from albert import files  # pylint: disable=import-outside-toplevel
    files.write_text(path, json.dumps({"version": data.get("version"),
                                       "data": data["data"][:articles]}))
  return path


def feature_label(r: Dict) -> str:
  if r["impl"] == "hf":
    return f"hf threads={r['hf_threads'] or 'all'}"
  return f"{r['impl']} workers={r['workers']}"


def feature_summaries(measurements: List[Dict]) -> List[Dict]:
  """Medians per feature configuration, and ratios to the original and to HuggingFace."""
  groups: Dict[str, List[Dict]] = {}
  for m in measurements:
    if m.get("part") == "features" and "error" not in m and not m.get("skipped"):
      groups.setdefault(feature_label(m), []).append(m)
  out = []
  for label, group in groups.items():
    s = {"kind": "feature_summary", "label": label, "impl": group[0]["impl"],
         "repeats": len(group), "features": group[0]["features"],
         "questions": group[0]["questions"]}
    for key in ("wall_s", "cpu_s", "ms_cpu_per_question", "questions_per_s", "peak_rss_mb",
                "peak_rss_largest_worker_mb", "reuse_wall_s", "tokenizer_load_s"):
      values = [g[key] for g in group if isinstance(g.get(key), (int, float))]
      if values:
        s[key] = statistics.median(values)
    s["wall_s_all"] = [g["wall_s"] for g in group]
    digests = {g.get("records_sha256") or g.get("input_ids_sha256") for g in group}
    s["identical_across_repeats"] = len(digests) == 1
    if s["questions"] == 10570:  # the original's figure is for the whole dev-v1.1
      s["cpu_speedup_vs_original"] = ORIGINAL_CPU_S / s["cpu_s"]
      s["wall_speedup_vs_original_cpu"] = ORIGINAL_CPU_S / s["wall_s"]
      s["peak_rss_vs_original"] = s["peak_rss_mb"] / ORIGINAL_PEAK_MB
    out.append(s)
  by = {s["label"]: s for s in out}
  hf_runs = [s for s in out if s["impl"] == "hf"]
  hf = min(hf_runs, key=lambda s: s["wall_s"]) if hf_runs else None  # its faster setting
  for s in out:
    if hf and s["impl"] != "hf":
      s.update(hf_reference=hf["label"], wall_speed_vs_hf=hf["wall_s"] / s["wall_s"],
               cpu_speed_vs_hf=hf["cpu_s"] / s["cpu_s"])
  one, two = by.get("ours workers=1"), by.get("ours workers=2")
  if one and two:
    digests = {g["records_sha256"] for label in (one["label"], two["label"])
               for g in groups[label]}
    out.append({"kind": "feature_ratio", "what": "ours workers=2 vs workers=1",
                "wall_speedup": one["wall_s"] / two["wall_s"],
                "cpu_ratio": two["cpu_s"] / one["cpu_s"],
                "records_identical": len(digests) == 1})
  return out


def model_summaries(measurements: List[Dict]) -> List[Dict]:
  groups: Dict[tuple, List[Dict]] = {}
  for m in measurements:
    if m.get("part") == "model" and "error" not in m:
      groups.setdefault((m["impl"], m["case"], m["mode"]), []).append(m)
  out = []
  for (impl, case, mode), group in groups.items():
    s = {"kind": "summary", "impl": impl, "case": case, "mode": mode, "repeats": len(group),
         "batch": group[0]["batch"], "seq": group[0]["seq"], "params": group[0]["params"]}
    for key in ("examples_per_s", "examples_per_s_best", "call_ms_median", "peak_rss_mb",
                "startup_s", "first_call_s", "cpu_util"):
      s[key] = statistics.median([g[key] for g in group])
    s["examples_per_s_all"] = [g["examples_per_s"] for g in group]
    out.append(s)
  by = {(s["impl"], s["case"], s["mode"]): s for s in out}
  pairs: Dict[tuple, List[float]] = {}
  rep = {(m["impl"], m["case"], m["mode"], m["repeat"]): m for m in measurements
         if m.get("part") == "model" and "error" not in m}
  for (impl, case, mode, repeat), ours in rep.items():
    peer = rep.get(("peer", case, mode, repeat))
    if impl == "ours" and peer:
      pairs.setdefault((case, mode), []).append(ours["examples_per_s"] / peer["examples_per_s"])
  for (impl, case, mode), ours in list(by.items()):
    peer = by.get(("peer", case, mode))
    if impl != "ours" or not peer:
      continue
    paired = pairs.get((case, mode), [])
    out.append({"kind": "ratio", "case": case, "mode": mode,
                "ours_examples_per_s": ours["examples_per_s"],
                "peer_examples_per_s": peer["examples_per_s"],
                "speed_ratio": ours["examples_per_s"] / peer["examples_per_s"],
                "speed_ratio_paired_median": statistics.median(paired) if paired else None,
                "speed_ratio_paired_all": paired,
                "peak_rss_ratio": common.ratio(ours["peak_rss_mb"], peer["peak_rss_mb"])})
  return out


def print_tables(summaries: List[Dict], stream=sys.stderr) -> None:
  feats = [s for s in summaries if s["kind"] == "feature_summary"]
  if feats:
    stream.write("\n" + "  ".join(h.rjust(w) for h, w in zip(
        ("features", "wall s", "CPU s", "ms/q", "peak MB", "worker MB", "vs orig CPU", "n"),
        (22, 7, 7, 6, 8, 9, 11, 6))) + "\n")
    for s in feats:
      cells = (s["label"], common.fmt(s["wall_s"], ".2f"), common.fmt(s["cpu_s"], ".2f"),
               common.fmt(s["ms_cpu_per_question"], ".2f"), common.fmt(s["peak_rss_mb"]),
               common.fmt(s.get("peak_rss_largest_worker_mb")),
               common.fmt(s.get("cpu_speedup_vs_original"), ".0f"), str(s["features"]))
      stream.write("  ".join(c.rjust(w) for c, w in zip(
          cells, (22, 7, 7, 6, 8, 9, 11, 6))) + "\n")
  models = {(s["impl"], s["case"], s["mode"]): s for s in summaries if s["kind"] == "summary"}
  ratios = {(r["case"], r["mode"]): r for r in summaries if r["kind"] == "ratio"}
  if models:
    widths = (9, 7, 5, 6, 10, 9, 8, 9)
    stream.write("\n" + "  ".join(h.rjust(w) for h, w in zip(
        ("case", "mode", "impl", "batch", "examples/s", "call ms", "peak MB", "ours/peer"),
        widths)) + "\n")
    for (impl, case, mode), s in sorted(models.items(), key=lambda kv: (kv[0][1], kv[0][2])):
      r = ratios.get((case, mode)) if impl == "ours" else None
      cells = (case, mode, impl, str(s["batch"]), common.fmt(s["examples_per_s"], ".2f"),
               common.fmt(s["call_ms_median"]), common.fmt(s["peak_rss_mb"]),
               common.fmt(r and r["speed_ratio_paired_median"], ".2f"))
      stream.write("  ".join(c.rjust(w) for c, w in zip(cells, widths)) + "\n")
  stream.flush()


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--parts", default="features,model", help="features,model (default both)")
  p.add_argument("--predict_file", default=DEV_FILE, help="SQuAD file to convert")
  p.add_argument("--spm_model_file", default=SPM_MODEL, help="SentencePiece model")
  p.add_argument("--workers", default="1,2", help="ours' num_workers values (default 1,2)")
  p.add_argument("--feature-impls", default="ours,ours_memory,hf",
                 help="of ours,ours_memory,hf (default all)")
  p.add_argument("--hf-python", default=os.environ.get("ALBERT_HF_PYTHON", ""),
                 help="a python with transformers + tokenizers (default $ALBERT_HF_PYTHON; "
                 "empty: hf is reported as skipped)")
  p.add_argument("--cases", default=None, help=f"model cases of {', '.join(MODEL_CASES)} "
                 "(default base-384; --quick tiny-64)")
  p.add_argument("--modes", default="train,predict", help="train,predict (default both)")
  p.add_argument("--repeats", type=int, default=None,
                 help="fresh subprocesses per measurement (default 3; --quick 1)")
  p.add_argument("--min-calls", type=int, default=None,
                 help="timed calls per model measurement (default 3; --quick 2)")
  p.add_argument("--min-seconds", type=float, default=None,
                 help="minimum timed seconds per model measurement (default 10; --quick 0)")
  p.add_argument("--warmup", type=int, default=1, help="untimed calls after the first")
  p.add_argument("--work-dir", default=os.path.join(REPO_DIR, "output", "benchmarks", "squad"),
                 help="where --quick writes its slice of the SQuAD file")
  p.add_argument("--out", default=None,
                 help="JSON file of all records (default benchmarks/results/squad.json; "
                 "--quick: none)")
  common.add_common_arguments(
      p, "smoke run: 3 articles of dev, the tiny model at seq 64, 1 repeat", timeout=1800.0)
  args = p.parse_args(argv)
  q = args.quick
  args.cases = args.cases or ("tiny-64" if q else "base-384")
  args.repeats = args.repeats or (1 if q else 3)
  args.min_calls = args.min_calls or (2 if q else 3)
  args.min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if q else 10.0)
  if args.out is None and not q:
    args.out = os.path.join(RESULTS_DIR, "squad.json")
  return args


def feature_specs(args, source: str) -> List[Dict]:
  """Every feature measurement, repeat by repeat, the order rotating between repeats."""
  base = {"part": "features", "input": source, "spm_model_file": args.spm_model_file,
          "max_seq_length": 384, "doc_stride": 128, "max_query_length": 64}
  configs = []
  for impl in common.split(args.feature_impls):
    if impl not in ("ours", "ours_memory", "hf"):
      raise SystemExit(f"unknown feature implementation {impl!r}")
    if impl == "hf":
      configs += [{"impl": "hf", "hf_threads": threads} for threads in (0, 1)]
    else:
      configs += [{"impl": impl, "workers": int(w)} for w in common.split(args.workers)
                  if impl == "ours" or int(w) == 1]
  specs = []
  for repeat in range(args.repeats):
    shift = repeat % len(configs)
    for config in configs[shift:] + configs[:shift]:
      specs.append({**base, **config, "repeat": repeat})
  return specs


def model_specs(args) -> List[Dict]:
  specs = []
  for name in common.split(args.cases):
    if name not in MODEL_CASES:
      raise SystemExit(f"unknown case {name!r}; expected one of {', '.join(MODEL_CASES)}")
    config_file, overrides, seq, train_batch, predict_batch = MODEL_CASES[name]
    for repeat in range(args.repeats):
      for k, mode in enumerate(common.split(args.modes)):
        order = ("ours", "peer") if (repeat + k) % 2 == 0 else ("peer", "ours")
        for impl in order:
          specs.append({"part": "model", "case": name, "mode": mode, "impl": impl,
                        "config_file": config_file,
                        "overrides": overrides, "seq": seq, "repeat": repeat, "seed": 0,
                        "batch": train_batch if mode == "train" else predict_batch,
                        "warmup": args.warmup, "min_calls": args.min_calls,
                        "min_seconds": args.min_seconds})
  return specs


def main(argv: Optional[Sequence[str]] = None) -> List[Dict]:
  """Runs the benchmark; prints (and returns) its JSON records."""
  args = parse_args(argv)
  if args.worker is not None:
    return common.worker_main(args.worker, run_spec)
  parts = common.split(args.parts)
  records: List[Dict] = []
  emit = common.emitter(records)
  started = time.time()
  source = quick_input(args.work_dir, args.predict_file) if args.quick else args.predict_file
  emit(common.run_record(
      argv, parts=parts, repeats=args.repeats, input=source, hf_python=args.hf_python or None,
      original={"cpu_s": ORIGINAL_CPU_S, "ms_per_question": ORIGINAL_MS_PER_QUESTION,
                "peak_mb": ORIGINAL_PEAK_MB}))
  specs = (feature_specs(args, source) if "features" in parts else []) + (
      model_specs(args) if "model" in parts else [])
  measurements = []
  for spec in specs:
    if spec.get("impl") == "hf":
      if not args.hf_python:
        result = {"skipped": "no interpreter with transformers + tokenizers (--hf-python, "
                             "$ALBERT_HF_PYTHON)"}
      elif not os.path.isfile(args.hf_python):
        result = {"skipped": f"--hf-python {args.hf_python}: no such file"}
      else:
        result = common.run_subprocess(__file__, [spec], args.timeout,
                                       python=args.hf_python)[0]
    else:
      result = common.run_subprocess(__file__, [spec], args.timeout)[0]
    record = {"kind": "measurement", "part": spec["part"], "repeat": spec["repeat"], **result}
    for key in ("impl", "mode", "case", "workers", "hf_threads"):
      if key in spec:
        record.setdefault(key, spec[key])
    measurements.append(record)
    emit(record)
  summaries = feature_summaries(measurements) + model_summaries(measurements)
  for s in summaries:
    emit(s)
  emit(common.load_record(measurements, time.time() - started))
  if not args.no_table:
    print_tables(summaries)
  if args.out:
    common.write_records(args.out, records)
  return records


if __name__ == "__main__":
  main(sys.argv[1:])
