"""Learning-curve benchmark: pretrain the small model on the shared corpus for a fixed time budget.

The steps, as the main job (`scripts/main_job.py`) but on `../shared/data/corpus` and with an
evaluation every `--eval_every` steps:
1. documents of the corpus files (default `books_train.txt` and `wikitext2_test_raw.txt` of
   `../shared/data/corpus/albert_format/`) are split: every 20th document (5%) is held out
   for evaluation, the rest is the training text;
2. a SentencePiece vocabulary (`--vocab_size`, default 4,000) is trained on the training text
   with `albert.data.pretraining.vocab.train_vocab` (the original recipe), or `--spm_model` is used;
3. records are written with `create_pretraining_data` (seq 64, 10 predictions; train: dupe 5,
   eval: dupe 1), all cached in `--work_dir` and reused when the settings are unchanged;
4. the time budget (`--budget_minutes`, default 10) is turned into a number of steps by a short
   calibration run of the real Trainer (unless `--num_train_steps` is given), so that the
   learning-rate schedule (warmup, then linear decay to 0) ends with the budget;
5. the model of `configs/tiny` (vocabulary size set to the trained one) is pretrained from
   scratch with LAMB through `albert.train.trainer.Trainer` (`--train_batch_size` 64), with a
   checkpoint and an evaluation on the held-out records every `--eval_every` steps;
6. the curves (held-out MLM/SOP accuracy and loss per evaluation, training metrics per loop,
   wall time) and the baselines (MLM: always the most frequent masked token of the training
   records; SOP: the majority label of the held-out records) are written to
   `benchmarks/results/learning_curve.json` and plotted in `learning_curve.png`.

Every evaluation is printed as one JSON line (`"kind": "eval"`), then a `"kind": "result"` line.

Run from the repository root:

  PYTHONPATH=. python benchmarks/learning_curve.py                      # ~10 minutes of training
  PYTHONPATH=. python benchmarks/learning_curve.py --budget_minutes 3
  PYTHONPATH=. python benchmarks/learning_curve.py --quick              # smoke run, < 1 minute

`main(argv)` returns the result dict it wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

if __package__:
  from benchmarks import common
else:  # run as a script: benchmarks/ is sys.path[0]
  import common  # pylint: disable=import-error

REPO_DIR, RESULTS_DIR = common.REPO_DIR, common.RESULTS_DIR
CORPUS_DIR = os.path.join(common.SHARED_DATA, "corpus", "albert_format")
DEFAULT_CORPUS = ",".join(os.path.join(CORPUS_DIR, f)
                          for f in ("books_train.txt", "wikitext2_test_raw.txt"))
EVAL_KEYS = ("loss", "masked_lm_accuracy", "masked_lm_loss", "sentence_order_accuracy",
             "sentence_order_loss")


def _say(line: str) -> None:
  print(f"# {line}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ data
def read_documents(files: Sequence[str]) -> List[Tuple[str, str]]:
  """(file name, document text) for every blank-line separated document of the files."""
  docs = []
  for path in files:
    with open(path, encoding="utf-8") as f:
      for doc in f.read().strip("\n").split("\n\n"):
        if doc.strip():
          docs.append((os.path.basename(path), doc.strip("\n")))
  return docs


def split_documents(docs: List[Tuple[str, str]], every: int = 20
                    ) -> Tuple[List[Tuple[str, str]], List[Tuple[str, str]]]:
  """(train, held out): every `every`-th document (starting with the 10th) is held out.

  Spread over the files, so that books and Wikipedia are both in the held-out part.
  """
  held = [d for i, d in enumerate(docs) if i % every == every // 2]
  train = [d for i, d in enumerate(docs) if i % every != every // 2]
  return train, held


def prepare_data(args, log=_say) -> Dict:
  """Splits the corpus, trains (or reuses) the vocabulary, writes (or reuses) the records."""
  from albert import files as albert_files
  from albert.data.pretraining.job import CreateDataConfig, create_pretraining_data
  from albert.data.pretraining.vocab import VocabConfig, train_vocab
  files = [f.strip() for f in args.corpus.split(",") if f.strip()]
  for f in files:
    if not os.path.exists(f):
      raise SystemExit(f"--corpus: no file {f}")
  docs = read_documents(files)
  if args.max_documents:
    docs = docs[:args.max_documents // 2] + docs[-(args.max_documents - args.max_documents // 2):]
  train, held = split_documents(docs)
  work = args.work_dir
  os.makedirs(work, exist_ok=True)
  texts = {}
  for name, part in (("train", train), ("eval", held)):
    texts[name] = os.path.join(work, f"{name}.txt")
    content = "\n\n".join(d for _, d in part) + "\n"
    old = None
    if os.path.exists(texts[name]):
      with open(texts[name], encoding="utf-8") as f:
        old = f.read()
    if old != content:  # changed corpus or split: everything after it is stale
      albert_files.write_text(texts[name], content)
      for stale in os.listdir(work):
        if stale.endswith((".tfrecord", ".model", ".vocab")) and args.spm_model != os.path.join(
            work, stale):
          os.remove(os.path.join(work, stale))
  log(f"corpus: {len(docs)} documents from {len(files)} files; {len(train)} for training, "
      f"{len(held)} held out ({', '.join(sorted(set(f for f, _ in held)))})")

  spm_model = args.spm_model
  if not spm_model:
    prefix = os.path.join(work, f"spm{args.vocab_size}")
    spm_model = prefix + ".model"
    if os.path.exists(spm_model):
      log(f"reusing {spm_model}")
    else:
      t = time.time()
      train_vocab(VocabConfig(input_file=texts["train"], model_prefix=prefix,
                              vocab_size=args.vocab_size, do_lower_case=True), log=log)
      log(f"vocabulary trained in {time.time() - t:.0f} s")
  import sentencepiece as spm
  vocab_size = spm.SentencePieceProcessor(model_file=spm_model).get_piece_size()

  records = {}
  tag = (f"{os.path.splitext(os.path.basename(spm_model))[0]}-s{args.max_seq_length}"
         f"-p{args.max_predictions_per_seq}")
  for name, dupe in (("train", args.dupe_factor), ("eval", 1)):
    records[name] = os.path.join(work, f"{name}-{tag}-d{dupe}.tfrecord")
    if os.path.exists(records[name]):
      log(f"reusing {records[name]}")
      continue
    t = time.time()
    summary = create_pretraining_data(
        CreateDataConfig(input_file=texts[name], output_file=records[name],
                         spm_model_file=spm_model, do_lower_case=True,
                         max_seq_length=args.max_seq_length,
                         max_predictions_per_seq=args.max_predictions_per_seq,
                         dupe_factor=dupe, random_seed=args.seed + (name == "eval")),
        log=lambda _: None)
    log(f"wrote {records[name]}: {summary.records_written} records in {time.time() - t:.0f} s")
  import tensorflow as tf
  counts = {name: sum(1 for _ in tf.data.TFRecordDataset(path)) for name, path in records.items()}
  return {"texts": texts, "spm_model": spm_model, "vocab_size": vocab_size, "records": records,
          "record_counts": counts, "documents": {"train": len(train), "eval": len(held)},
          "corpus_files": files}


def baselines(data: Dict, seq: int, predictions: int) -> Dict:
  """MLM: the most frequent masked token of training, its share of the held-out masked tokens;
  SOP: the share of the majority label of the held-out records."""
  import tensorflow as tf
  from albert.tasks.pretraining import masked_lm_frequency_baseline as frequency_baseline
  from albert.data.records import feature_spec, parse_spec
  most, mlm = frequency_baseline([data["records"]["train"]], [data["records"]["eval"]], seq,
                                 predictions)
  spec = parse_spec(feature_spec(seq, predictions))
  labels = [int(tf.io.parse_single_example(r, spec)["next_sentence_labels"][0])
            for r in tf.data.TFRecordDataset(data["records"]["eval"])]
  ones = sum(labels) / max(len(labels), 1)
  import sentencepiece as spm
  piece = spm.SentencePieceProcessor(model_file=data["spm_model"]).id_to_piece(most)
  return {"masked_lm_accuracy": mlm, "masked_lm_most_frequent_piece": piece,
          "sentence_order_accuracy": max(ones, 1 - ones)}


# -------------------------------------------------------------------------------- training
_TRAIN_LINE = re.compile(r"^step (\d+)/(\d+) \| (.*) \| lr ([0-9.e+-]+) \| grad_norm ([0-9.e+-]+|nan|inf)"
                         r" \| ([0-9.]+) examples/s")


def _parse_train_line(line: str) -> Optional[Dict]:
  m = _TRAIN_LINE.match(line.strip())
  if not m:
    return None
  record = {"step": int(m.group(1)), "learning_rate": float(m.group(4)),
            "gradient_norm": float(m.group(5)), "examples_per_s": float(m.group(6))}
  for part in m.group(3).split(" | "):
    key, _, value = part.rpartition(" ")
    if key:
      record[key] = float(value)
  return record


class _Recorder:
  """The Trainer's log callback: keeps the progress lines and the eval results, timed."""

  def __init__(self, start: float, echo: bool = True):
    self.start = start
    self.echo = echo
    self.train: List[Dict] = []
    self.evals: List[Dict] = []
    self._eval: Optional[Dict] = None

  def __call__(self, line: str) -> None:
    now = time.time() - self.start
    if self.echo:
      print(f"  {line}", file=sys.stderr, flush=True)
    parsed = _parse_train_line(line)
    if parsed:
      self.train.append({"kind": "train", "seconds": now, **parsed})
      return
    if line.startswith("***** Eval results"):
      self._eval = {"kind": "eval", "seconds": now}
      return
    if self._eval is not None:
      m = re.match(r"^\s+(\w+) = (\S+)$", line)
      if m:
        self._eval[m.group(1)] = float(m.group(2))
        if all(k in self._eval for k in ("global_step",) + EVAL_KEYS):
          self._eval["step"] = int(self._eval.pop("global_step"))
          self.evals.append(self._eval)
          print(json.dumps(self._eval), flush=True)
          self._eval = None


