"""run_pretraining.py as a subprocess: its command line on tiny records and its environment."""

from __future__ import annotations

import os
import sys

from albert.config import AlbertConfig
from conftest import REPO_DIR
from support.records import write_records

SCRIPT = os.path.join(REPO_DIR, "run_pretraining.py")

def small_config(path, dropout):
  AlbertConfig(vocab_size=1000, embedding_size=16, hidden_size=32, num_hidden_layers=2,
               num_attention_heads=4, intermediate_size=37, max_position_embeddings=64,
               hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout
               ).to_json_file(path)
  return path


def command(tmp_path, output_dir, *extra, dropout=0.1, steps=8):
  config = small_config(str(tmp_path / f"albert_config_{dropout}.json"), dropout)
  records = tmp_path / "train.tfrecord"
  if not records.exists():
    write_records(str(records), 64, seed=1)
  return [sys.executable, SCRIPT, f"--albert_config_file={config}", f"--input_file={records}",
          f"--output_dir={output_dir}", "--do_train", "--max_seq_length=16",
          "--max_predictions_per_seq=3", "--train_batch_size=4", f"--num_train_steps={steps}",
          "--num_warmup_steps=2", "--learning_rate=0.01", "--save_checkpoints_steps=2",
          "--iterations_per_loop=1", "--seed=5", *extra]


def environment():
  env = dict(os.environ)
  env["PYTHONPATH"] = REPO_DIR + os.pathsep + env.get("PYTHONPATH", "")
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  env.pop("TF_CONFIG", None)
  return env
