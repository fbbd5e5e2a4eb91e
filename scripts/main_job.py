"""The main job: pretraining and fine-tuning ALBERT on the embedded default data, in minutes.

`python scripts/main_job.py` (the README's first command, `scripts/run_default.sh`, runs it from
the repository root; the default paths are relative to it) does, with visible progress:
1. splits `data/default/corpus.txt` into training chapters and held-out chapters;
2. trains a SentencePiece vocabulary on the training chapters with the original recipe;
3. writes pretraining records with `create_pretraining_data` (train: several dupes; eval: one);
4. pretrains the small model of `configs/tiny` (vocabulary size set to the trained one) with
   LAMB through the same Trainer as `run_pretraining.py`, and evaluates it on the held-out
   records;
5. compares the final MLM accuracy with the frequency baseline (always predicting the masked
   token that is most frequent in the training records) and prints where everything is;
6. fine-tunes the pretrained model on the SST-2 slice of `data/default/SST-2` (8,000 training
   sentences) through the same task as `run_classifier.py`, scores it on the 872 dev sentences,
   and does the same fine-tuning from a random initialisation, for comparison;
7. exports the fine-tuned model (SavedModel with raw-text signatures) and classifies three
   sentences through the reloaded export; prints dev accuracy beside the majority baseline and
   the random start.

Every flag, the config and the corpus are checked before anything is written. Rerunning the
same command resumes: the split files are rewritten only if their text changed (so the records'
fingerprint, which includes the inputs' time stamps, stays the same), the vocabulary is reused
while the settings that made it are unchanged (`main_job.json` records them), the records are
reused by `create_pretraining_data` itself, and training resumes from its state. A rerun with
other data settings over a run that has already trained is refused: choose another
`--output_dir`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

# The repository root, so that `python scripts/main_job.py` finds `albert` without PYTHONPATH.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=wrong-import-position
from albert import files  # noqa: E402
from albert.errors import FlagError, TrainingError  # noqa: E402
# pylint: enable=wrong-import-position

JOB_RECORD = "main_job.json"
# The settings that make the vocabulary and the records (a change rebuilds them).
DATA_FLAGS = ("held_out_documents", "vocab_size", "max_seq_length", "max_predictions_per_seq",
              "dupe_factor", "seed")
VOCAB_FLAGS = ("held_out_documents", "vocab_size")


def _step(title: str) -> None:
  print(f"\n== {title}", flush=True)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      description=__doc__.splitlines()[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  add = parser.add_argument
  add("--corpus", default=os.path.join("data", "default", "corpus.txt"),
      help="UTF-8 text, one sentence per line, a blank line between documents")
  add("--albert_config_file", default=os.path.join("configs", "tiny", "albert_config.json"),
      help="the model; its vocab_size is replaced by the trained vocabulary's")
  add("--output_dir", default=os.path.join("output", "default"),
      help="where the split, vocabulary, records, checkpoints and results go; rerunning with "
           "the same directory resumes")
  add("--held_out_documents", type=int, default=4,
      help="the last N documents of --corpus are the evaluation set (at least 1, fewer than "
           "the documents of the corpus)")
  add("--vocab_size", type=int, default=4000,
      help="SentencePiece pieces to train (more than the 13 reserved pieces)")
  add("--max_seq_length", type=int, default=64,
      help="tokens per instance (at least 5, at most the config's max_position_embeddings)")
  add("--max_predictions_per_seq", type=int, default=10, help="masked tokens per instance")
  add("--dupe_factor", type=int, default=5,
      help="passes over the training documents, each with other masks")
  add("--train_batch_size", type=int, default=64, help="instances per training step")
  add("--num_train_steps", type=int, default=1000,
      help="LAMB steps (a rerun with more steps continues the run)")
  add("--learning_rate", type=float, default=0.01, help="peak learning rate (positive)")
  add("--num_warmup_steps", type=int, default=100, help="steps of linear warmup")
  add("--seed", type=int, default=12345, help="seed of the records, initialisation and dropout")
  add("--check_baseline", action=argparse.BooleanOptionalAction, default=True,
      help="fail unless the held-out MLM accuracy beats the frequency baseline")
  add("--finetune", action=argparse.BooleanOptionalAction, default=True,
      help="after pretraining, fine-tune on SST-2, export and classify raw sentences")
  add("--glue_dir", default=os.path.join("data", "default"),
      help="a GLUE root holding SST-2/train.tsv and SST-2/dev.tsv")
  add("--finetune_steps", type=int, default=600, help="AdamW steps of each SST-2 fine-tuning")
  add("--finetune_learning_rate", type=float, default=5e-4,
      help="peak learning rate of the SST-2 fine-tuning (positive)")
  add("--finetune_max_seq_length", type=int, default=64,
      help="SST-2 tokens per example (at most the config's max_position_embeddings)")
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  from albert.errors import run_cleanly  # pylint: disable=g-import-not-at-top
  return run_cleanly(lambda: _run(args), on_interrupt=lambda: (
      "interrupted; rerun the same command to resume (the vocabulary, records and checkpoints "
      "written so far are kept)"))


# --------------------------------------------------------------------------------- checks
def read_documents(corpus: str) -> List[str]:
  """The documents of `corpus` (blank-line separated); bytes that are not UTF-8 name the line."""
  from albert.data.pretraining import corpus as corpus_lib  # pylint: disable=g-import-not-at-top
  with open(corpus, "rb") as f:
    raw = f.read()
  lines = [corpus_lib.decode_line(line.rstrip(b"\r"), corpus, number)
           for number, line in enumerate(raw.split(b"\n"), start=1)]
  text = "\n".join(lines)
  return [d for d in text.strip("\n").split("\n\n") if d.strip()]


def check_settings(args) -> Tuple[object, List[str]]:
  """Every flag, the config, the corpus and the output directory; writes nothing.

  Returns the albert config and the corpus documents.
  """
  from albert.config import AlbertConfig  # pylint: disable=g-import-not-at-top
  if args.held_out_documents < 1:
    raise FlagError(f"--held_out_documents={args.held_out_documents}: must be at least 1 (the "
                    "last N documents of --corpus are the evaluation set)")
  for name, minimum, why in (("vocab_size", 14, "more than the 13 reserved pieces"),
                             ("max_seq_length", 5, "[CLS] A [SEP] B [SEP]"),
                             ("max_predictions_per_seq", 1, ""), ("dupe_factor", 1, "")):
    if getattr(args, name) < minimum:
      raise FlagError(f"--{name}={getattr(args, name)}: must be at least {minimum}"
                      + (f" ({why})" if why else ""))
  config = AlbertConfig.from_json_file(args.albert_config_file)
  config.check_sequence_length(args.max_seq_length, source=args.albert_config_file)
  trainer_config, optimizer_config = _training_configs(args, max_eval_steps=1)
  trainer_config.validate()
  optimizer_config.validate()
  documents = read_documents(args.corpus)
  if len(documents) <= args.held_out_documents:
    raise FlagError(f"--held_out_documents={args.held_out_documents}: {args.corpus} has only "
                    f"{len(documents)} documents; at least one must remain for training")
  if args.finetune:
    for name in ("finetune_steps", "finetune_learning_rate"):
      if not getattr(args, name) > 0:
        raise FlagError(f"--{name}={getattr(args, name)}: must be positive")
    if not 3 <= args.finetune_max_seq_length <= config.max_position_embeddings:
      raise FlagError(f"--finetune_max_seq_length={args.finetune_max_seq_length}: must be in "
                      f"[3, {config.max_position_embeddings}] (max_position_embeddings)")
    for split in ("train", "dev"):
      path = os.path.join(args.glue_dir, "SST-2", f"{split}.tsv")
      if not os.path.isfile(path):
        raise FlagError(f"--glue_dir={args.glue_dir}: {path} not found (the SST-2 slice of "
                        "the main job is data/default/SST-2)")
  files.check_output_dir(args.output_dir)
  return config, documents


def _training_configs(args, max_eval_steps: int):
  from albert.train.trainer import OptimizerConfig, TrainerConfig  # pylint: disable=g-import-not-at-top
  trainer_config = TrainerConfig(
      output_dir=os.path.join(args.output_dir, "model"), train_batch_size=args.train_batch_size,
      eval_batch_size=64, num_train_steps=args.num_train_steps, save_checkpoints_steps=500,
      iterations_per_loop=100, max_eval_steps=max_eval_steps, seed=args.seed,
      albert_config_file=os.path.join(args.output_dir, "albert_config.json"))
  optimizer_config = OptimizerConfig(optimizer="lamb", learning_rate=args.learning_rate,
                                     num_warmup_steps=args.num_warmup_steps)
  return trainer_config, optimizer_config


def job_record(args, documents: List[str]) -> Dict[str, object]:
  """The settings that make the vocabulary and records, with the corpus's digest."""
  digest = hashlib.sha256("\n\n".join(documents).encode("utf-8")).hexdigest()
  return {"corpus_sha256": digest, **{name: getattr(args, name) for name in DATA_FLAGS}}


