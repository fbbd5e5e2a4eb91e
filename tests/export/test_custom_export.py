"""Serving a custom task (run_classifier --task_name=custom --export_dir): the label list in the
export, raw text answered by label name, multi-label answers over the threshold, and the Python
API (`albert.export.classify.TextClassifier`) from an export and from a run directory giving
the labels and probabilities of the in-memory model.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the raw-text export uses)

from albert.errors import FlagError
from albert.export import onnx as onnx_export
from albert.export import runtime, versioned
from albert.export.classify import TextClassifier
from albert.export.serving import ClassifierServing, ExportSettings
from albert.tasks.classifier import CustomTaskConfig
from support.classifier_runs import CUSTOM, SPM, make_trainer

TEXTS = ["The cat didn't sit on the mat.", "Shares rose 4.6 % to a record high of A $ 4.57 .",
         "No.", "Bill whistled past the house."]
PAIRS = [("A cat sat on the mat.", "A cat is sitting on a mat."),
         ("Paris, the capital, is large.", "Paris is small."), ("No.", "Yes.")]


def _trained(tmp_path, custom):
  trainer = make_trainer(tmp_path / "run", "custom", num_train_steps=4, save_checkpoints_steps=4,
                         iterations_per_loop=4, custom=custom)
  trainer.run(do_train=True)
  return trainer


def _in_memory(trainer, texts, threshold=0.5):
  """The trained Keras model's probabilities on the training's own features of `texts`."""
  classifier = TextClassifier.from_run_dir(str(trainer.config.output_dir), SPM,
                                           threshold=threshold)
  features = classifier.features([(t, None) if isinstance(t, str) else t for t in texts])
  model = trainer.model
  outputs = model({k: tf.constant(v) for k, v in features.items()}, training=False)
  return outputs["probabilities"].numpy(), classifier


def test_multi_label_export_answers_raw_text_with_every_label_over_the_threshold(tmp_path):
  trainer = _trained(tmp_path, CustomTaskConfig(
      train_file=os.path.join(CUSTOM, "topics_train.tsv"), label_column="tags",
      task_type="multi_label", multi_label_threshold=0.45))
  probabilities, from_run = _in_memory(trainer, TEXTS, threshold=0.45)
  names = ["digits", "long", "negation", "short"]
  want = [[n for n, p in zip(names, row) if p >= 0.45] for row in probabilities]
  export = ClassifierServing.export_task(trainer.task, str(tmp_path / "run" / "model.ckpt-4"),
                                         ExportSettings(str(tmp_path / "export")),
                                         log=lambda line: None)
  info = versioned.read_info(export.path)
  assert info["labels"] == names and info["task_kind"] == "multi_label"
  assert info["threshold"] == 0.45 and info["multi_label"] is True
  loaded = tf.saved_model.load(export.path)
  served = loaded.signatures["raw_text"](sentence=tf.constant(TEXTS))
  np.testing.assert_allclose(served["probabilities"].numpy(), probabilities, atol=1e-5)
  chosen = [[n.decode() for n in row if n] for row in served["labels"].numpy()]
  assert chosen == want
  assert [l.decode() for l in served["label"].numpy()] == [
      names[i] for i in probabilities.argmax(-1)]
  # The Python API, from the export (SavedModel, ONNX and TFLite float32 backends) and from the
  # run directory, answers the same; ONNX serves the multi-label `labels` strings too.
  onnx_export.export_artifacts(export.path, export_onnx=True, export_tflite=True,
                               log=lambda line: None)
  served = runtime.load(export.path, "onnx").run(
      TextClassifier.from_export(export.path).features([(t, None) for t in TEXTS]))
  assert [[n.decode() for n in row if n] for row in served["labels"]] == want
  for classifier in (TextClassifier.from_export(export.path),
                     TextClassifier.from_export(export.path, backend="onnx"),
                     TextClassifier.from_export(export.path, backend="tflite"), from_run):
    answers = classifier.classify(TEXTS)
    assert [a["label"] for a in answers] == want, classifier.backend
    np.testing.assert_allclose([list(a["probabilities"].values()) for a in answers],
                               probabilities, atol=1e-5)
    assert all(list(a["probabilities"]) == names for a in answers)


def test_classification_export_answers_pairs_by_label_name(tmp_path):
  trainer = _trained(tmp_path, CustomTaskConfig(
      train_file=os.path.join(CUSTOM, "mrpc_train.csv"), text_a_column="first",
      text_b_column="second", label_column="verdict"))
  probabilities, _ = _in_memory(trainer, PAIRS)
  names = ["different", "paraphrase"]
  export = ClassifierServing.export_task(trainer.task, str(tmp_path / "run" / "model.ckpt-4"),
                                         ExportSettings(str(tmp_path / "export")),
                                         log=lambda line: None)
  assert versioned.read_info(export.path)["labels"] == names
  served = tf.saved_model.load(export.path).signatures["raw_text_pair"](
      sentence=tf.constant([a for a, _ in PAIRS]), sentence2=tf.constant([b for _, b in PAIRS]))
  want = [names[i] for i in probabilities.argmax(-1)]
  assert [l.decode() for l in served["label"].numpy()] == want
  answers = TextClassifier.from_export(export.path).classify(PAIRS)
  assert [a["label"] for a in answers] == want
  for answer, row in zip(answers, probabilities):
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(list(answer["probabilities"].values()), row, atol=1e-5)
  with pytest.raises(FlagError, match=r"^backend='torch': expected one of 'savedmodel', "
                                     r"'onnx', 'tflite'$"):
    TextClassifier.from_export(export.path, backend="torch")
