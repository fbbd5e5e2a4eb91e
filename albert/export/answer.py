"""Answers (question, context) pairs with a fine-tuned SQuAD model: the Python API of run_squad.

`SquadAnswerer.from_checkpoint(albert_config_file, checkpoint, spm_model_file, ...)` or
`SquadAnswerer.from_export(export_dir, backend="savedmodel" | "onnx", quantized=False, ...)` (a
`run_squad.py --export_dir` version folder, or its `--export_onnx` folder: the settings,
SentencePiece model and no-answer threshold are read from the export; both backends give the
same answers, through `albert.export.runtime`), then
`answer([(question, context), ...])` -> one dict per pair: `id`, `question`, `answer` (text, ""
when v2 decides there is none), `probability` (of that answer among the n-best), `start` (its
character offset in the context, -1 for none), and for v2 `no_answer` (bool) and `null_score`
(the score difference the threshold is applied to). Contexts longer than one window are read in
doc-stride windows, exactly as training and `--do_predict` do (the same features and decoding);
the windows are run `batch_size` at a time in length buckets (`runtime.Runner.predict`: sorted
by length, each batch cut to its longest window).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from albert import hub
from albert.data.squad import examples as squad_data
from albert.data.squad import features as squad_features
from albert.data.squad import postprocess as squad_postprocess
from albert.errors import FlagError
from albert.export import runtime, versioned

Pair = Union[Tuple[str, str], Dict[str, str]]
FEATURES = ("input_ids", "input_mask", "segment_ids", "p_mask")


class SquadAnswerer:
  """See the module docstring."""

  def __init__(self, predict: Union[runtime.Runner,
                                    Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]]],
               spm_model_file: str, version_2_with_negative: bool, do_lower_case: bool = True,
               max_seq_length: int = 384, doc_stride: int = 128, max_query_length: int = 64,
               n_best_size: int = 20, max_answer_length: int = 30,
               null_score_diff_threshold: Optional[float] = None, batch_size: int = 16):
    self.runner = predict if isinstance(predict, runtime.Runner) else runtime.FunctionRunner(
        predict, FEATURES, {"task_kind": "squad_v2" if version_2_with_negative else "squad_v1"})
    self.spec = squad_features.sentencepiece_spec(spm_model_file, do_lower_case)
    self.settings = squad_features.FeatureSettings(max_seq_length, doc_stride, max_query_length)
    self.v2 = version_2_with_negative
    self.n_best_size, self.max_answer_length = n_best_size, max_answer_length
    self.threshold = null_score_diff_threshold
    self.batch_size = batch_size

  # --------------------------------------------------------------------------- constructors
  @classmethod
  def from_checkpoint(cls, albert_config_file: str, checkpoint_path: str, spm_model_file: str,
                      version_2_with_negative: bool, start_n_top: int = 5, end_n_top: int = 5,
                      **kwargs) -> "SquadAnswerer":
    """A fine-tuned TF1-name checkpoint (`model.ckpt-best` of a run_squad.py output_dir)."""
    from albert import checkpoint  # pylint: disable=g-import-not-at-top
    from albert.config import AlbertConfig  # pylint: disable=g-import-not-at-top
    from albert.models import build_squad_model  # pylint: disable=g-import-not-at-top
    model = build_squad_model(AlbertConfig.from_json_file(albert_config_file),
                              version_2_with_negative, start_n_top, end_n_top, dropout_prob=0.0)
    checkpoint.load_tf1_checkpoint(model, checkpoint_path, require_all=True)

    def predict(features):
      inputs = {k: tf.constant(v) for k, v in features.items()}
      if version_2_with_negative:
        inputs["start_positions"] = tf.zeros([len(features["input_ids"])], tf.int32)
      return {k: v.numpy() for k, v in model(inputs, training=False).items()
              if not isinstance(v, (list, tuple))}

    return cls(predict, spm_model_file, version_2_with_negative, **kwargs)

  @classmethod
  def from_export(cls, export_dir: str, spm_model_file: Optional[str] = None,
                  backend: str = "savedmodel", quantized: bool = False,
                  **kwargs) -> "SquadAnswerer":
    """A `run_squad.py --export_dir` version folder (its `token_ids` signature) with
    backend="savedmodel", or its `onnx/` folder (`--export_onnx`; the version folder is taken
    to mean its `onnx/`) with backend="onnx" (`quantized`: model_int8.onnx)."""
    runner = runtime.load(export_dir, backend, quantized=quantized)
    info: Dict[str, Any] = runner.info
    kind = info.get("task_kind")
    if kind not in ("squad_v1", "squad_v2"):
      raise FlagError(f"{export_dir} is not a SQuAD export (task kind {kind!r} in "
                      f"{_settings_file(runner)}); export one with run_squad.py --export_dir")
    if not spm_model_file:
      if backend == "savedmodel":
        spm_model_file = hub.find_asset(export_dir, ["*.model"])
      elif info.get("spm_model"):
        spm_model_file = os.path.join(os.path.dirname(runner.path), info["spm_model"])
    if not spm_model_file:
      raise FlagError(f"{export_dir} carries no SentencePiece model: pass spm_model_file")
    settings = {k: info[k] for k in ("do_lower_case", "max_seq_length", "doc_stride",
                                     "max_query_length", "null_score_diff_threshold")
                if info.get(k) is not None}
    settings.update(kwargs)
    return cls(runner, spm_model_file, kind == "squad_v2", **settings)

  # ------------------------------------------------------------------------------- answering
  def answer(self, pairs: Iterable[Pair]) -> List[Dict[str, Any]]:
    """One answer dict per (question, context) pair, in order (see the module docstring)."""
    examples = squad_data.examples_from_pairs(list(pairs))
    if not examples:
      return []
    features, _ = squad_features.convert_examples_to_features(
        examples, self.spec, self.settings, is_training=False, num_workers=1)
    results = self._run(features)
    if self.v2:
      first, nbest, null_odds = squad_postprocess.decode_v2(
          examples, features, results, self.n_best_size, self.max_answer_length,
          null_score_diff_threshold=None)
    else:
      first, nbest = squad_postprocess.decode_v1(examples, features, results, self.n_best_size,
                                                 self.max_answer_length)
      null_odds = {}
    answers = []
    for example in examples:
      best = next((n for n in nbest[example.qas_id] if n.get("text")), nbest[example.qas_id][0])
      entry = {"id": example.qas_id, "question": example.question_text,
               "answer": first[example.qas_id], "probability": float(best["probability"]),
               "start": _offset(example.paragraph_text, first[example.qas_id])}
      if self.v2:
        score = float(null_odds[example.qas_id])
        no_answer = self.threshold is not None and score > self.threshold
        entry.update(null_score=score, no_answer=bool(no_answer))
        if no_answer:
          entry.update(answer="", start=-1)
      answers.append(entry)
    return answers

  def _run(self, features: squad_features.SquadFeatures) -> Dict[str, np.ndarray]:
    batch = {k: np.asarray(getattr(features, k), np.int32) for k in FEATURES}
    results = self.runner.predict(batch, batch_size=self.batch_size)
    results["unique_ids"] = np.asarray(features.unique_id)
    return results


def _settings_file(runner: runtime.Runner) -> str:
  if runner.backend == "savedmodel":
    return os.path.join(runner.path, versioned.INFO_FILE)
  return os.path.join(os.path.dirname(runner.path), runtime.SERVING_FILE)


def _offset(context: str, text: str) -> int:
  return context.find(text) if text else -1


def answer_questions(pairs: Sequence[Pair], **kwargs) -> List[Dict[str, Any]]:
  """One-shot helper: `SquadAnswerer.from_checkpoint(**kwargs).answer(pairs)`."""
  return SquadAnswerer.from_checkpoint(**kwargs).answer(pairs)
