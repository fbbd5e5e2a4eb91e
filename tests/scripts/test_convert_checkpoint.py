"""convert_checkpoint.py and --init_checkpoint=<Hugging Face folder> as users run them: fine-tune an
HF folder with run_classifier.py, give the result back as an HF folder with one command."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file

from albert import checkpoint
from albert.hf import folder as hf_folder
from conftest import REPO_DIR
from support.faults import assert_clean_error, run_script

HF = os.path.join(REPO_DIR, "tests", "testdata", "hf")
GOLDEN = os.path.join(REPO_DIR, "tests", "testdata", "golden")
GLUE = os.path.join(REPO_DIR, "tests", "testdata", "glue")


def test_hf_folder_to_tf1_and_back(tmp_path):
  source = os.path.join(HF, "sequence_classification")
  done = run_script("convert_checkpoint.py", f"--input={source}",
                    f"--output_dir={tmp_path / 'tf1'}")
  assert done.returncode == 0, done.stderr
  assert "27 tensors, read back and equal" in done.stdout
  assert sorted(os.listdir(tmp_path / "tf1")) == [
      "albert_config.json", "checkpoint", "labels.txt", "model.ckpt-0.data-00000-of-00001",
      "model.ckpt-0.index"]
  _, written = checkpoint.read_checkpoint(str(tmp_path / "tf1"))
  expected = hf_folder.HFFolder(source).tensors()
  assert sorted(written) == sorted(expected)
  for name in expected:
    np.testing.assert_array_equal(written[name], expected[name], err_msg=name)
  config = json.loads((tmp_path / "tf1" / "albert_config.json").read_text())
  assert config["hidden_act"] == "gelu_exact" and config["embedding_size"] == 8

  back = run_script("convert_checkpoint.py", f"--input={tmp_path / 'tf1'}",
                    f"--albert_config_file={tmp_path / 'tf1' / 'albert_config.json'}",
                    "--labels=contradiction,entailment,neutral", "--output_format=hf",
                    f"--output_dir={tmp_path / 'hf'}")
  assert back.returncode == 0, back.stderr
  original = load_file(os.path.join(source, "model.safetensors"))
  again = load_file(str(tmp_path / "hf" / "model.safetensors"))
  assert sorted(original) == sorted(again)
  for key in original:
    np.testing.assert_array_equal(original[key], again[key], err_msg=key)


def test_bad_inputs_are_one_line(tmp_path):
  (tmp_path / "hf").mkdir()
  (tmp_path / "hf" / "pytorch_model.bin").write_bytes(b"\x80\x02")
  (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "albert",
                                                           "vocab_size": 10}))
  assert_clean_error(run_script("convert_checkpoint.py", f"--input={tmp_path / 'hf'}",
                                f"--output_dir={tmp_path / 'out'}"),
                     "only pytorch_model.bin, no model.safetensors")
  assert_clean_error(run_script("convert_checkpoint.py",
                                f"--input={os.path.join(GOLDEN, 'model_A')}",
                                f"--output_dir={tmp_path / 'out'}"),
                     "--albert_config_file is required")
  assert not (tmp_path / "out").exists()


# Slow (about 70 s: three programs start TensorFlow); the regular suite initialises the tasks
# from HF folders in-process (tests/tasks/test_hf_init.py) and runs the converter both ways here.
@pytest.mark.slow
def test_fine_tune_an_hf_folder_and_give_it_back(tmp_path):
  """Done means: run_classifier.py --init_checkpoint=<HF folder> (its config.json and
  spiece.model serve as --albert_config_file and --spm_model_file), then one command back."""
  folder = os.path.join(HF, "pretraining")
  out = tmp_path / "rte"
  done = run_script("run_classifier.py", "--task_name=RTE", f"--data_dir={GLUE}",
                    f"--init_checkpoint={folder}", f"--output_dir={out}", "--do_train",
                    "--do_eval", "--max_seq_length=32", "--train_batch_size=4",
                    "--eval_batch_size=4", "--train_step=2", "--save_checkpoints_steps=2",
                    "--num_workers=1", timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  assert (out / "model.ckpt-2.index").exists()
  encoder = hf_folder.HFFolder(folder).tensors()
  _, tuned = checkpoint.read_checkpoint(str(out / "model.ckpt-2"))
  assert sorted(n for n in tuned if n.startswith("bert/")) == sorted(
      n for n in encoder if n.startswith("bert/"))
  assert tuned["output_weights"].shape == (2, 32)

  back = run_script("convert_checkpoint.py", f"--input={out / 'model.ckpt-2'}",
                    f"--albert_config_file={_config_file(tmp_path, folder)}",
                    f"--spm_model_file={os.path.join(folder, 'spiece.model')}",
                    "--labels=entailment,not_entailment", f"--output_dir={tmp_path / 'hf'}")
  assert back.returncode == 0, back.stderr
  config = json.loads((tmp_path / "hf" / "config.json").read_text())
  assert config["architectures"] == ["AlbertForSequenceClassification"]
  assert config["id2label"] == {"0": "entailment", "1": "not_entailment"}
  assert config["hidden_act"] == "gelu_new"
  assert sorted(os.listdir(tmp_path / "hf")) == [
      "config.json", "model.safetensors", "special_tokens_map.json", "spiece.model",
      "tokenizer_config.json"]
  tensors = load_file(str(tmp_path / "hf" / "model.safetensors"))
  np.testing.assert_array_equal(tensors["classifier.weight"], tuned["output_weights"])


def _config_file(tmp_path, folder):
  path = tmp_path / "albert_config.json"
  checkpoint.config_for_checkpoint(None, folder).to_json_file(str(path))
  return path