def make_trainer(args, data: Dict, output_dir: str, num_train_steps: int, eval_every: int,
                 log):
  from albert.config import AlbertConfig
  from albert.tasks.pretraining import PretrainingDataConfig
  from albert.tasks.pretraining import PretrainingTask, PretrainingTaskConfig
  from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig
  config = AlbertConfig.from_json_file(args.albert_config_file).replace(
      vocab_size=data["vocab_size"])
  pdata = lambda name: PretrainingDataConfig(  # noqa: E731
      input_file=data["records"][name], max_seq_length=args.max_seq_length,
      max_predictions_per_seq=args.max_predictions_per_seq, seed=args.seed)
  eval_batch = 64
  warmup = args.num_warmup_steps if args.num_warmup_steps is not None else max(
      1, min(num_train_steps // 10, 200))
  trainer = Trainer(
      PretrainingTask(PretrainingTaskConfig(config, pdata("train"), pdata("eval"))),
      TrainerConfig(output_dir=output_dir, train_batch_size=args.train_batch_size,
                    eval_batch_size=eval_batch, num_train_steps=num_train_steps,
                    save_checkpoints_steps=eval_every, iterations_per_loop=eval_every,
                    keep_checkpoint_max=2,
                    max_eval_steps=max(1, data["record_counts"]["eval"] // eval_batch),
                    enable_xla=args.enable_xla, seed=args.seed),
      OptimizerConfig(optimizer="lamb", learning_rate=args.learning_rate,
                      num_warmup_steps=warmup),
      log=log)
  return trainer, config, warmup


def calibrate(args, data: Dict) -> float:
  """Steps per second of the Trainer on this machine now (two loops; the first one traces)."""
  steps = args.calibration_steps
  directory = os.path.join(args.work_dir, "calibration")
  shutil.rmtree(directory, ignore_errors=True)
  recorder = _Recorder(time.time(), echo=False)
  trainer, _, _ = make_trainer(args, data, directory, 2 * steps, steps, recorder)
  trainer.run(do_train=True, do_eval=False)
  shutil.rmtree(directory, ignore_errors=True)
  rate = recorder.train[-1]["examples_per_s"] / args.train_batch_size
  return rate


# ------------------------------------------------------------------------------------ plot
def plot(result: Dict, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  evals, train = result["eval"], result["train"]
  base = result["baselines"]
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
  steps = [e["step"] for e in evals]
  tsteps = [t["step"] for t in train]
  panels = (
      ("masked_lm_accuracy", "MLM accuracy", base["masked_lm_accuracy"],
       f"frequency baseline {base['masked_lm_accuracy']:.3f} "
       f"(always {base['masked_lm_most_frequent_piece']!r})"),
      ("sentence_order_accuracy", "SOP accuracy", base["sentence_order_accuracy"],
       f"majority baseline {base['sentence_order_accuracy']:.3f}"),
  )
  for ax, (key, title, baseline, label) in zip(axes[:2], panels):
    ax.plot(tsteps, [t.get(key) for t in train], color="tab:gray", alpha=0.6, lw=1,
            label="training batches (mean over the loop)")
    ax.plot(steps, [e[key] for e in evals], "o-", color="tab:blue", ms=4,
            label="held-out evaluation")
    ax.axhline(baseline, color="tab:red", ls="--", lw=1, label=label)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
  ax = axes[2]
  ax.plot(steps, [e["masked_lm_loss"] for e in evals], "o-", ms=4, label="held-out MLM loss")
  ax.plot(steps, [e["sentence_order_loss"] for e in evals], "s-", ms=4,
          label="held-out SOP loss")
  ax.plot(tsteps, [t.get("loss") for t in train], color="tab:gray", alpha=0.6, lw=1,
          label="training total loss")
  ax.set_title("loss")
  ax.set_xlabel("step")
  ax.grid(alpha=0.3)
  ax.legend(loc="upper right", fontsize=8)
  s = result["settings"]
  fig.suptitle(
      f"ALBERT tiny (E {s['embedding_size']}, H {s['hidden_size']}, {s['num_hidden_layers']} "
      f"layers, V {s['vocab_size']}) on {', '.join(os.path.basename(f) for f in s['corpus'])}: "
      f"batch {s['train_batch_size']} x seq {s['max_seq_length']}, LAMB lr "
      f"{s['learning_rate']}, {s['num_train_steps']} steps in "
      f"{result['train_seconds'] / 60:.1f} min on {s['cpus']} CPU cores", fontsize=10)
  fig.tight_layout(rect=(0, 0, 1, 0.95))
  tmp = f"{path}.tmp-{os.getpid()}.png"
  fig.savefig(tmp, dpi=110)
  plt.close(fig)
  os.replace(tmp, path)


# ------------------------------------------------------------------------------------ main
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--corpus", default=DEFAULT_CORPUS, help="comma-separated text files")
  p.add_argument("--albert_config_file",
                 default=common.TINY_CONFIG_FILE)
  p.add_argument("--work_dir", default=None,
                 help="vocabulary, records, checkpoints (default output/benchmarks/"
                 "learning_curve; --quick: .../learning_curve_quick)")
  p.add_argument("--results_dir", default=None,
                 help="where the JSON and PNG go (default benchmarks/results; --quick: the "
                 "work dir)")
  p.add_argument("--spm_model", default=None,
                 help="an existing SentencePiece model (e.g. output/default/spm.model) instead "
                 "of training one on the corpus")
  p.add_argument("--vocab_size", type=int, default=None, help="default 4000 (--quick 1000)")
  p.add_argument("--max_seq_length", type=int, default=64)
  p.add_argument("--max_predictions_per_seq", type=int, default=10)
  p.add_argument("--dupe_factor", type=int, default=None, help="default 5 (--quick 1)")
  p.add_argument("--max_documents", type=int, default=None,
                 help="use only this many documents (half from the start, half from the end)")
  p.add_argument("--train_batch_size", type=int, default=64)
  p.add_argument("--learning_rate", type=float, default=0.01)
  p.add_argument("--num_warmup_steps", type=int, default=None,
                 help="default: 10%% of the steps, at most 200")
  p.add_argument("--budget_minutes", type=float, default=None,
                 help="training time to fill (default 10; --quick 0.25)")
  p.add_argument("--num_train_steps", type=int, default=None,
                 help="fixed number of steps (no calibration; overrides --budget_minutes)")
  p.add_argument("--calibration_steps", type=int, default=30)
  p.add_argument("--eval_every", type=int, default=None,
                 help="steps between evaluations (default: about 25 evaluations)")
  p.add_argument("--enable_xla", action="store_true")
  p.add_argument("--seed", type=int, default=12345)
  p.add_argument("--quick", "--smoke", action="store_true",
                 help="smoke run: 40 documents, vocab 1000, 30 steps (< 1 minute)")
  args = p.parse_args(argv)
  q = args.quick
  args.work_dir = args.work_dir or os.path.join(
      REPO_DIR, "output", "benchmarks", "learning_curve_quick" if q else "learning_curve")
  args.results_dir = args.results_dir or (args.work_dir if q else RESULTS_DIR)
  args.vocab_size = args.vocab_size or (1000 if q else 4000)
  args.dupe_factor = args.dupe_factor or (1 if q else 5)
  args.budget_minutes = args.budget_minutes if args.budget_minutes is not None else (
      0.25 if q else 10.0)
  if q:
    args.max_documents = args.max_documents or 40
    args.num_train_steps = args.num_train_steps or 30
    args.eval_every = args.eval_every or 10
  return args


def main(argv: Optional[Sequence[str]] = None) -> Dict:
  args = parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.path.insert(0, REPO_DIR)
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  t_start = time.time()
  load_start = os.getloadavg()

  data = prepare_data(args)
  t_data = time.time()
  base = baselines(data, args.max_seq_length, args.max_predictions_per_seq)
  _say(f"baselines: MLM {base['masked_lm_accuracy']:.4f} (always "
       f"{base['masked_lm_most_frequent_piece']!r}), SOP {base['sentence_order_accuracy']:.4f}")

  rate = None
  if args.num_train_steps:
    steps = args.num_train_steps
  else:
    rate = calibrate(args, data)
    steps = max(10, int(args.budget_minutes * 60 * rate))
    _say(f"calibration: {rate:.2f} steps/s -> {steps} steps for {args.budget_minutes} minutes")
  eval_every = args.eval_every or max(1, round(steps / 25))
  steps = max(eval_every, steps // eval_every * eval_every)  # end on an evaluation

  output_dir = os.path.join(args.work_dir, "model")
  shutil.rmtree(output_dir, ignore_errors=True)  # from scratch every time
  t_train = time.time()
  recorder = _Recorder(t_train)
  trainer, config, warmup = make_trainer(args, data, output_dir, steps, eval_every, recorder)
  final = trainer.run(do_train=True, do_eval=True)
  train_seconds = time.time() - t_train

  result = {
      "kind": "result",
      "settings": {
          "corpus": data["corpus_files"], "documents": data["documents"],
          "records": data["records"], "record_counts": data["record_counts"],
          "spm_model": data["spm_model"], "vocab_size": data["vocab_size"],
          "embedding_size": config.embedding_size, "hidden_size": config.hidden_size,
          "num_hidden_layers": config.num_hidden_layers,
          "albert_config_file": args.albert_config_file,
          "max_seq_length": args.max_seq_length,
          "max_predictions_per_seq": args.max_predictions_per_seq,
          "dupe_factor": args.dupe_factor, "train_batch_size": args.train_batch_size,
          "learning_rate": args.learning_rate, "num_warmup_steps": warmup,
          "num_train_steps": steps, "eval_every": eval_every,
          "budget_minutes": None if args.num_train_steps else args.budget_minutes,
          "calibrated_steps_per_s": rate, "enable_xla": args.enable_xla, "seed": args.seed,
          "cpus": os.cpu_count(), "quick": args.quick,
      },
      "baselines": base,
      "final": {k: final.get(k) for k in ("global_step",) + EVAL_KEYS},
      "best_masked_lm_accuracy": max((e["masked_lm_accuracy"] for e in recorder.evals),
                                     default=None),
      "train_seconds": train_seconds, "data_seconds": t_data - t_start,
      "total_seconds": time.time() - t_start,
      "load_avg_start": list(load_start), "load_avg_end": list(os.getloadavg()),
      "eval": recorder.evals, "train": recorder.train,
  }
  os.makedirs(args.results_dir, exist_ok=True)
  json_path = os.path.join(args.results_dir, "learning_curve.json")
  png_path = os.path.join(args.results_dir, "learning_curve.png")
  result["json"], result["png"] = json_path, png_path
  from albert import files  # pylint: disable=import-outside-toplevel
  files.write_text(json_path, json.dumps(result, indent=1) + "\n")
  plot(result, png_path)
  print(json.dumps({k: v for k, v in result.items() if k not in ("eval", "train")}), flush=True)
  _say(f"final held-out MLM accuracy {final.get('masked_lm_accuracy', float('nan')):.4f} "
       f"(baseline {base['masked_lm_accuracy']:.4f}), SOP accuracy "
       f"{final.get('sentence_order_accuracy', float('nan')):.4f} (baseline "
       f"{base['sentence_order_accuracy']:.4f}); {steps} steps in {train_seconds:.0f} s")
  _say(f"wrote {json_path} and {png_path}")
  return result


if __name__ == "__main__":
  main(sys.argv[1:])
