"""Shared absl flag definitions: the only module of the package that touches absl flags.

Each `define_*` function defines one group of flags with the original scripts' names, defaults
and help texts (plus the TF2 additions), and may be called more than once. Scripts call the
groups they need, define their own flags, and turn the parsed values into typed configs; nothing
else under `albert/` reads FLAGS.
"""

from __future__ import annotations

from absl import flags

FLAGS = flags.FLAGS


def _define(kind, name, default, help_text, enum_values=None):
  if name in FLAGS:
    return
  if kind == "enum":
    flags.DEFINE_enum(name, default, enum_values, help_text)
  else:
    getattr(flags, f"DEFINE_{kind}")(name, default, help_text)


def define_model_flags() -> None:
  """albert_config_file, init_checkpoint, output_dir, albert_hub_module_handle."""
  _define("string", "albert_config_file", None,
          "The config json file corresponding to the pre-trained ALBERT model. This specifies "
          "the model architecture.")
  _define("string", "init_checkpoint", None,
          "Initial checkpoint (usually from a pre-trained ALBERT model): a TF1-name checkpoint "
          "prefix or a directory.")
  _define("string", "output_dir", None,
          "The output directory where the model checkpoints will be written.")
  _define("string", "albert_hub_module_handle", None,
          "If set, the ALBERT hub module to use (a local path or a URL tensorflow-hub resolves).")


def define_tokenizer_flags() -> None:
  """vocab_file, spm_model_file, do_lower_case."""
  _define("string", "vocab_file", None,
          "The vocabulary file that the ALBERT model was trained on (WordPiece models, or "
          "optional beside a SentencePiece model).")
  _define("string", "spm_model_file", None, "The model file for sentence piece tokenization.")
  _define("bool", "do_lower_case", True,
          "Whether to lower case the input text. Should be True for uncased models and False "
          "for cased models.")


def define_loop_flags(save_checkpoints_steps: int = 1000) -> None:
  """save_checkpoints_steps (default per script, as in the originals), keep_checkpoint_max,
  iterations_per_loop."""
  _define("integer", "save_checkpoints_steps", save_checkpoints_steps,
          "How often to save the model checkpoint.")
  _define("integer", "keep_checkpoint_max", 5, "How many checkpoints to keep.")
  _define("integer", "iterations_per_loop", 1000,
          "How many steps to make in each estimator call (steps per compiled host loop).")


def define_tpu_flags() -> None:
  """use_tpu, tpu_name, tpu_zone, gcp_project, master, num_tpu_cores."""
  _define("bool", "use_tpu", False, "Whether to use TPU or GPU/CPU.")
  _define("string", "tpu_name", None,
          "The Cloud TPU to use for training. This should be either the name used when "
          "creating the Cloud TPU, or a grpc://ip.address.of.tpu:8470 url.")
  _define("string", "tpu_zone", None,
          "[Optional] GCE zone where the Cloud TPU is located in. If not specified, we will "
          "attempt to automatically detect the GCE project from metadata.")
  _define("string", "gcp_project", None,
          "[Optional] Project name for the Cloud TPU-enabled project. If not specified, we will "
          "attempt to automatically detect the GCE project from metadata.")
  _define("string", "master", None, "[Optional] TensorFlow master URL.")
  _define("integer", "num_tpu_cores", 8,
          "Only used if `use_tpu` is True. Total number of TPU cores to use.")


def define_tf2_flags() -> None:
  """TF2 additions: distribution_strategy, num_gpus, mixed_precision, enable_xla, seed."""
  _define("enum", "distribution_strategy", "auto",
          "How to distribute: auto (TPU with --use_tpu, else MultiWorkerMirrored when TF_CONFIG "
          "names several workers, else Mirrored over the visible GPUs, else one device), "
          "one_device, mirrored, multi_worker_mirrored, tpu.",
          enum_values=["auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu"])
  _define("integer", "num_gpus", None, "GPUs to use with mirrored strategies (default: all).")
  _define("enum", "mixed_precision", "float32",
          "Compute dtype policy: float32, mixed_float16 (with loss scaling) or mixed_bfloat16.",
          enum_values=["float32", "mixed_float16", "mixed_bfloat16"])
  _define("bool", "enable_xla", False, "Compile the train and eval steps with XLA.")
  _define("integer", "seed", 12345, "Random seed of every random choice of the run.")


# ------------------------------------------------------------------------ flags -> configs
def _value(name: str, default=None):
  """The parsed value of flag `name`, or `default` when the script does not define it."""
  return FLAGS[name].value if name in FLAGS else default


