"""Loading an ALBERT encoder from a TF-Hub handle: what `--albert_hub_module_handle` does.

This module owns turning a handle (a local path, or a URL that tensorflow-hub resolves) into a
trainable encoder layer, and reading the tokenizer that goes with it:

* TF2 SavedModels (our `export_to_tfhub.py` exports, and the published TF2 ALBERT encoders
  such as `tensorflow/albert_en_base/3`) are wrapped in `hub.KerasLayer(trainable=...)`.
* The original TF1 hub modules (`google/albert_base/3` and the output of the original
  `export_to_tfhub.py`: a SavedModel whose `variables/` hold the original TF1 names, with
  `albert_config.json` and `30k-clean.model` among its assets) are read into our own
  `AlbertBackbone`. tensorflow-hub loads those only frozen; this makes them fine-tunable.

Both give a `HubEncoder`: called with a dict of int32 [B,S] ids (the original names
`input_ids`, `input_mask`, `segment_ids` or the TF-Hub names `input_word_ids`, `input_mask`,
`input_type_ids`; mask and segments default to ones and zeros), it returns `sequence_output`
[B,S,H], `pooled_output` [B,H], `encoder_outputs` (list) and `default` (= pooled). Its weights
keep the original TF1 names (`bert/...`) either way, so fine-tuned models still save TF1-name
checkpoints. Call `load_encoder` inside the distribution strategy's scope.

A handle that is neither, or an export that is incomplete or corrupted, raises
`HubHandleError` with a message saying what was found.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from typing import Any, Dict, List, Mapping, Optional

import tensorflow as tf
import tf_keras

from albert import checkpoint as ckpt
from albert import files
from albert.config import AlbertConfig
from albert.errors import HubHandleError
from albert.modeling import build_backbone, normalize_inputs

TF2 = "tf2_saved_model"
TF1 = "tf1_hub_module"
TF1_MARKER_VARIABLE = "bert/embeddings/word_embeddings"
CONFIG_ASSET = "albert_config.json"


@dataclasses.dataclass(frozen=True)
class HubModuleInfo:
  """What a handle holds, found without loading it.

  Attributes:
    handle: as given.
    path: the resolved local (or gfile) directory.
    format: `TF2` ("tf2_saved_model") or `TF1` ("tf1_hub_module").
    albert_config: from `assets/albert_config.json` (or an explicit file); None for the
      published TF2 encoders, which carry none.
    sp_model_file, vocab_file: the tokenizer asset found in `assets/`, if any.
    do_lower_case: as stored with the module (our `do_lower_case`, or the original's
      `tokenization_info` signature); None if it does not say.
  """

  handle: str
  path: str
  format: str
  albert_config: Optional[AlbertConfig] = None
  sp_model_file: Optional[str] = None
  vocab_file: Optional[str] = None
  do_lower_case: Optional[bool] = None


# ---------------------------------------------------------------------------- resolution
def resolve_handle(handle: str) -> str:
  """A local path as is (absolute); a URL through `tensorflow_hub.resolve` (download + cache)."""
  handle = os.fspath(handle)
  is_url = re.match(r"^[a-z][a-z0-9+.-]*://", handle) is not None
  if is_url and not handle.startswith(("gs://", "file://")):
    import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
    try:
      return hub.resolve(handle)
    except Exception as e:  # network, HTTP and format errors of tensorflow_hub
      raise HubHandleError(f"tensorflow_hub could not resolve the hub handle {handle!r}: "
                           f"{e}") from e
  path = handle[len("file://"):] if handle.startswith("file://") else handle
  if not is_url:
    path = os.path.abspath(path)
  if not tf.io.gfile.exists(path):
    raise HubHandleError(f"hub handle {handle!r} not found{_interrupted_note(path)}")
  if not tf.io.gfile.isdir(path):
    raise HubHandleError(f"hub handle {handle!r} is a file; a hub module is a directory (a "
                         "SavedModel with saved_model.pb and variables/)")
  return path


def _interrupted_note(path: str) -> str:
  leftovers = sorted(glob.glob(glob.escape(path) + ".tmp-*")) if "://" not in path else []
  if leftovers:
    return (f"; {leftovers[0]} looks like the temporary directory of an export that was "
            "interrupted: run export_to_tfhub.py again")
  return ""


# ------------------------------------------------------------------------------ inspection
def _listing(path: str) -> str:
  names = sorted(tf.io.gfile.listdir(path))
  shown = ", ".join(n.rstrip("/") for n in names[:8]) + (" ..." if len(names) > 8 else "")
  return shown or "nothing (empty directory)"


def _read_saved_model(path: str):
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  pb = os.path.join(path, "saved_model.pb")
  if not tf.io.gfile.exists(pb):
    names = set(n.rstrip("/") for n in tf.io.gfile.listdir(path))
    if names & {CONFIG_ASSET} or any(n.endswith(".index") for n in names):
      raise HubHandleError(
          f"{path} looks like a checkpoint directory (albert_config.json / *.index), not a hub "
          "module: fine-tune from it with --init_checkpoint and --albert_config_file, or "
          "export it with export_to_tfhub.py")
    if "variables" in names:
      raise HubHandleError(f"{path} is an incomplete export: saved_model.pb is missing (an "
                           "interrupted copy?); export or copy it again")
    raise HubHandleError(f"{path} is not a hub module (no saved_model.pb); it holds "
                         f"{_listing(path)}")
  saved_model = saved_model_pb2.SavedModel()
  try:
    with tf.io.gfile.GFile(pb, "rb") as f:
      saved_model.ParseFromString(f.read())
  except Exception as e:  # google.protobuf.message.DecodeError and friends
    raise HubHandleError(f"{pb} is corrupted (it does not parse as a SavedModel: {e}); "
                         "export or download it again") from e
  if not saved_model.meta_graphs:
    raise HubHandleError(f"{pb} is corrupted: it holds no meta graph")
  return saved_model


def _check_variables(path: str) -> Dict[str, Any]:
  """name -> shape of the module's variables; raises on missing or unreadable files."""
  prefix = os.path.join(path, "variables", "variables")
  if not tf.io.gfile.exists(prefix + ".index"):
    raise HubHandleError(f"{path} is an incomplete export: variables/variables.index is "
                         "missing; export or download it again")
  shards = tf.io.gfile.glob(prefix + ".data-*")
  if not shards:
    raise HubHandleError(f"{path} is an incomplete export: no variables/variables.data-* file")
  total = int(re.search(r"-of-(\d+)$", shards[0]).group(1))
  missing = [i for i in range(total)
             if not tf.io.gfile.exists(f"{prefix}.data-{i:05d}-of-{total:05d}")]
  if missing:
    raise HubHandleError(f"{path} is an incomplete export: variables shard(s) "
                         f"{', '.join(map(str, missing))} of {total} are missing")
  try:
    return tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  except (tf.errors.OpError, ValueError) as e:
    raise HubHandleError(f"the variables of {path} are corrupted ({e.__class__.__name__}: "
                         f"{getattr(e, 'message', e)}); export or download it again") from e


