"""Fine-tunes ALBERT on SQuAD v1.1 or v2.0: the original's run_squad_v1.py and run_squad_v2.py.

One script for both (`--version_2_with_negative` picks the v2 head, decoding and metric), with
the flags of both originals, their names, defaults and meanings. `--do_predict` on a file with
answers scores every checkpoint (the best by dev F1 becomes model.ckpt-best) and writes the
best's predictions.json, nbest_predictions.json (and null_odds.json); on a file without answers
(or alone, with a trained --output_dir or --init_checkpoint) it only predicts. `--prepare_only`
builds the feature caches and stops (no model config needed). TF2 additions as in
run_pretraining.py, plus `--cached_dir`, `--length_buckets`, `--num_workers`,
`--heldout_fraction`. This file only turns flags into typed configs and calls
`albert.train.trainer.Trainer`.
"""

import os
import sys

from absl import app, flags

from albert.cli import flags as albert_flags

albert_flags.define_model_flags()
albert_flags.define_tokenizer_flags()
albert_flags.define_loop_flags(save_checkpoints_steps=1000)
albert_flags.define_distribution_flags()
albert_flags.define_tf2_flags()
albert_flags.define_finetune_flags()
albert_flags.define_serving_export_flags(tflite=False)
flags.DEFINE_string("train_file", None, "SQuAD json for training. E.g., train-v1.1.json")
flags.DEFINE_string("predict_file", None,
                    "SQuAD json for predictions. E.g., dev-v1.1.json or test-v1.1.json")
flags.DEFINE_string("train_feature_file", None, "training feature file.")
flags.DEFINE_string("predict_feature_file", None, "Location of predict features. If it doesn't "
                    "exist, it will be written. If it does exist, it will be read.")
flags.DEFINE_string("predict_feature_left_file", None, "Location of predict features not "
                    "passed to TPU. (Accepted; our metadata goes beside --predict_feature_file "
                    "as <file>.meta.npz, not into a pickle.)")
flags.DEFINE_integer("max_seq_length", 384,
                     "The maximum total input sequence length after WordPiece tokenization. "
                     "Sequences longer than this will be truncated, and sequences shorter than "
                     "this will be padded.")
flags.DEFINE_integer("doc_stride", 128, "When splitting up a long document into chunks, how "
                     "much stride to take between chunks.")
flags.DEFINE_integer("max_query_length", 64, "The maximum number of tokens for the question. "
                     "Questions longer than this will be truncated to this length.")
flags.DEFINE_bool("do_train", False, "Whether to run training.")
flags.DEFINE_bool("do_predict", False, "Whether to run eval on the dev set.")
flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predictions.")
flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")
flags.DEFINE_float("num_train_epochs", 3.0, "Total number of training epochs to perform.")
flags.DEFINE_float("warmup_proportion", 0.1, "Proportion of training to perform linear learning "
                   "rate warmup for. E.g., 0.1 = 10% of training.")
flags.DEFINE_integer("n_best_size", 20, "The total number of n-best predictions to generate in "
                     "the nbest_predictions.json output file.")
flags.DEFINE_integer("max_answer_length", 30, "The maximum length of an answer that can be "
                     "generated. This is needed because the start and end predictions are not "
                     "conditioned on one another.")
flags.DEFINE_bool("use_einsum", True, "Whether to use tf.einsum or tf.reshape+tf.matmul for "
                  "dense layers. (Accepted; TF2 compiles both alike.)")
flags.DEFINE_integer("start_n_top", 5, "beam size for the start positions.")
flags.DEFINE_integer("end_n_top", 5, "beam size for the end positions.")
flags.DEFINE_float("dropout_prob", 0.1, "dropout probability.")
flags.DEFINE_bool("version_2_with_negative", False, "SQuAD 2.0: questions may have no answer "
                  "(ALBERT's v2 head with the answer-class verifier).")
flags.DEFINE_float("heldout_fraction", 0.02, "SQuAD 2.0: the share of the training articles "
                   "held out of training to tune the no-answer threshold honestly (the "
                   "original tunes it on the dev set it reports; both figures are written). "
                   "0 trains on every article, as the original.")
flags.DEFINE_bool("prepare_only", False, "Build the feature caches (train and predict files) "
                  "and stop: data preparation as its own batch job.")

