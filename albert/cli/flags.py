"""Shared absl flag definitions: the only module of the package that touches absl flags.

Each `define_X_flags()` function defines one group of flags with the original scripts' names,
defaults and help texts (plus the TF2 additions), and may be called more than once; its
`X_from_flags()` returns the parsed values of exactly that group (`distribution_from_flags()`:
a `DistributeConfig`). Scripts call the groups they need, define their own flags and pass
those by name: `finetune_run_from_flags(max_seq_length=FLAGS.max_seq_length, ...)` makes the
three configs of a fine-tuning run with `albert.tasks.finetune.finetune_run`. Nothing else
under `albert/` reads FLAGS.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple

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
          "prefix or a directory, or a Hugging Face ALBERT folder (config.json + "
          "model.safetensors; its config and spiece.model are used).")
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


def define_distribution_flags() -> None:
  """Where the run runs: the original's use_tpu, tpu_name, tpu_zone, gcp_project, master,
  num_tpu_cores, and the TF2 additions distribution_strategy, num_gpus."""
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
  _define("enum", "distribution_strategy", "auto",
          "How to distribute: auto (TPU with --use_tpu, else MultiWorkerMirrored when TF_CONFIG "
          "names several workers, else Mirrored over the visible GPUs, else one device), "
          "one_device, mirrored, multi_worker_mirrored, tpu.",
          enum_values=["auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu"])
  _define("integer", "num_gpus", None, "GPUs to use with mirrored strategies (default: all).")


def define_tf2_flags() -> None:
  """TF2 additions to how the steps compute: mixed_precision, enable_xla, seed,
  gradient_accumulation_steps, recompute_grad."""
  _define("enum", "mixed_precision", "float32",
          "Compute dtype policy: float32, mixed_float16 (with loss scaling) or mixed_bfloat16.",
          enum_values=["float32", "mixed_float16", "mixed_bfloat16"])
  _define("bool", "enable_xla", False, "Compile the train and eval steps with XLA.")
  _define("integer", "seed", 12345, "Random seed of every random choice of the run.")
  _define("integer", "gradient_accumulation_steps", 1,
          "Split each optimizer step's global batch (--train_batch_size, which must be "
          "divisible by it, per replica too) into this many micro-batches, run one after the "
          "other; their gradients are added up, clipped and applied once: the same step as "
          "one batch of the full size, in the memory of a micro-batch. Steps, warmup and "
          "checkpoints count optimizer steps.")
  _define("bool", "recompute_grad", False,
          "Recompute each transformer layer's activations in the backward pass instead of "
          "keeping them (tf.recompute_grad): less memory, about one more forward pass of time; "
          "the same gradients.")


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


def define_custom_task_flags() -> None:
  """run_classifier.py --task_name=custom: your own CSV, TSV or JSON Lines files."""
  _define("string", "train_file", None, "--task_name=custom: the training file (.csv, .tsv or "
          ".jsonl; a header row names the columns of CSV/TSV).")
  _define("string", "dev_file", None, "--task_name=custom: the file --do_eval scores.")
  _define("string", "test_file", None, "--task_name=custom: the file --do_predict predicts "
          "(it may lack the label column); written to <output_dir>/predictions.jsonl.")
  _define("enum", "input_format", None, "The files' format (default: from each extension).",
          enum_values=["csv", "tsv", "jsonl"])
  _define("string", "text_a_column", None, "The text column (default: the first of sentence, "
          "text, sentence1, question found).")
  _define("string", "text_b_column", None, "The second text of a pair (default: sentence2 "
          "where present; none otherwise).")
  _define("string", "label_column", "label", "The label column.")
  _define("string", "id_column", None, "A column carried into predictions.jsonl as `id` "
          "(default: the row's line number).")
  _define("enum", "task_type", "classification", "classification (one label a row), "
          "regression (a number, one output, squared error, as STS-B) or multi_label (several "
          "labels a row: sigmoid outputs, binary cross-entropy, --multi_label_threshold).",
          enum_values=["classification", "regression", "multi_label"])
  _define("list", "labels", None, "The label list and its order, e.g. neg,pos (default: the "
          "training file's labels, sorted). Written to <output_dir>/labels.txt.")
  _define("string", "label_separator", "|", "Multi-label CSV/TSV: what separates the labels "
          "of one cell (JSON Lines: a list).")
  _define("float", "multi_label_threshold", 0.5, "Multi-label: a label is predicted when its "
          "probability is at least this.")
  _define("string", "best_metric", None, "The eval_results key that picks model.ckpt-best "
          "(default: eval_accuracy, pearson or micro_f1 by --task_type).")


def define_serving_export_flags(tflite: bool = False) -> None:
  """export_onnx (run_classifier.py, run_squad.py, run_race.py) and, with `tflite`,
  export_tflite (run_classifier.py): artifacts beside the --export_dir SavedModel."""
  _define("bool", "export_onnx", False,
          "With --export_dir: also write <export_dir>/<version>/onnx/ (model.onnx float32, "
          "model_int8.onnx dynamically quantized, the SentencePiece model and serving.json), "
          "each checked against the SavedModel. Needs tf2onnx and onnxruntime.")
  if tflite:
    _define("bool", "export_tflite", False,
            "With --export_dir: also write <export_dir>/<version>/tflite/ (model.tflite float32 "
            "and model_int8.tflite dynamic-range int8, fixed --max_seq_length), each checked "
            "against the SavedModel.")


# -------------------------------------------------------------------- each group's values
# `X_from_flags()` reads exactly the flags `define_X_flags()` defines; a script passes the
# flags it defines itself by name (no lookup of a flag that may not exist).
@dataclasses.dataclass(frozen=True)
class ModelFlags:
  """The values of `define_model_flags()`."""

  albert_config_file: Optional[str]
  init_checkpoint: Optional[str]
  output_dir: Optional[str]
  albert_hub_module_handle: Optional[str]


@dataclasses.dataclass(frozen=True)
class TokenizerFlags:
  """The values of `define_tokenizer_flags()`."""

  vocab_file: Optional[str]
  spm_model_file: Optional[str]
  do_lower_case: bool


@dataclasses.dataclass(frozen=True)
class LoopFlags:
  """The values of `define_loop_flags()` (TrainerConfig fields of the same names)."""

  save_checkpoints_steps: int
  keep_checkpoint_max: int
  iterations_per_loop: int


@dataclasses.dataclass(frozen=True)
class Tf2Flags:
  """The values of `define_tf2_flags()` (TrainerConfig fields of the same names)."""

  mixed_precision: str
  enable_xla: bool
  seed: int
  gradient_accumulation_steps: int
  recompute_grad: bool


@dataclasses.dataclass(frozen=True)
class FinetuneFlags:
  """The values of `define_finetune_flags()`."""

  cached_dir: Optional[str]
  length_buckets: bool
  num_workers: Optional[int]


@dataclasses.dataclass(frozen=True)
class ServingExportFlags:
  """The values of `define_serving_export_flags()` (export_tflite False where undefined)."""

  export_onnx: bool
  export_tflite: bool = False


def _read(group):
  """`group` (one of the classes above) filled with the parsed flags of its field names."""
  return group(**{field.name: FLAGS[field.name].value for field in dataclasses.fields(group)})


def model_from_flags() -> ModelFlags:
  return _read(ModelFlags)


def tokenizer_from_flags() -> TokenizerFlags:
  return _read(TokenizerFlags)


def loop_from_flags() -> LoopFlags:
  return _read(LoopFlags)


def tf2_from_flags() -> Tf2Flags:
  return _read(Tf2Flags)


def finetune_from_flags() -> FinetuneFlags:
  return _read(FinetuneFlags)


def custom_task_from_flags():
  """The `albert.tasks.classifier.CustomTaskConfig` of `define_custom_task_flags()`. Without
  --labels, an HF folder given as --init_checkpoint that names its labels (`id2label`) gives
  the label list, in its order."""
  from albert.hf.folder import named_labels  # pylint: disable=g-import-not-at-top
  from albert.tasks.classifier import CustomTaskConfig  # pylint: disable=g-import-not-at-top
  labels = tuple(l.strip() for l in FLAGS.labels) if FLAGS.labels else None
  if labels is None and FLAGS.task_type != "regression":
    folder_labels = named_labels(FLAGS.init_checkpoint)
    labels = tuple(folder_labels) if folder_labels else None
  return CustomTaskConfig(
      train_file=FLAGS.train_file, dev_file=FLAGS.dev_file, test_file=FLAGS.test_file,
      input_format=FLAGS.input_format, text_a_column=FLAGS.text_a_column,
      text_b_column=FLAGS.text_b_column, label_column=FLAGS.label_column,
      id_column=FLAGS.id_column, task_type=FLAGS.task_type,
      labels=labels, label_separator=FLAGS.label_separator,
      multi_label_threshold=FLAGS.multi_label_threshold, best_metric=FLAGS.best_metric)


def serving_export_from_flags() -> ServingExportFlags:
  return ServingExportFlags(export_onnx=FLAGS.export_onnx,
                            export_tflite="export_tflite" in FLAGS and FLAGS.export_tflite)


def distribution_from_flags():
  """The `albert.train.distribute.DistributeConfig` of `define_distribution_flags()`; notes that
  --num_tpu_cores is not needed (accepted, as the original's)."""
  from albert.train.distribute import DistributeConfig  # pylint: disable=g-import-not-at-top
  if FLAGS.use_tpu and FLAGS.num_tpu_cores != 8:
    print("note: --num_tpu_cores is not needed in TF2: the TPU strategy uses every core of the "
          "TPU named by --tpu_name.")
  return DistributeConfig(
      strategy=FLAGS.distribution_strategy, num_gpus=FLAGS.num_gpus, use_tpu=FLAGS.use_tpu,
      tpu_name=FLAGS.tpu_name, tpu_zone=FLAGS.tpu_zone, gcp_project=FLAGS.gcp_project,
      master=FLAGS.master)


def finetune_run_from_flags(**script_flags):
  """The configs of a fine-tuning run (`albert.tasks.finetune.finetune_run`, a `FinetuneRun`)
  from the model, tokenizer, loop, tf2 and finetune groups and the script's own flags, which
  it passes by the builder's argument names (max_seq_length, batch sizes, steps, warmup,
  optimizer, ...). A value the script passes replaces the group's (run_race.py's
  --num_keep_checkpoint is its keep_checkpoint_max)."""
  from albert.tasks.finetune import finetune_run  # pylint: disable=g-import-not-at-top
  shared = {}
  for group in (model_from_flags(), tokenizer_from_flags(), loop_from_flags(),
                tf2_from_flags(), finetune_from_flags()):
    shared.update(dataclasses.asdict(group))
  return finetune_run(**{**shared, **script_flags})


def prepare_only_splits(do_train: bool, do_eval: bool, do_predict: bool,
                        default: Sequence[str] = ("train", "eval")) -> Tuple[str, ...]:
  """The splits `--prepare_only` builds: those the --do_* flags name, else `default`."""
  named = tuple(split for split, wanted in (("train", do_train), ("eval", do_eval),
                                            ("predict", do_predict)) if wanted)
  return named or tuple(default)
