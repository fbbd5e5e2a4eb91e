"""Classifies texts with a fine-tuned classifier: the Python API of run_classifier (GLUE or custom).

`TextClassifier.from_export(export_dir)` (a `run_classifier.py --export_dir` version folder: its
labels, task type, threshold and tokenizer settings are read from the export) or
`TextClassifier.from_run_dir(output_dir, spm_model_file)` (a run directory: `labels.txt`,
`albert_config.json`, the run's settings, `model.ckpt-best` or the latest checkpoint), then
`classify(["a text", ("a premise", "a hypothesis"), ...])` -> one dict per input, in order:
`label` (the label name; a list of names for multi-label, every label at or over the threshold;
the score for regression) and `probabilities` (label name -> probability; absent for
regression).

The features are built in Python by the training's own code (`python_features`:
`albert.data.glue.features.FeatureConverter`, the processors' text preprocessing), padded to
the batch's longest row; the model is called in one place, `run_model(features)`: int32
`input_ids`, `input_mask`, `segment_ids` [B, S] -> the outputs of the export's `token_ids`
signature (`logits`, `probabilities`, ...). `backend` names what runs an export (`"savedmodel"`,
`"onnx"`, `"tflite"`: `albert.export.runtime.load`, the one runner the SQuAD answerer uses too);
a run directory's Keras model counts as "savedmodel".

`ClassifierSpec` (what an export serves: labels, task type, text settings, threshold) lives here
too; `albert.export.serving.ClassifierServing` serves it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from albert import files, tokenization
from albert.data.glue import custom as glue_custom
from albert.data.glue import features as glue_features
from albert.data.glue import reader as glue
from albert.errors import FlagError, InputError
from albert.export.runtime import BACKENDS
from albert.models import ENCODER_INPUTS

Text = Union[str, Tuple[str, Optional[str]], Sequence[str]]


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
  """What a classifier export serves: the task, its labels, the text pipeline and the threshold.

  `multi_label`: the labels are chosen by `threshold` (a probability, default 0.5), each on its
  own (a custom `--task_type=multi_label` task)."""

  task_name: str
  labels: Tuple[str, ...]  # () for regression (STS-B)
  max_seq_length: int
  spm_model_file: Optional[str] = None  # None: no raw-text signatures
  do_lower_case: bool = True
  threshold: Optional[float] = None
  multi_label: bool = False

  @property
  def regression(self) -> bool:
    return not self.labels

  @property
  def kind(self) -> str:
    return ("regression" if self.regression else "multi_label" if self.multi_label else
            "classification")

  def __post_init__(self):
    if self.max_seq_length < 3:
      raise FlagError(f"--max_seq_length={self.max_seq_length} is too small ([CLS] x [SEP])")
    if self.threshold is None:
      if self.multi_label:
        raise FlagError("a multi-label export needs its threshold (--multi_label_threshold)")
      return
    if not math.isfinite(self.threshold):
      raise FlagError(f"--threshold_to_export must be a finite number, got {self.threshold}")
    if self.multi_label and not 0 < self.threshold < 1:
      raise FlagError(f"--multi_label_threshold={self.threshold}: a probability in (0, 1)")
    if len(self.labels) == 2 and not 0 <= self.threshold <= 1:
      raise FlagError(f"--threshold_to_export={self.threshold}: for {self.task_name} (two "
                      "labels) it is a probability threshold on label "
                      f"{self.labels[1]!r}, in [0, 1]")

  @classmethod
  def for_task(cls, task_name: str, max_seq_length: int, spm_model_file: Optional[str],
               do_lower_case: bool, threshold: float = float("nan")) -> "ClassifierSpec":
    processor = glue.get_processor(task_name)
    labels = () if processor.is_regression else tuple(str(l) for l in processor.labels)
    return cls(task_name=processor.name, labels=labels, max_seq_length=max_seq_length,
               spm_model_file=spm_model_file, do_lower_case=do_lower_case,
               threshold=None if threshold is None or math.isnan(threshold) else threshold)

  @classmethod
  def from_info(cls, info: Dict[str, Any], spm_model_file: Optional[str],
                max_seq_length: Optional[int] = None) -> "ClassifierSpec":
    """The spec an export recorded (`info()`, in export_info.json or serving.json), GLUE or
    custom; `max_seq_length` overrides the recorded one."""
    return cls(task_name=info["task_name"], labels=tuple(info["labels"]),
               max_seq_length=int(max_seq_length or info["max_seq_length"]),
               spm_model_file=spm_model_file,
               do_lower_case=bool(info.get("do_lower_case", True)),
               threshold=info.get("threshold"), multi_label=bool(info.get("multi_label")))

  @classmethod
  def of_task(cls, task, settings) -> "ClassifierSpec":
    """The spec of a `ClassifierTask` (GLUE or custom) exported with `settings`
    (`serving.ExportSettings`); a custom task's labels are its run's."""
    spec = task.tokenizer_spec()
    spm_model = spec.spm_model_file if settings.raw_text else None
    if spm_model and "://" not in spm_model and not files.isfile(spm_model):
      raise FlagError(f"--spm_model_file={spm_model}: no such file")
    max_seq_length = task.config.finetune.max_seq_length
    if getattr(task, "custom", None) is None:
      return cls.for_task(task.task_name, max_seq_length, spm_model, spec.do_lower_case,
                          settings.threshold)
    threshold = None if math.isnan(settings.threshold) else settings.threshold
    if task.multi_label and threshold is None:
      threshold = task.custom.multi_label_threshold
    labels = () if task.regression else tuple(str(l) for l in task.processor.labels)
    return cls(task_name=task.task_name, labels=labels, max_seq_length=max_seq_length,
               spm_model_file=spm_model, do_lower_case=spec.do_lower_case,
               threshold=threshold, multi_label=task.multi_label)

  def info(self) -> dict:
    return {"task_name": self.task_name, "labels": list(self.labels),
            "max_seq_length": self.max_seq_length, "do_lower_case": self.do_lower_case,
            "threshold": self.threshold, "raw_text": bool(self.spm_model_file),
            **({"multi_label": True} if self.multi_label else {})}


class TextFeatures:
  """The training's features of (text_a, text_b) pairs, built once per tokenizer."""

  def __init__(self, spec: ClassifierSpec):
    if not spec.spm_model_file:
      raise FlagError("classifying raw text needs the SentencePiece model (spm_model_file)")
    self.spec = spec
    self.process = tokenization.text_processor(spec.do_lower_case, use_spm=True)
    tokenizer = tokenization.FullTokenizer(None, spec.do_lower_case, spec.spm_model_file)
    self.label_list = list(spec.labels) or [None]
    self.converter = glue_features.FeatureConverter(tokenizer, self.label_list,
                                                    spec.max_seq_length,
                                                    is_regression=spec.regression)

  def __call__(self, pairs: Sequence[Tuple[str, Optional[str]]], trim: bool = False
               ) -> Dict[str, np.ndarray]:
    """int32 features [B, max_seq_length] (`trim`: [B, the longest row])."""
    label = self.label_list[0] if self.spec.labels else 0.0
    examples = [glue.InputExample(guid=str(i), text_a=self.process(a),
                                  text_b=self.process(b) if b is not None else None,
                                  label=label)
                for i, (a, b) in enumerate(pairs)]
    found = self.converter.features(examples)
    width = max([f.length for f in found] + [1]) if trim else self.spec.max_seq_length
    return {k: np.array([getattr(f, k)[:width] for f in found], np.int32)
            for k in ENCODER_INPUTS}


