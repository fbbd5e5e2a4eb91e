"""RACE: multiple-choice reading comprehension, as the original's run_race.py, on the one Trainer.

Data: `albert.data.race` (the official `RACE/{train,dev,test}/{middle,high}/N.txt` layout or the
original's `all.txt`; the original's packing of the four options, cached under a fingerprint).
Model: the encoder on each of the C = 4 choices, the original's multiple-choice head (root
`output_weights` [1, H], `output_bias` [1], `dropout_prob` on the pooled output in training),
softmax over the choices. The splits are train, dev (eval) and test (predict, which has labels).
Eval (predict + postprocess) writes the original's keys `eval_accuracy`, `eval_loss` (mean over
questions), `global_step`, adds `middle_accuracy` / `high_accuracy`, and writes each
question's predicted letter and probabilities (`eval_predictions.json`, `test_predictions.json`);
predict also writes the original's `predict_results.txt`. The best checkpoint is chosen by
`eval_accuracy`. With length buckets, each batch is padded to the bucket of its longest choice.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from albert import files, losses
from albert.train import input_pipeline
from albert.data import race as race_data
from albert.models import build_race_model
from albert.train.run_dir import format_results
from albert.tasks.finetune import FinetuneConfig, FinetuneTask

SPLIT_NAMES = {"train": "train", "eval": "dev", "predict": "test"}


@dataclasses.dataclass
class RaceTaskConfig:
  finetune: FinetuneConfig
  data_dir: str  # holds RACE/{train,dev,test} (or is the RACE folder itself)
  max_qa_length: int = 128
  dropout_prob: float = 0.1
  levels: tuple = race_data.LEVELS  # --high_only / --middle_only choose one
  truncation: str = "original"  # or "keep_option" (never cuts the option away)
  # The original's --train_file / --eval_file / --predict_file: fixed cache file names.
  cache_files: Optional[Dict[str, str]] = None


class RaceTask(FinetuneTask):
  """RACE on the Trainer; see the module docstring.

  Args:
    config: the task's settings (`finetune`: the shared fine-tuning ones).
    log: where the task's lines go; default: printed.

  Example (two training steps of a tiny model on the test passages, then dev scored):

  ```python
  from albert.config import AlbertConfig
  from albert.tasks.finetune import FinetuneConfig
  from albert.tasks.race import RaceTask, RaceTaskConfig
  from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig

  tiny = AlbertConfig(vocab_size=30000, embedding_size=8, hidden_size=16, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=32)
  task = RaceTask(RaceTaskConfig(
      FinetuneConfig(tiny, output_dir="out", max_seq_length=64,
                     spm_model_file="tests/testdata/albert_spm/30k-clean.model"),
      data_dir="tests/testdata/race", max_qa_length=16))
  trainer = Trainer(task, TrainerConfig("out", train_batch_size=8, eval_batch_size=8,
                                        num_train_steps=2, save_checkpoints_steps=2),
                    OptimizerConfig(optimizer="adamw", learning_rate=1e-4))
  results = trainer.run(do_train=True, do_eval=True)  # eval_accuracy, global_step 2
  ```
  """

  name = "race"
  best_metric = "eval_accuracy"

  def check_data(self, split: str) -> None:
    """Reads the split (every file checked: RACE JSON, four options, answers A-D) before any
    output is written; quick next to the feature conversion."""
    spec = self.tokenizer_spec()
    race_data.read_examples(self.config.data_dir, SPLIT_NAMES[split], self.config.levels,
                            spec.do_lower_case, use_spm=bool(spec.spm_model_file))

  def build_cache(self, split):
    override = (self.config.cache_files or {}).get(split)
    return race_data.build_race_cache(
        self.config.data_dir, SPLIT_NAMES[split], self.tokenizer_spec(),
        self.config.finetune.max_seq_length, self.config.max_qa_length, self.config.levels,
        self.config.truncation, cache_dir=None if override else self.cache_dir,
        path_override=override)

  def schema(self, split):
    return race_data.record_schema(self.config.finetune.max_seq_length)

  # Every per-position feature as rows [C, S], so that length buckets see the longest choice and
  # cut each one alike; flat again per batch.
  def decode(self, split, features):
    choices = race_data.NUM_CHOICES
    per_position = input_pipeline.sequence_features_of(self.schema(split))
    return {k: (tf.reshape(v, [choices, -1]) if k in per_position else v)
            for k, v in features.items()}

  def finalize(self, split, batch):
    per_position = input_pipeline.sequence_features_of(self.schema(split))
    return {k: (tf.reshape(v, [tf.shape(v)[0], -1]) if k in per_position else v)
            for k, v in batch.items()}

  def build_model(self):
    return build_race_model(self.albert_config, race_data.NUM_CHOICES,
                            dropout_prob=self.config.dropout_prob, encoder=self.encoder())

  def compute_loss(self, features, outputs):
    weights = features.get("is_real_example")
    result = losses.multiple_choice_loss(outputs["logits"], features["label_ids"], weights)
    return result["loss"], result

  def build_metrics(self):  # for the progress lines (evaluation is predict + postprocess)
    import tf_keras  # pylint: disable=g-import-not-at-top
    return {"loss": tf_keras.metrics.Mean("loss"), "accuracy": tf_keras.metrics.Accuracy("accuracy")}

  def update_metrics(self, metrics, features, aux):
    metrics["loss"].update_state(aux["loss"])
    predictions = tf.argmax(aux["probabilities"], axis=-1, output_type=tf.int32)
    metrics["accuracy"].update_state(tf.reshape(features["label_ids"], [-1]), predictions,
                                     sample_weight=features.get("is_real_example"))

  def prediction_outputs(self, features, outputs):
    return {"probabilities": outputs["probabilities"],
            "label_ids": tf.reshape(features["label_ids"], [-1])}

  def postprocess(self, split, predictions, output_dir) -> Dict[str, float]:
    meta = self.metadata(split)
    probabilities = predictions["probabilities"].astype(np.float64)
    labels = predictions["label_ids"].astype(np.int64)
    if len(labels) != meta["num_questions"]:
      raise AssertionError(f"{len(labels)} predictions for {meta['num_questions']} questions")
    results = race_data.race_accuracy(probabilities, labels, meta["levels"])
    picked = probabilities[np.arange(len(labels)), labels]
    results["eval_loss"] = float(np.mean(-np.log(np.maximum(picked, 1e-30))))
    name = SPLIT_NAMES[split]
    race_data.write_predictions(os.path.join(output_dir, f"{name}_predictions.json"),
                                meta["question_ids"], probabilities)
    if split == "predict":
      files.write_text(os.path.join(output_dir, "predict_results.txt"), format_results(results))
    return results