def check_rerun(out: str, record: Dict[str, object]) -> bool:
  """Whether the vocabulary on disk can be reused; refuses other data under a trained run."""
  path = os.path.join(out, JOB_RECORD)
  if not os.path.exists(path):
    return True  # a first run, or one stopped before the record: same settings
  with open(path, encoding="utf-8") as f:
    previous = json.load(f)
  changed = [k for k in record if previous.get(k) != record[k]]
  model_dir = os.path.join(out, "model")
  if changed and os.path.isdir(model_dir) and os.listdir(model_dir):
    shown = ", ".join("--corpus (another text)" if k == "corpus_sha256"
                      else f"--{k} {previous.get(k)} then, {record[k]} now" for k in changed)
    raise FlagError(f"--output_dir={out} holds a run trained on other data ({shown}; see {path}); "
                    "choose another --output_dir, or remove it to start over")
  return not any(k in changed for k in ("corpus_sha256",) + VOCAB_FLAGS)


def write_if_changed(path: str, text: str) -> bool:
  """Writes `text` (atomically) unless the file holds it already; returns whether it wrote."""
  try:
    with open(path, encoding="utf-8") as f:
      if f.read() == text:
        return False
  except (OSError, UnicodeDecodeError):
    pass
  files.write_text(path, text)
  return True


