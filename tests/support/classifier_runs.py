"""A Trainer of the GLUE classifier task (or a custom task on your own files) on a tiny model and
the test GLUE files."""

from __future__ import annotations

import os

from albert.config import AlbertConfig
from albert.tasks.classifier import ClassifierTask, ClassifierTaskConfig, CustomTaskConfig
from albert.tasks.finetune import FinetuneConfig, default_buckets
from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig
from conftest import TESTDATA

GLUE = os.path.join(TESTDATA, "glue")
SPM = os.path.join(TESTDATA, "albert_spm", "30k-clean.model")
TINY = AlbertConfig(vocab_size=30000, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


CUSTOM = os.path.join(TESTDATA, "custom")


def make_trainer(output_dir, task_name, data_dir=GLUE, lines=None, buckets=True,
                 albert_config=TINY, max_seq_length=64, init_checkpoint=None,
                 custom: CustomTaskConfig = None, **overrides):
  finetune = FinetuneConfig(
      albert_config=albert_config, output_dir=str(output_dir), spm_model_file=SPM,
      max_seq_length=max_seq_length, num_workers=1, seed=3,
      bucket_boundaries=default_buckets(max_seq_length) if buckets else None)
  log = (lambda line: lines.append(line)) if lines is not None else (lambda line: None)
  task = ClassifierTask(ClassifierTaskConfig(finetune=finetune, task_name=task_name,
                                             data_dir=str(data_dir), custom=custom), log=log)
  settings = dict(output_dir=str(output_dir), train_batch_size=8, eval_batch_size=8,
                  num_train_steps=30, save_checkpoints_steps=15, iterations_per_loop=15,
                  max_eval_steps=None, init_checkpoint=init_checkpoint, seed=3)
  settings.update(overrides)
  return Trainer(task, TrainerConfig(**settings),
                 OptimizerConfig(optimizer="adamw", learning_rate=3e-3, num_warmup_steps=3),
                 log=log)