def find_asset(path: str, patterns: List[str]) -> Optional[str]:
  """The first file of a SavedModel's `assets/` that matches a pattern (patterns in order of
  preference, files sorted), or None."""
  for pattern in patterns:
    found = sorted(tf.io.gfile.glob(os.path.join(path, "assets", pattern)))
    if found:
      return found[0]
  return None


def _tf1_do_lower_case(saved_model) -> Optional[bool]:
  """The constant behind the original module's `tokenization_info` -> `do_lower_case`."""
  for meta_graph in saved_model.meta_graphs:
    signature = meta_graph.signature_def.get("tokenization_info")
    if signature is None or "do_lower_case" not in signature.outputs:
      continue
    node_name = signature.outputs["do_lower_case"].name.split(":")[0]
    for node in meta_graph.graph_def.node:
      if node.name == node_name and node.op == "Const" and node.attr["value"].tensor.bool_val:
        return bool(node.attr["value"].tensor.bool_val[0])
  return None


def _tf2_do_lower_case(path: str, variables: Mapping[str, Any]) -> Optional[bool]:
  key = "do_lower_case/.ATTRIBUTES/VARIABLE_VALUE"
  if key not in variables:
    return None
  return bool(tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
              .get_tensor(key))


def _export_records(path: str) -> List[Dict[str, Any]]:
  """The JSON records an export of `albert.export` keeps in the SavedModel's `assets.extra/`
  (a fine-tuned export's settings, with `task_kind`; the export job's record, with `kind`),
  read here by their place, not through `albert.export`, which sits above the model."""
  folder = os.path.join(path, "assets.extra")
  if not tf.io.gfile.isdir(folder):
    return []
  found = (files.read_json(name)
           for name in sorted(tf.io.gfile.glob(os.path.join(folder, "*.json"))))
  return [record for record in found if record]


