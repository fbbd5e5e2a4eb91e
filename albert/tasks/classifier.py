"""GLUE sentence (pair) classification and STS-B regression: the original's run_classifier.py.

Data: the task's row of `albert.data.glue.tasks`, read by `albert.data.glue.reader` (the
original's processors) into `albert.data.glue.features` (its features), cached by
`albert.data.glue.cache` under a fingerprint. Model: the encoder, the original's head (root
`output_weights` [num_labels, H], `output_bias`, dropout 0.1 on the pooled output in training
whatever the config says), softmax cross-entropy, or STS-B's squared error. Splits: train, dev
(eval), test (predict). Evaluation (predict + postprocess) gives the original's keys
(`eval_accuracy`, `eval_loss`; `matthew_corr` for CoLA; `pearson`, `MSE` for STS-B) plus `f1`
(MRPC, QQP) and `spearman` (STS-B); the task's standard metric picks `model.ckpt-best`.
Prediction writes the original's `test_results.tsv` (tab-joined probabilities per line) and
`submit_results.tsv`, and the GLUE server's file in `<output_dir>/submission/`; an MNLI model
also predicts MNLI-mm's test set and the diagnostic set (AX), as GLUE submissions expect.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from albert import files
from albert import losses, metrics
from albert.data.glue import cache as glue_cache
from albert.data.glue import features as glue_features
from albert.data.glue import reader as glue
from albert.data.glue import submission as glue_submission
from albert.data.glue import tasks as glue_tasks
from albert.errors import InputError
from albert.models import build_classifier_model
from albert.tasks.finetune import FinetuneConfig, FinetuneTask

# Trainer split -> GLUE split; a task row's `extra_splits` add others (MNLI: MNLI-mm, AX).
_SPLITS = {"train": "train", "eval": "dev", "predict": "test"}


@dataclasses.dataclass
class ClassifierTaskConfig:
  finetune: FinetuneConfig
  task_name: str  # --task_name, as the original accepts it (plus ax, mnli-mm)
  data_dir: str  # --data_dir: the GLUE root with the official task folders
  submission_dir: Optional[str] = None  # default <output_dir>/submission


class ClassifierTask(FinetuneTask):
  """One GLUE task on the Trainer; see the module docstring.

  Args:
    config: the task's settings (`finetune`: the shared fine-tuning ones).
    log: where the task's lines go; default: printed.

  Example (two training steps of a tiny model on the test files, then dev scored):

  ```python
  from albert.config import AlbertConfig
  from albert.tasks.classifier import ClassifierTask, ClassifierTaskConfig
  from albert.tasks.finetune import FinetuneConfig
  from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig

  tiny = AlbertConfig(vocab_size=30000, embedding_size=8, hidden_size=16, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=32)
  task = ClassifierTask(ClassifierTaskConfig(
      FinetuneConfig(tiny, output_dir="out", max_seq_length=32,
                     spm_model_file="tests/testdata/albert_spm/30k-clean.model"),
      task_name="RTE", data_dir="tests/testdata/glue"))
  trainer = Trainer(task, TrainerConfig("out", train_batch_size=8, eval_batch_size=8,
                                        num_train_steps=2, save_checkpoints_steps=2),
                    OptimizerConfig(optimizer="adamw", learning_rate=1e-4))
  results = trainer.run(do_train=True, do_eval=True)  # eval_accuracy, eval_loss, global_step 2
  ```
  """

  name = "classifier"

  def __init__(self, config: ClassifierTaskConfig, log=None):
    super().__init__(config, log)
    self.task_name = glue_tasks.canonical_task_name(config.task_name)
    # The original preprocesses text for SentencePiece (use_spm); WordPiece only with a vocab alone.
    shared = config.finetune
    use_spm = not (shared.vocab_file and not shared.spm_model_file)
    self.processor = glue.get_processor(self.task_name, shared.do_lower_case, use_spm)
    self.best_metric = metrics.best_metric_key(self.task_name)
    self.regression = self.processor.is_regression
    self._extra = {extra.name: extra for extra in self.processor.spec.extra_splits}
    if self._extra:
      self.predict_splits = ("predict",) + tuple(
          name for name, extra in self._extra.items() if extra.split == "test")
      self.extra_eval_splits = tuple(
          name for name, extra in self._extra.items() if extra.split == "dev")

  def run_identity(self):
    return dict(super().run_identity(), task_name=self.task_name,
                labels=list(self.processor.labels))

  def _where(self, split: str) -> Tuple[str, str]:
    """(GLUE task, GLUE split) of a Trainer split."""
    if split in self._extra:
      return self._extra[split].task, self._extra[split].split
    return self.task_name, _SPLITS[split]

  def check_data(self, split: str) -> None:
    task, glue_split = self._where(split)
    processor = self.processor if task == self.task_name else glue.get_processor(task)
    path = processor.file_path(self.config.data_dir, glue_split)
    if not files.isfile(path):
      raise InputError(f"{path}: no such file; --data_dir must be the GLUE root with the "
                       f"official task folders ({processor.task_dir}/...)")
    processor.check_has_example(path, glue_split)

  def build_cache(self, split):
    task, glue_split = self._where(split)
    shared = self.config.finetune
    return glue_cache.build_glue_cache(
        task, self.config.data_dir, glue_split, self.tokenizer_spec(), shared.max_seq_length,
        self.cache_dir, num_workers=shared.num_workers, log=self.log)

  def schema(self, split):
    return glue_features.feature_schema(self.config.finetune.max_seq_length, self.regression)

  def build_model(self) -> tf_keras.Model:
    return build_classifier_model(self.albert_config, self.processor.num_labels,
                                  regression=self.regression, encoder=self.encoder())

  def compute_loss(self, features, outputs):
    weights = features.get("is_real_example")
    if self.regression:
      result = losses.regression_loss(outputs["logits"], features["label_ids"], weights)
    else:
      result = losses.classification_loss(outputs["logits"], features["label_ids"], weights)
    result = dict(result, logits=outputs["logits"])
    return result["loss"], result

  def build_metrics(self):  # for the progress lines (evaluation is predict + postprocess)
    found = {"loss": tf_keras.metrics.Mean("loss")}
    if not self.regression:
      found["accuracy"] = tf_keras.metrics.Accuracy("accuracy")
    return found

  def update_metrics(self, metrics_, features, aux):
    metrics_["loss"].update_state(aux["loss"])
    if "accuracy" in metrics_:
      predictions = tf.argmax(aux["logits"], axis=-1, output_type=tf.int32)
      metrics_["accuracy"].update_state(tf.reshape(features["label_ids"], [-1]), predictions,
                                        sample_weight=features.get("is_real_example"))

  def prediction_outputs(self, features, outputs):
    return {"logits": outputs["logits"], "probabilities": outputs["probabilities"],
            "label_ids": tf.reshape(features["label_ids"], [-1])}

  # ---------------------------------------------------------------------------- postprocess
  def postprocess(self, split, predictions, output_dir) -> Dict[str, float]:
    meta = self.metadata(split)
    count = meta["num_examples"]
    logits = predictions["logits"].astype(np.float64)
    if len(logits) != count:
      raise AssertionError(f"{len(logits)} predictions for {count} examples of {split}")
    if split.startswith("eval"):
      labels = predictions["label_ids"]
      if self.regression:
        per_example = (logits.reshape(-1) - labels.astype(np.float64)) ** 2
        return metrics.glue_metrics(self.task_name, logits.reshape(-1), labels, per_example)
      shifted = logits - logits.max(-1, keepdims=True)
      log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
      per_example = -log_probs[np.arange(count), labels.astype(np.int64)]
      results = metrics.glue_metrics(self._where(split)[0], logits, labels, per_example)
      suffix = self._extra[split].key_suffix if split in self._extra else ""
      return {f"{k}{suffix}": v for k, v in results.items()}
    task, _ = self._where(split)
    scores = logits.reshape(-1) if self.regression else logits.argmax(-1)
    if split == "predict":  # the original's two files
      glue_submission.write_test_results(os.path.join(output_dir, "test_results.tsv"),
                                         predictions["probabilities"])
      glue_submission.write_submit_results(os.path.join(output_dir, "submit_results.tsv"),
                                           task, meta["guids"], scores)
    directory = self.config.submission_dir or os.path.join(output_dir, "submission")
    path = glue_submission.write_submission_file(directory, task, meta["guids"], scores)
    self.log(f"Wrote {path} ({count} predictions)")
    return {}
