"""SQuAD v1.1 and v2.0 as one task: the original's run_squad_v1.py and run_squad_v2.py.

Data: `albert.data.squad.examples*` (the original's reader and features, built fast and cached under a
fingerprint). Model: the encoder and the v1 head (`cls/squad`) or ALBERT's v2 head
(`start_logits`, `end_logits` on the top `start_n_top` starts, `answer_class`), the original's
losses. Splits: `train` (--train_file), `eval` and `predict` (--predict_file; eval when it has
answers), and for v2 `heldout`: a seeded slice of the training articles (`heldout_fraction`)
left out of training, on which the no-answer threshold is tuned.

Evaluation (predict + postprocess) decodes the n-best answers in Python and writes the
original's `predictions.json`, `nbest_predictions.json` and (v2) `null_odds.json`, then scores
them with the official SQuAD v1.1 / v2.0 evaluation:
* v1: `exact_match`, `f1` (the best checkpoint is chosen by `f1`);
* v2, the original's figure: `exact`, `f1`, `null_score_diff_threshold` with the threshold
  tuned on the very dev set it reports (comparable with the published table), plus the
  `HasAns_*` / `NoAns_*` splits; and, with a held-out slice, the honest figure
  `heldout_exact`, `heldout_f1` with the threshold tuned on the held-out training articles
  (`heldout_threshold`, also written to `null_threshold.json` beside the checkpoints when the
  best one predicts); the best checkpoint is then chosen by `heldout_f1`. The held-out slice
  comes from `--train_file`: a predict-only run without it scores new checkpoints by `f1`.
* v2 prediction uses the held-out threshold stored with the checkpoint it predicts with (its
  run's eval_results.txt, else the `null_threshold.json` beside it); without one it says which
  threshold predictions.json has: the original's, tuned on the predict file itself, or none on
  a file without answers (every question answered; null_odds.json holds the null scores).
The number of training steps is `int(examples / batch * epochs)`, as the original counts it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Optional, Tuple

import tensorflow as tf

from albert import checkpoint, files, losses
from albert.data import cache as cache_lib
from albert.data.squad import examples as squad_data
from albert.data.squad import cache as squad_cache
from albert.data.squad import features as squad_features
from albert.data.squad import metrics as squad_metrics
from albert.data.squad import postprocess as squad_postprocess
from albert.errors import DataError, FlagError, InputError
from albert.models import build_squad_model
from albert.tasks.finetune import FinetuneConfig, FinetuneTask
from albert.tokenization import TokenizerSpec

THRESHOLD_FILE = "null_threshold.json"


@dataclasses.dataclass
class SquadTaskConfig:
  finetune: FinetuneConfig
  train_file: Optional[str] = None
  predict_file: Optional[str] = None
  version_2_with_negative: bool = False
  doc_stride: int = 128
  max_query_length: int = 64
  n_best_size: int = 20
  max_answer_length: int = 30
  start_n_top: int = 5
  end_n_top: int = 5
  dropout_prob: float = 0.1
  heldout_fraction: float = 0.0  # v2: training articles left out to tune the null threshold
  train_feature_file: Optional[str] = None  # the original's fixed cache names
  predict_feature_file: Optional[str] = None
  command: str = "run_squad.py"  # the program the user ran (named when the version is wrong)


class SquadTask(FinetuneTask):
  """SQuAD v1.1 / v2.0 on the Trainer; see the module docstring.

  Args:
    config: the task's settings (`finetune`: the shared fine-tuning ones).
    log: where the task's lines go; default: printed.

  Example (two training steps of a tiny model on the test file, then predictions.json):

  ```python
  from albert.config import AlbertConfig
  from albert.tasks.finetune import FinetuneConfig
  from albert.tasks.squad import SquadTask, SquadTaskConfig
  from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig

  tiny = AlbertConfig(vocab_size=30000, embedding_size=8, hidden_size=16, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=32)
  squad = "tests/testdata/squad/dev-v1.1-first2.json"
  task = SquadTask(SquadTaskConfig(
      FinetuneConfig(tiny, output_dir="out", max_seq_length=64,
                     spm_model_file="tests/testdata/albert_spm/30k-clean.model"),
      train_file=squad, predict_file=squad, doc_stride=32, max_query_length=16))
  trainer = Trainer(task, TrainerConfig("out", train_batch_size=8, eval_batch_size=8,
                                        num_train_steps=2, save_checkpoints_steps=2),
                    OptimizerConfig(optimizer="adamw", learning_rate=1e-4))
  results = trainer.run(do_train=True, do_eval=True)  # exact_match, f1, global_step 2
  ```
  """

  name = "squad"

  def __init__(self, config: SquadTaskConfig, log=None):
    super().__init__(config, log)
    self.v2 = config.version_2_with_negative
    # The held-out slice comes from the training file: without one (predict-only), none.
    self.heldout = self.v2 and config.heldout_fraction > 0 and bool(config.train_file)
    self.best_metric = "heldout_f1" if self.heldout else "f1"
    self.extra_eval_splits = ("heldout",) if self.heldout else ()
    self._eval_state: Dict[str, Any] = {}
    self._check_settings()

  def _check_settings(self) -> None:
    """The numeric flags, before any work: each must leave something to compute."""
    s = self.config
    counts = [("n_best_size", s.n_best_size), ("max_answer_length", s.max_answer_length)]
    if self.v2:
      counts += [("start_n_top", s.start_n_top), ("end_n_top", s.end_n_top)]
    for flag, value in counts:
      if value < 1:
        raise FlagError(f"--{flag} must be at least 1, got {value}")
    if not 0 <= s.dropout_prob < 1:
      raise FlagError(f"--dropout_prob must be in [0, 1), got {s.dropout_prob}")
    if not 0 <= s.heldout_fraction < 1:
      raise FlagError(f"--heldout_fraction must be in [0, 1), got {s.heldout_fraction}")
    self._settings()  # --max_seq_length, --doc_stride, --max_query_length

  # ----------------------------------------------------------------------------------- data
  def _settings(self) -> squad_features.FeatureSettings:
    return squad_features.FeatureSettings(self.config.finetune.max_seq_length,
                                          self.config.doc_stride,
                                          self.config.max_query_length)

  def _spec(self) -> TokenizerSpec:
    spec = self.tokenizer_spec()
    if not spec.spm_model_file:
      raise FlagError("SQuAD features need a SentencePiece model (--spm_model_file), as the "
                      "original's ALBERT squad_utils")
    return squad_features.sentencepiece_spec(spec.spm_model_file, spec.do_lower_case)

  def _input_file(self, split: str) -> Tuple[str, bool]:
    """(SQuAD file, is_training) of a split (holding out: a part of the training file)."""
    if split in ("train", "heldout"):
      if not self.config.train_file:
        raise FlagError("--train_file is required for training")
      if self.heldout:
        train, heldout = self._heldout_paths()
        return (train, True) if split == "train" else (heldout, False)
      return self.config.train_file, True
    if not self.config.predict_file:
      raise FlagError("--predict_file is required for --do_predict")
    return self.config.predict_file, False

  def _heldout_paths(self) -> Tuple[str, str]:
    """Where the training file without the held-out articles and the held-out articles go."""
    source = self.config.train_file
    key = cache_lib.fingerprint([source], {"heldout_fraction": self.config.heldout_fraction,
                                           "seed": self.config.finetune.seed})[:16]
    stem = os.path.splitext(os.path.basename(source))[0]
    return (os.path.join(self.cache_dir, f"{stem}-train-{key}.json"),
            os.path.join(self.cache_dir, f"{stem}-heldout-{key}.json"))

  def _split_off_heldout(self) -> None:
    """Writes the two parts of the training file (`_heldout_paths`), unless they exist."""
    paths = self._heldout_paths()
    if all(files.exists(p) for p in paths):
      return
    source = self.config.train_file
    data = squad_data.load_squad_json(source)
    examples = squad_data.read_squad_examples(source, False, True, data=data)
    _, held = squad_metrics.split_held_out(examples, self.config.heldout_fraction,
                                           self.config.finetune.seed)
    titles = {e.title for e in held}
    parts = ([a for a in data["data"] if a.get("title") not in titles],
             [a for a in data["data"] if a.get("title") in titles])
    for path, articles in zip(paths, parts):
      files.write_text(path, json.dumps({"version": data.get("version", "v2.0"),
                                         "data": articles}))
    self.log(f"Held out {len(parts[1])} of {len(data['data'])} training articles "
             f"({len(held)} questions) to tune the no-answer threshold: {paths[1]}")

  def check_data(self, split: str) -> None:
    if split in ("train", "heldout"):
      path = self.config.train_file
      if not path:
        raise FlagError("--train_file is required for --do_train")
    else:
      path = self.config.predict_file
      if not path:
        raise FlagError("--predict_file is required for --do_predict")
    data = squad_data.load_squad_json(path)
    if not has_questions(data):
      raise InputError(f"{path}: no question (its {len(data['data'])} article(s) hold no "
                       "\"qas\" entry): nothing to train on or predict")
    is_v2, why = squad_data.is_v2_dataset(data)
    if is_v2 != self.v2:
      raise FlagError(f"{path} {'is a SQuAD 2.0' if is_v2 else 'looks like a SQuAD 1.1'} file "
                      f"({why}): {self._version_advice(is_v2)}")
    squad_data.check_unique_ids(data, path)
    if split == "eval" and not has_answers(data):
      raise FlagError(f"{path} has no answers to score (a file without answers is only "
                      "predicted)")
    self._spec()

  def _version_advice(self, want_v2: bool) -> str:
    """How to read the other SQuAD version, in the terms of the command that was run."""
    command = self.config.command
    if command in ("run_squad_v1.py", "run_squad_v2.py"):
      return f"use run_squad_v{2 if want_v2 else 1}.py"
    return ("pass --version_2_with_negative" if want_v2 else
            "drop --version_2_with_negative (it is for SQuAD 2.0 files)")

  def build_cache(self, split):
    if self.heldout and split in ("train", "heldout"):
      self._split_off_heldout()
    path, is_training = self._input_file(split)
    override = (self.config.train_feature_file if split == "train" else
                self.config.predict_feature_file if split in ("eval", "predict") else None)
    files.make_dirs(self.cache_dir)
    record_path, cache = squad_cache.build_squad_cache(
        path, is_training, self.v2, self._spec(), self._settings(), self.cache_dir,
        num_workers=self._workers(path), path_override=override,
        multiple_answers="first", log=self.log)
    return record_path, {"cache": cache, "num_examples": cache.info["num_examples"],
                         "num_records": cache.num_features,
                         "fingerprint": cache.info.get("fingerprint")}

  def run_identity(self):
    return dict(super().run_identity(), version_2_with_negative=self.v2)

  def data_fingerprint(self, split):
    """The cache's; for the scored splits also the decoding settings, which change scores."""
    if split == "heldout":
      # Drawn from the run's own training articles (pinned by the run directory: resuming over
      # other training data is refused), so a predict-only run without --train_file finds the
      # checkpoints that its training run scored on the same predict file.
      return ""
    key = super().data_fingerprint(split)
    if split == "train" or key is None:
      return key
    return f"{key} n_best_size={self.config.n_best_size} " \
           f"max_answer_length={self.config.max_answer_length}"

  def _workers(self, path: str) -> int:
    """--num_workers, else one process for files under 8 MB (dev-v1.1 converts in 2 s of CPU,
    less than a worker pool costs to start: benchmarks/README.md), else one per core (0)."""
    if self.config.finetune.num_workers:
      return self.config.finetune.num_workers
    return 0 if files.size(path) > (8 << 20) else 1

  def schema(self, split):
    length = self.config.finetune.max_seq_length
    schema = {name: ("int64", length) for name in ("input_ids", "input_mask", "segment_ids",
                                                   "p_mask")}
    schema["unique_ids"] = ("int64", 1)
    if split == "train":
      schema.update(start_positions=("int64", 1), end_positions=("int64", 1),
                    is_impossible=("int64", 1))
    return schema

  def decode(self, split, features):
    features = {k: (tf.reshape(v, []) if k in ("unique_ids", "start_positions", "end_positions",
                                               "is_impossible") else v)
                for k, v in features.items()}
    if self.v2 and "start_positions" not in features:  # predict: the beam ignores it
      features["start_positions"] = tf.constant(0, tf.int32)
    return features

  def num_train_examples(self) -> Optional[int]:
    return self.metadata("train")["num_examples"]  # the original counts questions

  # ---------------------------------------------------------------------------------- model
  def build_model(self):
    return build_squad_model(self.albert_config, self.v2, self.config.start_n_top,
                             self.config.end_n_top, self.config.dropout_prob,
                             encoder=self.encoder())

  def compute_loss(self, features, outputs):
    weights = features.get("is_real_example")
    if self.v2:
      result = losses.squad_v2_loss(outputs["start_log_probs"], outputs["end_log_probs"],
                                    outputs["cls_logits"], features["start_positions"],
                                    features["end_positions"], features["is_impossible"],
                                    weights)
    else:
      result = losses.squad_v1_loss(outputs["start_logits"], outputs["end_logits"],
                                    features["start_positions"], features["end_positions"],
                                    weights)
    return result["loss"], result

  def build_metrics(self):  # for the progress lines (evaluation is predict + postprocess)
    import tf_keras  # pylint: disable=g-import-not-at-top
    return {"loss": tf_keras.metrics.Mean("loss")}

  def update_metrics(self, metrics, features, aux):
    metrics["loss"].update_state(aux["loss"])

  def prediction_outputs(self, features, outputs):
    result = {"unique_ids": features["unique_ids"]}
    if self.v2:
      for key in ("start_top_log_probs", "start_top_index", "end_top_log_probs",
                  "end_top_index", "cls_logits"):
        result[key] = outputs[key]
    else:  # [B, S] with S per length bucket: padded back to the cap (never a best index)
      pad = self.config.finetune.max_seq_length - tf.shape(outputs["start_logits"])[1]
      for key in ("start_logits", "end_logits"):
        result[key] = tf.pad(outputs[key], [[0, 0], [0, pad]], constant_values=-1e30)
    return result

  # ---------------------------------------------------------------------------- postprocess
  def postprocess(self, split, predictions, output_dir) -> Dict[str, float]:
    cache = self.metadata(split)["cache"]
    s = self.config
    results = {k: v for k, v in predictions.items() if k not in ("row_index", "is_real_example")}
    if not self.v2:
      answers, nbest = squad_postprocess.decode_v1(cache.examples, cache.features, results,
                                                   s.n_best_size, s.max_answer_length)
      squad_postprocess.write_prediction_files(output_dir, answers, nbest)
      if not has_answers(cache.dataset()):
        return {}
      return dict(squad_metrics.evaluate_v1(cache.dataset(), answers))
    if split == "heldout":
      return self._heldout_scores(cache, results)
    dataset = cache.dataset()
    stored = self.stored_threshold(self.weights_source) if split == "predict" else None
    if not has_answers(dataset):  # an unlabelled file: the stored threshold decides
      first, nbest, null_odds = squad_postprocess.decode_v2(
          cache.examples, cache.features, results, s.n_best_size, s.max_answer_length)
      final = first
      if stored:
        final = squad_metrics.apply_threshold(first, null_odds, stored["threshold"])
      self._say_threshold(stored, None, cache.input_file)
      squad_postprocess.write_prediction_files(output_dir, final, nbest, null_odds)
      self._keep_threshold(stored, output_dir)
      return {}
    original = squad_postprocess.evaluate_v2_as_original(
        dataset, cache.examples, cache.features, results, s.n_best_size, s.max_answer_length)
    squad_postprocess.write_prediction_files(output_dir, original["predictions"],
                                             original["nbest"], original["null_odds"])
    scores = {k: float(v) for k, v in original["scores"].items()}
    pass1 = original["pass1_scores"]
    scores.update({k: float(v) for k, v in pass1.items() if k.startswith(("HasAns", "NoAns"))})
    self._eval_state = {"dataset": dataset, "first": original["pass1_predictions"],
                        "null_odds": original["null_odds"]}
    if split == "predict":
      self._say_threshold(stored, scores["null_score_diff_threshold"], cache.input_file)
      if stored:
        scores.update(self._honest(stored["threshold"]))
      self._keep_threshold(stored, output_dir)
    return scores

  def _honest(self, threshold: float) -> Dict[str, float]:
    state = self._eval_state
    final = squad_metrics.apply_threshold(state["first"], state["null_odds"], threshold)
    honest = squad_metrics.evaluate_v2(state["dataset"], final)
    return {"heldout_exact": float(honest["exact"]), "heldout_f1": float(honest["f1"]),
            "heldout_threshold": float(threshold)}

  def _heldout_scores(self, cache, results) -> Dict[str, float]:
    s = self.config
    first, _, null_odds = squad_postprocess.decode_v2(cache.examples, cache.features, results,
                                                      s.n_best_size, s.max_answer_length)
    _, threshold = squad_metrics.best_threshold(null_odds, first, cache.dataset())
    return self._honest(threshold) if self._eval_state else {"heldout_threshold": threshold}

  def stored_threshold(self, weights: Optional[str]) -> Optional[Dict[str, Any]]:
    """The held-out null threshold stored with a checkpoint (a prefix or a directory), or None.

    Read only: the scores its run recorded for its step in eval_results.txt (model.ckpt-best:
    the best step's), else the `null_threshold.json` beside it when that names this checkpoint
    or its step. Returns {"threshold", "global_step", "checkpoint", "source"}.
    """
    from albert.train.run_dir import TF1_PREFIX, RunDir  # pylint: disable=g-import-not-at-top
    if not weights or not self.v2:
      return None
    prefix = checkpoint.resolve_checkpoint(weights)
    directory, name = os.path.split(prefix)
    run = RunDir(directory)
    step = None
    if name == f"{TF1_PREFIX}-best":
      best = run.best()
      step = int(best["step"]) if best else None
    elif name.startswith(f"{TF1_PREFIX}-") and name[len(TF1_PREFIX) + 1:].isdigit():
      step = int(name[len(TF1_PREFIX) + 1:])
    recorded = run.scored_steps().get(step) if step is not None else None
    if recorded and "heldout_threshold" in recorded:
      return {"threshold": float(recorded["heldout_threshold"]), "global_step": step,
              "checkpoint": name, "source": run.results_file}
    path = os.path.join(directory, THRESHOLD_FILE)
    if not files.exists(path):
      return None
    try:
      with files.open_file(path, encoding="utf-8") as f:
        stored = json.load(f)
      threshold = float(stored["null_score_diff_threshold"])
    except (ValueError, KeyError, TypeError) as error:
      raise DataError(f"{path}: not a null threshold file ({type(error).__name__}: {error}); "
                      "expected JSON with \"null_score_diff_threshold\"") from None
    if stored.get("checkpoint") != name and (step is None or stored.get("global_step") != step):
      return None  # the threshold of another checkpoint of that run
    return {"threshold": threshold, "global_step": stored.get("global_step", step),
            "checkpoint": name, "source": path}

  def _say_threshold(self, stored: Optional[Dict[str, Any]], original: Optional[float],
                     predict_file: str) -> None:
    """One line: which null threshold predictions.json has, and where it comes from."""
    where = self.weights_source or "these weights"
    if original is not None:
      honest = (f"; heldout_exact/heldout_f1 use the held-out threshold {stored['threshold']:.4f} "
                f"stored with {where} ({stored['source']})" if stored else
                f"; no held-out threshold is stored with {where}, so no heldout_f1")
      self.log(f"SQuAD 2.0: predictions.json, exact and f1 use the original's null threshold "
               f"{original:.4f}, tuned on {predict_file} itself{honest}")
    elif stored:
      self.log(f"SQuAD 2.0: predictions.json uses the null threshold {stored['threshold']:.4f} "
               f"tuned on held-out training articles, stored with {where} ({stored['source']})")
    else:
      self.log(f"SQuAD 2.0: no null threshold is stored with {where} and {predict_file} has no "
               "answers to tune one: predictions.json answers every question (no null "
               "answers); null_odds.json holds each question's null score to apply one")

  def _keep_threshold(self, stored: Optional[Dict[str, Any]], output_dir: str) -> None:
    """Writes a threshold recorded by this run (eval_results.txt) to its null_threshold.json."""
    if not stored or os.path.basename(stored["source"]) == THRESHOLD_FILE:
      return
    if os.path.abspath(os.path.dirname(stored["source"])) != os.path.abspath(output_dir):
      return  # another run's checkpoint: its own files say where the threshold came from
    files.write_text(os.path.join(output_dir, THRESHOLD_FILE), json.dumps(
        {"null_score_diff_threshold": stored["threshold"],
         "global_step": stored["global_step"], "checkpoint": stored["checkpoint"],
         "tuned_on": "held-out training articles"}) + "\n")


def has_questions(data: Dict[str, Any]) -> bool:
  """Whether a loaded SQuAD file holds a question (malformed entries are the reader's to name)."""
  listed = squad_data._list  # pylint: disable=protected-access  (the reader's tolerant getter)
  return any(listed(paragraph, "qas") for article in data["data"]
             for paragraph in listed(article, "paragraphs"))


def has_answers(source: Any) -> bool:
  """Whether a SQuAD file (a path, its loaded JSON or its `data` list) has a gold answer."""
  if isinstance(source, str):
    source = squad_data.load_squad_json(source)
  articles = source["data"] if isinstance(source, dict) else source
  return any(qa.get("answers") for article in articles for paragraph in article["paragraphs"]
             for qa in paragraph["qas"])
