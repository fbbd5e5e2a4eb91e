"""The export_to_tfhub.py job: everything checked first, then each part written or kept.

`export(ExportConfig, log)` writes the encoder SavedModel of `albert.export.encoder` (checked
against the in-memory model after reloading), the preprocessing SavedModel
(`albert.export.preprocessing`) and the TFLite file, each atomically, and returns a
`HubExportResult`. Every check (config, checkpoint complete and readable, vocabulary
against the config, output locations) runs before anything is written. Each SavedModel records
what made it (`assets.extra/albert_export.json`, `albert.export.state`): rerunning a command
that stopped halfway keeps the parts already done from the same inputs (an existing TFLite file
is kept when it has the sequence length asked for and reproduces the encoder) and writes the
rest; an existing part made from other inputs needs `--overwrite`. Leftovers of a killed run are
removed; faults of TensorFlow's writers are named (`OutputError`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
from typing import Callable, Dict, Iterator, List, Optional

import tensorflow as tf

from albert import checkpoint as ckpt
from albert import files, noise
from albert.config import AlbertConfig
from albert.errors import ORDINARY_ERRNOS, ExportError, output_error
from albert.export import state as export_state
from albert.export.encoder import (CONFIG_ASSET, ExportConfig, ExportModels,
                                   attach_hub_attributes, build_export_models, check_tflite,
                                   convert_to_tflite, format_diffs, interpreter,
                                   load_export_weights, make_signatures, verify_export)

TFLITE_KEEP_TOLERANCE = 1e-3  # an existing TFLite file within this of the encoder is kept


@dataclasses.dataclass
class HubExportResult:
  """What export_to_tfhub.py's job wrote (or kept) and measured: the encoder, the
  preprocessing model, the TFLite file (a fine-tuned export's is `versioned.ExportResult`)."""

  export_path: str
  load_report: Optional[ckpt.LoadReport]  # None when the encoder was kept from an earlier run
  signatures: List[str]
  max_abs_diff: Dict[str, float] = dataclasses.field(default_factory=dict)
  preprocessing_path: Optional[str] = None
  tflite_path: Optional[str] = None
  tflite_max_abs_diff: Dict[str, float] = dataclasses.field(default_factory=dict)
  kept: List[str] = dataclasses.field(default_factory=list)  # parts done by an earlier run
  removed: List[str] = dataclasses.field(default_factory=list)  # leftovers of killed runs

  def format(self) -> str:
    lines = [f"Removed the leftover of an interrupted export: {p}" for p in self.removed]
    if self.export_path in self.kept:
      lines.append(f"Kept {self.export_path}: exported earlier from the same checkpoint, config "
                   "and tokenizer (--overwrite writes it again)")
    else:
      lines += [f"Exported {self.export_path}", "  " + self.load_report.format().replace(
          "\n", "\n  "), f"  signatures: {', '.join(self.signatures)}"]
    if self.max_abs_diff:
      lines.append("  reloaded vs in-memory, max |diff|: " + format_diffs(self.max_abs_diff))
    if self.preprocessing_path in self.kept:
      lines.append(f"Kept the preprocessing model {self.preprocessing_path}: exported earlier "
                   "from the same SentencePiece model and settings")
    elif self.preprocessing_path:
      lines.append(f"Exported the preprocessing model {self.preprocessing_path}")
    if self.tflite_path:
      verb = "Kept" if self.tflite_path in self.kept else "Wrote"
      lines.append(f"{verb} {self.tflite_path}; TFLite vs SavedModel, max |diff|: "
                   + format_diffs(self.tflite_max_abs_diff))
    return "\n".join(lines)


def export(config: ExportConfig, log: Callable[[str], None] = print) -> HubExportResult:
  """Writes the encoder SavedModel (and, if asked, preprocessing and TFLite); see the module.

  Everything is checked before anything is written: settings, input files, output locations,
  what already exists there (a part exported earlier from the same inputs is kept, see
  `albert.export.state`; another one needs `overwrite`) and, when the encoder is written, every
  variable of the checkpoint. Leftovers of killed exports beside the outputs are removed.
  """
  config.check()
  albert_config = AlbertConfig.from_json_file(config.albert_config_file)
  if config.sp_model_file:
    check_vocabulary(albert_config, config.sp_model_file)
  if config.tflite_path and config.tflite_seq_length:
    albert_config.check_sequence_length(config.tflite_seq_length, "--tflite_seq_length",
                                        config.albert_config_file, error=ExportError)
  prefix = ckpt.resolve_checkpoint(config.checkpoint)
  record = encoder_record(config, prefix)  # hashes the checkpoint files once
  encoder_plan = export_state.write_or_keep(config.export_path, record, config.overwrite,
                                            "--export_path",
                                            complete=export_is_complete(config.export_path))
  preprocessing_plan = None
  if config.preprocessing_export_path:
    preprocessing_plan = export_state.write_or_keep(
        config.preprocessing_export_path, preprocessing_record(config), config.overwrite,
        "--preprocessing_export_path",
        complete=tf.io.gfile.exists(os.path.join(config.preprocessing_export_path,
                                                 "saved_model.pb")))
  tflite_exists = bool(config.tflite_path) and tf.io.gfile.exists(config.tflite_path)
  if tflite_exists and not config.overwrite and encoder_plan == export_state.WRITE:
    raise ExportError(f"--tflite_path={config.tflite_path} already exists, and the encoder it "
                      f"would be checked against is exported anew to {config.export_path}; "
                      "remove it or pass --overwrite")

  result = HubExportResult(export_path=config.export_path, load_report=None, signatures=[],
                        preprocessing_path=config.preprocessing_export_path)
  models = None
  if encoder_plan == export_state.WRITE:
    models = build_export_models(albert_config, config.with_mlm, config.with_sop)
    result.load_report = load_export_weights(models, prefix)  # every variable read, or an error
    log(result.load_report.format())
  for path in (config.export_path, config.preprocessing_export_path, config.tflite_path):
    if path and not files.is_remote(path):
      result.removed += files.remove_stale_siblings(path)

  if models is not None:
    result.export_path = write_encoder(config, models, record, result)
  else:
    result.kept.append(config.export_path)
  if preprocessing_plan == export_state.WRITE:
    result.preprocessing_path = _write_preprocessing(config)
  elif preprocessing_plan == export_state.KEEP:
    result.kept.append(config.preprocessing_export_path)
  if config.tflite_path:
    _write_or_check_tflite(config, result, keep=tflite_exists and not config.overwrite)
  return result


def encoder_record(config: ExportConfig, prefix: str) -> Dict[str, object]:
  """What makes the encoder export: config, checkpoint files, tokenizer, settings."""
  inputs = {"albert_config_file": config.albert_config_file,
            "sp_model_file": config.sp_model_file, "vocab_file": config.vocab_file}
  for path in export_state.checkpoint_files(prefix):
    inputs["checkpoint" + path[len(prefix):]] = path
  return export_state.make_record("encoder", inputs, {
      "do_lower_case": config.do_lower_case, "with_mlm": config.with_mlm,
      "with_sop": config.with_sop})


def preprocessing_record(config: ExportConfig) -> Dict[str, object]:
  return export_state.make_record("preprocessing", {"sp_model_file": config.sp_model_file}, {
      "do_lower_case": config.do_lower_case,
      "preprocessing_seq_length": config.preprocessing_seq_length})


def write_encoder(config: ExportConfig, models: ExportModels, record: Dict[str, object],
                  result: HubExportResult) -> str:
  """Writes the encoder SavedModel atomically (checked, with `record`); returns its path."""
  sources = {"config": (CONFIG_ASSET, config.albert_config_file)}
  if config.sp_model_file:
    sources["sp_model_file"] = (os.path.basename(config.sp_model_file), config.sp_model_file)
  else:
    sources["vocab_file"] = (os.path.basename(config.vocab_file), config.vocab_file)

  def write(directory: str) -> None:
    with files.staged_files(dict(sources.values())) as staged:
      assets = {key: staged[name] for key, (name, _) in sources.items()}
      tokenizer_asset = attach_hub_attributes(models, assets, config.do_lower_case)
      signatures = make_signatures(models, tokenizer_asset, config.do_lower_case)
      with _quiet_keras_save():
        models.core.save(directory, include_optimizer=False, save_format="tf",
                         signatures=signatures)
      result.signatures = sorted(signatures)
    check_export_layout(directory)
    if config.verify:
      result.max_abs_diff = verify_export(directory, models)
    export_state.write_record(directory, record)

  with _naming_write_faults(config.export_path):
    return files.write_directory(config.export_path, write, overwrite=config.overwrite)


def _write_preprocessing(config: ExportConfig) -> str:
  from albert.export import preprocessing  # pylint: disable=g-import-not-at-top
  record = preprocessing_record(config)
  with _naming_write_faults(config.preprocessing_export_path), _quiet_keras_save():
    return preprocessing.export_preprocessing(
        preprocessing.PreprocessingConfig(
            sp_model_file=config.sp_model_file, do_lower_case=config.do_lower_case,
            default_seq_length=config.preprocessing_seq_length),
        config.preprocessing_export_path, overwrite=config.overwrite,
        before_rename=lambda directory: export_state.write_record(directory, record))


def _write_or_check_tflite(config: ExportConfig, result: HubExportResult, keep: bool) -> None:
  """Converts the encoder to TFLite, or keeps an existing file that reproduces it."""
  if keep:
    diffs, problem = _tflite_matches(config.tflite_path, result.export_path,
                                     config.tflite_seq_length)
    if problem:
      raise ExportError(f"--tflite_path={config.tflite_path} already exists and {problem}; "
                        "remove it or pass --overwrite")
    result.tflite_path, result.tflite_max_abs_diff = config.tflite_path, diffs
    result.kept.append(config.tflite_path)
    return
  with _naming_write_faults(config.tflite_path):
    result.tflite_path = convert_to_tflite(result.export_path, config.tflite_path,
                                           config.tflite_seq_length)
  result.tflite_max_abs_diff = check_tflite(result.tflite_path, result.export_path,
                                            config.tflite_seq_length)


def _tflite_matches(tflite_path: str, saved_model_dir: str, seq_length: Optional[int]):
  """(max |diff| per output, None) if the file reproduces the SavedModel, else (_, why not)."""
  try:
    inputs = interpreter(tflite_path).get_input_details()
  except (ValueError, RuntimeError) as e:
    return {}, f"is not a TFLite model ({str(e).splitlines()[0][:200]})"
  length = int(inputs[0]["shape_signature"][1]) if inputs else None
  if (length if length and length > 0 else None) != seq_length:
    return {}, (f"has sequence length {length if length and length > 0 else 'free'}, not "
                f"{seq_length or 'free'} (--tflite_seq_length)")
  diffs = check_tflite(tflite_path, saved_model_dir, seq_length)
  if max(diffs.values()) > TFLITE_KEEP_TOLERANCE:
    return diffs, (f"does not reproduce the encoder of {saved_model_dir} (max |diff| "
                   f"{max(diffs.values()):.3g})")
  return diffs, None


def _quiet_keras_save():
  """tf_keras warns on every save that the (never compiled) model's metrics are not built."""
  return noise.python_logs_without("Compiled the loaded model, but the compiled metrics")


@contextlib.contextmanager
def _naming_write_faults(path: str) -> Iterator[None]:
  """Write failures (full disk, read-only, permissions) while writing the output `path`, from
  TensorFlow or Python, as OutputErrors that name `path` (not the temporary folder)."""
  try:
    yield
  except tf.errors.OpError as error:
    fault = files.tf_write_error(error, path)
    if fault is None:
      raise
    raise fault from None
  except OSError as error:
    temporary = error.filename is None or files.TEMP_MARK in str(error.filename)
    if not temporary or error.errno not in ORDINARY_ERRNOS or error.errno == errno.ENOENT:
      raise
    raise output_error(OSError(error.errno, os.strerror(error.errno), path)) from None


def export_is_complete(directory: str) -> bool:
  try:
    check_export_layout(directory)
  except ExportError:
    return False
  return True


def check_vocabulary(albert_config: AlbertConfig, sp_model_file: str) -> None:
  """Raises ExportError unless the SentencePiece model has `vocab_size` pieces."""
  from albert.tokenization import load_sp_model  # pylint: disable=g-import-not-at-top
  pieces = load_sp_model(sp_model_file).GetPieceSize()
  if pieces != albert_config.vocab_size:
    raise ExportError(f"the SentencePiece model {sp_model_file} has {pieces} pieces but the "
                      f"albert config says vocab_size {albert_config.vocab_size}: wrong model "
                      "or config?")


def check_export_layout(directory: str) -> None:
  """Raises ExportError unless `directory` has saved_model.pb, the variables and the assets."""
  expected = ["saved_model.pb", os.path.join("variables", "variables.index"),
              os.path.join("assets", CONFIG_ASSET)]
  missing = [p for p in expected if not tf.io.gfile.exists(os.path.join(directory, p))]
  if missing:
    raise ExportError(f"the export in {directory} is incomplete: missing {', '.join(missing)}")
