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
Every task also writes `<output_dir>/predictions.jsonl` for its test set: one object per row, in
input order, `id`, `label` (the label name; the score for regression; a list for multi-label)
and `probabilities` (label name -> probability; absent for regression).

Your own data (`task_name="custom"`, `CustomTaskConfig`): the task's row comes from
`albert.data.glue.custom.custom_spec` (files, columns, task type, label list) and runs through
the same reader interface, features, caches, head and metrics as GLUE's rows. The label list
(`labels`, else the training file's, sorted) is written to `<output_dir>/labels.txt` when the
training data is prepared; a run without training reads it back, and a run whose labels differ
from it is refused naming both. Each evaluation also writes a per-label report (precision,
recall, F1, support; the confusion matrix for classification) to
`<output_dir>/eval_reports/<checkpoint>.txt`. Multi-label: one sigmoid per label, binary
cross-entropy, a label is predicted when its probability is at least `multi_label_threshold`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from albert import files, losses, metrics
from albert.data.glue import cache as glue_cache
from albert.data.glue import custom as glue_custom
from albert.data.glue import features as glue_features
from albert.data.glue import reader as glue
from albert.data.glue import submission as glue_submission
from albert.data.glue import tasks as glue_tasks
from albert.errors import FlagError, InputError
from albert.models import build_classifier_model
from albert.tasks.finetune import FinetuneConfig, FinetuneTask

# Trainer split -> GLUE split; a task row's `extra_splits` add others (MNLI: MNLI-mm, AX).
_SPLITS = {"train": "train", "eval": "dev", "predict": "test"}
PREDICTIONS_FILE = "predictions.jsonl"  # every task's predictions of its test set


@dataclasses.dataclass
class CustomTaskConfig:
  """`--task_name=custom`: your own files and how to read them (flag names in comments)."""
  train_file: Optional[str] = None  # --train_file
  dev_file: Optional[str] = None  # --dev_file
  test_file: Optional[str] = None  # --test_file
  input_format: Optional[str] = None  # --input_format (None: from each file's extension)
  text_a_column: Optional[str] = None  # --text_a_column
  text_b_column: Optional[str] = None  # --text_b_column
  label_column: str = "label"  # --label_column
  id_column: Optional[str] = None  # --id_column
  task_type: str = "classification"  # --task_type: classification, regression, multi_label
  labels: Optional[Tuple[str, ...]] = None  # --labels (None: the training file's, sorted)
  label_separator: str = "|"  # --label_separator (multi-label CSV/TSV)
  multi_label_threshold: float = 0.5  # --multi_label_threshold
  best_metric: Optional[str] = None  # --best_metric (None: the task type's)

  def source(self) -> glue_tasks.CustomSource:
    given = tuple((split, path) for split, path in (
        ("train", self.train_file), ("dev", self.dev_file), ("test", self.test_file)) if path)
    return glue_tasks.CustomSource(given, self.input_format, self.text_a_column,
                                   self.text_b_column, self.label_column, self.id_column,
                                   self.label_separator)


@dataclasses.dataclass
class ClassifierTaskConfig:
  finetune: FinetuneConfig
  task_name: str  # --task_name, as the original accepts it (plus ax, mnli-mm), or "custom"
  data_dir: Optional[str] = None  # --data_dir: the GLUE root with the official task folders
  submission_dir: Optional[str] = None  # default <output_dir>/submission
  custom: Optional[CustomTaskConfig] = None  # task_name "custom": your own files


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
    # The original preprocesses text for SentencePiece (use_spm); WordPiece only with a vocab alone.
    shared = config.finetune
    use_spm = not (shared.vocab_file and not shared.spm_model_file)
    self.custom = None
    if (config.task_name or "").strip().lower() == "custom":
      self.task_name = "custom"
      self.custom = config.custom or CustomTaskConfig()
      row = self._custom_row()
    else:
      self.task_name = glue_tasks.canonical_task_name(config.task_name)
      row = glue_tasks.TASKS[self.task_name]
    self.processor = glue_custom.processor_for(row, shared.do_lower_case, use_spm)
    self.row = row
    self.best_metric = row.metric
    self.best_metric_higher_is_better = row.metric not in ("eval_loss", "MSE")
    self.regression = self.processor.is_regression
    self.multi_label = row.multi_label
    self._extra = {extra.name: extra for extra in self.processor.spec.extra_splits}
    if self._extra:
      self.predict_splits = ("predict",) + tuple(
          name for name, extra in self._extra.items() if extra.split == "test")
      self.extra_eval_splits = tuple(
          name for name, extra in self._extra.items() if extra.split == "dev")

  # ------------------------------------------------------------------------- custom
  @property
  def labels_file(self) -> str:
    return os.path.join(self.config.finetune.output_dir, glue_custom.LABELS_FILE)

  def _custom_row(self) -> glue_tasks.TaskSpec:
    """The custom task's row; its label list checked against the run directory's labels.txt."""
    custom = self.custom
    source = custom.source()
    threshold = custom.multi_label_threshold
    if not 0.0 < threshold < 1.0:
      raise FlagError(f"--multi_label_threshold={threshold}: expected a probability in (0, 1)")
    stored = glue_custom.read_labels(self.labels_file)
    labels = custom.labels
    if not labels and not source.file("train") and custom.task_type != "regression":
      labels = stored
    row = glue_custom.custom_spec(source, custom.task_type, labels, custom.best_metric)
    if stored is not None and custom.task_type != "regression" and list(row.labels) != stored:
      given = ("--labels" if custom.labels else f"the labels of --train_file={custom.train_file}")
      raise FlagError(f"{self.labels_file} holds the labels {','.join(stored)} of the run in "
                      f"{self.config.finetune.output_dir}; {given} are {','.join(row.labels)}. "
                      "Use a new --output_dir, or the same labels")
    return row

  def _write_labels(self) -> None:
    if self.custom is None or self.regression:
      return
    text = "".join(f"{label}\n" for label in self.processor.labels)
    if not os.path.isfile(self.labels_file):
      files.write_text(self.labels_file, text)

  def run_identity(self):
    identity = dict(super().run_identity(), task_name=self.task_name,
                    labels=list(self.processor.labels))
    if self.custom is not None:
      identity["task_type"] = self.row.task_type
    return identity

  def _where(self, split: str) -> Tuple[Any, str]:
    """(GLUE task or custom row, GLUE split) of a Trainer split."""
    if split in self._extra:
      return self._extra[split].task, self._extra[split].split
    return (self.row if self.custom is not None else self.task_name), _SPLITS[split]

  def check_data(self, split: str) -> None:
    task, glue_split = self._where(split)
    if self.custom is not None:  # every row read and checked before anything is written
      self.processor.check_file(self.processor.file_path("", glue_split), glue_split)
      return
    processor = self.processor if task == self.task_name else glue.get_processor(task)
    path = processor.file_path(self.config.data_dir, glue_split)
    if not files.isfile(path):
      raise InputError(f"{path}: no such file; --data_dir must be the GLUE root with the "
                       f"official task folders ({processor.task_dir}/...)")
    processor.check_has_example(path, glue_split)

  def build_cache(self, split):
    task, glue_split = self._where(split)
    shared = self.config.finetune
    if split == "train":
      self._write_labels()
    return glue_cache.build_glue_cache(
        task, self.config.data_dir, glue_split, self.tokenizer_spec(), shared.max_seq_length,
        self.cache_dir, num_workers=shared.num_workers, log=self.log)

  def schema(self, split):
    return glue_features.feature_schema(self.config.finetune.max_seq_length, self.regression,
                                        self.processor.num_labels if self.multi_label else 0)

  def head_labels(self):
    return None if self.regression else list(self.processor.labels)

  def build_model(self) -> tf_keras.Model:
    return build_classifier_model(self.albert_config, self.processor.num_labels,
                                  regression=self.regression, encoder=self.encoder(),
                                  multi_label=self.multi_label)

  def compute_loss(self, features, outputs):
    weights = features.get("is_real_example")
    if self.regression:
      result = losses.regression_loss(outputs["logits"], features["label_ids"], weights)
    elif self.multi_label:
      result = losses.multi_label_loss(outputs["logits"], features["label_ids"], weights)
    else:
      result = losses.classification_loss(outputs["logits"], features["label_ids"], weights)
    result = dict(result, logits=outputs["logits"])
    return result["loss"], result

  def build_metrics(self):  # for the progress lines (evaluation is predict + postprocess)
    found = {"loss": tf_keras.metrics.Mean("loss")}
    if not self.regression and not self.multi_label:
      found["accuracy"] = tf_keras.metrics.Accuracy("accuracy")
    return found

  def update_metrics(self, metrics_, features, aux):
    metrics_["loss"].update_state(aux["loss"])
    if "accuracy" in metrics_:
      predictions = tf.argmax(aux["logits"], axis=-1, output_type=tf.int32)
      metrics_["accuracy"].update_state(tf.reshape(features["label_ids"], [-1]), predictions,
                                        sample_weight=features.get("is_real_example"))

  def prediction_outputs(self, features, outputs):
    labels = features["label_ids"]
    return {"logits": outputs["logits"], "probabilities": outputs["probabilities"],
            "label_ids": labels if self.multi_label else tf.reshape(labels, [-1])}

  # ---------------------------------------------------------------------------- postprocess
  def postprocess(self, split, predictions, output_dir) -> Dict[str, float]:
    meta = self.metadata(split)
    count = meta["num_examples"]
    logits = predictions["logits"].astype(np.float64)
    if len(logits) != count:
      raise AssertionError(f"{len(logits)} predictions for {count} examples of {split}")
    task, _ = self._where(split)
    if split.startswith("eval"):
      labels = predictions["label_ids"]
      if self.regression:
        per_example = (logits.reshape(-1) - labels.astype(np.float64)) ** 2
        return metrics.glue_metrics(task, logits.reshape(-1), labels, per_example)
      if self.multi_label:
        per_example = _sigmoid_cross_entropy(logits, labels.astype(np.float64)).mean(-1)
        decided = self._chosen(predictions["probabilities"]).astype(np.int64)
        self._write_report(output_dir, labels, decided)
        return metrics.glue_metrics(task, decided, labels, per_example)
      shifted = logits - logits.max(-1, keepdims=True)
      log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
      per_example = -log_probs[np.arange(count), labels.astype(np.int64)]
      results = metrics.glue_metrics(task, logits, labels, per_example)
      if self.custom is not None:
        self._write_report(output_dir, labels, logits.argmax(-1))
      suffix = self._extra[split].key_suffix if split in self._extra else ""
      return {f"{k}{suffix}": v for k, v in results.items()}
    if split == "predict":
      path = os.path.join(output_dir, PREDICTIONS_FILE)
      files.write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in
                                     self.prediction_rows(meta["guids"], predictions)))
      self.log(f"Wrote {path} ({count} predictions)")
    if self.custom is not None:
      return {}
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

  def _chosen(self, probabilities: np.ndarray) -> np.ndarray:
    """Multi-label: the labels whose probability reaches the threshold ([N, L] bool)."""
    return np.asarray(probabilities) >= self.custom.multi_label_threshold

  def prediction_rows(self, guids: List[str], predictions: Dict[str, np.ndarray]
                      ) -> List[Dict[str, Any]]:
    """The rows of predictions.jsonl: `id`, `label` and `probabilities` by label name."""
    names = [str(label) for label in self.processor.labels]
    probabilities = np.asarray(predictions["probabilities"], np.float64)
    line_ids = self.custom is not None and not self.custom.id_column
    rows = []
    for i, guid in enumerate(guids):
      row: Dict[str, Any] = {"id": int(guid) if line_ids else guid}
      if self.regression:
        row["label"] = float(np.asarray(predictions["logits"]).reshape(-1)[i])
      else:
        if self.multi_label:
          chosen = self._chosen(probabilities[i])
          row["label"] = [name for name, on in zip(names, chosen) if on]
        else:
          row["label"] = names[int(np.argmax(probabilities[i]))]
        row["probabilities"] = {name: float(p) for name, p in zip(names, probabilities[i])}
      rows.append(row)
    return rows

  def _write_report(self, output_dir: str, labels: np.ndarray, decided: np.ndarray) -> None:
    """The per-label report of one evaluation: eval_reports/<checkpoint>.txt."""
    name = os.path.basename(str(self.weights_source or "weights").rstrip("/"))
    path = os.path.join(output_dir, "eval_reports", f"{name}.txt")
    files.write_text(path, f"{name}: {len(labels)} examples of {self.custom.dev_file}\n\n"
                     + metrics.label_report(labels, decided, list(self.processor.labels)))



def _sigmoid_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """max(x, 0) - x z + log(1 + exp(-|x|)), as tf.nn.sigmoid_cross_entropy_with_logits."""
  return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
