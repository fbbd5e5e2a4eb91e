"""transformers itself on our Hugging Face folders, every direction (slow; needs the dev-only
environment with torch and transformers of tests/testdata/README.md, whose python is
$ALBERT_HF_PYTHON, default /work/notes/venv-hf/bin/python; absent, the test fails and says so).

* ours -> HF: the original release's golden checkpoints (pretraining, 3-label and STS-B
  classifiers, SQuAD v1, RACE), converted by `albert.hf.convert.tf1_to_hf`, loaded by
  `AlbertFor...`/`AutoModel`/`AutoTokenizer.from_pretrained`, give the original TF1 outputs;
* HF -> ours: the committed fixtures are what transformers computes (so the regular suite's
  parity holds against the transformers installed);
* HF -> TF1 -> HF 4.x's TF1 reader (`load_tf_weights_in_albert`): our converted checkpoint
  gives the fixture's outputs.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from albert import checkpoint
from albert.config import AlbertConfig
from albert.hf import convert
from conftest import REPO_DIR, TESTDATA

pytestmark = pytest.mark.slow  # minutes: torch and transformers start in a subprocess
HF_PYTHON = os.environ.get("ALBERT_HF_PYTHON", "/work/notes/venv-hf/bin/python")
RUNNER = os.path.join(REPO_DIR, "tests", "support", "hf_transformers_run.py")
GOLDEN = os.path.join(TESTDATA, "golden")
MODEL_A = os.path.join(GOLDEN, "model_A")
FINETUNE = os.path.join(GOLDEN, "finetune")
FIXTURES = os.path.join(TESTDATA, "hf")
TOLERANCE = 1e-5


def _transformers(jobs, tmp_path):
  if not os.access(HF_PYTHON, os.X_OK):
    pytest.fail(f"no python with torch and transformers at {HF_PYTHON} (set ALBERT_HF_PYTHON; "
                "tests/testdata/README.md says how to make that environment)")
  job_file = tmp_path / "job.json"
  job_file.write_text(json.dumps(jobs))
  done = subprocess.run([HF_PYTHON, RUNNER, str(job_file), str(tmp_path / "result.npz")],
                        capture_output=True, text=True, timeout=900,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="", USE_TF="0",
                                 USE_TORCH="1"))
  assert done.returncode == 0, done.stderr[-3000:]
  return dict(np.load(tmp_path / "result.npz"))


def _inputs(path, ids, mask, types, shape=None):
  shape = shape or ids.shape
  np.savez(path, input_ids=ids.reshape(shape), attention_mask=mask.reshape(shape),
           token_type_ids=types.reshape(shape))
  return str(path)


def _assert_close(got, expected, what):
  diff = float(np.max(np.abs(np.asarray(got).reshape(np.shape(expected)) - expected)))
  print(f"{what}: max |HF - original| = {diff:.2e}")
  assert diff < TOLERANCE, (what, diff)


def test_transformers_loads_our_conversions_of_the_original_checkpoints(tmp_path):
  config = AlbertConfig.from_json_file(os.path.join(MODEL_A, "albert_config.json"))
  quiet = dict(log=lambda _: None)
  a = np.load(os.path.join(MODEL_A, "outputs.npz"))
  cls = np.load(os.path.join(FINETUNE, "classifier", "model_A_classifier_outputs.npz"))
  squad = np.load(os.path.join(FINETUNE, "squad", "heads", "model_A", "outputs.npz"))
  race = np.load(os.path.join(FINETUNE, "race", "model_A_race_outputs.npz"))
  texts = json.load(open(os.path.join(FIXTURES, "pretraining", "tokenizer_ids.json"),
                         encoding="utf-8"))
  convert.tf1_to_hf(MODEL_A, config, str(tmp_path / "pretraining"),
                    spm_model_file=os.path.join(GOLDEN, "spm.model"), **quiet)
  convert.tf1_to_hf(os.path.join(FINETUNE, "classifier", "model_A_cls3", "init"), config,
                    str(tmp_path / "cls3"), labels=["a", "b", "c"], **quiet)
  convert.tf1_to_hf(os.path.join(FINETUNE, "classifier", "model_A_stsb", "init"), config,
                    str(tmp_path / "stsb"), head="regression", **quiet)
  convert.tf1_to_hf(os.path.join(FINETUNE, "squad", "heads", "model_A", "v1"), config,
                    str(tmp_path / "squad"), **quiet)
  convert.tf1_to_hf(os.path.join(FINETUNE, "race", "model_A_race", "init"), config,
                    str(tmp_path / "race"), head="race", **quiet)
  group = lambda d, p: (d[f"{p}input_ids"], d[f"{p}input_mask"], d[f"{p}segment_ids"])  # noqa
  jobs = [
      {"name": "pretraining", "folder": str(tmp_path / "pretraining"),
       "class": "AlbertForPreTraining", "auto_model": True, "tokenizer_texts": texts["texts"],
       "inputs": _inputs(tmp_path / "a.npz", *group(a, "input/"))},
      {"name": "cls3", "folder": str(tmp_path / "cls3"),
       "class": "AlbertForSequenceClassification",
       "inputs": _inputs(tmp_path / "cls.npz", *group(cls, "input/"))},
      {"name": "stsb", "folder": str(tmp_path / "stsb"),
       "class": "AlbertForSequenceClassification", "inputs": str(tmp_path / "cls.npz")},
      {"name": "squad", "folder": str(tmp_path / "squad"), "class": "AlbertForQuestionAnswering",
       "inputs": _inputs(tmp_path / "squad.npz", *group(squad, "input/"))},
      {"name": "race", "folder": str(tmp_path / "race"), "class": "AlbertForMultipleChoice",
       "inputs": _inputs(tmp_path / "race.npz", *group(race, "input/"), shape=(4, 4, 32))},
  ]
  hf = _transformers(jobs, tmp_path)
  _assert_close(hf["pretraining/sequence_output"], a["output/sequence_output"], "sequence")
  _assert_close(hf["pretraining/auto_sequence_output"], a["output/sequence_output"], "AutoModel")
  _assert_close(hf["pretraining/pooled_output"], a["output/pooled_output"], "pooled")
  positions = a["input/masked_lm_positions"]
  mlm = np.take_along_axis(hf["pretraining/prediction_logits"], positions[:, :, None], axis=1)
  _assert_close(mlm, a["output/mlm_logits"], "MLM logits")
  _assert_close(hf["pretraining/sop_logits"], a["output/sop_logits"], "SOP logits")
  _assert_close(hf["cls3/logits"], cls["cls3/init/logits"], "3-label classifier logits")
  _assert_close(hf["stsb/logits"], cls["stsb/init/logits"], "STS-B logits")
  _assert_close(hf["squad/start_logits"], squad["v1/predict/start_logits"], "SQuAD v1 start")
  _assert_close(hf["squad/end_logits"], squad["v1/predict/end_logits"], "SQuAD v1 end")
  _assert_close(hf["race/logits"], race["init/logits"], "RACE logits")
  assert str(hf["pretraining/tokenizer_class"]) == "AlbertTokenizer"
  for i, expected in enumerate(texts["ids"]):
    assert hf[f"pretraining/tokens_{i}"].tolist() == expected


CLASSES = {"pretraining": "AlbertForPreTraining",
           "sequence_classification": "AlbertForSequenceClassification",
           "question_answering": "AlbertForQuestionAnswering",
           "multiple_choice": "AlbertForMultipleChoice"}


def test_the_committed_fixtures_are_what_transformers_computes(tmp_path):
  jobs = [{"name": name, "folder": os.path.join(FIXTURES, name), "class": cls,
           "inputs": os.path.join(FIXTURES, name, "outputs.npz")} for name, cls in CLASSES.items()]
  hf = _transformers(jobs, tmp_path)
  for name in CLASSES:
    recorded = np.load(os.path.join(FIXTURES, name, "outputs.npz"))
    for key in recorded.files:
      if key not in ("input_ids", "attention_mask", "token_type_ids"):
        _assert_close(hf[f"{name}/{key}"], recorded[key], f"{name} {key}")


def test_hf_tf1_reader_loads_our_tf1_conversion(tmp_path):
  """HF 4.x's reader maps `cls/squad/*` to a `classifier` that AlbertForQuestionAnswering lacks
  (it fails on any SQuAD checkpoint, the original's too), so SQuAD is left out here."""
  jobs = []
  for name, cls in CLASSES.items():
    if name == "question_answering":
      continue
    convert.hf_to_tf1(os.path.join(FIXTURES, name), str(tmp_path / name), log=lambda _: None)
    jobs.append({"name": name, "folder": os.path.join(FIXTURES, name), "class": cls,
                 "tf1_checkpoint": checkpoint.resolve_checkpoint(str(tmp_path / name)),
                 "inputs": os.path.join(FIXTURES, name, "outputs.npz")})
  hf = _transformers(jobs, tmp_path)
  for name in (n for n in CLASSES if n != "question_answering"):
    recorded = np.load(os.path.join(FIXTURES, name, "outputs.npz"))
    for key in ("sequence_output", "prediction_logits", "sop_logits", "logits", "start_logits", "end_logits"):
      if key in recorded.files:
        _assert_close(hf[f"{name}/{key}"], recorded[key], f"HF TF1 reader {name} {key}")
