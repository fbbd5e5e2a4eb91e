"""Creates ALBERT pretraining TFRecords from raw text: the original's script, streamed and parallel.

Three commands (the first word after the script name; `create` when there is none):

  create       raw text -> TFRecords (the original's flags, plus --num_workers,
               --num_output_shards, --shuffle_buffer_size, --max_line_length, --work_dir)
  train_vocab  trains a SentencePiece model with the original recipe (--input_file,
               --model_prefix, --vocab_size)
  inspect      statistics of record files and a few instances decoded back to text
               (--input_file globs of records, --spm_model_file to decode, --num_examples)

This file only turns flags into a typed config and calls one library function
(`albert.data.pretraining.job.create_pretraining_data`, `albert.data.pretraining.vocab.train_vocab`,
`albert.data.pretraining.inspection.inspect_records`) through `albert.errors.run_cleanly`: a bad flag, input
or output location is one line `error: ...` and exit status 1. Progress lines go to stderr,
plain. It imports no TensorFlow at module level, so the worker processes it spawns stay small.
See docs/create_pretraining_data.md.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from albert.cli import flags as albert_flags

albert_flags.define_tokenizer_flags()

flags.DEFINE_string("input_file", None,
                    "Input raw text file (or comma-separated list of files / globs). For "
                    "`inspect`: the TFRecord files.")
flags.DEFINE_string("output_file", None,
                    "Output TF example file (or comma-separated list of files); instances are "
                    "spread over the files. With --num_output_shards: one name, or a pattern "
                    "with {shard} and {num_shards}.")
flags.DEFINE_string("input_file_mode", "r",
                    "The data format of the input file ('r' or 'rb'; input is read as UTF-8).")
flags.DEFINE_bool("do_whole_word_mask", True,
                  "Whether to use whole word masking rather than per-WordPiece masking.")
flags.DEFINE_bool("do_permutation", False,
                  "Whether to do the permutation training. Not supported: the original's records "
                  "with it could not be read by pretraining; the flag is rejected.")
flags.DEFINE_bool("favor_shorter_ngram", True,
                  "Whether to set higher probabilities for sampling shorter ngrams.")
flags.DEFINE_bool("random_next_sentence", False,
                  "Whether to use the sentence that's right before the current sentence as the "
                  "negative sample for next sentence prediction, rather than using sentences "
                  "from other random documents.")
flags.DEFINE_integer("max_seq_length", 512, "Maximum sequence length.")
flags.DEFINE_integer("ngram", 3, "Maximum number of ngrams to mask.")
flags.DEFINE_integer("max_predictions_per_seq", 20,
                     "Maximum number of masked LM predictions per sequence.")
flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
flags.DEFINE_integer("dupe_factor", 40,
                     "Number of times to duplicate the input data (with different masks).")
flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
flags.DEFINE_float("short_seq_prob", 0.1,
                   "Probability of creating sequences which are shorter than the maximum length.")
flags.DEFINE_bool("parallel", False,
                  "Accepted for compatibility with the original and ignored: --num_workers "
                  "parallelises any input.")
# Additions.
flags.DEFINE_integer("num_workers", 0, "Worker processes (0: one per CPU core). The output is "
                     "the same for any number.")
flags.DEFINE_integer("num_output_shards", 0,
                     "Write this many shards named <output_file>-00000-of-N (or by the "
                     "{shard}/{num_shards} pattern); 0: the files of --output_file as given.")
flags.DEFINE_integer("shuffle_buffer_size", 10000,
                     "Records per shard held for shuffling (a full shuffle of a shard that fits).")
flags.DEFINE_integer("max_line_length", 100000,
                     "Longest input line, in characters; a longer line is an error (the input "
                     "must have one sentence per line).")
flags.DEFINE_string("work_dir", None,
                    "Where the temporary token store goes (default: beside the first output).")
flags.DEFINE_float("progress_interval", 10.0, "Seconds between progress lines.")
flags.DEFINE_string("summary_file", None, "Also write the summary as JSON to this file.")
# Apache Beam (docs/scaling.md).
flags.DEFINE_string("runner", None,
                    "Run the job on Apache Beam with this runner (DirectRunner, DataflowRunner, "
                    "FlinkRunner, SparkRunner): the same shards, byte for byte. Default: the "
                    "local job.")
flags.DEFINE_string("beam_pipeline_options", "",
                    "Beam pipeline options, passed through (a shell-quoted string, e.g. "
                    "\"--project=p --region=us-central1 --temp_location=gs://b/tmp\").")
flags.DEFINE_integer("beam_max_rounds", 4,
                     "Beam: join rounds that give units the documents their B segments come "
                     "from; units still asking after them read the documents from files.")
# train_vocab.
flags.DEFINE_string("model_prefix", None, "train_vocab: writes <model_prefix>.model/.vocab.")
flags.DEFINE_integer("vocab_size", 30000, "train_vocab: number of pieces.")
flags.DEFINE_float("character_coverage", 0.99995, "train_vocab: SentencePiece option.")
flags.DEFINE_integer("input_sentence_size", 10000000,
                     "train_vocab: lines SentencePiece samples from the input.")
flags.DEFINE_list("user_defined_symbols", ["(", ")", "\"", "-", ".", "\u2013", "\u00a3",
                                           "\u20ac"],
                  "train_vocab: user-defined symbols (comma-separated list).")
# inspect.
flags.DEFINE_integer("num_examples", 3, "inspect: instances to decode.")
flags.DEFINE_integer("max_records", 0, "inspect: records to read (0: all).")

FLAGS = flags.FLAGS
COMMANDS = ("create", "train_vocab", "inspect")


def _log(line: str) -> None:
  """Progress lines, plain (no log headers), on stderr: stdout stays for `inspect`'s JSON."""
  print(line, file=sys.stderr, flush=True)