def python_features(spec: ClassifierSpec, pairs: Sequence[Tuple[str, Optional[str]]]
                    ) -> Dict[str, np.ndarray]:
  """The original's features of (text_a, text_b) pairs through `albert.data.glue.features`."""
  return TextFeatures(spec)(pairs)


# ------------------------------------------------------------------------ the Python API
class TextClassifier:
  """See the module docstring.

  Args:
    spec: the labels, task type, threshold and text settings.
    model_fn: int32 features by name -> the `token_ids` outputs (numpy); what `run_model` calls.
    backend: what runs the model ("savedmodel", "onnx" or "tflite").
    batch_size: rows per model call.
  """

  def __init__(self, spec: ClassifierSpec, model_fn: Callable[[Dict[str, np.ndarray]],
                                                              Dict[str, np.ndarray]],
               backend: str = "savedmodel", batch_size: int = 32):
    _check_backend(backend)
    self.spec, self.backend, self.batch_size = spec, backend, batch_size
    self._model_fn = model_fn
    self.features = TextFeatures(spec)

  # --------------------------------------------------------------------------- constructors
  @classmethod
  def from_export(cls, export_dir: str, spm_model_file: Optional[str] = None,
                  backend: str = "savedmodel", quantized: bool = False,
                  batch_size: int = 32) -> "TextClassifier":
    """A `run_classifier.py --export_dir` version folder (its `token_ids` signature) with
    backend="savedmodel", or its `onnx/` or `tflite/` folder (`--export_onnx`,
    `--export_tflite`; the version folder is taken to mean that folder) with backend="onnx" or
    "tflite" (`quantized`: the int8 model). Every backend runs through
    `albert.export.runtime.load`, and gives the same labels."""
    _check_backend(backend)
    from albert import hub  # pylint: disable=g-import-not-at-top
    from albert.export import runtime  # pylint: disable=g-import-not-at-top
    runner = runtime.load(export_dir, backend, quantized=quantized)
    info: Dict[str, Any] = runner.info
    kind = info.get("task_kind")
    if kind not in ("classification", "regression", "multi_label"):
      raise FlagError(f"{export_dir} is not a classifier export (task kind {kind!r}); export "
                      "one with run_classifier.py --export_dir")
    if not spm_model_file:
      if backend == "savedmodel":
        spm_model_file = hub.find_asset(export_dir, ["*.model"])
      elif info.get("spm_model"):
        spm_model_file = os.path.join(os.path.dirname(runner.path), info["spm_model"])
    return cls(ClassifierSpec.from_info(info, spm_model_file), runner.run, backend, batch_size)

  @classmethod
  def from_run_dir(cls, output_dir: str, spm_model_file: str,
                   checkpoint_path: Optional[str] = None, threshold: float = 0.5,
                   batch_size: int = 32) -> "TextClassifier":
    """A run_classifier.py --output_dir: its labels.txt, albert_config.json and recorded
    settings, and `checkpoint_path` (default: model.ckpt-best, else the latest model.ckpt-N)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from albert import checkpoint  # pylint: disable=g-import-not-at-top
    from albert.config import AlbertConfig  # pylint: disable=g-import-not-at-top
    from albert.models import build_classifier_model  # pylint: disable=g-import-not-at-top
    from albert.train.run_dir import RunDir  # pylint: disable=g-import-not-at-top
    run = RunDir(output_dir)
    settings = (run.identity() or {}).get("settings") or {}
    config_file = os.path.join(output_dir, "albert_config.json")
    if not settings or not os.path.isfile(config_file):
      raise InputError(f"{output_dir} holds no classifier run (no albert_config.json and "
                       f"{run.identity_file}); train one with run_classifier.py")
    task_type = settings.get("task_type", "classification")
    labels = glue_custom.read_labels(os.path.join(output_dir, glue_custom.LABELS_FILE))
    labels = [l for l in (labels or settings.get("labels") or []) if l is not None]
    spec = ClassifierSpec(task_name=settings.get("task_name", "custom"), labels=tuple(labels),
                          max_seq_length=int(settings["max_seq_length"]),
                          spm_model_file=spm_model_file,
                          do_lower_case=bool(settings.get("do_lower_case", True)),
                          threshold=threshold if task_type == "multi_label" else None,
                          multi_label=task_type == "multi_label")
    found = checkpoint_path or run.best_or_latest()
    if not found:
      raise InputError(f"{output_dir}: no model.ckpt-best or model.ckpt-N to classify with")
    model = build_classifier_model(AlbertConfig.from_json_file(config_file),
                                   max(1, len(labels)), regression=not labels,
                                   multi_label=spec.multi_label)
    checkpoint.load_tf1_checkpoint(model, found, require_all=True)
    outputs = ("logits", "probabilities")

    def model_fn(features):
      result = model({k: tf.constant(v) for k, v in features.items()}, training=False)
      return {k: result[k].numpy() for k in outputs}

    return cls(spec, model_fn, "savedmodel", batch_size)

  # ---------------------------------------------------------------------------- classifying
  def run_model(self, features: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The one model call: int32 `input_ids`, `input_mask`, `segment_ids` [B, S] -> the
    `token_ids` signature's outputs (numpy)."""
    return self._model_fn({k: np.asarray(features[k], np.int32) for k in ENCODER_INPUTS})

  def classify(self, texts: Sequence[Text]) -> List[Dict[str, Any]]:
    """One dict per text (or pair), in order: `label`, `probabilities` (module docstring)."""
    pairs = [_text_pair(text, i) for i, text in enumerate(texts)]
    names = list(self.spec.labels)
    found: List[Dict[str, Any]] = []
    for start in range(0, len(pairs), self.batch_size):
      outputs = self.run_model(self.features(pairs[start:start + self.batch_size], trim=True))
      logits = np.asarray(outputs["logits"], np.float64)
      probabilities = np.asarray(outputs["probabilities"], np.float64)
      for row in range(len(logits)):
        if self.spec.regression:
          found.append({"label": float(logits.reshape(-1)[row])})
          continue
        p = probabilities[row]
        if self.spec.multi_label:
          label = [n for n, q in zip(names, p) if q >= self.spec.threshold]
        else:
          label = names[int(np.argmax(p))]
        found.append({"label": label,
                      "probabilities": {n: float(q) for n, q in zip(names, p)}})
    return found


def _check_backend(backend: str) -> None:
  if backend not in BACKENDS:
    raise FlagError(f"backend={backend!r}: expected one of {', '.join(map(repr, BACKENDS))}")


def _text_pair(text: Text, index: int) -> Tuple[str, Optional[str]]:
  if isinstance(text, str):
    pair = (text, None)
  elif isinstance(text, (list, tuple)) and len(text) in (1, 2):
    pair = (text[0], text[1] if len(text) == 2 else None)
  else:
    raise InputError(f"text {index}: expected a string or a (text, text_pair) pair, got "
                     f"{json.dumps(text, default=str)[:80]}")
  if not isinstance(pair[0], str) or not pair[0].strip():
    raise InputError(f"text {index}: empty text")
  return pair
