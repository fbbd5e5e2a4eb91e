r"""Exports ALBERT as a TF2 SavedModel for TF-Hub: the original's export_to_tfhub.py, in TF2.

From a checkpoint in the original TF1 names (a released model or one of ours), writes a
SavedModel that follows the published TF-Hub ALBERT encoder API, plus optionally the
companion preprocessing SavedModel and a TFLite model. See docs/export.md.

  python export_to_tfhub.py --albert_directory=albert_base \
      --checkpoint_name=model.ckpt-best --export_path=/tmp/albert_base_hub

This file only turns flags into an `albert.export.encoder.ExportConfig` and calls
`albert.export.job.export` through `albert.errors.run_cleanly` (a bad flag, input, checkpoint or
output location is one line `error: ...` and exit status 1). Rerunning a command that stopped
keeps the parts already exported and writes the rest.
"""

from absl import app, flags, logging

from albert.cli import flags as albert_flags

albert_flags.define_model_flags()
albert_flags.define_tokenizer_flags()
flags.DEFINE_string(
    "albert_directory", None,
    "A folder laid out like the released tarballs: albert_config.json, 30k-clean.model and "
    "the checkpoint (--checkpoint_name). --albert_config_file, --init_checkpoint and "
    "--spm_model_file override its files.")
flags.DEFINE_string("checkpoint_name", "model.ckpt-best",
                    "Name of the checkpoint under albert_directory to be exported.")
flags.DEFINE_string("export_path", None, "Path to the output TF-Hub module (SavedModel).")
flags.DEFINE_bool("use_einsum", True,
                  "Accepted for compatibility; no effect in TF2 (TFLite conversion works "
                  "either way, see --tflite_path).")
flags.DEFINE_bool("with_mlm", True,
                  "Export the `.mlm` sub-object and the masked_lm / mlm signatures (the "
                  "checkpoint must hold cls/predictions/*).")
flags.DEFINE_bool("with_sop", True,
                  "Export the `.sop` sub-object and the sop signature (the checkpoint must hold "
                  "cls/seq_relationship/*).")
flags.DEFINE_bool("overwrite", False,
                  "Replace existing outputs (atomically). Without it, an output exported earlier "
                  "from the same inputs and settings is kept (so a rerun completes a run that "
                  "stopped), and any other existing output is an error.")
flags.DEFINE_bool("verify", True,
                  "Load the written SavedModel back and compare it with the in-memory model "
                  "before moving it into place.")
flags.DEFINE_string("preprocessing_export_path", None,
                    "If set, also write the preprocessing SavedModel (tokenize, "
                    "bert_pack_inputs) there.")
flags.DEFINE_integer("preprocessing_seq_length", 128,
                     "Default sequence length of the preprocessing model.")
flags.DEFINE_string("tflite_path", None,
                    "If set, also convert the encoder to TFLite (builtin ops only) there and "
                    "check its outputs against the SavedModel.")
flags.DEFINE_integer("tflite_seq_length", 128,
                     "The fixed sequence length of the TFLite model (its batch size is free); "
                     "0 leaves the sequence length free too.")
flags.DEFINE_string("onnx_path", None,
                    "If set, also convert the encoder (sequence_output and pooled_output, batch "
                    "and sequence length free) to ONNX there and check its outputs against the "
                    "SavedModel (float32 within 1e-4). Needs tf2onnx and onnxruntime.")

FLAGS = flags.FLAGS


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # TF's INFO lines about saving would bury the report
  from albert.errors import run_cleanly
  return run_cleanly(_main, on_interrupt=lambda: "interrupted; the parts already exported are "
                     "kept, rerun the same command to write the rest")


def _main():
  from albert.cli import startup
  startup.start_tensorflow()
  from albert.export import encoder as export
  from albert.export import job as export_job
  from albert.errors import FlagError

  for name in ("output_dir", "albert_hub_module_handle"):
    if FLAGS[name].present:
      raise FlagError(f"--{name} is not used by export_to_tfhub.py")
  if not FLAGS.export_path:
    raise FlagError("--export_path is required")
  if FLAGS.onnx_path:
    from albert import files
    from albert.export import onnx as onnx_export
    files.check_output_file(FLAGS.onnx_path, "--onnx_path")
    onnx_export.require_onnx("--onnx_path")
  if FLAGS["use_einsum"].present:
    print("note: --use_einsum has no effect in TF2.")
  model, tokenizer = albert_flags.model_from_flags(), albert_flags.tokenizer_from_flags()
  config = export.ExportConfig.from_albert_directory(
      FLAGS.albert_directory, FLAGS.export_path, checkpoint_name=FLAGS.checkpoint_name,
      albert_config_file=model.albert_config_file, checkpoint=model.init_checkpoint,
      sp_model_file=tokenizer.spm_model_file, vocab_file=tokenizer.vocab_file,
      do_lower_case=tokenizer.do_lower_case, with_mlm=FLAGS.with_mlm, with_sop=FLAGS.with_sop,
      overwrite=FLAGS.overwrite, verify=FLAGS.verify,
      preprocessing_export_path=FLAGS.preprocessing_export_path,
      preprocessing_seq_length=FLAGS.preprocessing_seq_length, tflite_path=FLAGS.tflite_path,
      tflite_seq_length=FLAGS.tflite_seq_length or None)
  result = export_job.export(config, log=lambda message: None)
  print(result.format())
  if FLAGS.onnx_path:
    diffs, kept = onnx_export.export_encoder_onnx(result.export_path, FLAGS.onnx_path,
                                                  overwrite=FLAGS.overwrite)
    print(f"{'Kept' if kept else 'Wrote'} {FLAGS.onnx_path}; ONNX vs SavedModel, max |diff|: "
          + export.format_diffs(diffs))


if __name__ == "__main__":
  app.run(main)
