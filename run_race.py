"""Fine-tunes ALBERT on RACE (multiple-choice reading comprehension): the original's run_race.py.

Flags keep the original's names, defaults and meanings (do_train and do_eval default to True:
a run given --do_eval or --do_predict but not --do_train says first that it trains;
the optimizer is AdamW; `--train_file` / `--eval_file` / `--predict_file` name the feature
caches, built when absent); `--data_dir` holds `RACE/{train,dev,test}/{middle,high}/` in the
official layout (one `N.txt` per passage) or the original's `all.txt`. TF2 additions as in
run_pretraining.py, plus `--cached_dir`, `--length_buckets`, `--truncation`, `--prepare_only`
(the feature caches alone: no model config needed). This file only turns flags into typed
configs and calls `albert.train.trainer.Trainer`.
"""

from absl import app, flags

from albert.cli import flags as albert_flags

albert_flags.define_model_flags()
albert_flags.define_tokenizer_flags()
albert_flags.define_loop_flags(save_checkpoints_steps=100)
albert_flags.define_distribution_flags()
albert_flags.define_tf2_flags()
albert_flags.define_finetune_flags()
albert_flags.define_serving_export_flags(tflite=False)
flags.DEFINE_string("data_dir", None, "The input data dir. Should contain the RACE folder "
                    "(RACE/train, RACE/dev, RACE/test).")
flags.DEFINE_string("task_name", "race", "The name of the task to train.")
flags.DEFINE_string("train_file", None, "Where the training features (TFRecords) are cached.")
flags.DEFINE_string("eval_file", None, "Where the eval features (TFRecords) are cached.")
flags.DEFINE_string("predict_file", None, "Where the predict features (TFRecords) are cached.")
flags.DEFINE_float("dropout_prob", 0.1, "dropout probability.")
flags.DEFINE_integer("max_seq_length", 512,
                     "The maximum total input sequence length after WordPiece tokenization. "
                     "Sequences longer than this will be truncated, and sequences shorter than "
                     "this will be padded.")
flags.DEFINE_integer("max_qa_length", 128, "The maximum total input sequence length after "
                     "WordPiece tokenization.")
flags.DEFINE_integer("num_keep_checkpoint", 5, "maximum number of keep checkpoints")
flags.DEFINE_bool("high_only", False, "Whether to only run the model on the high school set.")
flags.DEFINE_bool("middle_only", False, "Whether to only run the model on the middle school set.")
flags.DEFINE_bool("do_train", True, "Whether to run training.")
flags.DEFINE_bool("do_eval", True, "Whether to run eval on the dev set.")
flags.DEFINE_bool("do_predict", False, "Whether to run prediction on the test set.")
flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")
flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predict.")
flags.DEFINE_float("learning_rate", 1e-5, "The initial learning rate for Adam.")
flags.DEFINE_integer("train_step", 12000, "Total number of training steps to perform.")
flags.DEFINE_integer("warmup_step", 1000, "number of steps to perform linear learning rate "
                     "warmup for.")
flags.DEFINE_enum("truncation", "original", ["original", "keep_option"],
                  "How question + option is cut to --max_qa_length: `original` keeps its last "
                  "tokens (as the original; can cut the option away), `keep_option` cuts the "
                  "question first.")

flags.DEFINE_bool("prepare_only", False, "Build the feature caches of the splits the --do_* "
                  "flags name and stop: data preparation as its own batch job (needs the "
                  "tokenizer and data flags, no model).")
flags.DEFINE_string("export_dir", None, "If set, a SavedModel of the fine-tuned model (the "
                    "best checkpoint, else the latest) with named token-id signatures is written "
                    "to <export_dir>/<global step>/.")

FLAGS = flags.FLAGS


def main(argv):
  del argv
  from albert.cli import startup
  return startup.run_script(_main)


def _main():
  from albert.data.race import levels_from_flags
  from albert.errors import FlagError
  from albert.tasks.race import RaceTask, RaceTaskConfig
  from albert.train.distribute import make_strategy
  from albert.train.trainer import Trainer

  if FLAGS.do_train and not FLAGS["do_train"].present and (
      FLAGS["do_eval"].present or FLAGS["do_predict"].present):
    print("note: run_race.py trains by default (--do_train=true, as the original); pass "
          "--nodo_train to only evaluate or predict", flush=True)
  if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict or FLAGS.export_dir
          or FLAGS.prepare_only):
    raise FlagError("nothing to do: give --do_train, --do_eval, --do_predict, --export_dir or "
                    "--prepare_only")
  for name in ("data_dir", "output_dir"):
    if not FLAGS[name].value:
      raise FlagError(f"--{name} is required")
  run = albert_flags.finetune_run_from_flags(
      max_seq_length=FLAGS.max_seq_length, features_only=FLAGS.prepare_only,
      train_batch_size=FLAGS.train_batch_size, eval_batch_size=FLAGS.eval_batch_size,
      predict_batch_size=FLAGS.predict_batch_size, num_train_steps=FLAGS.train_step,
      steps_flag="train_step", num_warmup_steps=FLAGS.warmup_step, optimizer="adamw",
      learning_rate=FLAGS.learning_rate, keep_checkpoint_max=FLAGS.num_keep_checkpoint)
  task = RaceTask(RaceTaskConfig(
      finetune=run.finetune, data_dir=FLAGS.data_dir,
      max_qa_length=FLAGS.max_qa_length, dropout_prob=FLAGS.dropout_prob,
      levels=levels_from_flags(FLAGS.high_only, FLAGS.middle_only),
      truncation=FLAGS.truncation,
      cache_files={split: path for split, path in (("train", FLAGS.train_file),
                                                   ("eval", FLAGS.eval_file),
                                                   ("predict", FLAGS.predict_file)) if path}))
  if FLAGS.prepare_only:
    task.prepare_only(albert_flags.prepare_only_splits(FLAGS.do_train, FLAGS.do_eval,
                                                        FLAGS.do_predict))
    return
  artifacts = albert_flags.serving_export_from_flags()
  from albert.export.onnx import check_artifact_flags, export_artifacts
  check_artifact_flags(FLAGS.export_dir, artifacts.export_onnx)
  if FLAGS.export_dir:  # before the training: a base path that serves another model is refused
    from albert.export.serving import ExportSettings, RaceServing
    RaceServing.check_export_dir(task, ExportSettings(FLAGS.export_dir))
  strategy = make_strategy(albert_flags.distribution_from_flags())
  trainer = Trainer(task, run.trainer, run.optimizer, strategy=strategy)
  results = {}
  if FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict:
    results = trainer.run(do_train=FLAGS.do_train, do_eval=FLAGS.do_eval,
                          do_predict=FLAGS.do_predict)
  if results:
    shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(results.items()) if "accuracy" in k)
    print(f"RACE: {shown}; results in {FLAGS.output_dir}/eval_results.txt")
  if FLAGS.export_dir:
    from albert.export.versioned import checkpoint_to_export
    result = RaceServing.export_task(task, checkpoint_to_export(
        FLAGS.output_dir, run.trainer.init_checkpoint), ExportSettings(FLAGS.export_dir))
    export_artifacts(result.path, artifacts.export_onnx)


if __name__ == "__main__":
  app.run(main)
