"""The main job: the whole pretraining pipeline on the embedded default corpus, in a few minutes.

`python scripts/main_job.py` (the README's first command, `scripts/run_default.sh`, runs it from
the repository root; the default paths are relative to it) does, with visible progress:
1. splits `data/default/corpus.txt` into training chapters and held-out chapters;
2. trains a SentencePiece vocabulary on the training chapters with the original recipe;
3. writes pretraining records with `create_pretraining_data` (train: several dupes; eval: one);
4. pretrains the small model of `configs/tiny` (vocabulary size set to the trained one) with
   LAMB through the same Trainer as `run_pretraining.py`, and evaluates it on the held-out
   records;
5. compares the final MLM accuracy with the frequency baseline (always predicting the masked
   token that is most frequent in the training records) and prints where everything is.

Rerunning resumes: the vocabulary, the records and the training state are reused.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional, Tuple

from albert import files

def _step(title: str) -> None:
  print(f"\n== {title}", flush=True)


def split_corpus(corpus: str, directory: str, held_out: int) -> Tuple[str, str]:
  """Writes the first documents to train.txt and the last `held_out` to eval.txt."""
  with open(corpus, encoding="utf-8") as f:
    documents = [d for d in f.read().strip("\n").split("\n\n") if d.strip()]
  if len(documents) <= held_out:
    raise ValueError(f"{corpus}: {len(documents)} documents; need more than {held_out}")
  os.makedirs(directory, exist_ok=True)
  paths = []
  for name, part in (("train", documents[:-held_out]), ("eval", documents[-held_out:])):
    path = os.path.join(directory, f"{name}.txt")
    files.write_text(path, "\n\n".join(part) + "\n")
    paths.append(path)
  return paths[0], paths[1]


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--corpus", default=os.path.join("data", "default", "corpus.txt"))
  parser.add_argument("--albert_config_file",
                      default=os.path.join("configs", "tiny", "albert_config.json"))
  parser.add_argument("--output_dir", default=os.path.join("output", "default"))
  parser.add_argument("--held_out_documents", type=int, default=4)
  parser.add_argument("--vocab_size", type=int, default=4000)
  parser.add_argument("--max_seq_length", type=int, default=64)
  parser.add_argument("--max_predictions_per_seq", type=int, default=10)
  parser.add_argument("--dupe_factor", type=int, default=5)
  parser.add_argument("--train_batch_size", type=int, default=64)
  parser.add_argument("--num_train_steps", type=int, default=1000)
  parser.add_argument("--learning_rate", type=float, default=0.01)
  parser.add_argument("--num_warmup_steps", type=int, default=100)
  parser.add_argument("--seed", type=int, default=12345)
  parser.add_argument("--check_baseline", action=argparse.BooleanOptionalAction, default=True,
                      help="fail unless the held-out MLM accuracy beats the frequency baseline")
  args = parser.parse_args(argv)

  from albert.errors import run_cleanly
  return run_cleanly(lambda: _run(args))


def _run(args) -> None:
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  from albert.config import AlbertConfig
  from albert.data.pretraining import CreateDataConfig, create_pretraining_data
  from albert.data.vocab import VocabConfig, train_vocab
  from albert.tasks.pretraining import PretrainingDataConfig
  from albert.tasks.pretraining import (PretrainingTask, PretrainingTaskConfig,
                                        masked_lm_frequency_baseline)
  from albert.training import OptimizerConfig, Trainer, TrainerConfig

  start = time.time()
  out = args.output_dir
  os.makedirs(out, exist_ok=True)

  _step(f"1. Corpus {args.corpus}: the last {args.held_out_documents} documents held out")
  train_text, eval_text = split_corpus(args.corpus, os.path.join(out, "corpus"),
                                       args.held_out_documents)
  print(f"  {train_text}\n  {eval_text}")

  _step(f"2. SentencePiece vocabulary ({args.vocab_size} pieces, the original recipe)")
  spm_prefix = os.path.join(out, "spm")
  if os.path.exists(spm_prefix + ".model"):
    print(f"  reusing {spm_prefix}.model")
  else:
    train_vocab(VocabConfig(input_file=train_text, model_prefix=spm_prefix,
                            vocab_size=args.vocab_size, do_lower_case=True),
                log=lambda line: print(f"  {line}", flush=True))

  _step("3. Pretraining records (create_pretraining_data)")
  records = {}
  for name, text, dupe in (("train", train_text, args.dupe_factor), ("eval", eval_text, 1)):
    records[name] = os.path.join(out, "records", f"{name}.tfrecord")
    create_pretraining_data(
        CreateDataConfig(input_file=text, output_file=records[name],
                         spm_model_file=spm_prefix + ".model", do_lower_case=True,
                         max_seq_length=args.max_seq_length,
                         max_predictions_per_seq=args.max_predictions_per_seq,
                         dupe_factor=dupe, random_seed=args.seed + (name == "eval")),
        log=lambda line: print(f"  {line}", flush=True))

  _step("4. Pretraining (MLM + SOP, LAMB)")
  albert_config = AlbertConfig.from_json_file(args.albert_config_file)
  import sentencepiece as spm
  vocab_size = spm.SentencePieceProcessor(model_file=spm_prefix + ".model").get_piece_size()
  albert_config = albert_config.replace(vocab_size=vocab_size)
  albert_config.to_json_file(os.path.join(out, "albert_config.json"))
  data = lambda name: PretrainingDataConfig(  # noqa: E731
      input_file=records[name], max_seq_length=args.max_seq_length,
      max_predictions_per_seq=args.max_predictions_per_seq, seed=args.seed)
  eval_count = sum(1 for _ in __import__("tensorflow").data.TFRecordDataset(records["eval"]))
  eval_batch = 64
  trainer = Trainer(
      PretrainingTask(PretrainingTaskConfig(albert_config, data("train"), data("eval"))),
      TrainerConfig(output_dir=os.path.join(out, "model"),
                    train_batch_size=args.train_batch_size, eval_batch_size=eval_batch,
                    num_train_steps=args.num_train_steps, save_checkpoints_steps=500,
                    iterations_per_loop=100, max_eval_steps=max(1, eval_count // eval_batch),
                    seed=args.seed),
      OptimizerConfig(optimizer="lamb", learning_rate=args.learning_rate,
                      num_warmup_steps=args.num_warmup_steps),
      log=lambda line: print(f"  {line}", flush=True))
  results = trainer.run(do_train=True, do_eval=True)

  _step("5. Result")
  most, baseline = masked_lm_frequency_baseline([records["train"]], [records["eval"]],
                                      args.max_seq_length, args.max_predictions_per_seq)
  piece = spm.SentencePieceProcessor(model_file=spm_prefix + ".model").id_to_piece(most)
  accuracy = results.get("masked_lm_accuracy", float("nan"))
  print(f"  held-out masked_lm_accuracy {accuracy:.4f} vs frequency baseline {baseline:.4f} "
        f"(always {piece!r}); sentence_order_accuracy "
        f"{results.get('sentence_order_accuracy', float('nan')):.4f}")
  print(f"  vocabulary:   {spm_prefix}.model")
  print(f"  records:      {records['train']}, {records['eval']}")
  print(f"  checkpoints:  {os.path.join(out, 'model')}/model.ckpt-* (original TF1 names), "
        f"model.ckpt-best")
  print(f"  eval results: {os.path.join(out, 'model', 'eval_results.txt')}")
  print(f"  summaries:    tensorboard --logdir {os.path.join(out, 'model', 'summaries')}")
  print(f"\nDone in {time.time() - start:.0f} s.")
  if args.check_baseline and not accuracy > baseline:
    raise RuntimeError(f"MLM accuracy {accuracy:.4f} is not above the frequency baseline "
                       f"{baseline:.4f}")


if __name__ == "__main__":
  sys.exit(main())
