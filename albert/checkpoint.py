"""TF1-name checkpoints: load the original's `model.ckpt-*` into our models, and save ours back.

Every variable of our models carries its original TF1 name (`bert/embeddings/word_embeddings`,
...), so loading is a name-to-name copy. Optimizer slots (`<var>/adam_m`, `<var>/adam_v`) and
`global_step` are skipped. `init_from_group0` reads every `group_g` from `group_0` (the
original's flag of that name). The result is a `LoadReport` of what was loaded, what the model
has that the checkpoint lacks, and what the checkpoint has that nothing used.

A Hugging Face ALBERT folder (config.json + model.safetensors) is a checkpoint too: wherever a
path goes (`resolve_checkpoint`, `open_reader`, `verify_complete`, `read_checkpoint`,
`load_tf1_checkpoint`), `albert.hf.folder.HFFolder` reads it in the original TF1 names, so
`--init_checkpoint=<HF folder>` works in every script; `hf_settings(path)` gives its albert config
and tokenizer.

Saving writes a weights-only TF1 (tensor bundle V2) checkpoint in the original names, readable
by `tf.train.load_checkpoint`, TF1 `Saver`s and converters such as tf-models-official's. Files are
written under a temporary prefix and renamed, the `.index` last, so that an interrupted save
never leaves a checkpoint that looks complete.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from albert import files
from albert.config import AlbertConfig
from albert.errors import CheckpointError, OutputError, output_error
from albert.hf import folder as hf_folder

OPTIMIZER_SLOT_SUFFIXES = ("/adam_m", "/adam_v", "/lamb_m", "/lamb_v", "/Momentum", "/Adam",
                           "/Adam_1")
SKIPPED_NAMES = ("global_step", "_CHECKPOINTABLE_OBJECT_GRAPH")
_GROUP = re.compile(r"/group_\d+/")


@dataclasses.dataclass
class LoadReport:
  """What a load did. `loaded` maps model variable name -> checkpoint name it was read from.

  `missing`: model variables the checkpoint lacks; `new`: model variables left out of the load
  on purpose although the checkpoint has the name (a head of another shape, a part that starts
  fresh), name -> why. Both start from their initial values. `unused`: checkpoint variables
  that nothing read and that are not the checkpoint's side of a `new` one.
  """

  checkpoint: str
  loaded: Dict[str, str]
  missing: List[str]
  unused: List[str]
  skipped: List[str]
  new: Dict[str, str] = dataclasses.field(default_factory=dict)

  def mark_new(self, reasons: Dict[str, str]) -> "LoadReport":
    """Records model variables deliberately not read (name -> why): reported as new, and their
    checkpoint namesakes no longer as unused."""
    self.new.update(reasons)
    self.unused = [n for n in self.unused if n not in self.new]
    return self

  def format(self, max_names: int = 20) -> str:
    """A human-readable summary, listing up to `max_names` missing and unused names."""

    def listing(names):
      shown = [f"    {n}" for n in names[:max_names]]
      if len(names) > max_names:
        shown.append(f"    ... and {len(names) - max_names} more")
      return shown

    remapped = sum(1 for k, v in self.loaded.items() if k != v)
    lines = [f"Loaded {len(self.loaded)} variables from {self.checkpoint}"
             + (f" ({remapped} read from another name, e.g. group_0)" if remapped else ""),
             "  new or missing from the checkpoint (start from their initial values): "
             f"{len(self.missing) + len(self.new)}"]
    lines += listing(self.missing + [f"{n} ({why})" for n, why in sorted(self.new.items())])
    lines.append(f"  in the checkpoint but unused: {len(self.unused)}")
    lines += listing(self.unused)
    lines.append(f"  skipped (optimizer slots, global_step): {len(self.skipped)}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ helpers
def variable_name(variable: Union[tf.Variable, str]) -> str:
  """The TF1 name of a variable (or of a name): `bert/pooler/dense/kernel:0` ->
  `bert/pooler/dense/kernel`."""
  return re.sub(r":\d+$", "", variable if isinstance(variable, str) else variable.name)


def variables_by_name(model_or_variables) -> Dict[str, tf.Variable]:
  """Name -> variable for a Keras model/layer or an iterable of variables; names must be unique."""
  variables = getattr(model_or_variables, "weights", model_or_variables)
  result: Dict[str, tf.Variable] = {}
  for var in variables:
    name = variable_name(var)
    if name in result and result[name] is not var:
      raise CheckpointError(f"two different variables are both named {name!r}; the TF1 name "
                            "contract needs unique names (was a model built twice in one scope?)")
    result[name] = var
  return result


def resolve_checkpoint(path: Union[str, os.PathLike]) -> str:
  """A checkpoint prefix from a prefix or a directory (its `checkpoint` file, else one prefix);
  a Hugging Face folder is its own "prefix"."""
  path = os.fspath(path)
  if hf_folder.is_hf_folder(path):
    return path
  if files.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest:
      return latest
    prefixes = sorted({f[:-len(".index")] for f in files.listdir(path) if f.endswith(".index")})
    if len(prefixes) == 1:
      return os.path.join(path, prefixes[0])
    if not prefixes:
      raise CheckpointError(f"checkpoint directory {path} contains no checkpoint (no `checkpoint` "
                            "file and no *.index file)")
    raise CheckpointError(f"checkpoint directory {path} has no `checkpoint` file and several "
                          f"checkpoints ({', '.join(prefixes)}); pass one prefix, e.g. "
                          f"{os.path.join(path, prefixes[-1])}")
  if files.exists(path + ".index"):
    return path
  if path.endswith(".index") and files.exists(path):
    return path[:-len(".index")]
  raise CheckpointError(f"checkpoint {path} not found: expected a directory or a prefix with "
                        f"{path}.index beside it")


def open_reader(prefix: str):
  """`tf.train.load_checkpoint(prefix)`; a truncated or corrupted index is a CheckpointError.
  For a Hugging Face folder, its `HFFolder` (the same reader interface, in TF1 names)."""
  if hf_folder.is_hf_folder(prefix):
    return hf_folder.HFFolder(prefix)
  try:
    if files.is_remote(prefix):  # a prefix, never a directory (ram:// calls it one)
      return _Reader(prefix, tf.compat.v1.train.NewCheckpointReader(prefix))
    return _Reader(prefix, tf.train.load_checkpoint(prefix))
  except tf.errors.OpError as error:
    raise CheckpointError(f"checkpoint {prefix} cannot be read: {_describe(error)}") from None


def _describe(error: tf.errors.OpError) -> str:
  message = error.message.splitlines()[0] if error.message else type(error).__name__
  hint = ""
  if isinstance(error, (tf.errors.DataLossError, tf.errors.OutOfRangeError)) or (
      "corrupt" in message.lower() or "truncat" in message.lower()
      or "sstable" in message.lower()):
    hint = " (the file is truncated or corrupted: was it copied completely?)"
  return f"{type(error).__name__}: {message[:300]}{hint}"


class _Reader:
  """A checkpoint reader whose failures name the checkpoint and the variable being read."""

  def __init__(self, prefix: str, reader):
    self.prefix, self._reader = prefix, reader

  def get_variable_to_shape_map(self):
    return self._reader.get_variable_to_shape_map()

  def get_variable_to_dtype_map(self):
    return self._reader.get_variable_to_dtype_map()

  def has_tensor(self, name: str) -> bool:
    return self._reader.has_tensor(name)

  def get_tensor(self, name: str):
    try:
      return self._reader.get_tensor(name)
    except IndexError:  # what the reader raises for a data file cut short
      raise CheckpointError(f"checkpoint {self.prefix}: variable {name} cannot be read: the "
                            "data file is truncated (was it copied completely?)") from None
    except tf.errors.OpError as error:
      raise CheckpointError(f"checkpoint {self.prefix}: variable {name} cannot be read: "
                            f"{_describe(error)}") from None


def verify_complete(prefix: str) -> str:
  """Checks, without reading the weights, that a checkpoint's files are all there and complete.

  The index must parse, and the data file must hold at least the bytes of the fixed-size tensors
  the index lists (a copy cut short is found here, before any work; flipped bits are found by the
  checksums when the weights are read). Returns the prefix. A Hugging Face folder is checked
  whole (config, every tensor's shape, file sizes) by opening it.
  """
  if hf_folder.is_hf_folder(prefix):
    hf_folder.HFFolder(prefix)
    return prefix
  reader = open_reader(prefix)
  shapes = reader.get_variable_to_shape_map()
  dtypes = reader.get_variable_to_dtype_map()
  need = 0
  for name, shape in shapes.items():
    dtype = tf.as_dtype(dtypes[name])
    if dtype != tf.string:
      need += int(np.prod(shape, dtype=np.int64)) * dtype.size
  data = sorted(f for f in files.listdir(os.path.dirname(prefix) or ".")
                if f.startswith(os.path.basename(prefix) + ".data-"))
  have = sum(files.size(os.path.join(os.path.dirname(prefix) or ".", f)) for f in data)
  if not data:
    raise CheckpointError(f"checkpoint {prefix}: the data file ({os.path.basename(prefix)}"
                          ".data-00000-of-00001) is missing; only the index is there")
  if have < need:
    raise CheckpointError(f"checkpoint {prefix} is truncated: its data file has {have:,} bytes, "
                          f"but the index lists {need:,} bytes of weights (was it copied "
                          "completely?)")
  return prefix


def _is_skipped(name: str) -> bool:
  return name in SKIPPED_NAMES or name.endswith(OPTIMIZER_SLOT_SUFFIXES)


def read_checkpoint(path) -> Tuple[str, Dict[str, np.ndarray]]:
  """(prefix, name -> value) of the model variables of a TF1-name checkpoint (slots skipped)."""
  prefix = resolve_checkpoint(path)
  reader = open_reader(prefix)
  names = reader.get_variable_to_shape_map()
  return prefix, {n: reader.get_tensor(n) for n in sorted(names) if not _is_skipped(n)}


# --------------------------------------------------------------------------------------- load
def load_tf1_checkpoint(model_or_variables, path, init_from_group0: bool = False,
                        require_all: bool = False) -> LoadReport:
  """Assigns every model variable whose TF1 name the checkpoint holds; returns a `LoadReport`.

  Args:
    model_or_variables: a built Keras model or layer, or an iterable of variables.
    path: a checkpoint prefix (`.../model.ckpt-1000`) or a directory.
    init_from_group0: read `.../group_g/...` from `.../group_0/...` when the checkpoint has no
      `group_g` (to start a model with more groups from a one-group checkpoint).
    require_all: raise if any model variable is missing from the checkpoint.

  Raises:
    CheckpointError: not found; a shape mismatch (all of them are listed); nothing restored;
      `require_all` and something missing.
  """
  targets = variables_by_name(model_or_variables)
  if not targets:
    raise CheckpointError("the model has no variables yet; build it (call it once) before loading")
  prefix = resolve_checkpoint(path)
  reader = open_reader(prefix)
  shapes = reader.get_variable_to_shape_map()
  skipped = sorted(n for n in shapes if _is_skipped(n))
  available = {n: s for n, s in shapes.items() if not _is_skipped(n)}

  plan: Dict[str, str] = {}
  missing: List[str] = []
  for name in sorted(targets):
    source = name
    if source not in available and init_from_group0 and _GROUP.search(name):
      source = _GROUP.sub("/group_0/", name)
    if source in available:
      plan[name] = source
    else:
      missing.append(name)

  mismatches = [f"  {name}: model {list(targets[name].shape)}, checkpoint "
                f"{list(available[source])}" + (f" (as {source})" if source != name else "")
                for name, source in plan.items()
                if list(targets[name].shape) != list(available[source])]
  if mismatches:
    raise CheckpointError(f"checkpoint {prefix} does not fit the model (is the albert config the "
                          "one the checkpoint was trained with?); shape mismatches:\n"
                          + "\n".join(mismatches))
  if not plan:
    raise CheckpointError(
        f"checkpoint {prefix} restores nothing: none of its {len(available)} variable names "
        f"matches the model's. Checkpoint names look like {sorted(available)[:3]}, model names "
        f"like {sorted(targets)[:3]}.")
  if require_all and missing:
    raise CheckpointError(f"checkpoint {prefix} lacks {len(missing)} variables of the model: "
                          + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))

  values = {name: reader.get_tensor(source) for name, source in plan.items()}  # all read first
  for name, value in values.items():
    var = targets[name]
    var.assign(tf.convert_to_tensor(value, dtype=var.dtype))
  used = set(plan.values())
  unused = sorted(n for n in available if n not in used)
  if isinstance(reader, hf_folder.HFFolder):  # HF keys with no original counterpart, and ties
    unused += reader.unused
    skipped += reader.dropped
  return LoadReport(checkpoint=prefix, loaded=plan, missing=missing, unused=unused,
                    skipped=skipped)


def reorder_head_rows(variables: Dict[str, tf.Variable], order: List[int], labels: List[str],
                      task_labels: List[str]) -> str:
  """Puts a loaded classifier head's rows (`output_weights`, `output_bias`) in the task's label
  order (`albert.hf.names.label_order`); returns the line saying so."""
  for name in ("output_weights", "output_bias"):
    variables[name].assign(tf.gather(variables[name], order))
  return f"Head rows reordered from the folder's labels {labels} to the task's {task_labels}"


def hf_settings(path) -> Optional["hf_folder.HFFolder"]:
  """The checked `HFFolder` when `path` is a Hugging Face folder (its `albert_config`,
  `spm_model_file`, `do_lower_case`, `labels`), else None."""
  path = os.fspath(path) if path else path
  return hf_folder.HFFolder(path) if path and hf_folder.is_hf_folder(path) else None


def config_for_checkpoint(albert_config: Optional[AlbertConfig], init_checkpoint,
                          flag: str = "--albert_config_file") -> Optional[AlbertConfig]:
  """The albert config of a run: the given one, or a Hugging Face folder's own; both given
  must agree on every key the model reads."""
  folder = hf_settings(init_checkpoint)
  if folder is None:
    return albert_config
  if albert_config is not None:
    differences = albert_config.differences(folder.albert_config)
    if differences:
      shown = "; ".join(f"{k}: {a!r} in {flag}, {b!r} in the folder"
                        for k, (a, b) in differences.items())
      raise CheckpointError(f"{flag} disagrees with the config.json of the Hugging Face folder "
                            f"{init_checkpoint} ({shown}); leave {flag} out (the folder's "
                            "config is used)")
  return folder.albert_config


# --------------------------------------------------------------------------------------- save
def save_tf1_checkpoint(model_or_variables, prefix: Union[str, os.PathLike],
                        global_step: Optional[int] = None,
                        update_checkpoint_state: bool = True) -> str:
  """Writes a weights-only checkpoint in the original TF1 names; returns the prefix written.

  With `global_step`, the prefix gets the `-N` suffix (`model.ckpt` -> `model.ckpt-N`) and an
  int64 `global_step` variable is stored, as TF1 `Saver.save(..., global_step=N)` does. With
  `update_checkpoint_state`, the directory's `checkpoint` file names this checkpoint as latest.
  """
  variables = variables_by_name(model_or_variables)
  if not variables:
    raise CheckpointError("nothing to save: the model has no variables (build it first)")
  prefix = os.fspath(prefix)
  if global_step is not None:
    prefix = f"{prefix}-{int(global_step)}"
  directory = os.path.dirname(prefix) or "."
  files.make_dirs(directory)

  names = sorted(variables)
  tensors = [tf.convert_to_tensor(variables[n]) for n in names]
  if global_step is not None:
    names.append("global_step")
    tensors.append(tf.constant(int(global_step), tf.int64))
  # Locally: a temporary prefix renamed into place. An object store cannot rename: there the
  # data file is written first and the index last, and a reader (verify_complete) needs both.
  remote = files.is_remote(prefix)
  tmp_prefix = prefix if remote else f"{prefix}{files.TEMP_MARK}{os.getpid()}"
  tmp_name = os.path.basename(tmp_prefix)
  try:
    with tf.device("/cpu:0"):
      tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=names,
                        shape_and_slices=[""] * len(names), tensors=tensors)
    if not remote:
      data_files = sorted(f for f in os.listdir(directory) if f.startswith(tmp_name + ".data-"))
      for data_file in data_files:
        suffix = data_file[len(tmp_name):]
        os.replace(os.path.join(directory, data_file), prefix + suffix)
      os.replace(tmp_prefix + ".index", prefix + ".index")
  except (tf.errors.OpError, OSError) as error:
    for leftover in files.listdir(directory):
      if leftover.startswith(tmp_name + "."):
        files.remove(os.path.join(directory, leftover))
    if isinstance(error, OSError):
      raise output_error(error) from None
    raise files.tf_write_error(error, prefix) or OutputError(
        None, f"cannot write checkpoint {prefix}: {_describe(error)}") from None
  if update_checkpoint_state:
    write_checkpoint_state(directory, os.path.basename(prefix))
  return prefix


def write_checkpoint_state(directory: str, latest: str) -> None:
  """Writes the directory's `checkpoint` file (TF1 format) naming `latest`, atomically.

  Earlier entries whose files still exist are kept in `all_model_checkpoint_paths`, each once
  and relative to `directory` (as TF1 Savers with `save_relative_paths` write them; reading the
  file back with `tf.train.get_checkpoint_state` returns absolute paths, which must not be
  written again beside the relative ones).
  """
  def relative(path: str) -> str:
    if (os.path.isabs(path) or files.is_remote(path)) and (
        os.path.dirname(path).rstrip("/") == directory.rstrip("/")
        or os.path.dirname(path) == os.path.abspath(directory)):
      return os.path.basename(path)
    return path

  state = tf.train.get_checkpoint_state(directory)
  earlier = []
  for p in (state.all_model_checkpoint_paths if state else []):
    p = relative(p)
    full = p if os.path.isabs(p) or files.is_remote(p) else os.path.join(directory, p)
    if p != latest and p not in earlier and files.exists(full + ".index"):
      earlier.append(p)
  lines = [f'model_checkpoint_path: "{latest}"']
  lines += [f'all_model_checkpoint_paths: "{p}"' for p in earlier + [latest]]
  files.write_text(os.path.join(directory, "checkpoint"), "\n".join(lines) + "\n")