def trainer_configs(**overrides):
  """(TrainerConfig, OptimizerConfig, strategy) from the flags a script defines.

  Reads the shared groups above and the run flags of the original scripts under either of
  their names (`num_train_steps` / `train_step`, `num_warmup_steps` / `warmup_step`), plus
  `num_train_epochs` / `warmup_proportion` (SQuAD). `overrides` set TrainerConfig or
  OptimizerConfig fields directly (a script's own defaults, e.g. the optimizer RACE fixes).
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  from albert.train.distribute import DistributeConfig, make_strategy  # pylint: disable=g-import-not-at-top
  from albert.train.trainer import OptimizerConfig, TrainerConfig  # pylint: disable=g-import-not-at-top

  steps = _value("num_train_steps", _value("train_step"))
  warmup = _value("num_warmup_steps", _value("warmup_step", 0))
  trainer = dict(
      output_dir=_value("output_dir"), train_batch_size=_value("train_batch_size", 32),
      eval_batch_size=_value("eval_batch_size", 8),
      predict_batch_size=_value("predict_batch_size"),
      num_train_steps=steps, num_train_epochs=_value("num_train_epochs"),
      save_checkpoints_steps=_value("save_checkpoints_steps", 1000),
      keep_checkpoint_max=_value("keep_checkpoint_max", 5),
      iterations_per_loop=_value("iterations_per_loop", 1000),
      max_eval_steps=_value("max_eval_steps"), init_checkpoint=_value("init_checkpoint"),
      init_from_group0=_value("init_from_group0", False),
      albert_config_file=_value("albert_config_file"), enable_xla=_value("enable_xla", False),
      mixed_precision=_value("mixed_precision", "float32"), seed=_value("seed", 12345),
      steps_flag="num_train_steps" if "num_train_steps" in FLAGS else "train_step")
  optimizer = dict(
      optimizer=_value("optimizer", "adamw"), learning_rate=_value("learning_rate", 5e-5),
      num_warmup_steps=warmup, start_warmup_step=_value("start_warmup_step", 0),
      poly_power=_value("poly_power", 1.0), warmup_proportion=_value("warmup_proportion"))
  if trainer["num_train_epochs"] is not None and steps is None:
    trainer["num_train_steps"] = 0  # resolved from the epochs by the Trainer
  trainer_fields = {f.name for f in dataclasses.fields(TrainerConfig)}
  for key, value in overrides.items():
    (trainer if key in trainer_fields else optimizer)[key] = value
  strategy = make_strategy(DistributeConfig(
      strategy=_value("distribution_strategy", "auto"), num_gpus=_value("num_gpus"),
      use_tpu=_value("use_tpu", False), tpu_name=_value("tpu_name"),
      tpu_zone=_value("tpu_zone"), gcp_project=_value("gcp_project"), master=_value("master")))
  if _value("use_tpu", False) and _value("num_tpu_cores", 8) != 8:
    print("note: --num_tpu_cores is not needed in TF2: the TPU strategy uses every core of the "
          "TPU named by --tpu_name.")
  return TrainerConfig(**trainer), OptimizerConfig(**optimizer), strategy


def define_finetune_flags() -> None:
  """TF2 additions of the fine-tuning scripts: cached_dir, length_buckets, num_workers."""
  _define("string", "cached_dir", None,
          "Where the feature caches go (TFRecords named by a fingerprint of the input, the "
          "tokenizer and the flags; a changed input or flag builds a new one). Default: "
          "<output_dir>/cache.")
  _define("bool", "length_buckets", True,
          "Pad each batch only to the smallest of a few lengths (32, 64, ..., max_seq_length) "
          "that holds its longest example, instead of always to --max_seq_length. Results equal "
          "padding to the cap (within float tolerance).")
  _define("integer", "num_workers", None,
          "Processes for feature conversion (default: every core).")


def prepare_only_splits(default=("train", "eval")):
  """The splits `--prepare_only` builds: those the --do_* flags name, else `default`."""
  named = tuple(split for split, flag in (("train", "do_train"), ("eval", "do_eval"),
                                          ("predict", "do_predict")) if _value(flag, False))
  return named or tuple(default)


def finetune_config(albert_config_required: bool = True):
  """The shared fine-tuning settings (`albert.tasks.finetune.FinetuneConfig`) from the flags.

  `albert_config_required=False` (`--prepare_only`): only the features are built, so neither
  --albert_config_file nor a hub handle is needed (one given is still read and checked)."""
  from albert.config import AlbertConfig  # pylint: disable=g-import-not-at-top
  from albert.errors import FlagError  # pylint: disable=g-import-not-at-top
  from albert.tasks.finetune import FinetuneConfig, default_buckets  # pylint: disable=g-import-not-at-top
  config_file = _value("albert_config_file")
  if not config_file and (albert_config_required and not _value("albert_hub_module_handle")):
    raise FlagError("--albert_config_file is required (or --albert_hub_module_handle)")
  albert_config = AlbertConfig.from_json_file(config_file) if config_file else None
  max_seq_length = _value("max_seq_length", 512)
  return FinetuneConfig(
      albert_config=albert_config, output_dir=_value("output_dir"),
      spm_model_file=_value("spm_model_file"), vocab_file=_value("vocab_file"),
      do_lower_case=_value("do_lower_case", True), max_seq_length=max_seq_length,
      cache_dir=_value("cached_dir"), hub_module_handle=_value("albert_hub_module_handle"),
      bucket_boundaries=default_buckets(max_seq_length) if _value("length_buckets") else None,
      num_workers=_value("num_workers"), seed=_value("seed", 12345),
      features_only=not albert_config_required)
