"""A Hugging Face ALBERT folder read as a checkpoint in the original TF1 names, and written.

`is_hf_folder(path)` tells an HF folder (config.json, model.safetensors or its sharded index)
from a TF1 checkpoint directory. `HFFolder(path)` checks the whole folder before any weight is
read (config, tokenizer settings, every tensor's name, dtype and shape against the config) and
then reads like `tf.train.load_checkpoint`: `get_variable_to_shape_map()` and `get_tensor(name)`
in TF1 names, transposed to the original's layouts, so `albert.checkpoint` loads it as any
checkpoint. `write_hf_folder` writes the other way. numpy + safetensors only (no TensorFlow,
no torch).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from typing import Dict, List, Optional, Tuple

import numpy as np

from albert.config import AlbertConfig
from albert.errors import CheckpointError
from albert.hf import names

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
SPM = "spiece.model"
TOKENIZER_CONFIG = "tokenizer_config.json"
_PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5",
            "flax_model.msgpack")
_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": None}


def is_hf_folder(path) -> bool:
  """A directory with an HF config or weights file and no TF1 checkpoint in it."""
  path = os.fspath(path)
  if not os.path.isdir(path):
    return False
  entries = set(os.listdir(path))
  if "checkpoint" in entries or any(e.endswith(".index") for e in entries):
    return False
  return bool(entries & {CONFIG, WEIGHTS, INDEX, *_PICKLES})


def named_labels(path) -> Optional[List[str]]:
  """The label list of an HF folder's `id2label` (index order) when it names its labels (not
  HF's default `LABEL_i`); None for anything else, a TF1 checkpoint included. A custom task
  fine-tuned from the folder takes it as its `--labels`."""
  if not path or not is_hf_folder(path) or CONFIG not in os.listdir(path):
    return None
  config_path = os.path.join(os.fspath(path), CONFIG)
  labels = names.labels_from_hf(_folder_json(config_path, "the model's config"), config_path)
  return None if names.is_unnamed(labels) else labels


def _folder_json(path: str, what: str):
  try:
    with open(path, "r", encoding="utf-8") as f:
      return json.load(f)
  except OSError as error:
    raise CheckpointError(f"{path}: cannot be read ({error.strerror})") from None
  except ValueError as error:
    raise CheckpointError(f"{path}: not valid JSON ({error}); expected {what}") from None


def safetensors_header(path: str) -> Tuple[Dict[str, dict], int]:
  """(tensor name -> {dtype, shape, data_offsets}, bytes the file must have) of a safetensors
  file, from its header alone (8-byte little-endian length, then JSON)."""
  try:
    with open(path, "rb") as f:
      head = f.read(8)
      if len(head) < 8:
        raise CheckpointError(f"{path}: not a safetensors file (shorter than its header)")
      (length,) = struct.unpack("<Q", head)
      if length > 100_000_000:
        raise CheckpointError(f"{path}: not a safetensors file (header length {length})")
      header = json.loads(f.read(length))
  except OSError as error:
    raise CheckpointError(f"{path}: cannot be read ({error.strerror})") from None
  except ValueError:
    raise CheckpointError(f"{path}: not a safetensors file (its header is not JSON)") from None
  header.pop("__metadata__", None)
  end = max((int(t["data_offsets"][1]) for t in header.values()), default=0)
  return header, 8 + length + end


class HFFolder:
  """A checked HF ALBERT folder; reads in TF1 names (see the module docstring).

  Attributes: `path`, `albert_config`, `hf_config` (the parsed config.json), `architecture`,
  `head` (names.ARCHITECTURE_HEADS), `labels` (from id2label, or None), `spm_model_file` (or
  None), `do_lower_case`, `unused` (HF keys with no counterpart), `dropped` (tied copies and
  buffers), `has_pooler`.
  """

  def __init__(self, path):
    self.path = path = os.fspath(path)
    entries = set(os.listdir(path)) if os.path.isdir(path) else set()
    if not os.path.isdir(path):
      raise CheckpointError(f"Hugging Face folder {path}: no such directory")
    if CONFIG not in entries:
      raise CheckpointError(f"Hugging Face folder {path} has no {CONFIG}: it is not a complete "
                            "model folder (download config.json with the weights)")
    config_path = os.path.join(path, CONFIG)
    self.hf_config = _folder_json(config_path, "the model's config")
    self.albert_config = names.config_from_hf(self.hf_config, config_path)
    self.labels = names.labels_from_hf(self.hf_config, config_path)
    architectures = self.hf_config.get("architectures") or ["AlbertModel"]
    self.architecture = architectures[0]
    self.head = names.ARCHITECTURE_HEADS.get(self.architecture, "none")
    self._read_tokenizer(entries)
    self._index = self._read_index(entries)  # HF key -> file
    self._plan()

  # --------------------------------------------------------------------------------- parts
  def _read_tokenizer(self, entries) -> None:
    self.spm_model_file = os.path.join(self.path, SPM) if SPM in entries else None
    self.do_lower_case = True
    if TOKENIZER_CONFIG in entries:
      where = os.path.join(self.path, TOKENIZER_CONFIG)
      values = _folder_json(where, "the tokenizer's settings")
      self.do_lower_case = bool(values.get("do_lower_case", True))
      if values.get("keep_accents", False):
        raise CheckpointError(f"{where}: keep_accents is true, which the original ALBERT "
                              "preprocessing lacks (it always strips accents): the token ids "
                              "would differ from the ones the model was trained on")
      if not values.get("remove_space", True):
        raise CheckpointError(f"{where}: remove_space is false, which the original ALBERT "
                              "preprocessing lacks (it always collapses spaces)")

  def _read_index(self, entries) -> Dict[str, str]:
    if INDEX in entries:
      where = os.path.join(self.path, INDEX)
      weight_map = _folder_json(where, "a safetensors index").get("weight_map")
      if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{where}: has no weight_map")
      files = sorted(set(weight_map.values()))
    elif WEIGHTS in entries:
      files = [WEIGHTS]
    else:
      pickles = sorted(entries & set(_PICKLES))
      found = f"only {', '.join(pickles)}" if pickles else "no weights file"
      raise CheckpointError(
          f"Hugging Face folder {self.path} has {found}, no {WEIGHTS}: reading pickled torch "
          "or Keras weights safely needs torch/TF-Keras; download the safetensors weights "
          "(most hub models have them, e.g. `huggingface-cli download <model> "
          "model.safetensors`) or convert once with transformers (`model.save_pretrained(dir, "
          "safe_serialization=True)`)")
    index = {}
    self._headers = {}
    for name in files:
      full = os.path.join(self.path, name)
      if not os.path.isfile(full):
        raise CheckpointError(f"Hugging Face folder {self.path}: weights file {name} is "
                              "missing")
      header, need = safetensors_header(full)
      if os.path.getsize(full) < need:
        raise CheckpointError(f"{full} is truncated: {os.path.getsize(full):,} bytes, its "
                              f"header lists {need:,} (was it downloaded completely?)")
      self._headers[name] = header
      for key in header:
        if INDEX in entries and weight_map.get(key) != name:
          continue
        index[key] = name
    if INDEX in entries:
      absent = sorted(k for k in weight_map if k not in index)
      if absent:
        raise CheckpointError(f"{os.path.join(self.path, INDEX)} lists {absent[0]} in "
                              f"{weight_map[absent[0]]}, which does not hold it")
    return index

  def _plan(self) -> None:
    """Maps every HF key to a TF1 name; checks dtypes and shapes against the config."""
    c = self.albert_config
    self._plan_map: Dict[str, Tuple[str, bool]] = {}  # TF1 name -> (HF key, transposed)
    self.unused: List[str] = []
    self.dropped: List[str] = []
    for key in sorted(self._index):
      bare = key[len("albert."):] if key.startswith("albert.") else key
      if key in names.TIED_KEYS or bare in names.BUFFER_KEYS:
        self.dropped.append(key)
        continue
      found = names.tf1_name(key)
      if found is None:
        self.unused.append(key)
        continue
      entry = self._headers[self._index[key]][key]
      if entry["dtype"] not in _DTYPES:
        raise CheckpointError(f"{self._where(key)}: tensor {key} has dtype {entry['dtype']}; "
                              f"supported: {', '.join(sorted(_DTYPES))}")
      self._plan_map[found[0]] = (key, found[1])
    self.has_pooler = "bert/pooler/dense/kernel" in self._plan_map
    expected = names.expected_shapes(c, pooler=self.has_pooler)
    e_eq_h = c.embedding_size == c.hidden_size
    for name, shape in sorted(expected.items()):
      head = name.startswith("(head) ")
      name = name[len("(head) "):] if head else name
      if name not in self._plan_map:
        if not head:
          key = names.hf_key(name)[0]
          raise CheckpointError(f"Hugging Face folder {self.path} lacks the tensor {key} "
                                f"({name}) that its {CONFIG} implies")
        continue
      if self.shape(name) != shape:
        raise CheckpointError(
            f"{self._where(self._plan_map[name][0])}: tensor {self._plan_map[name][0]} has "
            f"shape {self._hf_shape(name)}, but {CONFIG} implies {self._hf_layout(name, shape)}"
            f" (is config.json the model's own?)")
    for name in sorted(self._plan_map):
      if name in ("output_weights", "output_bias") and self.shape(name)[-1:] != (
          [c.hidden_size] if name == "output_weights" else self.shape(name)[-1:]):
        raise CheckpointError(f"{self._where(self._plan_map[name][0])}: classifier.weight has "
                              f"shape {self._hf_shape(name)}, expected [L, {c.hidden_size}]")
      if e_eq_h and "embedding_hidden_mapping_in" in name:
        self._check_identity_mapping()
      grouped = name.startswith("bert/encoder/transformer/")
      if grouped and name not in expected:
        raise CheckpointError(f"{self._where(self._plan_map[name][0])}: tensor "
                              f"{self._plan_map[name][0]} lies outside num_hidden_groups "
                              f"{c.num_hidden_groups} x inner_group_num {c.inner_group_num}")
    if e_eq_h:
      self._plan_map.pop("bert/encoder/embedding_hidden_mapping_in/kernel", None)
      self._plan_map.pop("bert/encoder/embedding_hidden_mapping_in/bias", None)
    tied = [k for k in self.dropped if k in names.TIED_KEYS]
    for key in tied:
      if names.TIED_KEYS[key] in self._plan_map and not np.array_equal(
          self._read(key), self._read(self._plan_map[names.TIED_KEYS[key]][0])):
        raise CheckpointError(f"{self._where(key)}: {key} differs from "
                              f"{self._plan_map[names.TIED_KEYS[key]][0]}; the original ALBERT "
                              "ties them (an untied output layer cannot be represented)")

  def _check_identity_mapping(self) -> None:
    """HF always has embedding_hidden_mapping_in; the original only when E != H. With E == H
    it must be the identity (as our HF writer makes it)."""
    kernel = self.get_tensor("bert/encoder/embedding_hidden_mapping_in/kernel")
    bias = self.get_tensor("bert/encoder/embedding_hidden_mapping_in/bias")
    if not (np.array_equal(kernel, np.eye(len(kernel), dtype=kernel.dtype)) and not bias.any()):
      raise CheckpointError(
          f"Hugging Face folder {self.path}: embedding_size == hidden_size "
          f"({self.albert_config.hidden_size}) and encoder.embedding_hidden_mapping_in is not "
          "the identity; the original ALBERT has no such projection when E == H, so this "
          "model cannot be represented")

  # ------------------------------------------------------------------------------- reading
  def _where(self, key: str) -> str:
    return os.path.join(self.path, self._index[key])

  def _hf_shape(self, name: str) -> List[int]:
    key = self._plan_map[name][0]
    return list(self._headers[self._index[key]][key]["shape"])

  def _hf_layout(self, name: str, shape: List[int]) -> List[int]:
    return shape[::-1] if self._plan_map[name][1] else shape

  def shape(self, name: str) -> List[int]:
    shape = self._hf_shape(name)
    return shape[::-1] if self._plan_map[name][1] else shape

  def _read(self, key: str) -> np.ndarray:
    from safetensors import safe_open  # pylint: disable=g-import-not-at-top
    entry = self._headers[self._index[key]][key]
    if entry["dtype"] == "BF16":  # numpy has no bfloat16: its bits are a float32's top half
      return self._read_bf16(key, entry)
    try:
      with safe_open(self._where(key), framework="np") as f:
        return f.get_tensor(key)
    except Exception as error:  # a damaged file
      raise CheckpointError(f"{self._where(key)}: tensor {key} cannot be read "
                            f"({type(error).__name__}: {str(error)[:200]})") from None

  def _read_bf16(self, key: str, entry: dict) -> np.ndarray:
    begin, end = (int(x) for x in entry["data_offsets"])
    with open(self._where(key), "rb") as f:
      (length,) = struct.unpack("<Q", f.read(8))
      f.seek(8 + length + begin)
      bits = np.frombuffer(f.read(end - begin), dtype="<u2")
    return (bits.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])

  # The reader interface of tf.train.load_checkpoint, in TF1 names.
  prefix = property(lambda self: self.path)

  def get_variable_to_shape_map(self) -> Dict[str, List[int]]:
    return {name: self.shape(name) for name in self._plan_map}

  def get_variable_to_dtype_map(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return {name: tf.float32 for name in self._plan_map}

  def has_tensor(self, name: str) -> bool:
    return name in self._plan_map

  def get_tensor(self, name: str) -> np.ndarray:
    key, transposed = self._plan_map[name]
    value = self._read(key)
    return np.ascontiguousarray(value.T if transposed else value).astype(np.float32, copy=False)

  def tensors(self) -> Dict[str, np.ndarray]:
    """Every weight, TF1 name -> float32 array in the original's layout."""
    return {name: self.get_tensor(name) for name in sorted(self._plan_map)}

  def summary(self) -> str:
    """One line: what the folder is and what was left out."""
    parts = [f"Hugging Face folder {self.path}: {self.architecture}, "
             f"{len(self._plan_map)} weights in TF1 names"]
    if self.dropped:
      parts.append(f"{len(self.dropped)} tied copies or buffers dropped ({', '.join(self.dropped)})")
    if self.unused:
      parts.append(f"{len(self.unused)} without an original counterpart, unused "
                   f"({', '.join(self.unused[:5])}{' ...' if len(self.unused) > 5 else ''})")
    return "; ".join(parts)