def write_split(documents: List[str], directory: str, held_out: int) -> Tuple[str, str, bool]:
  """train.txt (all but the last `held_out` documents) and eval.txt; a file whose text is
  unchanged is not rewritten (its time stamp is part of the records' fingerprint).

  Returns the two paths and whether either was (re)written.
  """
  paths, written = [], False
  for name, part in (("train", documents[:-held_out]), ("eval", documents[-held_out:])):
    path = os.path.join(directory, f"{name}.txt")
    written |= write_if_changed(path, "\n\n".join(part) + "\n")
    paths.append(path)
  return paths[0], paths[1], written


# ---------------------------------------------------------------------------------- the job
def _run(args) -> None:
  from albert.cli import startup  # pylint: disable=g-import-not-at-top
  startup.start_tensorflow()
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  from albert.data.pretraining.job import CreateDataConfig, create_pretraining_data
  from albert.data.pretraining.vocab import VocabConfig, train_vocab
  from albert.tasks.pretraining import PretrainingDataConfig
  from albert.tasks.pretraining import (PretrainingTask, PretrainingTaskConfig,
                                        masked_lm_frequency_baseline)
  from albert.train.trainer import Trainer
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  start = time.time()
  out = args.output_dir
  albert_config, documents = check_settings(args)
  record = job_record(args, documents)
  reuse_vocabulary = check_rerun(out, record)
  say = lambda text: print("\n".join(f"  {line}" for line in text.splitlines()),  # noqa: E731
                           flush=True)

  _step(f"1. Corpus {args.corpus}: the last {args.held_out_documents} documents held out")
  train_text, eval_text, written = write_split(documents, os.path.join(out, "corpus"),
                                               args.held_out_documents)
  print(f"  {train_text}\n  {eval_text}" + ("" if written else "\n  (unchanged, kept: the "
                                                               "records stay valid)"))

  _step(f"2. SentencePiece vocabulary ({args.vocab_size} pieces, the original recipe)")
  spm_model = os.path.join(out, "spm") + ".model"
  if reuse_vocabulary and os.path.exists(spm_model):
    print(f"  reusing {spm_model}")
  else:
    train_vocab(VocabConfig(input_file=train_text, model_prefix=spm_model[:-len(".model")],
                            vocab_size=args.vocab_size, do_lower_case=True), log=say)
  write_if_changed(os.path.join(out, JOB_RECORD), json.dumps(record, indent=1) + "\n")

  _step("3. Pretraining records (create_pretraining_data)")
  records = {}
  for name, text, dupe in (("train", train_text, args.dupe_factor), ("eval", eval_text, 1)):
    records[name] = os.path.join(out, "records", f"{name}.tfrecord")
    create_pretraining_data(
        CreateDataConfig(input_file=text, output_file=records[name], spm_model_file=spm_model,
                         do_lower_case=True, max_seq_length=args.max_seq_length,
                         max_predictions_per_seq=args.max_predictions_per_seq,
                         dupe_factor=dupe, random_seed=args.seed + (name == "eval")),
        log=say)

  _step("4. Pretraining (MLM + SOP, LAMB)")
  sp = spm.SentencePieceProcessor(model_file=spm_model)
  albert_config = albert_config.replace(vocab_size=sp.get_piece_size())
  write_if_changed(os.path.join(out, "albert_config.json"), albert_config.to_json_string())
  data = lambda name: PretrainingDataConfig(  # noqa: E731
      input_file=records[name], max_seq_length=args.max_seq_length,
      max_predictions_per_seq=args.max_predictions_per_seq, seed=args.seed)
  eval_count = sum(1 for _ in tf.data.TFRecordDataset(records["eval"]))
  trainer_config, optimizer_config = _training_configs(args, max_eval_steps=1)
  trainer_config = dataclasses.replace(
      trainer_config, max_eval_steps=max(1, eval_count // trainer_config.eval_batch_size))
  trainer = Trainer(
      PretrainingTask(PretrainingTaskConfig(albert_config, data("train"), data("eval"))),
      trainer_config, optimizer_config, log=say)
  results = trainer.run(do_train=True, do_eval=True)

  _step("5. Result")
  most, baseline = masked_lm_frequency_baseline([records["train"]], [records["eval"]],
                                                args.max_seq_length,
                                                args.max_predictions_per_seq)
  accuracy = results.get("masked_lm_accuracy", float("nan"))
  print(f"  held-out masked_lm_accuracy {accuracy:.4f} vs frequency baseline {baseline:.4f} "
        f"(always {sp.id_to_piece(most)!r}); sentence_order_accuracy "
        f"{results.get('sentence_order_accuracy', float('nan')):.4f}")
  model_dir = trainer_config.output_dir
  print(f"  vocabulary:   {spm_model}")
  print(f"  records:      {records['train']}, {records['eval']}")
  print(f"  checkpoints:  {model_dir}/model.ckpt-* (original TF1 names), model.ckpt-best")
  print(f"  eval results: {os.path.join(model_dir, 'eval_results.txt')}")
  print(f"  summaries:    tensorboard --logdir {os.path.join(model_dir, 'summaries')}")
  if args.check_baseline and not accuracy > baseline:
    raise TrainingError(f"the held-out MLM accuracy {accuracy:.4f} is not above the frequency "
                        f"baseline {baseline:.4f} (--no-check_baseline skips this check)")
  if args.finetune:
    finetune(args, albert_config, spm_model, os.path.join(model_dir, "model.ckpt-best"), say)
  print(f"\nDone in {time.time() - start:.0f} s.")


# ------------------------------------------------------------------------------ fine-tuning
SENTENCES = ("a gripping, beautifully acted film that stays with you",
             "the plot is a tedious mess and the jokes fall flat",
             "it is not a bad movie, but i would not watch it again")


# The pooler is trained only by the sentence-order head, which this short pretraining leaves at
# chance: its weights carry no signal and, measured here, stall fine-tuning at the majority
# class (dev 0.509). It starts fresh instead (dev 0.73); every other variable is pretrained.
POOLER = ("bert/pooler/",)


def finetune(args, albert_config, spm_model: str, pretrained: str, say) -> None:
  """SST-2 from the pretrained model and from a random start; export; raw sentences."""
  from albert.export.serving import ClassifierServing, ExportSettings
  from albert.data.glue import reader as glue
  from albert.tasks.classifier import ClassifierTask, ClassifierTaskConfig
  from albert.tasks.finetune import finetune_run
  from albert.train.trainer import Trainer

  out, length, steps = args.output_dir, args.finetune_max_seq_length, args.finetune_steps
  accuracy, trainers = {}, {}
  for name, init in (("pretrained", pretrained), ("random", None)):
    _step(f"6{'ab'[name == 'random']}. Fine-tuning on SST-2 from "
          + (f"the pretrained model ({init})" if init else "a random initialisation"))
    run_dir = os.path.join(out, f"sst2_{name}")
    run = finetune_run(
        output_dir=run_dir, albert_config=albert_config, init_checkpoint=init,
        albert_config_file=os.path.join(out, "albert_config.json"), spm_model_file=spm_model,
        max_seq_length=length, cached_dir=os.path.join(out, "sst2_cache"), seed=args.seed,
        init_skip=POOLER, train_batch_size=32, eval_batch_size=64, num_train_steps=steps,
        save_checkpoints_steps=max(1, steps // 2), iterations_per_loop=100, optimizer="adamw",
        learning_rate=args.finetune_learning_rate, num_warmup_steps=steps // 10)
    task = ClassifierTask(ClassifierTaskConfig(finetune=run.finetune, task_name="sst-2",
                                               data_dir=args.glue_dir), log=say)
    trainer = Trainer(task, run.trainer, run.optimizer, log=say)
    trainer.run(do_train=True, do_eval=True)
    accuracy[name], trainers[name] = trainer.run_dir.best()["value"], trainer

  _step("7. Export (raw text in) and three sentences through the reloaded SavedModel")
  from albert import noise  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_text  # noqa: F401  pylint: disable=unused-import,g-import-not-at-top
  # A CPU note, not a problem; printed by the first int64 op of the process (the export's check
  # on a first run, the served call on a rerun, where the export is kept).
  with noise.stderr_without("oneDNN supports DT_INT64 only"):
    export = ClassifierServing.export_task(
        trainers["pretrained"].task, trainers["pretrained"].run_dir.best_prefix,
        ExportSettings(export_dir=os.path.join(out, "sst2_export")), log=say)
    served = tf.saved_model.load(export.path).signatures["raw_text"]
    got = served(sentence=tf.constant(SENTENCES))
  for sentence, label, probabilities in zip(SENTENCES, got["label"].numpy(),
                                            got["probabilities"].numpy()):
    name = {"1": "positive", "0": "negative"}[label.decode()]
    print(f"  {name} (P(positive) {probabilities[1]:.3f})  {sentence!r}")
  dev = glue.get_processor("sst-2").get_examples(args.glue_dir, "dev")
  majority = max(sum(e.label == "1" for e in dev), sum(e.label == "0" for e in dev)) / len(dev)
  print(f"\n  SST-2 dev accuracy ({len(dev)} sentences): {accuracy['pretrained']:.4f} from the "
        f"pretrained model, {accuracy['random']:.4f} from a random start, majority baseline "
        f"{majority:.4f}")
  print(f"  fine-tuned runs: {trainers['pretrained'].run_dir.path}, "
        f"{trainers['random'].run_dir.path}; export: {export.path}")


if __name__ == "__main__":
  sys.exit(main())
