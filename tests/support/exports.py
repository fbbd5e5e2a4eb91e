"""The session's tiny TF-Hub export and the helpers its tests share (tests/export, tests/model)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Dict

import numpy as np
import tensorflow as tf

from albert import checkpoint
from albert.config import AlbertConfig
from albert.export import encoder as export
from albert.export import job as export_job
from albert.models import build_encoder_model
from conftest import GOLDEN, MODEL_A, randomize

TINY = AlbertConfig.from_json_file(os.path.join(MODEL_A, "albert_config.json")).replace(
    hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


SPM_MODEL = os.path.join(GOLDEN, "spm.model")


GOLDEN_CHECKPOINT = os.path.join(MODEL_A, "sharp", "model.ckpt-0")  # the original's, kernels x10


@dataclasses.dataclass(frozen=True)
class TinyExport:
  albert_directory: str  # albert_config.json, 30k-clean.model, model.ckpt-0.*
  checkpoint: str
  export_path: str
  preprocessing_path: str
  result: export_job.HubExportResult


_CACHE: Dict[str, TinyExport] = {}


def write_albert_directory(directory: str, config: AlbertConfig = TINY,
                           source: str = GOLDEN_CHECKPOINT) -> str:
  """A folder laid out like a released tarball, with a checkpoint of the original release.

  The golden checkpoint was written by the original TF1 code (LAMB slots, global_step).
  """
  os.makedirs(directory, exist_ok=True)
  config.to_json_file(os.path.join(directory, "albert_config.json"))
  shutil.copyfile(SPM_MODEL, os.path.join(directory, "30k-clean.model"))
  for suffix in (".index", ".data-00000-of-00001"):
    shutil.copyfile(source + suffix, os.path.join(directory, "model.ckpt-0" + suffix))
  return os.path.join(directory, "model.ckpt-0")


def write_encoder_only_directory(directory: str, config: AlbertConfig = TINY) -> str:
  """Like `write_albert_directory`, but a checkpoint without the pretraining heads."""
  os.makedirs(directory, exist_ok=True)
  config.to_json_file(os.path.join(directory, "albert_config.json"))
  shutil.copyfile(SPM_MODEL, os.path.join(directory, "30k-clean.model"))
  model = build_encoder_model(config)
  model({k: tf.zeros([1, 4], tf.int32) for k in model.input})
  randomize(model, seed=7)
  return checkpoint.save_tf1_checkpoint(model, os.path.join(directory, "model.ckpt-best"),
                                        update_checkpoint_state=False)


def tiny_export(tmp_path_factory) -> TinyExport:
  """The session's export of the golden model (written on first use)."""
  if "tiny" not in _CACHE:
    base = str(tmp_path_factory.mktemp("tiny_export"))
    albert_directory = os.path.join(base, "albert_tiny")
    prefix = write_albert_directory(albert_directory)
    config = export.ExportConfig.from_albert_directory(
        albert_directory, os.path.join(base, "hub"), checkpoint_name="model.ckpt-0",
        preprocessing_export_path=os.path.join(base, "hub_preprocess"),
        preprocessing_seq_length=16)
    result = export_job.export(config, log=lambda message: None)
    _CACHE["tiny"] = TinyExport(albert_directory, prefix, result.export_path,
                                result.preprocessing_path, result)
  return _CACHE["tiny"]


def reference_models(prefix: str) -> export.ExportModels:
  """In-memory models with the exported weights."""
  models = export.build_export_models(TINY)
  export.load_export_weights(models, prefix)
  return models


def inputs(batch: int, seq: int, seed: int = 0) -> Dict[str, np.ndarray]:
  x = export.sample_inputs(TINY, batch_size=batch, seq_length=seq, seed=seed)
  return {k: x[k] for k in export.HUB_INPUTS}


def max_diff(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