def _other_saved_model(path: str, children) -> Optional[str]:
  """What a TF2 SavedModel that is not an encoder is, when it can be told: one of our fine-tuned
  task exports (its `export_info.json`), or a preprocessing model (our record, or the TF-Hub
  convention's `tokenize` and `bert_pack_inputs`); None otherwise."""
  records = _export_records(path)
  info = next((r for r in records if r.get("task_kind")), None)
  if info is not None:
    model = info.get("task_name") or info["task_kind"]
    source = info.get("checkpoint")
    return (f"{path} is a fine-tuned {model} export for serving (version "
            f"{info.get('version')}), not an encoder: it answers requests (TF Serving, "
            "tf.saved_model.load). To fine-tune from its weights, give the checkpoint it was "
            f"exported from{f' ({source})' if source else ''} as --init_checkpoint; "
            "--albert_hub_module_handle takes an encoder (export_to_tfhub.py --export_path)")
  if any(r.get("kind") == "preprocessing" for r in records) or {"tokenize", "bert_pack_inputs"} <= set(children):
    return (f"{path} is a preprocessing model (text -> the encoder's inputs), not an encoder: "
            "--albert_hub_module_handle takes the encoder (export_to_tfhub.py --export_path, "
            "not --preprocessing_export_path)")
  return None


def inspect_handle(handle: str, albert_config_file: Optional[str] = None,
                   albert_config: Optional[AlbertConfig] = None) -> HubModuleInfo:
  """Resolves, validates and classifies a handle (see the module docstring).

  The config is `albert_config_file`, else the module's `assets/albert_config.json`, else
  `albert_config` (the explicit config of a module that carries none)."""
  path = resolve_handle(handle)
  saved_model = _read_saved_model(path)
  variables = _check_variables(path)
  is_tf2 = any(m.HasField("object_graph_def") and m.object_graph_def.nodes
               for m in saved_model.meta_graphs)
  if TF1_MARKER_VARIABLE in variables:
    kind = TF1
  elif is_tf2:
    root = saved_model.meta_graphs[0].object_graph_def.nodes[0]
    children = {c.local_name for c in root.children}
    other = _other_saved_model(path, children)
    if other:
      raise HubHandleError(other)
    if "__call__" not in children:
      raise HubHandleError(f"{path} is a TF2 SavedModel without __call__, not an encoder")
    kind = TF2
  else:
    raise HubHandleError(
        f"{path} is a TF1 SavedModel whose variables are not ALBERT's (no "
        f"{TF1_MARKER_VARIABLE!r}; it has e.g. {sorted(variables)[:3]}): neither a TF2 "
        "encoder nor an original ALBERT hub module")
  config_file = albert_config_file or find_asset(path, [CONFIG_ASSET])
  if kind == TF1 and not config_file and albert_config is None:
    raise HubHandleError(f"{path} is an original (TF1) ALBERT hub module without "
                         f"assets/{CONFIG_ASSET}; pass --albert_config_file")
  return HubModuleInfo(
      handle=handle, path=path, format=kind,
      albert_config=AlbertConfig.from_json_file(config_file) if config_file else albert_config,
      sp_model_file=find_asset(path, ["30k-clean.model", "*.model"]),
      vocab_file=find_asset(path, ["*.vocab", "vocab*.txt"]),
      do_lower_case=(_tf1_do_lower_case(saved_model) if kind == TF1
                     else _tf2_do_lower_case(path, variables)))