# -------------------------------------------------------------------------------- writing
def hf_tensors(tensors: Dict[str, np.ndarray], config: AlbertConfig, head: str,
               encoder_prefix: str) -> Tuple[Dict[str, np.ndarray], List[str]]:
  """(HF key -> array, TF1 names left out) for TF1-name weights and a head."""
  keep_head = {"none": (), "pretraining": ("cls/predictions/", "cls/seq_relationship/"),
               "masked_lm": ("cls/predictions/",), "classifier": ("output_",),
               "regression": ("output_",), "race": ("output_",), "squad": ("cls/squad/",)}[head]
  out, left = {}, []
  for name in sorted(tensors):
    if name == "bert/pooler/dense/kernel" or name == "bert/pooler/dense/bias":
      if head == "squad":  # AlbertForQuestionAnswering has no pooler
        left.append(name)
        continue
    elif not name.startswith("bert/") and not name.startswith(keep_head or ("\0",)):
      left.append(name)
      continue
    found = names.hf_key(name, encoder_prefix)
    if found is None:
      left.append(name)
      continue
    key, transposed = found
    value = np.asarray(tensors[name], dtype=np.float32)
    out[key] = np.ascontiguousarray(value.T if transposed else value)
  if config.embedding_size == config.hidden_size:  # HF always has the projection
    out[encoder_prefix + "encoder.embedding_hidden_mapping_in.weight"] = np.eye(
        config.hidden_size, dtype=np.float32)
    out[encoder_prefix + "encoder.embedding_hidden_mapping_in.bias"] = np.zeros(
        config.hidden_size, np.float32)
  return out, left


