"""--init_checkpoint=<Hugging Face folder> in the fine-tuning tasks: the folder brings its config
and tokenizer (explicit ones must agree), and initialises the encoder and the head."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from albert import checkpoint
from albert.errors import CheckpointError, FlagError
from albert.tasks.classifier import ClassifierTask, ClassifierTaskConfig
from albert.tasks.finetune import finetune_run
from conftest import TESTDATA
from support.classifier_runs import GLUE, SPM, TINY

HF = os.path.join(TESTDATA, "hf")


def _run(tmp_path, **given):
  return finetune_run(output_dir=str(tmp_path / "run"), train_batch_size=4, eval_batch_size=4,
                      num_train_steps=2, max_seq_length=32, **given)


def test_an_hf_folder_brings_its_config_and_tokenizer(tmp_path):
  folder = os.path.join(HF, "pretraining")
  run = _run(tmp_path, init_checkpoint=folder)
  config = run.finetune.albert_config
  assert (config.embedding_size, config.hidden_size, config.num_hidden_groups,
          config.inner_group_num, config.hidden_act) == (16, 32, 2, 2, "gelu")
  assert run.finetune.spm_model_file == os.path.join(folder, "spiece.model")
  assert run.trainer.init_checkpoint == folder
  # Explicit settings are kept when they agree, refused in one line when not.
  assert _run(tmp_path, init_checkpoint=folder, albert_config=config,
              spm_model_file=SPM).finetune.spm_model_file == SPM
  with pytest.raises(CheckpointError) as error:
    _run(tmp_path, init_checkpoint=folder, albert_config=TINY)
  assert "\n" not in str(error.value)
  assert "--albert_config_file disagrees with the config.json of the Hugging Face folder" in (
      str(error.value)) and "vocab_size: 30000 in --albert_config_file, 1000 in the folder" in (
          str(error.value))
  with pytest.raises(FlagError, match=r"pass --do_lower_case=True"):
    _run(tmp_path, init_checkpoint=folder, do_lower_case=False)


def test_a_cased_folder_needs_do_lower_case_false(tmp_path):
  folder = tmp_path / "cased"
  shutil.copytree(os.path.join(HF, "pretraining"), folder)
  values = json.loads((folder / "tokenizer_config.json").read_text())
  values["do_lower_case"] = False
  (folder / "tokenizer_config.json").write_text(json.dumps(values))
  assert _run(tmp_path, init_checkpoint=str(folder), do_lower_case=False).finetune.do_lower_case \
      is False
  with pytest.raises(FlagError, match=r"--do_lower_case=True disagrees"):
    _run(tmp_path, init_checkpoint=str(folder))


def _classifier(tmp_path, folder, task_name):
  run = _run(tmp_path, init_checkpoint=folder, spm_model_file=SPM)
  task = ClassifierTask(ClassifierTaskConfig(finetune=run.finetune, task_name=task_name,
                                             data_dir=GLUE))
  return task, task.build_model()


def test_a_classifier_folder_initialises_encoder_and_head(tmp_path):
  folder = os.path.join(HF, "sequence_classification")
  task, model = _classifier(tmp_path, folder, "MNLI")  # 3 labels, as the folder's head
  report = task.initialize(model, folder)
  assert len(report.loaded) == 27 and report.missing == [] and report.new == {}
  task, model = _classifier(tmp_path, folder, "RTE")  # 2 labels: the head starts fresh
  report = task.initialize(model, folder)
  assert len(report.loaded) == 25
  assert sorted(report.new) == ["output_bias", "output_weights"]


def test_a_question_answering_folder_has_no_pooler_which_starts_fresh(tmp_path):
  folder = os.path.join(HF, "question_answering")
  task, model = _classifier(tmp_path, folder, "RTE")
  report = task.initialize(model, folder)
  assert report.missing == ["output_bias", "output_weights"]  # the classifier's own head
  assert sorted(report.new) == ["bert/pooler/dense/bias", "bert/pooler/dense/kernel"]
  assert "not in the Hugging Face folder" in report.new["bert/pooler/dense/kernel"]
  assert "cls/squad/output_weights" in report.unused


def _relabelled(tmp_path, labels):
  folder = tmp_path / "relabelled"
  shutil.copytree(os.path.join(HF, "sequence_classification"), folder)
  values = json.loads((folder / "config.json").read_text())
  values["id2label"] = {str(i): label for i, label in enumerate(labels)}
  (folder / "config.json").write_text(json.dumps(values))
  return str(folder)


def test_a_classifier_head_follows_the_task_labels_not_the_row_order(tmp_path):
  """An HF head whose id2label lists the task's labels in another order is reordered (else MNLI
  would read 'entailment' scores as 'contradiction' ones); other labels start fresh."""
  source = checkpoint.open_reader(os.path.join(HF, "sequence_classification"))
  weights, bias = source.get_tensor("output_weights"), source.get_tensor("output_bias")
  folder = _relabelled(tmp_path, ["NEUTRAL", "contradiction", "Entailment"])
  lines = []
  task, model = _classifier(tmp_path, folder, "MNLI")
  task.log = lines.append
  report = task.initialize(model, folder)
  assert len(report.loaded) == 27 and report.new == {}
  variables = checkpoint.variables_by_name(model)
  # MNLI's labels: contradiction, entailment, neutral = the folder's rows 1, 2, 0.
  np.testing.assert_array_equal(variables["output_weights"].numpy(), weights[[1, 2, 0]])
  np.testing.assert_array_equal(variables["output_bias"].numpy(), bias[[1, 2, 0]])
  assert any(l.startswith("Head rows reordered") for l in lines)

  folder = _relabelled(tmp_path / "other", ["positive", "negative", "mixed"])
  task, model = _classifier(tmp_path, folder, "MNLI")
  report = task.initialize(model, folder)
  assert len(report.loaded) == 25
  assert "are not the task's" in report.new["output_weights"]
  assert not np.array_equal(checkpoint.variables_by_name(model)["output_weights"].numpy(),
                            weights)


def test_evaluating_an_hf_classifier_follows_its_labels(tmp_path):
  """--do_eval straight from an HF folder: a head stored in another label order scores as the
  same head in the task's order; other labels are refused, not scored."""
  from safetensors.numpy import load_file, save_file
  from albert.train.trainer import Trainer
  source = os.path.join(HF, "sequence_classification")
  shuffled = tmp_path / "shuffled"
  shutil.copytree(source, shuffled)
  tensors = load_file(str(shuffled / "model.safetensors"))
  permutation = [2, 0, 1]
  for key in ("classifier.weight", "classifier.bias"):
    tensors[key] = tensors[key][permutation]
  save_file(tensors, str(shuffled / "model.safetensors"), metadata={"format": "pt"})
  values = json.loads((shuffled / "config.json").read_text())
  labels = [values["id2label"][str(i)] for i in permutation]
  values["id2label"] = {str(i): label for i, label in enumerate(labels)}
  (shuffled / "config.json").write_text(json.dumps(values))

  def evaluate(folder, name):
    run = finetune_run(output_dir=str(tmp_path / name), init_checkpoint=str(folder),
                       spm_model_file=os.path.join(TESTDATA, "golden", "spm.model"), train_batch_size=4, eval_batch_size=4,
                       num_train_steps=1, max_seq_length=32, num_workers=1)
    task = ClassifierTask(ClassifierTaskConfig(finetune=run.finetune, task_name="MNLI",
                                               data_dir=GLUE), log=lambda _: None)
    return Trainer(task, run.trainer, run.optimizer, log=lambda _: None).run(
        do_train=False, do_eval=True)

  assert evaluate(source, "a") == evaluate(shuffled, "b")
  other = _relabelled(tmp_path / "c", ["positive", "negative", "mixed"])
  with pytest.raises(CheckpointError, match=r"its head cannot score this task"):
    evaluate(other, "c")
