"""`convert_checkpoint.py`'s two directions, each written to a temporary folder, read back and
compared with what was meant to be written, then renamed into place.

* `hf_to_tf1(folder, output_dir)`: `albert_config.json`, `model.ckpt-0` in the original TF1 names
  (the head too, where the original has one), `spiece.model` and `labels.txt` when present;
* `tf1_to_hf(checkpoint, albert_config_file, output_dir, ...)`: an HF folder (`config.json`
  with `architectures`, `model.safetensors`, the tokenizer files) for `AutoModel` /
  `AlbertFor...` and `AutoTokenizer`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from albert import checkpoint, files
from albert.config import AlbertConfig
from albert.errors import CheckpointError, FlagError
from albert.hf import folder as hf_folder
from albert.hf import names

HEADS = ("auto", "none", "pretraining", "masked_lm", "classifier", "regression", "squad",
         "race")
LABELS_FILE = "labels.txt"


@dataclasses.dataclass
class ConversionResult:
  output_dir: str
  head: str
  written: List[str]  # TF1 names (hf_to_tf1) or HF keys (tf1_to_hf)
  left_out: List[str]  # what the other format cannot hold

  def format(self) -> str:
    lines = [f"Wrote {self.output_dir} ({self.head}): {len(self.written)} tensors, read back "
             "and equal"]
    if self.left_out:
      lines.append(f"  left out ({len(self.left_out)}): {', '.join(self.left_out)}")
    return "\n".join(lines)


def _check_equal(expected: Dict[str, np.ndarray], found: Dict[str, np.ndarray],
                 where: str) -> None:
  if sorted(expected) != sorted(found):
    raise CheckpointError(f"{where}: read back with other tensors than written ("
                          f"{sorted(set(expected) ^ set(found))[:3]})")
  for name in expected:
    if not np.array_equal(np.asarray(expected[name]), np.asarray(found[name])):
      raise CheckpointError(f"{where}: tensor {name} differs when read back")


def hf_to_tf1(input_folder: str, output_dir: str, overwrite: bool = False,
              log: Callable[[str], None] = print) -> ConversionResult:
  """An HF ALBERT folder -> the original release's layout (see the module docstring)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  source = hf_folder.HFFolder(input_folder)
  log(source.summary())
  tensors = source.tensors()

  def write(tmp: str) -> None:
    source.albert_config.to_json_file(os.path.join(tmp, "albert_config.json"))
    variables = [tf.Variable(value, name=name, trainable=False)
                 for name, value in tensors.items()]
    prefix = checkpoint.save_tf1_checkpoint(variables, os.path.join(tmp, "model.ckpt"),
                                            global_step=0)
    _check_equal(tensors, checkpoint.read_checkpoint(prefix)[1], prefix)
    if source.spm_model_file:
      shutil.copyfile(source.spm_model_file, os.path.join(tmp, hf_folder.SPM))
    if source.labels and source.head in ("classifier", "race"):
      files.write_text(os.path.join(tmp, LABELS_FILE), "".join(f"{l}\n" for l in source.labels))

  files.write_directory(output_dir, write, overwrite=overwrite)
  return ConversionResult(output_dir, source.head, sorted(tensors),
                          source.unused + source.dropped)


def _detect_head(tensors: Dict[str, np.ndarray], prefix: str) -> str:
  if any(n.startswith(names.SQUAD_V2_PREFIXES) for n in tensors):
    raise CheckpointError(f"checkpoint {prefix} has the SQuAD v2 head (start_logits/, "
                          "end_logits/, answer_class/), which Hugging Face's ALBERT lacks; pass "
                          "--head=none to write the encoder alone")
  if "cls/squad/output_weights" in tensors:
    return "squad"
  if "output_weights" in tensors:
    if tensors["output_weights"].shape[0] == 1:
      raise FlagError(f"checkpoint {prefix} has a one-row output_weights: a RACE "
                      "(multiple-choice) or STS-B (regression) head; say which with "
                      "--head=race or --head=regression")
    return "classifier"
  if "cls/predictions/output_bias" in tensors:
    return "pretraining" if "cls/seq_relationship/output_weights" in tensors else "masked_lm"
  return "none"