def write_hf_folder(directory: str, tensors: Dict[str, np.ndarray], hf_config: dict,
                    spm_model_file: Optional[str] = None, do_lower_case: bool = True) -> None:
  """Writes config.json, model.safetensors and, with an SPM model, the tokenizer files that
  `AlbertTokenizer.from_pretrained` reads, into an existing (temporary) directory."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  with open(os.path.join(directory, CONFIG), "w", encoding="utf-8") as f:
    json.dump(hf_config, f, indent=2, sort_keys=True)
    f.write("\n")
  save_file(tensors, os.path.join(directory, WEIGHTS), metadata={"format": "pt"})
  if spm_model_file:
    shutil.copyfile(spm_model_file, os.path.join(directory, SPM))
    special = {"bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "<unk>",
               "sep_token": "[SEP]", "pad_token": "<pad>", "cls_token": "[CLS]",
               "mask_token": {"content": "[MASK]", "lstrip": True, "normalized": False,
                              "rstrip": False, "single_word": False}}
    tokenizer = {"tokenizer_class": "AlbertTokenizer", "do_lower_case": bool(do_lower_case),
                 "keep_accents": False, "remove_space": True,
                 "model_max_length": hf_config.get("max_position_embeddings", 512),
                 **{k: v for k, v in special.items() if k != "mask_token"},
                 "mask_token": "[MASK]"}
    for name, values in (("special_tokens_map.json", special), (TOKENIZER_CONFIG, tokenizer)):
      with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
        json.dump(values, f, indent=2, sort_keys=True)
        f.write("\n")
