"""The GLUE export of run_classifier.py (`--export_dir`, `--threshold_to_export`).

`export_classifier(trainer, ExportSettings(export_dir, threshold))` writes the weights
`--do_predict` would use (`model.ckpt-best`, else the latest `model.ckpt-N`, else
`--init_checkpoint`) as `export_dir/<global step>/`, a SavedModel TF Serving serves (see
`albert.export.versioned` for versions and atomic writing), with these signatures:

* `serving_default` and `tf_example`: the original's serving input, serialized `tf.Example`s
  (string [B], input name `input`) with int64 features `input_ids`, `input_mask`,
  `segment_ids` of length max_seq_length;
* `token_ids`: int32 `input_ids`, `input_mask`, `segment_ids` [B,S] (any S up to
  max_position_embeddings);
* `raw_text`: `sentence` (string [B]); `raw_text_pair`: `sentence`, `sentence2` (string [B];
  an empty `sentence2` makes that row a single sentence, as the original's features do). The
  text goes through the original's pipeline in-graph (`albert.export.preprocessing`: the GLUE
  processors' `preprocess_text` with the run's lower-casing, the run's SentencePiece model,
  the digit-comma re-split, `[CLS] A [SEP] B [SEP]` and `_truncate_seq_pair` at the run's
  max_seq_length). Needs the tensorflow-text ops (`import tensorflow_text` before loading).

Every signature returns, for a classification task: `logits` [B,L], `probabilities` [B,L],
`predictions` [B] (int32), `label` [B] (the task's label names, e.g. `entailment`); for STS-B:
`logits` [B] (the score), `probabilities` [B,1] and `predictions` [B] (= the score), as the
original's. The tf.Example and raw-text signatures run on the batch's longest row, not on
max_seq_length padding (the same outputs: padding does not change them).

`--threshold_to_export` (the original attached it to its serving signature, then crashed doing
so): every signature also returns `threshold` [B] (the value, per row so that TF Serving's row
format can carry it) and `above_threshold` [B] (bool): for a two-label task P(label 1) >=
threshold, with `thresholded_predictions` [B] (int32) and `thresholded_label` [B] the label
it decides; for STS-B score >= threshold. Tasks with more labels get `threshold` only. NaN (the
flag's default) means no threshold.

And `encode_text`: `sentence`, `sentence2` (string [B] each; "" for single sentences) -> the
int32 `input_ids`, `input_mask`, `segment_ids` [B, max_seq_length] that the raw-text
signatures feed the model (before dropping the padding columns).
Before the folder is renamed into place, the reloaded `token_ids`, `tf_example` and
`raw_text_pair` signatures are checked against the in-memory model (1e-5), the text one on a
few fixed sentences through the Python tokenizer's features (`albert.data.glue.features`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from albert.export import versioned as fx
from albert import tokenization
from albert.data.glue import features as glue_features
from albert.data.glue import reader as glue
from albert.errors import FlagError
from albert.models import ENCODER_INPUTS

TF_EXAMPLE_INPUT = "input"  # the original's receiver (a single tensor: the estimator's "input")
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


@dataclasses.dataclass(frozen=True)
class ExportSettings:
  """run_classifier.py's export flags.

  Attributes:
    export_dir: --export_dir, the model base path (versions go below it).
    threshold: --threshold_to_export (NaN: none).
    version: the version folder (None: the global step of the exported checkpoint).
    checkpoint: the weights to export (None: as --do_predict picks them).
    raw_text: add the raw-text signatures (they need a SentencePiece model and the
      tensorflow-text ops wherever the export is loaded).
    overwrite: replace a version folder that holds another export.
  """

  export_dir: str
  threshold: float = float("nan")
  version: Optional[int] = None
  checkpoint: Optional[str] = None
  raw_text: bool = True
  overwrite: bool = False


@dataclasses.dataclass(frozen=True)
class GlueServing:
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
               do_lower_case: bool, threshold: float = float("nan")) -> "GlueServing":
    processor = glue.get_processor(task_name)
    labels = () if processor.is_regression else tuple(str(l) for l in processor.labels)
    return cls(task_name=processor.name, labels=labels, max_seq_length=max_seq_length,
               spm_model_file=spm_model_file, do_lower_case=do_lower_case,
               threshold=None if threshold is None or math.isnan(threshold) else threshold)

  def info(self) -> dict:
    return {"task_name": self.task_name, "labels": list(self.labels),
            "max_seq_length": self.max_seq_length, "do_lower_case": self.do_lower_case,
            "threshold": self.threshold, "raw_text": bool(self.spm_model_file)}


# -------------------------------------------------------------------------------- outputs
def outputs_fn(model: tf_keras.Model, serving: GlueServing) -> fx.OutputsFn:
  """features -> the served outputs (the model's, the label names, the threshold ones)."""
  kind = "regression" if serving.regression else "classification"
  model_outputs = fx.model_outputs_fn(kind, model)
  labels = list(serving.labels)
  threshold = serving.threshold

  def outputs(features: Dict[str, tf.Tensor]) -> fx.Outputs:
    result = model_outputs(features)
    if labels:
      result["label"] = tf.gather(tf.constant(labels), result["predictions"])
    if threshold is None:
      return result
    rows = tf.shape(result["predictions"])[0]
    value = tf.constant(threshold, tf.float32)
    result["threshold"] = tf.fill([rows], value)
    if not labels:
      result["above_threshold"] = result["predictions"] >= value
    elif len(labels) == 2:
      above = result["probabilities"][:, 1] >= value
      result["above_threshold"] = above
      result["thresholded_predictions"] = tf.cast(above, tf.int32)
      result["thresholded_label"] = tf.gather(tf.constant(labels), tf.cast(above, tf.int32))
    return result

  return outputs


def trim_padding(features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """Drops the columns after the last unmasked position of every row ([B,S] -> [B,S'])."""
  mask = features["input_mask"]
  positions = tf.range(1, tf.shape(mask)[1] + 1)[None, :]
  width = tf.maximum(tf.reduce_max(tf.where(mask > 0, positions, 0)), 1)
  return {k: v[:, :width] for k, v in features.items()}


# ----------------------------------------------------------------------------- text input
class TextPipeline:
  """Strings -> the model's int32 features, in-graph, as the original's GLUE features."""

  def __init__(self, serving: GlueServing):
    from albert.export import preprocessing  # pylint: disable=g-import-not-at-top  (tensorflow_text)
    self._preprocessing = preprocessing
    with tf.io.gfile.GFile(serving.spm_model_file, "rb") as f:
      proto = f.read()
    self.tokenizer = preprocessing.AlbertTokenizer(proto, do_lower_case=serving.do_lower_case,
                                                   name="albert_tokenizer")
    self.special = self.tokenizer.get_special_tokens_dict()
    preprocessing.check_special_tokens(self.special, serving.spm_model_file)
    self.max_seq_length = serving.max_seq_length

  def _pack(self, segments) -> Dict[str, tf.Tensor]:
    s = self.special
    packed = self._preprocessing.bert_pack_inputs(
        segments, self.max_seq_length, s["start_of_sequence_id"], s["end_of_segment_id"],
        s["padding_id"])
    return {"input_ids": packed["input_word_ids"], "input_mask": packed["input_mask"],
            "segment_ids": packed["input_type_ids"]}

  def features(self, sentence: tf.Tensor, sentence2: Optional[tf.Tensor] = None
               ) -> Dict[str, tf.Tensor]:
    """[B] strings (and [B] second strings) -> int32 [B, max_seq_length] features."""
    if sentence2 is None:
      return self._pack([self.tokenizer(sentence)])
    # One tokenizer for both texts (one set of kernels: its regexes compile once).
    rows = tf.shape(sentence)[0]
    tokens = self.tokenizer(tf.concat([sentence, sentence2], axis=0))
    tokens_a, tokens_b = tokens[:rows], tokens[rows:]
    single = self._pack([tokens_a])
    pair = self._pack([tokens_a, tokens_b])
    has_b = (tokens_b.row_lengths() > 0)[:, None]  # no piece in B: a single sentence
    return {k: tf.where(has_b, pair[k], single[k]) for k in pair}


def text_functions(pipeline: TextPipeline, token_ids):
  """(raw_text, raw_text_pair, encode_text) tf.functions.

  The text pipeline is one function (`encode_text`) and the model another (`token_ids`), which
  every signature calls: each is traced once and shares its kernels at serving time.
  """
  text = lambda name: tf.TensorSpec([None], tf.string, name=name)  # noqa: E731

  @tf.function(autograph=False, input_signature=[text("sentence"), text("sentence2")])
  def encode_text(sentence, sentence2):
    return pipeline.features(sentence, sentence2)

  def classify(features):
    features = trim_padding(features)
    return token_ids(*(features[k] for k in ENCODER_INPUTS))

  @tf.function(autograph=False, input_signature=[text("sentence")])
  def raw_text(sentence):
    return classify(encode_text(sentence, tf.fill(tf.shape(sentence), "")))

  @tf.function(autograph=False, input_signature=[text("sentence"), text("sentence2")])
  def raw_text_pair(sentence, sentence2):
    return classify(encode_text(sentence, sentence2))

  return raw_text, raw_text_pair, encode_text


def tf_example_function(max_seq_length: int, token_ids):
  """The original's serving input: serialized tf.Examples -> outputs (through `token_ids`)."""
  schema = {name: tf.io.FixedLenFeature([max_seq_length], tf.int64) for name in ENCODER_INPUTS}

  @tf.function(autograph=False,
               input_signature=[tf.TensorSpec([None], tf.string, name=TF_EXAMPLE_INPUT)])
  def tf_example(serialized):
    parsed = tf.io.parse_example(serialized, schema)
    features = trim_padding({k: tf.cast(v, tf.int32) for k, v in parsed.items()})
    return token_ids(*(features[k] for k in ENCODER_INPUTS))

  return tf_example


# ---------------------------------------------------------------------------- python path
def python_features(serving: GlueServing, pairs: Sequence[Tuple[str, Optional[str]]]
                    ) -> Dict[str, np.ndarray]:
  """The original's features of (text_a, text_b) pairs through `albert.data.glue.features`
  (Python)."""
  process = tokenization.text_processor(serving.do_lower_case, use_spm=True)
  tokenizer = tokenization.FullTokenizer(None, serving.do_lower_case, serving.spm_model_file)
  label_list = list(serving.labels) or [None]
  converter = glue_features.FeatureConverter(tokenizer, label_list, serving.max_seq_length,
                                             is_regression=serving.regression)
  examples = [glue.InputExample(guid=str(i), text_a=process(a),
                                text_b=process(b) if b is not None else None,
                                label=label_list[0] if serving.labels else 0.0)
              for i, (a, b) in enumerate(pairs)]
  found = converter.features(examples)
  return {"input_ids": np.array([f.input_ids for f in found], np.int32),
          "input_mask": np.array([f.input_mask for f in found], np.int32),
          "segment_ids": np.array([f.segment_ids for f in found], np.int32)}


def example_bytes(features: Mapping[str, np.ndarray]) -> List[bytes]:
  """Serialized tf.Examples of int features [B,S] (the original's serving input)."""
  from albert.data import records  # pylint: disable=g-import-not-at-top
  rows = len(features["input_ids"])
  return [records.encode_example({k: ("int64", [int(x) for x in features[k][i]])
                                  for k in ENCODER_INPUTS}) for i in range(rows)]


def _check(loaded, serving: GlueServing, outputs: fx.OutputsFn) -> Dict[str, float]:
  """The reloaded export vs the in-memory model: `token_ids` and `tf_example` on the Python
  tokenizer's features of CHECK_TEXTS, `raw_text_pair` on the texts themselves (the in-graph
  pipeline against `albert.data.glue.features`). The other text signatures reuse these functions."""
  kind = "regression" if serving.regression else "classification"
  pairs = list(CHECK_TEXTS)
  features = python_features(serving, pairs) if serving.spm_model_file else fx.sample_features(
      kind, 100, seq_length=serving.max_seq_length)  # tf.Examples hold max_seq_length ids
  diffs = fx.check_token_ids(loaded, kind, outputs, features)
  want = {k: v.numpy() for k, v in outputs(trim_padding(
      {k: tf.constant(v) for k, v in features.items()})).items()}
  got = loaded.signatures["tf_example"](**{TF_EXAMPLE_INPUT: tf.constant(example_bytes(
      features))})
  diffs.update(fx.compare_outputs("tf_example", {k: v.numpy() for k, v in got.items()}, want))
  if serving.spm_model_file:
    got = loaded.signatures["raw_text_pair"](sentence=tf.constant([a for a, _ in pairs]),
                                             sentence2=tf.constant([b or "" for _, b in pairs]))
    diffs.update(fx.compare_outputs("raw_text_pair", {k: v.numpy() for k, v in got.items()},
                                    want))
  return diffs


# ------------------------------------------------------------------------------ the export
def export_glue_model(model: tf_keras.Model, serving: GlueServing, export_dir: str,
                      version: Optional[int] = None, step: int = 0,
                      source: Optional[str] = None, overwrite: bool = False,
                      log: Callable[[str], None] = print) -> fx.ExportResult:
  """Exports an in-memory GLUE model (`build_classifier_model`, weights loaded); see the module."""
  outputs = outputs_fn(model, serving)
  kind = "regression" if serving.regression else "classification"
  token_ids = fx.token_ids_function(kind, outputs)
  token_ids.get_concrete_function()  # traced once, at the top level: every signature reuses it
  tf_example = tf_example_function(serving.max_seq_length, token_ids)
  signatures = {"serving_default": tf_example, "tf_example": tf_example, "token_ids": token_ids}
  trackables, assets = {}, {}
  if serving.spm_model_file:
    pipeline = TextPipeline(serving)
    raw_text, raw_text_pair, encode_text = text_functions(pipeline, token_ids)
    encode_text.get_concrete_function()
    signatures.update(raw_text=raw_text, raw_text_pair=raw_text_pair, encode_text=encode_text)
    trackables = {"tokenizer": pipeline.tokenizer}
    assets = {"sp_model_file": serving.spm_model_file}
  if serving.threshold is not None and len(serving.labels) > 2:
    log(f"note: {serving.task_name} has {len(serving.labels)} labels: the export returns the "
        f"threshold {serving.threshold} beside the predictions but decides nothing with it")
  info = {"task_kind": kind, "global_step": step, "checkpoint": source, **serving.info()}
  return fx.write_export(
      export_dir, step if version is None else version, model.weights, signatures,
      check=lambda loaded: _check(loaded, serving, outputs), info=info, assets=assets,
      trackables=trackables, overwrite=overwrite, log=log)


def glue_serving(task, settings: ExportSettings) -> GlueServing:
  """What the export of a GLUE task (`ClassifierTask`) with these settings serves."""
  spec = task.tokenizer_spec()
  spm_model = spec.spm_model_file if settings.raw_text else None
  if spm_model and "://" not in spm_model and not os.path.isfile(spm_model):
    raise FlagError(f"--spm_model_file={spm_model}: no such file")
  return GlueServing.for_task(task.task_name, task.config.max_seq_length, spm_model,
                              spec.do_lower_case, settings.threshold)


def check_export_dir(task, settings: ExportSettings) -> None:
  """Before the training starts: refuses an --export_dir whose versions serve another model
  (`finetune_export.check_export_base`), so that a long run is not wasted."""
  serving = glue_serving(task, settings)
  kind = "regression" if serving.regression else "classification"
  fx.check_export_base(settings.export_dir, {"task_kind": kind, **serving.info()})


def export_classifier(trainer, settings: ExportSettings,
                      log: Optional[Callable[[str], None]] = None) -> fx.ExportResult:
  """run_classifier.py's `--export_dir`: the Trainer's GLUE task, weights as --do_predict picks."""
  log = log or trainer.log
  serving = glue_serving(trainer.task, settings)
  if settings.raw_text and not serving.spm_model_file:
    log("note: no SentencePiece model (--spm_model_file): the export has no raw-text "
        "signatures (the in-graph pipeline is SentencePiece only)")
  model, prefix, step = fx.load_for_export(trainer, settings.checkpoint)
  return export_glue_model(model, serving, settings.export_dir, version=settings.version,
                           step=step, source=prefix, overwrite=settings.overwrite, log=log)