# --------------------------------------------------------------------------------- loading
class HubEncoder(tf_keras.layers.Layer):
  """An encoder loaded from a hub handle; see the module docstring for inputs and outputs.

  Attributes:
    encoder: the `hub.KerasLayer` (TF2) or our `AlbertBackbone` named `bert` (TF1 module).
    info: the `HubModuleInfo` of the handle.
  """

  def __init__(self, encoder: tf_keras.layers.Layer, info: HubModuleInfo, **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder
    self.info = info

  def call(self, inputs, training=None):
    features = normalize_inputs(inputs)
    ids, mask, segments = (tf.cast(features[k], tf.int32)
                           for k in ("input_ids", "input_mask", "segment_ids"))
    if self.info.format == TF2:
      out = self.encoder({"input_word_ids": ids, "input_mask": mask, "input_type_ids": segments},
                         training=training)
    else:
      out = self.encoder({"input_ids": ids, "input_mask": mask, "segment_ids": segments},
                         training=training)
    return {"sequence_output": out["sequence_output"], "pooled_output": out["pooled_output"],
            "encoder_outputs": list(out.get("encoder_outputs", [])),
            "default": out["pooled_output"]}

  def get_config(self):
    return {**super().get_config(), "handle": self.info.handle}

  @classmethod
  def from_config(cls, config):
    return load_encoder(config["handle"], trainable=config.get("trainable", True),
                        name=config.get("name", "albert_hub_encoder"))


def _load_tf2(info: HubModuleInfo, trainable: bool) -> tf_keras.layers.Layer:
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
  try:
    layer = hub.KerasLayer(info.path, trainable=trainable)
  except Exception as e:  # restore (DataLoss, NotFound) and API errors of tensorflow_hub
    message = getattr(e, "message", None) or str(e)
    raise HubHandleError(f"could not load {info.path} as a TF2 encoder "
                         f"({e.__class__.__name__}: {message.strip()[:500]}); if the export "
                         "is corrupted, export or download it again") from e
  _check_encoder_inputs(info.path, layer.resolved_object)
  return layer


def _check_encoder_inputs(path: str, loaded) -> None:
  """Raises unless `__call__` takes the dict of `input_word_ids`, `input_mask`, ..."""
  functions = getattr(getattr(loaded, "__call__", None), "concrete_functions", None) or []
  for function in functions:
    first = function.structured_input_signature[0][0]
    if isinstance(first, Mapping) and "input_word_ids" in first:
      return
  if functions:
    raise HubHandleError(
        f"{path} is a TF2 SavedModel but not an encoder: its __call__ takes "
        f"{functions[0].structured_input_signature[0][0]!r}, not a dict with input_word_ids, "
        "input_mask, input_type_ids")


def _load_tf1(info: HubModuleInfo, trainable: bool) -> tf_keras.layers.Layer:
  bert = build_backbone(info.albert_config)
  prefix = os.path.join(info.path, "variables", "variables")
  try:
    ckpt.load_tf1_checkpoint(bert, prefix, require_all=True)
  except ckpt.CheckpointError as e:
    raise HubHandleError(f"the original hub module {info.path} does not fit its albert "
                         f"config: {e}") from e
  bert.trainable = trainable
  return bert


def load_encoder(handle: str, trainable: bool = True, albert_config_file: Optional[str] = None,
                 name: str = "albert_hub_encoder",
                 albert_config: Optional[AlbertConfig] = None) -> HubEncoder:
  """The encoder of a hub handle as a `HubEncoder` layer (weights loaded, `trainable` set).

  Args:
    handle: a local directory or a URL tensorflow-hub resolves (TF2 SavedModel or original
      TF1 ALBERT hub module).
    trainable: fine-tune the encoder's weights.
    albert_config_file: the config of a TF1 module without `assets/albert_config.json`.
    name: the layer name.
    albert_config: the same as an `AlbertConfig` (the module's own config comes first).

  Raises:
    HubHandleError: not found, neither kind, incomplete or corrupted (the message says which).
  """
  info = inspect_handle(handle, albert_config_file, albert_config)
  encoder = _load_tf2(info, trainable) if info.format == TF2 else _load_tf1(info, trainable)
  return HubEncoder(encoder, info, name=name, trainable=trainable)


def load_tokenizer(handle: str, do_lower_case: Optional[bool] = None):
  """The `FullTokenizer` of a hub module's tokenizer asset (the original `from_hub_module`).

  `do_lower_case` defaults to what the module stores (True if it does not say).
  """
  from albert.tokenization import FullTokenizer  # pylint: disable=g-import-not-at-top
  info = handle if isinstance(handle, HubModuleInfo) else inspect_handle(handle)
  if not info.sp_model_file and not info.vocab_file:
    raise HubHandleError(f"{info.path} has no tokenizer asset (assets/*.model or *.vocab); "
                         "pass --spm_model_file or --vocab_file")
  if do_lower_case is None:
    do_lower_case = True if info.do_lower_case is None else info.do_lower_case
  return FullTokenizer(vocab_file=None if info.sp_model_file else info.vocab_file,
                       do_lower_case=do_lower_case, spm_model_file=info.sp_model_file)
