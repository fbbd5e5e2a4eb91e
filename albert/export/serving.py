"""Serving a fine-tuned model: one class per task kind, each signature one method of it.

`ClassifierServing` (GLUE, STS-B), `SquadServing` (v1, v2) and `RaceServing` wrap a task model
(as `albert.models.build_*_model` returns it, weights loaded). Each has:

* `serve`: the `token_ids` signature, the kind's int32 inputs by name -> its outputs;
* where the kind has them, `serve_examples` (serialized `tf.Example`s) and raw-text methods;
* `get_inference_signatures()`: signature name -> method, what the SavedModel serves;
* `check(loaded)`: the reloaded SavedModel against the in-memory model (1e-5);
* `export(export_dir, step=...)`: the version folder, through `albert.export.versioned`.

Adding a signature is one method in one class, named in its `get_inference_signatures`.

From a task and a checkpoint (the scripts' `--export_dir`): `XServing.check_export_dir(task,
settings)` before the training (a base path that serves another model is refused), then
`XServing.export_task(task, checkpoint, settings)`; `versioned.checkpoint_to_export(output_dir,
init_checkpoint)` picks the weights as `--do_predict` does.

Signatures (inputs and outputs in docs/export.md): SQuAD and RACE serve `serving_default` =
`token_ids`. GLUE serves `serving_default` = `tf_example` (the original's serving input:
serialized tf.Examples named `input`), `token_ids`, and with a SentencePiece model `raw_text`,
`raw_text_pair` and `encode_text`: the original's GLUE features in-graph
(`albert.export.preprocessing.TextPipeline`; loading needs `import tensorflow_text`), run on
the batch's longest row. `--threshold_to_export` adds `threshold`, `above_threshold` and, for
two labels, `thresholded_predictions` and `thresholded_label` (NaN, the default: none).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from albert import files
from albert import checkpoint, tokenization
from albert.data.glue import features as glue_features
from albert.data.glue import reader as glue
from albert.errors import ExportError, FlagError
from albert.export import preprocessing, versioned
from albert.models import ENCODER_INPUTS, SQUAD_V2_PREDICT_OUTPUTS, output_subset

Outputs = Dict[str, tf.Tensor]
TF_EXAMPLE_INPUT = "input"  # the original's receiver (a single tensor: the estimator's "input")
RACE_ANSWERS = ("A", "B", "C", "D")
# Checked through both paths at export time: a single sentence, a pair, a pair whose second
# text is empty, accents and case, digits with commas, and a pair long enough to be truncated.
CHECK_TEXTS = (
    ("A gripping, beautifully acted film.", None),
    ("The cat sat on the mat.", "A cat is sitting on a mat."),
    ("Nothing follows this one.", ""),
    ("  Crème BRÛLÉE costs 1,000 dollars\tin Zürich!", "Überraschung: 42 naïve cafés."),
    (" ".join(["the quick brown fox jumps over the lazy dog"] * 70),
     " ".join(["pack my box with five dozen liquor jugs"] * 40)),
)


def _ids(names: Sequence[str]) -> List[tf.TensorSpec]:
  return [tf.TensorSpec([None, None], tf.int32, name=name) for name in names]


def _strings(name: str) -> tf.TensorSpec:
  return tf.TensorSpec([None], tf.string, name=name)


@dataclasses.dataclass(frozen=True)
class ExportSettings:
  """The export flags of a fine-tuning script.

  Attributes:
    export_dir: --export_dir, the model base path (versions go below it).
    threshold: --threshold_to_export (classifiers; NaN: none).
    version: the version folder (None: the global step of the exported checkpoint).
    raw_text: add the raw-text signatures (classifiers; they need a SentencePiece model and
      the tensorflow-text ops wherever the export is loaded).
    overwrite: replace a version folder that holds another export.
  """

  export_dir: str
  threshold: float = float("nan")
  version: Optional[int] = None
  raw_text: bool = True
  overwrite: bool = False


# ------------------------------------------------------------------------------ the base
class ServingModule:
  """What every served task model shares; a subclass per task kind defines `serve`.

  Args:
    model: the task model, weights loaded (served in inference mode).
    info: JSON-able settings recorded with the export (`export_info.json`) beside `task_kind`.
    assets: attribute name -> file stored with the export (e.g. `sp_model_file`).
    step: the global step of the weights (the default version); source: their checkpoint.
  """

  kind = ""  # the task_kind recorded in export_info.json
  model_outputs: Tuple[str, ...] = ("logits", "probabilities", "predictions")

  def __init__(self, model: tf_keras.Model, info: Optional[Mapping[str, Any]] = None,
               assets: Optional[Mapping[str, str]] = None, step: Optional[int] = None,
               source: Optional[str] = None):
    missing = [k for k in self.model_outputs if k not in model.output]
    if missing:
      raise ExportError(f"model {model.name} is not a {self.kind} model: it has no output "
                        f"{', '.join(missing)} (outputs: {', '.join(sorted(model.output))})")
    self.model = model
    self._served = output_subset(model, self.model_outputs, name=f"{model.name}_serving")
    self.info = dict(info or {})
    self.assets = dict(assets or {})
    self.trackables: Dict[str, object] = {}  # resources the signatures use (a tokenizer)
    self.step, self.source = step, source

  # ------------------------------------------------------------------ from a task
  @classmethod
  def served(cls, task, settings: ExportSettings) -> Dict[str, Any]:
    """What an export of `task` records that tells its model apart (`versioned.SERVED_KEYS`),
    known before the training; checks the settings."""
    return {"task_kind": cls.kind, "max_seq_length": task.config.finetune.max_seq_length}

  @classmethod
  def from_task(cls, task, model: tf_keras.Model, settings: ExportSettings,
                step: Optional[int] = None, source: Optional[str] = None,
                log: Callable[[str], None] = print) -> "ServingModule":
    """The serving module of `task`'s model, whose weights are `source`'s (at `step`)."""
    del settings, log
    return cls(model, info={"max_seq_length": task.config.finetune.max_seq_length}, step=step,
               source=source)

  @classmethod
  def check_export_dir(cls, task, settings: ExportSettings) -> None:
    """Before the training: refuses an --export_dir whose versions serve another model
    (`versioned.check_export_base`), so that a long run is not wasted."""
    versioned.check_export_base(settings.export_dir, cls.served(task, settings))

  @classmethod
  def export_task(cls, task, checkpoint_path: str, settings: ExportSettings,
                  log: Callable[[str], None] = print) -> versioned.ExportResult:
    """Exports `task`'s model with the weights of `checkpoint_path` (read by
    `versioned.load_task_model`) to `settings.export_dir/<version>/`; the settings are checked
    before the checkpoint is read."""
    cls.served(task, settings)
    model, prefix, step = versioned.load_task_model(task, checkpoint_path)
    module = cls.from_task(task, model, settings, step=step, source=prefix, log=log)
    return module.export(settings.export_dir, version=settings.version,
                         overwrite=settings.overwrite, log=log)

  # ------------------------------------------------------------------- signatures
  def outputs(self, features: Dict[str, tf.Tensor]) -> Outputs:
    """features (the kind's inputs by name) -> the served outputs, in inference mode."""
    return dict(self._served({k: features[k] for k in self._served.input}, training=False))

  def serve(self, *ids: tf.Tensor) -> Outputs:
    raise NotImplementedError("each task kind's class defines its token-id signature")

  def get_inference_signatures(self) -> Dict[str, tf.types.experimental.GenericFunction]:
    """Signature name -> tf.function (with its input signature)."""
    return {"serving_default": self.serve, "token_ids": self.serve}

  # ----------------------------------------------------------------------- export
  def check(self, loaded) -> Dict[str, float]:
    """The reloaded `token_ids` signature vs the in-memory model on sample features."""
    return self.check_token_ids(loaded, sample_features(self.kind, _vocab_size(self.model)))

  def check_token_ids(self, loaded, features: Mapping[str, np.ndarray]) -> Dict[str, float]:
    tensors = {k: tf.constant(v) for k, v in features.items()}
    want = {k: v.numpy() for k, v in self.outputs(tensors).items()}
    got = {k: v.numpy() for k, v in loaded.signatures["token_ids"](**tensors).items()}
    return versioned.compare_outputs("token_ids", got, want)

  def export(self, export_dir: str, version: Optional[int] = None, step: Optional[int] = None,
             source: Optional[str] = None, overwrite: bool = False,
             log: Callable[[str], None] = print) -> versioned.ExportResult:
    """Writes `export_dir/<version>/` (default version: the weights' global step), checked
    after reloading; returns the ExportResult (path, version, signatures, max |diff|)."""
    step = self.step if step is None else step
    source = self.source if source is None else source
    if version is None:
      if step is None:
        raise FlagError("give the export a version, or the global step of its weights")
      version = step
    self.serve.get_concrete_function()  # traced once, at the top level: every signature reuses it
    signatures = self.get_inference_signatures()
    info = {"task_kind": self.kind, "global_step": step, "checkpoint": source, **self.info}
    return versioned.write_export(export_dir, version, self.model.weights, signatures,
                                  check=self.check, info=info, assets=self.assets,
                                  trackables=self.trackables, overwrite=overwrite, log=log)


# ---------------------------------------------------------------------- SQuAD, RACE
class SquadServing(ServingModule):
  """SQuAD v1.1 / v2.0: `serve` takes the features and `p_mask`, returns the logits (v1) or
  the beam outputs (v2) that `albert.data.squad.postprocess` decodes."""

  def __init__(self, model: tf_keras.Model, version_2_with_negative: bool, **kwargs):
    self.kind = "squad_v2" if version_2_with_negative else "squad_v1"
    self.model_outputs = (("start_log_probs",) + SQUAD_V2_PREDICT_OUTPUTS
                          if version_2_with_negative else ("start_logits", "end_logits"))
    super().__init__(model, **kwargs)

  @tf.function(autograph=False, input_signature=_ids(ENCODER_INPUTS + ("p_mask",)))
  def serve(self, input_ids, input_mask, segment_ids, p_mask):
    return self.outputs({"input_ids": input_ids, "input_mask": input_mask,
                         "segment_ids": segment_ids, "p_mask": p_mask})

  @classmethod
  def served(cls, task, settings: ExportSettings) -> Dict[str, Any]:
    return {"task_kind": "squad_v2" if task.v2 else "squad_v1",
            "max_seq_length": task.config.finetune.max_seq_length}

  @classmethod
  def from_task(cls, task, model, settings, step=None, source=None, log=print
                ) -> "SquadServing":
    """With what `SquadAnswerer.from_export` reads back: the tokenizer and its settings, and
    the held-out null threshold stored with the checkpoint `source` (v2)."""
    spec = task.tokenizer_spec()
    stored = task.stored_threshold(source)
    info = {"max_seq_length": task.config.finetune.max_seq_length,
            "do_lower_case": spec.do_lower_case, "doc_stride": task.config.doc_stride,
            "max_query_length": task.config.max_query_length,
            "null_score_diff_threshold": stored["threshold"] if stored else None}
    return cls(model, task.v2, info=info, assets={"sp_model_file": spec.spm_model_file},
               step=step, source=source)


class RaceServing(ServingModule):
  """RACE: `serve` takes the four choices' ids choice-major ([B, 4*S]), as the RACE records;
  the answer letter is served beside the prediction."""

  kind = "race"

  @tf.function(autograph=False, input_signature=_ids(ENCODER_INPUTS))
  def serve(self, input_ids, input_mask, segment_ids):
    return self.outputs({"input_ids": input_ids, "input_mask": input_mask,
                         "segment_ids": segment_ids})

  def outputs(self, features):
    result = super().outputs(features)
    result["answer"] = tf.gather(tf.constant(RACE_ANSWERS), result["predictions"])
    return result


# ---------------------------------------------------------------------- classifiers
@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
  """What a GLUE export serves: the task, its labels, the text pipeline and the threshold."""

  task_name: str
  labels: Tuple[str, ...]  # () for STS-B
  max_seq_length: int
  spm_model_file: Optional[str] = None  # None: no raw-text signatures
  do_lower_case: bool = True
  threshold: Optional[float] = None

  @property
  def regression(self) -> bool:
    return not self.labels

  @property
  def kind(self) -> str:
    return "regression" if self.regression else "classification"

  def __post_init__(self):
    if self.max_seq_length < 3:
      raise FlagError(f"--max_seq_length={self.max_seq_length} is too small ([CLS] x [SEP])")
    if self.threshold is None:
      return
    if not math.isfinite(self.threshold):
      raise FlagError(f"--threshold_to_export must be a finite number, got {self.threshold}")
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
  def of_task(cls, task, settings: ExportSettings) -> "ClassifierSpec":
    """The spec of a GLUE task (`ClassifierTask`) exported with these settings."""
    spec = task.tokenizer_spec()
    spm_model = spec.spm_model_file if settings.raw_text else None
    if spm_model and "://" not in spm_model and not files.isfile(spm_model):
      raise FlagError(f"--spm_model_file={spm_model}: no such file")
    return cls.for_task(task.task_name, task.config.finetune.max_seq_length, spm_model,
                        spec.do_lower_case, settings.threshold)

  def info(self) -> dict:
    return {"task_name": self.task_name, "labels": list(self.labels),
            "max_seq_length": self.max_seq_length, "do_lower_case": self.do_lower_case,
            "threshold": self.threshold, "raw_text": bool(self.spm_model_file)}


class ClassifierServing(ServingModule):
  """GLUE and your own classification data: token ids, tf.Example, raw text (see the module
  docstring), label names and the threshold outputs."""

  def __init__(self, model: tf_keras.Model, spec: ClassifierSpec, **kwargs):
    self.kind = spec.kind
    self.spec = spec
    super().__init__(model, info=spec.info(), **kwargs)
    self.pipeline = (preprocessing.TextPipeline(spec.spm_model_file, spec.do_lower_case,
                                                spec.max_seq_length)
                     if spec.spm_model_file else None)
    if self.pipeline is not None:
      self.assets["sp_model_file"] = spec.spm_model_file
      self.trackables["tokenizer"] = self.pipeline.tokenizer

  @classmethod
  def served(cls, task, settings):
    spec = ClassifierSpec.of_task(task, settings)
    return {"task_kind": spec.kind, **spec.info()}

  @classmethod
  def from_task(cls, task, model, settings, step=None, source=None, log=print
                ) -> "ClassifierServing":
    spec = ClassifierSpec.of_task(task, settings)
    if settings.raw_text and not spec.spm_model_file:
      log("note: no SentencePiece model (--spm_model_file): the export has no raw-text "
          "signatures (the in-graph pipeline is SentencePiece only)")
    return cls(model, spec, step=step, source=source)

  # ------------------------------------------------------------------- signatures
  def outputs(self, features):
    """The model's outputs, the label names and the threshold ones."""
    result = super().outputs(features)
    labels, threshold = list(self.spec.labels), self.spec.threshold
    if labels:
      result["label"] = tf.gather(tf.constant(labels), result["predictions"])
    if threshold is None:
      return result
    value = tf.constant(threshold, tf.float32)
    result["threshold"] = tf.fill([tf.shape(result["predictions"])[0]], value)
    if not labels:
      result["above_threshold"] = result["predictions"] >= value
    elif len(labels) == 2:
      above = result["probabilities"][:, 1] >= value
      result["above_threshold"] = above
      result["thresholded_predictions"] = tf.cast(above, tf.int32)
      result["thresholded_label"] = tf.gather(tf.constant(labels), tf.cast(above, tf.int32))
    return result

  @tf.function(autograph=False, input_signature=_ids(ENCODER_INPUTS))
  def serve(self, input_ids, input_mask, segment_ids):
    return self.outputs({"input_ids": input_ids, "input_mask": input_mask,
                         "segment_ids": segment_ids})

  def _serve_padded(self, features: Dict[str, tf.Tensor]) -> Outputs:
    features = trim_padding(features)
    return self.serve(*(features[k] for k in ENCODER_INPUTS))

  @tf.function(autograph=False, input_signature=[_strings(TF_EXAMPLE_INPUT)])
  def serve_examples(self, serialized):
    """The original's serving input: serialized tf.Examples of max_seq_length int64 ids."""
    schema = {k: tf.io.FixedLenFeature([self.spec.max_seq_length], tf.int64)
              for k in ENCODER_INPUTS}
    parsed = tf.io.parse_example(serialized, schema)
    return self._serve_padded({k: tf.cast(v, tf.int32) for k, v in parsed.items()})

  @tf.function(autograph=False, input_signature=[_strings("sentence"), _strings("sentence2")])
  def encode_text(self, sentence, sentence2):
    """The text pipeline, one function that every raw-text signature calls (traced once)."""
    return self.pipeline.features(sentence, sentence2)

  @tf.function(autograph=False, input_signature=[_strings("sentence")])
  def serve_text(self, sentence):
    return self._serve_padded(self.encode_text(sentence, tf.fill(tf.shape(sentence), "")))

  @tf.function(autograph=False, input_signature=[_strings("sentence"), _strings("sentence2")])
  def serve_text_pair(self, sentence, sentence2):
    return self._serve_padded(self.encode_text(sentence, sentence2))

  def get_inference_signatures(self):
    signatures = {"serving_default": self.serve_examples, "tf_example": self.serve_examples,
                  "token_ids": self.serve}
    if self.pipeline is not None:
      self.encode_text.get_concrete_function()
      signatures.update(raw_text=self.serve_text, raw_text_pair=self.serve_text_pair,
                        encode_text=self.encode_text)
    return signatures

  # ----------------------------------------------------------------------- export
  def check(self, loaded) -> Dict[str, float]:
    """`token_ids` and `tf_example` on the Python tokenizer's features of CHECK_TEXTS,
    `raw_text_pair` on the texts themselves (the in-graph pipeline against
    `albert.data.glue.features`); the other signatures reuse these functions."""
    spec, pairs = self.spec, list(CHECK_TEXTS)
    features = python_features(spec, pairs) if spec.spm_model_file else sample_features(
        self.kind, 100, seq_length=spec.max_seq_length)  # tf.Examples hold max_seq_length ids
    diffs = self.check_token_ids(loaded, features)
    want = {k: v.numpy() for k, v in self.outputs(trim_padding(
        {k: tf.constant(v) for k, v in features.items()})).items()}
    got = loaded.signatures["tf_example"](**{TF_EXAMPLE_INPUT: tf.constant(example_bytes(
        features))})
    diffs.update(versioned.compare_outputs("tf_example", _numpy(got), want))
    if spec.spm_model_file:
      got = loaded.signatures["raw_text_pair"](sentence=tf.constant([a for a, _ in pairs]),
                                               sentence2=tf.constant([b or "" for _, b in pairs]))
      diffs.update(versioned.compare_outputs("raw_text_pair", _numpy(got), want))
    return diffs

  def export(self, export_dir, version=None, step=None, source=None, overwrite=False,
             log=print):
    if self.spec.threshold is not None and len(self.spec.labels) > 2:
      log(f"note: {self.spec.task_name} has {len(self.spec.labels)} labels: the export "
          f"returns the threshold {self.spec.threshold} beside the predictions but decides "
          "nothing with it")
    return super().export(export_dir, version, step, source, overwrite, log)


def trim_padding(features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """Drops the columns after the last unmasked position of every row ([B,S] -> [B,S'])."""
  mask = features["input_mask"]
  positions = tf.range(1, tf.shape(mask)[1] + 1)[None, :]
  width = tf.maximum(tf.reduce_max(tf.where(mask > 0, positions, 0)), 1)
  return {k: v[:, :width] for k, v in features.items()}


def python_features(spec: ClassifierSpec, pairs: Sequence[Tuple[str, Optional[str]]]
                    ) -> Dict[str, np.ndarray]:
  """The original's features of (text_a, text_b) pairs through `albert.data.glue.features`."""
  process = tokenization.text_processor(spec.do_lower_case, use_spm=True)
  tokenizer = tokenization.FullTokenizer(None, spec.do_lower_case, spec.spm_model_file)
  label_list = list(spec.labels) or [None]
  converter = glue_features.FeatureConverter(tokenizer, label_list, spec.max_seq_length,
                                             is_regression=spec.regression)
  examples = [glue.InputExample(guid=str(i), text_a=process(a),
                                text_b=process(b) if b is not None else None,
                                label=label_list[0] if spec.labels else 0.0)
              for i, (a, b) in enumerate(pairs)]
  found = converter.features(examples)
  return {k: np.array([getattr(f, k) for f in found], np.int32) for k in ENCODER_INPUTS}


def example_bytes(features: Mapping[str, np.ndarray]) -> List[bytes]:
  """Serialized tf.Examples of int features [B,S] (the original's serving input)."""
  from albert.data import records  # pylint: disable=g-import-not-at-top
  rows = len(features["input_ids"])
  return [records.encode_example({k: ("int64", [int(x) for x in features[k][i]])
                                  for k in ENCODER_INPUTS}) for i in range(rows)]


# --------------------------------------------------------------------------- helpers
def _numpy(outputs: Mapping[str, tf.Tensor]) -> Dict[str, np.ndarray]:
  return {k: v.numpy() for k, v in outputs.items()}


def _vocab_size(model: tf_keras.Model, default: int = 100) -> int:
  for var in model.weights:
    if checkpoint.variable_name(var) == "bert/embeddings/word_embeddings":
      return int(var.shape[0])
  return default


def sample_features(kind: str, vocab_size: int, batch_size: int = 3, seq_length: int = 13,
                    num_choices: int = len(RACE_ANSWERS), seed: int = 0
                    ) -> Dict[str, np.ndarray]:
  """Seeded int32 inputs of a task kind with padding ([B, C*S] for RACE), for the checks."""
  rng = np.random.RandomState(seed)
  rows = batch_size * (num_choices if kind == "race" else 1)
  lengths = rng.randint(3, seq_length + 1, size=rows)
  lengths[0] = seq_length
  positions = np.arange(seq_length)[None, :]
  mask = (positions < lengths[:, None]).astype(np.int32)
  ids = rng.randint(5, vocab_size, size=(rows, seq_length)).astype(np.int32) * mask
  ids[:, 0] = 2 % vocab_size
  segments = ((positions >= lengths[:, None] // 2) * mask).astype(np.int32)
  features = {"input_ids": ids, "input_mask": mask, "segment_ids": segments}
  if kind == "race":
    features = {k: v.reshape(batch_size, -1) for k, v in features.items()}
  if kind.startswith("squad"):
    features["p_mask"] = (1 - segments) * mask  # the question and the padding: not answers
    features["p_mask"][:, 0] = 0  # [CLS] stays legal (the no-answer position)
    features["p_mask"] = (features["p_mask"] + (1 - mask)).astype(np.int32)
  return features
