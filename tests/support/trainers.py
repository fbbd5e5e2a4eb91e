"""A Trainer of the pretraining task on a small model, for the training tests."""

from __future__ import annotations

from albert.config import AlbertConfig
from albert.tasks.pretraining import PretrainingDataConfig, PretrainingTask, PretrainingTaskConfig
from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig

SMALL = AlbertConfig(vocab_size=1000, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=37, max_position_embeddings=64,
                     hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def make_trainer(output_dir, files, albert_config=SMALL, lines=None, task_class=PretrainingTask,
                 strategy=None, **overrides):
  data = PretrainingDataConfig(input_file=",".join(files), max_seq_length=16,
                               max_predictions_per_seq=3, seed=3)
  task = task_class(PretrainingTaskConfig(albert_config=albert_config, train_data=data,
                                          eval_data=data))
  settings = dict(output_dir=str(output_dir), train_batch_size=4, eval_batch_size=4,
                  num_train_steps=6, save_checkpoints_steps=3, keep_checkpoint_max=5,
                  iterations_per_loop=2, max_eval_steps=2, seed=7)
  settings.update(overrides)
  log = (lambda line: lines.append(line)) if lines is not None else (lambda line: None)
  return Trainer(task, TrainerConfig(**settings),
                 OptimizerConfig(learning_rate=0.01, num_warmup_steps=2), strategy=strategy,
                 log=log)


def checkpoint_weights(prefix):
  """name -> numpy array of every variable of a TF1 checkpoint."""
  from albert import checkpoint  # pylint: disable=import-outside-toplevel
  return checkpoint.read_checkpoint(str(prefix))[1]


def assert_same_weights(a, b):
  """Two checkpoints' weights (`checkpoint_weights`) equal bit for bit, name by name."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  assert a.keys() == b.keys()
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