def _create():
  from albert import files  # pylint: disable=g-import-not-at-top
  from albert.data.pretraining import job as pretraining  # pylint: disable=g-import-not-at-top
  if FLAGS.parallel:
    _log(f"note: --parallel is ignored: --num_workers={FLAGS.num_workers or 'all cores'} "
         "processes share any input")
  tokenizer = albert_flags.tokenizer_from_flags()
  config = pretraining.CreateDataConfig(
      input_file=FLAGS.input_file, output_file=FLAGS.output_file,
      vocab_file=tokenizer.vocab_file, spm_model_file=tokenizer.spm_model_file,
      input_file_mode=FLAGS.input_file_mode, do_lower_case=tokenizer.do_lower_case,
      do_whole_word_mask=FLAGS.do_whole_word_mask,
      do_permutation=FLAGS.do_permutation, favor_shorter_ngram=FLAGS.favor_shorter_ngram,
      random_next_sentence=FLAGS.random_next_sentence, max_seq_length=FLAGS.max_seq_length,
      ngram=FLAGS.ngram, max_predictions_per_seq=FLAGS.max_predictions_per_seq,
      random_seed=FLAGS.random_seed, dupe_factor=FLAGS.dupe_factor,
      masked_lm_prob=FLAGS.masked_lm_prob, short_seq_prob=FLAGS.short_seq_prob,
      num_workers=FLAGS.num_workers, num_output_shards=FLAGS.num_output_shards,
      shuffle_buffer_size=FLAGS.shuffle_buffer_size, max_line_length=FLAGS.max_line_length,
      work_dir=FLAGS.work_dir, progress_interval=FLAGS.progress_interval)
  if FLAGS.summary_file:  # checked before the run, not after it
    files.check_output_file(FLAGS.summary_file, "--summary_file")
  if FLAGS.runner:
    from albert.data.pretraining import beam  # pylint: disable=g-import-not-at-top
    if FLAGS.summary_file:
      raise pretraining.SettingsError("--summary_file is written by the local job only; the "
                                      "Beam job's figures are in the runner's monitoring")
    beam.run_beam(config, FLAGS.runner, FLAGS.beam_pipeline_options, FLAGS.beam_max_rounds,
                  log=_log)
    return
  summary = pretraining.create_pretraining_data(config, log=_log)
  if FLAGS.summary_file:
    files.write_text(FLAGS.summary_file, json.dumps(summary.as_dict(), indent=1) + "\n")


def _train_vocab():
  from albert.data.pretraining import vocab  # pylint: disable=g-import-not-at-top
  vocab.train_vocab(vocab.VocabConfig(
      input_file=FLAGS.input_file, model_prefix=FLAGS.model_prefix, vocab_size=FLAGS.vocab_size,
      do_lower_case=albert_flags.tokenizer_from_flags().do_lower_case, character_coverage=FLAGS.character_coverage,
      input_sentence_size=FLAGS.input_sentence_size,
      user_defined_symbols=tuple(FLAGS.user_defined_symbols),
      num_threads=FLAGS.num_workers, max_line_length=FLAGS.max_line_length), log=_log)


def _inspect():
  from albert.cli import startup  # pylint: disable=g-import-not-at-top
  from albert.data.pretraining import inspection  # pylint: disable=g-import-not-at-top
  startup.start_tensorflow()
  tokenizer = albert_flags.tokenizer_from_flags()
  stats = inspection.inspect_records(inspection.InspectConfig(
      input_file=FLAGS.input_file, spm_model_file=tokenizer.spm_model_file,
      vocab_file=tokenizer.vocab_file, do_lower_case=tokenizer.do_lower_case,
      num_examples=FLAGS.num_examples, max_records=FLAGS.max_records))
  print(json.dumps(stats))


def main(argv):
  words = argv[1:]
  command = words[0] if words else "create"
  if command not in COMMANDS or len(words) > 1:
    raise app.UsageError(f"unknown command {' '.join(words)!r}: use one of {', '.join(COMMANDS)}")
  from albert.errors import run_cleanly  # pylint: disable=g-import-not-at-top
  run, stopped = {
      "create": (_create, "interrupted; complete output files are kept, rerun the same command "
                          "to write the rest"),
      "train_vocab": (_train_vocab, "interrupted; nothing was written"),
      "inspect": (_inspect, "interrupted")}[command]
  return run_cleanly(run, on_interrupt=lambda: stopped)


if __name__ == "__main__":
  app.run(main)
