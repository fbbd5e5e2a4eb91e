"""Fine-tunes ALBERT on a GLUE task: the original's run_classifier.py, in TF2.

Flags keep the original's names, defaults and meanings; `--data_dir` is the GLUE root with the
official task folders (`SST-2/train.tsv`, `MNLI/dev_matched.tsv`, ...), as `run_glue.sh` passes
it. `--do_eval` without `--do_train` scores the checkpoints in `--output_dir` (or
`--init_checkpoint` when there are none); `--do_predict` alone uses `model.ckpt-best` of
`--output_dir` (or `--init_checkpoint`). TF2 additions as in run_pretraining.py, plus
`--cached_dir` (now fingerprinted), `--length_buckets`, `--num_workers`, `--prepare_only` (the
feature caches alone: no model config needed). This file only turns flags into typed configs
and calls `albert.train.trainer.Trainer` (and the export).

`--task_name=custom` fine-tunes on your own files instead of a GLUE task (`--train_file`,
`--dev_file`, `--test_file`: CSV, TSV or JSON Lines; `--task_type`, `--labels`, the column
flags; docs/run_classifier.md); `--data_dir` is then not needed. A run without --do_train in an
existing --output_dir reads its labels.txt and albert_config.json.
"""

import os


from absl import app, flags

from albert.cli import flags as albert_flags

albert_flags.define_model_flags()
albert_flags.define_tokenizer_flags()
albert_flags.define_loop_flags(save_checkpoints_steps=1000)
albert_flags.define_distribution_flags()
albert_flags.define_tf2_flags()
albert_flags.define_finetune_flags()
albert_flags.define_custom_task_flags()
albert_flags.define_serving_export_flags(tflite=True)
flags.DEFINE_string("data_dir", None, "The input data dir. Should contain the .tsv files (or "
                    "other data files) for the task.")
flags.DEFINE_string("task_name", None, "The name of the task to train (a GLUE task, or "
                    "custom: your own --train_file, --dev_file, --test_file).")
flags.DEFINE_string("export_dir", None, "The directory where the exported SavedModel will be "
                    "stored.")
flags.DEFINE_float("threshold_to_export", float("nan"),
                   "The threshold value that should be used with the exported classifier. When "
                   "specified, the threshold will be attached to the exported SavedModel, and "
                   "served along with the predictions. Please use the saved model cli to get the "
                   "name of the threshold.")
flags.DEFINE_integer("max_seq_length", 512,
                     "The maximum total input sequence length after WordPiece tokenization. "
                     "Sequences longer than this will be truncated, and sequences shorter than "
                     "this will be padded.")
flags.DEFINE_bool("do_train", False, "Whether to run training.")
flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")
flags.DEFINE_bool("do_predict", False, "Whether to run the model in inference mode on the test "
                  "set.")
flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")
flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predict.")
flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")
flags.DEFINE_integer("train_step", 1000, "Total number of training steps to perform.")
flags.DEFINE_integer("warmup_step", 0, "number of steps to perform linear learning rate warmup "
                     "for.")
flags.DEFINE_string("optimizer", "adamw", "Optimizer to use")
flags.DEFINE_bool("prepare_only", False, "Build the feature caches of the splits the --do_* "
                  "flags name (default: train and eval) and stop: data preparation as its own "
                  "batch job (needs the tokenizer and data flags, no model).")

FLAGS = flags.FLAGS


def main(argv):
  del argv
  from albert.cli import startup
  return startup.run_script(_main)


def _main():
  from albert.errors import FlagError
  from albert.tasks.classifier import ClassifierTask, ClassifierTaskConfig
  from albert.train.distribute import make_strategy
  from albert.train.trainer import Trainer

  custom = (FLAGS.task_name or "").strip().lower() == "custom"
  for name in ("task_name", "output_dir") + (() if custom else ("data_dir",)):
    if not FLAGS[name].value:
      raise FlagError(f"--{name} is required")
  if not custom:
    given = [f"--{name}" for name in ("train_file", "dev_file", "test_file") if FLAGS[name].value]
    if given:
      raise FlagError(f"{', '.join(given)}: your own files need --task_name=custom (GLUE tasks "
                      "read --data_dir)")
  config_file = FLAGS.albert_config_file
  stored_config = os.path.join(FLAGS.output_dir, "albert_config.json")
  if not (config_file or FLAGS.albert_hub_module_handle or FLAGS.do_train) and os.path.isfile(
      stored_config):
    config_file = stored_config  # scoring or exporting a run: the config it trained
  if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict or FLAGS.export_dir
          or FLAGS.prepare_only):
    raise FlagError("nothing to do: give --do_train, --do_eval, --do_predict, --export_dir "
                    "or --prepare_only")
  run = albert_flags.finetune_run_from_flags(
      max_seq_length=FLAGS.max_seq_length, features_only=FLAGS.prepare_only,
      train_batch_size=FLAGS.train_batch_size, eval_batch_size=FLAGS.eval_batch_size,
      albert_config_file=config_file,
      predict_batch_size=FLAGS.predict_batch_size, num_train_steps=FLAGS.train_step,
      steps_flag="train_step", num_warmup_steps=FLAGS.warmup_step, optimizer=FLAGS.optimizer,
      learning_rate=FLAGS.learning_rate)
  task = ClassifierTask(ClassifierTaskConfig(
      finetune=run.finetune, task_name=FLAGS.task_name, data_dir=FLAGS.data_dir,
      custom=albert_flags.custom_task_from_flags() if custom else None))
  if FLAGS.prepare_only:
    task.prepare_only(albert_flags.prepare_only_splits(FLAGS.do_train, FLAGS.do_eval,
                                                        FLAGS.do_predict))
    return
  export_settings = None
  artifacts = albert_flags.serving_export_from_flags()
  from albert.export.onnx import check_artifact_flags, export_artifacts
  check_artifact_flags(FLAGS.export_dir, artifacts.export_onnx, artifacts.export_tflite)
  if FLAGS.export_dir:
    from albert.export.serving import ClassifierServing, ExportSettings
    export_settings = ExportSettings(export_dir=FLAGS.export_dir,
                                     threshold=FLAGS.threshold_to_export)
    ClassifierServing.check_export_dir(task, export_settings)  # before hours of training
  strategy = make_strategy(albert_flags.distribution_from_flags())
  trainer = Trainer(task, run.trainer, run.optimizer, strategy=strategy)
  if FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict:
    results = trainer.run(do_train=FLAGS.do_train, do_eval=FLAGS.do_eval,
                          do_predict=FLAGS.do_predict)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(results.items()) if k != "global_step")
    if shown:
      print(f"{task.task_name}: {shown}")
  if export_settings:  # logs "Exported <export_dir>/<version> ..."
    from albert.export.versioned import checkpoint_to_export
    result = ClassifierServing.export_task(task, checkpoint_to_export(
        FLAGS.output_dir, run.trainer.init_checkpoint), export_settings)
    export_artifacts(result.path, artifacts.export_onnx, artifacts.export_tflite)


if __name__ == "__main__":
  app.run(main)