flags.DEFINE_string("export_dir", None, "If set, a SavedModel of the fine-tuned model (the "
                    "best checkpoint, else the latest) with named token-id signatures is written "
                    "to <export_dir>/<global step>/.")

FLAGS = flags.FLAGS
# No --eval_batch_size (nor in the original): the batch of the v2 held-out slice and of a
# --predict_file with answers (scored as eval).
EVAL_BATCH_SIZE = 8


def main(argv):
  del argv
  from albert.cli import startup
  return startup.run_script(_main)


def _main():
  from albert.errors import FlagError
  from albert.tasks.squad import SquadTask, SquadTaskConfig, has_answers
  from albert.train.distribute import make_strategy
  from albert.train.trainer import Trainer

  if not FLAGS.output_dir:
    raise FlagError("--output_dir is required")
  if not (FLAGS.do_train or FLAGS.do_predict or FLAGS.prepare_only or FLAGS.export_dir):
    raise FlagError("nothing to do: give --do_train, --do_predict, --export_dir or "
                    "--prepare_only")
  run = albert_flags.finetune_run_from_flags(
      max_seq_length=FLAGS.max_seq_length, features_only=FLAGS.prepare_only,
      train_batch_size=FLAGS.train_batch_size, eval_batch_size=EVAL_BATCH_SIZE,
      predict_batch_size=FLAGS.predict_batch_size, optimizer="adamw",
      num_train_steps=None if FLAGS.do_train else 0, num_train_epochs=FLAGS.num_train_epochs,
      warmup_proportion=FLAGS.warmup_proportion, learning_rate=FLAGS.learning_rate)
  task = SquadTask(SquadTaskConfig(
      finetune=run.finetune, train_file=FLAGS.train_file,
      predict_file=FLAGS.predict_file, version_2_with_negative=FLAGS.version_2_with_negative,
      doc_stride=FLAGS.doc_stride, max_query_length=FLAGS.max_query_length,
      n_best_size=FLAGS.n_best_size, max_answer_length=FLAGS.max_answer_length,
      start_n_top=FLAGS.start_n_top, end_n_top=FLAGS.end_n_top,
      dropout_prob=FLAGS.dropout_prob,
      heldout_fraction=FLAGS.heldout_fraction if FLAGS.version_2_with_negative else 0.0,
      train_feature_file=FLAGS.train_feature_file,
      predict_feature_file=FLAGS.predict_feature_file, command=os.path.basename(sys.argv[0])))
  if FLAGS.prepare_only:  # each cache logs its summary: counts, where, built or reused, time
    task.prepare_only([split for split, wanted in (("train", FLAGS.train_file),
                                                   ("predict", FLAGS.predict_file)) if wanted])
    return
  artifacts = albert_flags.serving_export_from_flags()
  from albert.export.onnx import check_artifact_flags, export_artifacts
  check_artifact_flags(FLAGS.export_dir, artifacts.export_onnx)
  if FLAGS.export_dir:  # before the training: a base path that serves another model is refused
    from albert.export.serving import ExportSettings, SquadServing
    SquadServing.check_export_dir(task, ExportSettings(FLAGS.export_dir))
  strategy = make_strategy(albert_flags.distribution_from_flags())
  scored = bool(FLAGS.do_predict and FLAGS.predict_file and has_answers(FLAGS.predict_file))
  trainer = Trainer(task, run.trainer, run.optimizer, strategy=strategy)
  results = {}
  if FLAGS.do_train or FLAGS.do_predict:
    results = trainer.run(do_train=FLAGS.do_train, do_eval=scored, do_predict=FLAGS.do_predict)
  if FLAGS.export_dir:  # with the tokenizer, its settings and the stored null threshold
    from albert.export.versioned import checkpoint_to_export
    result = SquadServing.export_task(task, checkpoint_to_export(
        FLAGS.output_dir, run.trainer.init_checkpoint), ExportSettings(FLAGS.export_dir))
    export_artifacts(result.path, artifacts.export_onnx)
    if not (FLAGS.do_train or FLAGS.do_predict):
      return
  shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(results.items())
                    if k.split("/")[-1] in ("exact_match", "f1", "exact", "heldout_f1",
                                            "heldout_exact"))
  print(f"SQuAD {'2.0' if FLAGS.version_2_with_negative else '1.1'}: {shown or 'done'}; "
        f"predictions in {FLAGS.output_dir}/predictions.json")


if __name__ == "__main__":
  app.run(main)