def tf1_to_hf(checkpoint_path: str, albert_config: AlbertConfig, output_dir: str,
              spm_model_file: Optional[str] = None, do_lower_case: bool = True,
              head: str = "auto", labels: Optional[Sequence[str]] = None,
              overwrite: bool = False, log: Callable[[str], None] = print) -> ConversionResult:
  """A TF1-name checkpoint (the original's or ours) -> an HF folder (module docstring)."""
  if head not in HEADS:
    raise FlagError(f"--head={head}: expected one of {', '.join(HEADS)}")
  prefix, tensors = checkpoint.read_checkpoint(checkpoint_path)
  if head == "auto":
    head = _detect_head(tensors, prefix)
  needs = {"pretraining": ["cls/predictions/output_bias", "cls/seq_relationship/output_weights"],
           "masked_lm": ["cls/predictions/output_bias"], "classifier": ["output_weights"],
           "regression": ["output_weights"], "race": ["output_weights"],
           "squad": ["cls/squad/output_weights"], "none": []}[head]
  absent = [n for n in needs + ["bert/embeddings/word_embeddings"] if n not in tensors]
  if absent:
    raise CheckpointError(f"checkpoint {prefix} has no {absent[0]}: not a checkpoint with the "
                          f"{head} head (--head)")
  rows = tensors["output_weights"].shape[0] if "output_weights" in tensors else None
  if head in ("race", "regression") and rows != 1:
    raise FlagError(f"--head={head} needs a one-row output_weights; checkpoint {prefix} has "
                    f"{rows} rows")
  if labels is not None and head == "classifier" and len(labels) != rows:
    raise FlagError(f"--labels has {len(labels)} labels, the classifier head of {prefix} "
                    f"{rows} rows")
  shapes = names.expected_shapes(albert_config)
  wrong = [n for n, s in shapes.items() if n in tensors and list(tensors[n].shape) != s]
  if wrong:
    raise CheckpointError(f"checkpoint {prefix} does not fit the albert config: {wrong[0]} has "
                          f"shape {list(tensors[wrong[0]].shape)}, the config implies "
                          f"{shapes[wrong[0]]}")
  architecture = names.HEAD_ARCHITECTURES[head]
  encoder_prefix = "" if head == "none" else "albert."
  out, left = hf_tensors_checked(tensors, albert_config, head, encoder_prefix, prefix)
  if head == "classifier" and labels is None:
    labels = [f"LABEL_{i}" for i in range(rows)]
  hf_config = names.config_to_hf(albert_config, architecture,
                                 labels=list(labels) if head == "classifier" else None,
                                 regression=head == "regression")
  if spm_model_file and not os.path.isfile(spm_model_file):
    raise FlagError(f"--spm_model_file={spm_model_file}: no such file")

  def write(tmp: str) -> None:
    hf_folder.write_hf_folder(tmp, out, hf_config, spm_model_file, do_lower_case)
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    _check_equal(out, load_file(os.path.join(tmp, hf_folder.WEIGHTS)), tmp)
    back = hf_folder.HFFolder(tmp).tensors()  # and through our own reader, in TF1 names
    kept = {n: v for n, v in tensors.items() if n not in left}
    _check_equal(kept, back, tmp)

  files.write_directory(output_dir, write, overwrite=overwrite)
  log(f"{architecture}: {len(out)} tensors" + (f", left out: {', '.join(left)}" if left else ""))
  return ConversionResult(output_dir, head, sorted(out), left)


def hf_tensors_checked(tensors, config, head, encoder_prefix, prefix):
  """`hf_folder.hf_tensors`, refusing a checkpoint whose E == H mapping it cannot drop."""
  if config.embedding_size == config.hidden_size and any(
      "embedding_hidden_mapping_in" in n for n in tensors):
    raise CheckpointError(f"checkpoint {prefix} has embedding_hidden_mapping_in although "
                          "embedding_size == hidden_size")
  return hf_folder.hf_tensors(tensors, config, head, encoder_prefix)
