"""Pretrains ALBERT (MLM + SOP) with LAMB or AdamW: the original's run_pretraining.py, in TF2.

Flags keep the original's names, defaults and meanings; TF2 additions choose the distribution
strategy, mixed precision, XLA and the seed. This file only turns flags into typed configs and
calls `albert.train.trainer.Trainer`.
"""

import dataclasses

from absl import app, flags

from albert.cli import flags as albert_flags

albert_flags.define_model_flags()
albert_flags.define_loop_flags(save_checkpoints_steps=5000)
albert_flags.define_distribution_flags()
albert_flags.define_tf2_flags()
flags.DEFINE_string("input_file", None,
                    "Input TF example files (can be a glob or comma separated).")
flags.DEFINE_integer("max_seq_length", 512,
                     "The maximum total input sequence length after WordPiece tokenization. "
                     "Sequences longer than this will be truncated, and sequences shorter than "
                     "this will be padded. Must match data generation.")
flags.DEFINE_integer("max_predictions_per_seq", 20,
                     "Maximum number of masked LM predictions per sequence. Must match data "
                     "generation.")
flags.DEFINE_bool("do_train", False, "Whether to run training.")
flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")
flags.DEFINE_integer("train_batch_size", 4096, "Total batch size for training.")
flags.DEFINE_integer("eval_batch_size", 64, "Total batch size for eval.")
flags.DEFINE_enum("optimizer", "lamb", ["adamw", "lamb"], "The optimizer for training.")
flags.DEFINE_float("learning_rate", 0.00176, "The initial learning rate.")
flags.DEFINE_float("poly_power", 1.0, "The power of poly decay.")
flags.DEFINE_integer("num_train_steps", 125000, "Number of training steps.")
flags.DEFINE_integer("num_warmup_steps", 3125, "Number of warmup steps.")
flags.DEFINE_integer("start_warmup_step", 0, "The starting step of warmup.")
flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.")
flags.DEFINE_bool("init_from_group0", False,
                  "Whether to initialize parameters of other groups from group 0")
flags.DEFINE_float("masked_lm_budget", 0,
                   "If >0, the ratio of masked ngrams to unmasked ngrams. Default 0,"
                   "for offline masking")

FLAGS = flags.FLAGS


def main(argv):
  del argv
  from albert.cli import startup
  return startup.run_script(_main)


def _main():
  from albert.config import AlbertConfig
  from albert.errors import FlagError
  from albert.tasks.pretraining import (PretrainingDataConfig, PretrainingTask,
                                        PretrainingTaskConfig)
  from albert.train.distribute import make_strategy
  from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig

  if not FLAGS.do_train and not FLAGS.do_eval:
    raise FlagError("nothing to do: give --do_train, --do_eval or both")
  from albert import checkpoint
  for name in ("input_file", "output_dir"):
    if not FLAGS[name].value:
      raise FlagError(f"--{name} is required")
  hf_folder = checkpoint.hf_settings(FLAGS.init_checkpoint)
  if not FLAGS.albert_config_file and hf_folder is None:
    raise FlagError("--albert_config_file is required (or a Hugging Face folder as "
                    "--init_checkpoint, whose config.json is used)")
  if FLAGS.masked_lm_budget > 0:
    raise FlagError(
        "--masked_lm_budget > 0 (dynamic masking during training) is not supported: the "
        "original crashes with it too. Mask offline with create_pretraining_data.py and keep "
        "--masked_lm_budget=0.")

  albert_config = checkpoint.config_for_checkpoint(
      AlbertConfig.from_json_file(FLAGS.albert_config_file) if FLAGS.albert_config_file
      else None, FLAGS.init_checkpoint)
  data = lambda: PretrainingDataConfig(  # noqa: E731
      input_file=FLAGS.input_file, max_seq_length=FLAGS.max_seq_length,
      max_predictions_per_seq=FLAGS.max_predictions_per_seq, seed=FLAGS.seed)
  task = PretrainingTask(PretrainingTaskConfig(
      albert_config=albert_config, train_data=data() if FLAGS.do_train else None,
      eval_data=data() if FLAGS.do_eval else None))
  model = albert_flags.model_from_flags()
  trainer_config = TrainerConfig(
      output_dir=model.output_dir, train_batch_size=FLAGS.train_batch_size,
      eval_batch_size=FLAGS.eval_batch_size, num_train_steps=FLAGS.num_train_steps,
      max_eval_steps=FLAGS.max_eval_steps, init_checkpoint=model.init_checkpoint,
      init_from_group0=FLAGS.init_from_group0, albert_config_file=model.albert_config_file,
      **dataclasses.asdict(albert_flags.loop_from_flags()),
      **dataclasses.asdict(albert_flags.tf2_from_flags()))
  optimizer_config = OptimizerConfig(
      optimizer=FLAGS.optimizer, learning_rate=FLAGS.learning_rate,
      num_warmup_steps=FLAGS.num_warmup_steps, start_warmup_step=FLAGS.start_warmup_step,
      poly_power=FLAGS.poly_power)
  strategy = make_strategy(albert_flags.distribution_from_flags())
  Trainer(task, trainer_config, optimizer_config, strategy=strategy).run(
      do_train=FLAGS.do_train, do_eval=FLAGS.do_eval)
  print(f"Checkpoints (original TF1 names): {FLAGS.output_dir}/model.ckpt-*; "
        f"resume state: {FLAGS.output_dir}/train_state; "
        + (f"eval results: {FLAGS.output_dir}/eval_results.txt" if FLAGS.do_eval else ""))


if __name__ == "__main__":
  app.run(main)
