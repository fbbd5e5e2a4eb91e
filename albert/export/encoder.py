"""SavedModel / TF-Hub export of ALBERT: the TF2 counterpart of the original `export_to_tfhub.py`.

This module owns writing an encoder, read from a TF1-name checkpoint (ours or a released one),
as a TF2 SavedModel that follows the published TF-Hub ALBERT encoder API, and converting it
to TFLite. Loading a handle back is `albert.hub`; the preprocessing SavedModel is
`albert.export.preprocessing`.

The SavedModel (see docs/export.md for `saved_model_cli show` of one):

* `__call__(inputs, training)`: a dict of int32 [B,S] `input_word_ids`, `input_mask`,
  `input_type_ids` -> `sequence_output` [B,S,H], `pooled_output` [B,H], `encoder_outputs`
  (list of [B,S,H], one per layer and inner group), `default` (= pooled). Traced for
  `training=True` (dropout) and `False`; any B and S (S <= max_position_embeddings).
  `variables`, `trainable_variables` (the backbone `bert/...`, original names),
  `regularization_losses` (empty).
* `.mlm`: the same inputs plus `masked_lm_positions` [B,P] -> the outputs above and
  `mlm_logits` [B,P,V] (`cls/predictions`). `.sop`: `sop_logits` [B,2] (`cls/seq_relationship`).
* assets: the SentencePiece model (attribute `sp_model_file`; a WordPiece `vocab_file` for
  models without one) and `albert_config.json` (attribute `albert_config_file`);
  `do_lower_case` (a bool variable, outside `variables`).
* signatures: `serving_default` and `encoder` (TF-Hub input names; `encoder_outputs` stacked to
  [L,B,S,H]), `masked_lm` (+ `masked_lm_positions` -> `mlm_logits` [B,P,V]), and the original
  module's `tokens`, `mlm`, `sop`, `tokenization_info` with its input names `input_ids`,
  `input_mask`, `segment_ids`, `mlm_positions` (its `mlm_logits` is [B*P,V], as it was).

The job that checks and writes everything (the encoder, the preprocessing model, the TFLite
file; each atomically, verified after reloading, kept on a rerun when made from the same inputs)
is `albert.export.job.export`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
import tf_keras

from albert import checkpoint as ckpt
from albert import files
from albert import noise
from albert.config import AlbertConfig
from albert.errors import ExportError
from albert.heads import MaskedLMHead, SentenceOrderHead
from albert.hub import CONFIG_ASSET  # the asset name the hub reader looks for
from albert.modeling import AlbertBackbone

HUB_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
ORIGINAL_INPUTS = ("input_ids", "input_mask", "segment_ids")
DEFAULT_SPM_NAME = "30k-clean.model"
VERIFY_TOLERANCE = 1e-5  # relative to the largest output magnitude (at least 1)


# -------------------------------------------------------------------------------- configs
@dataclasses.dataclass(frozen=True)
class ExportConfig:
  """What to export and where.

  Attributes:
    albert_config_file: the model's `albert_config.json`.
    checkpoint: a TF1-name checkpoint prefix (or a directory with a `checkpoint` file).
    export_path: the SavedModel directory to write (must not exist unless `overwrite`).
    sp_model_file: the SentencePiece model, stored as the asset `sp_model_file`.
    vocab_file: a WordPiece vocabulary, stored as the asset `vocab_file` (models without a
      SentencePiece model, such as the Chinese releases).
    do_lower_case: stored with the export (the original's `tokenization_info`).
    with_mlm: export the `.mlm` sub-object and the `masked_lm` / `mlm` signatures (needs
      `cls/predictions/*` in the checkpoint).
    with_sop: export `.sop` and the `sop` signature (needs `cls/seq_relationship/*`).
    overwrite: replace an existing `export_path` (atomically).
    verify: load the written SavedModel and compare it with the in-memory model.
    preprocessing_export_path: also write the preprocessing SavedModel there.
    preprocessing_seq_length: its default sequence length.
    tflite_path: also convert the encoder to TFLite (builtin ops only) and check it.
    tflite_seq_length: the fixed sequence length of the TFLite model (None: free, see
      `convert_to_tflite`); the batch size is free.
  """

  albert_config_file: str
  checkpoint: str
  export_path: str
  sp_model_file: Optional[str] = None
  vocab_file: Optional[str] = None
  do_lower_case: bool = True
  with_mlm: bool = True
  with_sop: bool = True
  overwrite: bool = False
  verify: bool = True
  preprocessing_export_path: Optional[str] = None
  preprocessing_seq_length: int = 128
  tflite_path: Optional[str] = None
  tflite_seq_length: Optional[int] = 128

  @classmethod
  def from_albert_directory(cls, albert_directory: Optional[str], export_path: str,
                            checkpoint_name: str = "model.ckpt-best",
                            albert_config_file: Optional[str] = None,
                            checkpoint: Optional[str] = None,
                            sp_model_file: Optional[str] = None, **kwargs) -> "ExportConfig":
    """Paths from a folder laid out like the released tarballs; explicit paths win.

    The folder holds `albert_config.json`, `30k-clean.model` and `<checkpoint_name>.*`.
    """
    from albert.hf.folder import is_hf_folder  # pylint: disable=g-import-not-at-top
    for given, flag in ((albert_directory, "--albert_directory"), (checkpoint, "--init_checkpoint")):
      if given and is_hf_folder(given) and not (flag == "--init_checkpoint" and albert_config_file):
        raise ExportError(f"{flag}={given} is a Hugging Face folder: convert it first "
                          f"(python convert_checkpoint.py --input={given} --output_dir=DIR), "
                          "then export with --albert_directory=DIR")
    if albert_directory:
      albert_config_file = albert_config_file or os.path.join(albert_directory, CONFIG_ASSET)
      checkpoint = checkpoint or os.path.join(albert_directory, checkpoint_name)
      default_spm = os.path.join(albert_directory, DEFAULT_SPM_NAME)
      if sp_model_file is None and not kwargs.get("vocab_file") and files.exists(default_spm):
        sp_model_file = default_spm
    if not albert_config_file or not checkpoint:
      raise ExportError("give --albert_directory, or both --albert_config_file and "
                        "--init_checkpoint")
    return cls(albert_config_file=albert_config_file, checkpoint=checkpoint,
               export_path=export_path, sp_model_file=sp_model_file, **kwargs)

  def check(self) -> None:
    """Settings, input files and output locations; reads no checkpoint, writes nothing."""
    if not self.export_path:
      raise ExportError("no export path given (--export_path)")
    if not files.isfile(self.albert_config_file) and "://" not in self.albert_config_file:
      raise ExportError(f"albert config file not found: {self.albert_config_file}")
    if not self.sp_model_file and not self.vocab_file:
      raise ExportError("the export needs the SentencePiece model (--spm_model_file, or "
                        f"{DEFAULT_SPM_NAME} in --albert_directory) or a WordPiece vocab_file")
    for path in (self.sp_model_file, self.vocab_file):
      if path and not tf.io.gfile.exists(path):
        raise ExportError(f"tokenizer file not found: {path}")
    if self.preprocessing_export_path and not self.sp_model_file:
      raise ExportError("the preprocessing model needs a SentencePiece model (--spm_model_file)")
    if self.preprocessing_export_path and self.preprocessing_seq_length < 3:
      raise ExportError(f"--preprocessing_seq_length={self.preprocessing_seq_length} must be at "
                        "least 3 ([CLS] token [SEP])")
    if self.tflite_seq_length is not None and self.tflite_seq_length < 1:
      raise ExportError(f"--tflite_seq_length={self.tflite_seq_length} must be positive (0: free)")
    outputs = [("--export_path", self.export_path, True),
               ("--preprocessing_export_path", self.preprocessing_export_path, True),
               ("--tflite_path", self.tflite_path, False)]
    seen = {}
    for flag, path, is_directory in outputs:
      if not path:
        continue
      files.check_output_file(path, flag, directory_ok=is_directory)
      if not is_directory and files.isdir(path):
        raise ExportError(f"{flag}={path} is a directory; name the .tflite file")
      key = path if files.is_remote(path) else os.path.abspath(path)
      if key in seen:
        raise ExportError(f"{flag} and {seen[key]} are the same path {path}")
      seen[key] = flag


def format_diffs(diffs: Dict[str, float]) -> str:
  return ", ".join(f"{k} {v:.2e}" for k, v in sorted(diffs.items()))


# --------------------------------------------------------------------------------- models
@dataclasses.dataclass
class ExportModels:
  """The functional models of an export, sharing one backbone `bert`."""

  config: AlbertConfig
  core: tf_keras.Model  # TF-Hub inputs -> sequence_output, pooled_output, encoder_outputs, default
  mlm: Optional[tf_keras.Model] = None  # + masked_lm_positions -> ... + mlm_logits
  sop: Optional[tf_keras.Model] = None  # -> ... + sop_logits

  def all_variables(self) -> List[tf.Variable]:
    seen, result = set(), []
    for model in (self.core, self.mlm, self.sop):
      for var in (model.weights if model is not None else []):
        if id(var) not in seen:
          seen.add(id(var))
          result.append(var)
    return result


def build_export_models(config: AlbertConfig, with_mlm: bool = True,
                        with_sop: bool = True) -> ExportModels:
  """The encoder with TF-Hub input names, and the MLM / SOP models on the same backbone."""
  inputs = {name: tf_keras.Input(shape=(None,), dtype=tf.int32, name=name) for name in HUB_INPUTS}
  bert = AlbertBackbone(config, name="bert")
  encoded = bert(inputs)
  outputs = {k: encoded[k] for k in ("sequence_output", "pooled_output", "encoder_outputs")}
  core = tf_keras.Model(inputs, {**outputs, "default": encoded["pooled_output"]},
                        name="albert_encoder")
  models = ExportModels(config=config, core=core)
  if with_mlm:
    positions = tf_keras.Input(shape=(None,), dtype=tf.int32, name="masked_lm_positions")
    head = MaskedLMHead(config, bert.embeddings, name="cls/predictions")
    models.mlm = tf_keras.Model(
        {**inputs, "masked_lm_positions": positions},
        {**outputs, "mlm_logits": head(encoded["sequence_output"], positions)}, name="mlm")
  if with_sop:
    head = SentenceOrderHead(config, name="cls/seq_relationship")
    models.sop = tf_keras.Model(inputs, {**outputs, "sop_logits": head(encoded["pooled_output"])},
                                name="sop")
  return models


def load_export_weights(models: ExportModels, checkpoint_path: str) -> ckpt.LoadReport:
  """Every variable of the export from the checkpoint; a missing one is an error."""
  try:
    return ckpt.load_tf1_checkpoint(models.all_variables(), checkpoint_path, require_all=True)
  except ckpt.CheckpointError as e:
    hint = ""
    if "cls/predictions" in str(e):
      hint += " Without pretraining heads in the checkpoint, export with --nowith_mlm."
    if "cls/seq_relationship" in str(e):
      hint += " Without the SOP head, export with --nowith_sop."
    if not hint:
      raise  # a checkpoint that cannot be read: its own error, naming it
    raise ExportError(f"{e}{hint}") from e


# ------------------------------------------------------------------------------ signatures
def _spec(name: str) -> tf.TensorSpec:
  return tf.TensorSpec([None, None], tf.int32, name=name)


def _hub_inputs(input_ids, input_mask, segment_ids) -> Dict[str, tf.Tensor]:
  return {"input_word_ids": input_ids, "input_mask": input_mask, "input_type_ids": segment_ids}


def make_signatures(models: ExportModels, tokenizer_asset: tf.saved_model.Asset,
                    do_lower_case: bool) -> Dict[str, tf.types.experimental.ConcreteFunction]:
  """The named serving signatures (see the module docstring)."""
  core, mlm, sop = models.core, models.mlm, models.sop

  @tf.function(input_signature=[_spec(n) for n in HUB_INPUTS])
  def encoder(input_word_ids, input_mask, input_type_ids):
    out = core(_hub_inputs(input_word_ids, input_mask, input_type_ids), training=False)
    return {"sequence_output": out["sequence_output"], "pooled_output": out["pooled_output"],
            "default": out["default"], "encoder_outputs": tf.stack(out["encoder_outputs"])}

  @tf.function(input_signature=[_spec(n) for n in ORIGINAL_INPUTS])
  def tokens(input_ids, input_mask, segment_ids):
    out = core(_hub_inputs(input_ids, input_mask, segment_ids), training=False)
    return {"sequence_output": out["sequence_output"], "pooled_output": out["pooled_output"]}

  @tf.function(input_signature=[])
  def tokenization_info():
    return {"vocab_file": tokenizer_asset.asset_path,
            "do_lower_case": tf.constant(do_lower_case)}

  signatures = {"serving_default": encoder.get_concrete_function(),
                "encoder": encoder.get_concrete_function(),
                "tokens": tokens.get_concrete_function(),
                "tokenization_info": tokenization_info.get_concrete_function()}
  if mlm is not None:

    @tf.function(input_signature=[_spec(n) for n in HUB_INPUTS + ("masked_lm_positions",)])
    def masked_lm(input_word_ids, input_mask, input_type_ids, masked_lm_positions):
      out = mlm({**_hub_inputs(input_word_ids, input_mask, input_type_ids),
                 "masked_lm_positions": masked_lm_positions}, training=False)
      return {k: out[k] for k in ("sequence_output", "pooled_output", "mlm_logits")}

    @tf.function(input_signature=[_spec(n) for n in ORIGINAL_INPUTS + ("mlm_positions",)])
    def original_mlm(input_ids, input_mask, segment_ids, mlm_positions):
      out = mlm({**_hub_inputs(input_ids, input_mask, segment_ids),
                 "masked_lm_positions": mlm_positions}, training=False)
      logits = tf.reshape(out["mlm_logits"], [-1, models.config.vocab_size])  # [B*P,V]
      return {"sequence_output": out["sequence_output"], "pooled_output": out["pooled_output"],
              "mlm_logits": logits}

    signatures["masked_lm"] = masked_lm.get_concrete_function()
    signatures["mlm"] = original_mlm.get_concrete_function()
  if sop is not None:

    @tf.function(input_signature=[_spec(n) for n in ORIGINAL_INPUTS])
    def original_sop(input_ids, input_mask, segment_ids):
      out = sop(_hub_inputs(input_ids, input_mask, segment_ids), training=False)
      return {"sequence_output": out["sequence_output"], "pooled_output": out["pooled_output"],
              "sop_log_probs": tf.nn.log_softmax(out["sop_logits"], axis=-1)}

    signatures["sop"] = original_sop.get_concrete_function()
  return signatures


def attach_hub_attributes(models: ExportModels, assets: Dict[str, str],
                          do_lower_case: bool) -> tf.saved_model.Asset:
  """Sub-objects, assets and `do_lower_case` on the core model; returns the tokenizer asset.

  The sub-models and the flag are kept out of the core model's `variables` (as tf-models'
  exporter does), so that a `hub.KerasLayer` of the export holds exactly the encoder's weights.
  """
  core = models.core
  core._auto_track_sub_layers = False  # pylint: disable=protected-access
  if models.mlm is not None:
    core.mlm = models.mlm
  if models.sop is not None:
    core.sop = models.sop
  core.albert_config_file = tf.saved_model.Asset(assets["config"])
  if "sp_model_file" in assets:
    core.sp_model_file = tf.saved_model.Asset(assets["sp_model_file"])
    tokenizer_asset = core.sp_model_file
  else:
    core.vocab_file = tf.saved_model.Asset(assets["vocab_file"])
    tokenizer_asset = core.vocab_file
  # A Keras attribute would add the flag to `variables`; track it as a plain child instead.
  flag = tf.Variable(do_lower_case, trainable=False, name="do_lower_case")
  object.__setattr__(core, "do_lower_case", flag)
  # pylint: disable-next=protected-access
  core._track_trackable(flag, name="do_lower_case", overwrite=True)
  return tokenizer_asset


# Notes of the TFLite converter and runtime on their own internal options, printed on every
# conversion; nothing a user can act on.
TFLITE_NOISE = ("All log messages before absl::InitializeLog()", "Ignored output_format.",
                "Ignored drop_control_dependency.", "MLIR V1 optimization pass is not enabled",
                "Created TensorFlow Lite XNNPACK delegate")


# ---------------------------------------------------------------------------- verification
def sample_inputs(config: AlbertConfig, batch_size: int = 3, seq_length: int = 11,
                  num_predictions: int = 4, seed: int = 0) -> Dict[str, np.ndarray]:
  """Random int32 encoder inputs (with padding) and masked positions, for checks."""
  rng = np.random.RandomState(seed)
  seq_length = min(seq_length, config.max_position_embeddings)
  ids = rng.randint(0, config.vocab_size, size=(batch_size, seq_length)).astype(np.int32)
  lengths = rng.randint(max(1, seq_length // 2), seq_length + 1, size=batch_size)
  lengths[0] = seq_length
  mask = (np.arange(seq_length)[None, :] < lengths[:, None]).astype(np.int32)
  types = ((np.arange(seq_length)[None, :] >= lengths[:, None] // 2) * mask).astype(np.int32)
  types = np.minimum(types, config.type_vocab_size - 1).astype(np.int32)
  positions = np.stack([rng.choice(n, size=num_predictions) for n in lengths]).astype(np.int32)
  return {"input_word_ids": ids * mask, "input_mask": mask, "input_type_ids": types,
          "masked_lm_positions": positions}


def _max_diff(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def verify_export(directory: str, models: ExportModels) -> Dict[str, float]:
  """Loads the SavedModel and compares every output with the in-memory models.

  Returns max |diff| per output; raises ExportError above VERIFY_TOLERANCE (relative).
  """
  loaded = tf.saved_model.load(directory)
  x = sample_inputs(models.config)
  hub_x = {k: tf.constant(x[k]) for k in HUB_INPUTS}
  original_x = dict(zip(ORIGINAL_INPUTS, (hub_x[k] for k in HUB_INPUTS)))
  want = models.core(hub_x, training=False)
  got = loaded(hub_x, training=False)
  signature = loaded.signatures["serving_default"](**hub_x)
  diffs = {"sequence_output": _max_diff(got["sequence_output"], want["sequence_output"]),
           "pooled_output": _max_diff(got["pooled_output"], want["pooled_output"]),
           "encoder_outputs": _max_diff(np.stack(got["encoder_outputs"]),
                                        np.stack(want["encoder_outputs"])),
           "signature serving_default": _max_diff(signature["sequence_output"],
                                                  want["sequence_output"]),
           "signature tokens": _max_diff(loaded.signatures["tokens"](**original_x)
                                         ["pooled_output"], want["pooled_output"])}
  scale = max(1.0, float(np.max(np.abs(want["sequence_output"]))))
  if models.mlm is not None:
    positions = tf.constant(x["masked_lm_positions"])
    want_mlm = models.mlm({**hub_x, "masked_lm_positions": positions}, training=False)
    got_mlm = loaded.mlm({**hub_x, "masked_lm_positions": positions}, training=False)
    diffs["mlm_logits"] = _max_diff(got_mlm["mlm_logits"], want_mlm["mlm_logits"])
    scale = max(scale, float(np.max(np.abs(want_mlm["mlm_logits"]))))
  worst = max(diffs.values())
  if worst > VERIFY_TOLERANCE * scale:
    raise ExportError(f"the SavedModel written to {directory} does not reproduce the model "
                      f"(max |diff| {worst:.3g}): {format_diffs(diffs)}")
  return diffs


# ---------------------------------------------------------------------------------- TFLite
def tflite_function(loaded, seq_length: Optional[int]) -> tf.types.experimental.ConcreteFunction:
  """The encoder for TFLite: sequence_output and pooled_output, free batch size.

  `seq_length` None leaves the sequence length free too.
  """
  spec = lambda name: tf.TensorSpec([None, seq_length], tf.int32, name=name)  # noqa: E731

  @tf.function(input_signature=[spec(n) for n in HUB_INPUTS])
  def encoder(input_word_ids, input_mask, input_type_ids):
    out = loaded({"input_word_ids": input_word_ids, "input_mask": input_mask,
                  "input_type_ids": input_type_ids}, training=False)
    return {"sequence_output": out["sequence_output"], "pooled_output": out["pooled_output"]}

  return encoder.get_concrete_function()


def convert_to_tflite(saved_model_dir: str, tflite_path: str,
                      seq_length: Optional[int] = 128) -> str:
  """Converts an exported encoder to TFLite with builtin ops only; returns the path written.

  With a fixed `seq_length` (the default) only the batch size is free; `seq_length=None`
  leaves the sequence length free as well. A model that needs an op outside TFLite's builtins
  raises an ExportError naming it.
  """
  loaded = tf.saved_model.load(saved_model_dir)
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [tflite_function(loaded, seq_length)], loaded)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  try:
    with noise.stderr_without(*TFLITE_NOISE):
      blob = converter.convert()
  except Exception as e:  # the converter raises its own ConverterError
    lines = [line for line in str(e).splitlines() if "neither a custom op nor a flex op" in line]
    hint = (" (a dynamic sequence length; give a fixed one with --tflite_seq_length)"
            if seq_length is None else "")
    raise ExportError(f"TFLite conversion of {saved_model_dir} with builtin ops only failed"
                      f"{hint}: {(lines[0] if lines else str(e))[-600:]}") from e
  return files.write_bytes(tflite_path, blob)


def check_tflite(tflite_path: str, saved_model_dir: str, seq_length: Optional[int] = 128,
                 batch_size: int = 2) -> Dict[str, float]:
  """Max |diff| of the TFLite model vs the SavedModel on sample inputs (float32 outputs).

  A free sequence length (`seq_length` None) is checked at 7 and 19.
  """
  loaded = tf.saved_model.load(saved_model_dir)
  config = AlbertConfig.from_json_file(os.path.join(saved_model_dir, "assets", CONFIG_ASSET))
  runner = interpreter(tflite_path).get_signature_runner()
  diffs = {"sequence_output": 0.0, "pooled_output": 0.0}
  for length in ([seq_length] if seq_length else [7, 19]):
    x = sample_inputs(config, batch_size=batch_size, seq_length=length)
    x = {k: x[k] for k in HUB_INPUTS}
    got = runner(**x)
    want = loaded({k: tf.constant(v) for k, v in x.items()}, training=False)
    for key in diffs:
      diffs[key] = max(diffs[key], _max_diff(got[key], want[key]))
  return diffs


def interpreter(tflite_path: str, num_threads: Optional[int] = None):
  """tf.lite.Interpreter without its deprecation warning and its XNNPACK start-up note
  (`num_threads` None: TFLite's default)."""
  with warnings.catch_warnings(), noise.stderr_without(*TFLITE_NOISE):
    warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
    interpreter = tf.lite.Interpreter(model_path=tflite_path, num_threads=num_threads)
    interpreter.allocate_tensors()
  return interpreter
