r"""Converts ALBERT weights between Hugging Face folders and the original TF1 checkpoints.

From a Hugging Face ALBERT folder (config.json + model.safetensors, e.g. downloaded from the
hub) to the original release's layout (albert_config.json, model.ckpt-0 in the original TF1
names, spiece.model, labels.txt):

  python convert_checkpoint.py --input=albert-base-v2 --output_dir=albert_base_tf1

From a TF1-name checkpoint (the original's or one of ours) to a Hugging Face folder that
transformers loads with AutoModel / AlbertFor... and AutoTokenizer:

  python convert_checkpoint.py --input=out/model.ckpt-best \
      --albert_config_file=albert_base/albert_config.json \
      --spm_model_file=albert_base/30k-clean.model --output_format=hf --output_dir=albert_mnli_hf

This file only turns flags into one call of `albert.hf.convert` through
`albert.errors.run_cleanly` (a bad flag, folder or checkpoint is one line `error: ...` and exit
status 1). The output is written under a temporary name, read back and compared, then renamed.
See docs/huggingface.md.
"""

from absl import app, flags

from albert.cli import flags as albert_flags

albert_flags.define_model_flags()
albert_flags.define_tokenizer_flags()
flags.DEFINE_string("input", None,
                    "A Hugging Face ALBERT folder, or a TF1-name checkpoint (prefix or directory).")
flags.DEFINE_enum("output_format", None, ["tf1", "hf"],
                  "tf1 (the original's albert_config.json + model.ckpt-0) or hf (a Hugging Face "
                  "folder). Default: the other format of --input.")
flags.DEFINE_enum("head", "auto", ["auto", "none", "pretraining", "masked_lm", "classifier",
                                   "regression", "squad", "race"],
                  "(--output_format=hf) The head to write and so the HF architecture: auto "
                  "picks it from the checkpoint's variables; none writes the encoder alone "
                  "(AlbertModel); a one-row output_weights needs race or regression.")
flags.DEFINE_list("labels", None,
                  "(--output_format=hf, classifier head) The label names in index order "
                  "(id2label); default LABEL_0, LABEL_1, ...")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output_dir (atomically).")

FLAGS = flags.FLAGS


def main(argv):
  del argv
  from albert.cli import startup
  return startup.run_script(_main)


def _main():
  from albert import checkpoint
  from albert.config import AlbertConfig
  from albert.errors import FlagError
  from albert.hf import convert

  for name in ("albert_hub_module_handle", "init_checkpoint", "vocab_file"):
    if FLAGS[name].present:
      raise FlagError(f"--{name} is not used by convert_checkpoint.py (give --input)")
  if not FLAGS.input:
    raise FlagError("--input is required (a Hugging Face folder or a TF1 checkpoint)")
  if not FLAGS.output_dir:
    raise FlagError("--output_dir is required")
  model, tokenizer = albert_flags.model_from_flags(), albert_flags.tokenizer_from_flags()
  from_hf = checkpoint.hf_settings(FLAGS.input) is not None
  output_format = FLAGS.output_format or ("tf1" if from_hf else "hf")
  if from_hf:
    if output_format != "tf1":
      raise FlagError(f"--input={FLAGS.input} is a Hugging Face folder already; "
                      "--output_format=tf1 converts it")
    for name in ("albert_config_file", "spm_model_file", "labels"):
      if FLAGS[name].present:
        raise FlagError(f"--{name} is not used with a Hugging Face folder as --input (the "
                        "folder's own files are)")
    result = convert.hf_to_tf1(FLAGS.input, model.output_dir, overwrite=FLAGS.overwrite)
  else:
    if output_format != "hf":
      raise FlagError(f"--input={FLAGS.input} is a TF1 checkpoint already; "
                      "--output_format=hf converts it")
    if not model.albert_config_file:
      raise FlagError("--albert_config_file is required with a TF1 checkpoint as --input")
    result = convert.tf1_to_hf(
        FLAGS.input, AlbertConfig.from_json_file(model.albert_config_file), model.output_dir,
        spm_model_file=tokenizer.spm_model_file, do_lower_case=tokenizer.do_lower_case,
        head=FLAGS.head, labels=FLAGS.labels, overwrite=FLAGS.overwrite)
  print(result.format())


if __name__ == "__main__":
  app.run(main)
