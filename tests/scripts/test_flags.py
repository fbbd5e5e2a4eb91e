"""albert/cli/flags.py: each flag group's `X_from_flags()` reads exactly the flags its
`define_X_flags()` defines, with their values, and a fine-tuning script's run is made from the
groups and the flags the script passes by name.

The groups define absl flags in the process-wide FLAGS, so each check runs in a fresh
interpreter (the program below), as a script would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

from albert.cli import flags as albert_flags
from conftest import REPO_DIR

TINY = os.path.join(REPO_DIR, "configs", "tiny", "albert_config.json")
GROUPS = {"model": albert_flags.ModelFlags, "tokenizer": albert_flags.TokenizerFlags,
          "loop": albert_flags.LoopFlags, "tf2": albert_flags.Tf2Flags,
          "finetune": albert_flags.FinetuneFlags}
DISTRIBUTION = ["distribution_strategy", "gcp_project", "master", "num_gpus", "num_tpu_cores",
                "tpu_name", "tpu_zone", "use_tpu"]

PROGRAM = r"""
import dataclasses, json, sys
from absl import flags
from albert.cli import flags as f
defined = {}
for group in ("model", "tokenizer", "loop", "tf2", "finetune", "distribution"):
  before = set(flags.FLAGS)
  getattr(f, f"define_{group}_flags")()
  getattr(f, f"define_{group}_flags")()  # a second call changes nothing
  defined[group] = sorted(set(flags.FLAGS) - before)
flags.FLAGS(["program"] + sys.argv[1:])
values = {group: dataclasses.asdict(getattr(f, f"{group}_from_flags")())
          for group in ("model", "tokenizer", "loop", "tf2", "finetune", "distribution")}
run = f.finetune_run_from_flags(train_batch_size=4, eval_batch_size=2, keep_checkpoint_max=9,
                                max_seq_length=64)
print(json.dumps({"defined": defined, "values": values,
                  "trainer": dataclasses.asdict(run.trainer),
                  "finetune": {k: v for k, v in dataclasses.asdict(run.finetune).items()
                               if k != "albert_config"},
                  "vocab_size": run.finetune.albert_config.vocab_size}))
"""


def _run(*argv):
  done = subprocess.run([sys.executable, "-c", PROGRAM, *argv], cwd=REPO_DIR,
                        env=dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="3"),
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  *notes, last = done.stdout.strip().splitlines()
  return notes, json.loads(last)


def test_each_group_reads_exactly_the_flags_it_defines_with_their_values(tmp_path):
  argv = [f"--albert_config_file={TINY}", "--init_checkpoint=ckpt", f"--output_dir={tmp_path}",
          "--albert_hub_module_handle=hub", "--vocab_file=vocab.txt", "--spm_model_file=sp.model",
          "--nodo_lower_case", "--save_checkpoints_steps=7", "--keep_checkpoint_max=3",
          "--iterations_per_loop=11", "--mixed_precision=mixed_bfloat16", "--enable_xla",
          "--seed=5", "--gradient_accumulation_steps=4", "--recompute_grad",
          "--cached_dir=cache", "--nolength_buckets", "--num_workers=2",
          "--use_tpu", "--tpu_name=t", "--tpu_zone=z", "--gcp_project=p", "--master=m",
          "--num_tpu_cores=16", "--distribution_strategy=one_device", "--num_gpus=1"]
  notes, got = _run(*argv)
  for group, fields in GROUPS.items():
    assert got["defined"][group] == sorted(f.name for f in dataclasses.fields(fields)), group
  assert got["defined"]["distribution"] == DISTRIBUTION
  assert got["values"] == {
      "model": {"albert_config_file": TINY, "init_checkpoint": "ckpt",
                "output_dir": str(tmp_path), "albert_hub_module_handle": "hub"},
      "tokenizer": {"vocab_file": "vocab.txt", "spm_model_file": "sp.model",
                    "do_lower_case": False},
      "loop": {"save_checkpoints_steps": 7, "keep_checkpoint_max": 3, "iterations_per_loop": 11},
      "tf2": {"mixed_precision": "mixed_bfloat16", "enable_xla": True, "seed": 5,
              "gradient_accumulation_steps": 4, "recompute_grad": True},
      "finetune": {"cached_dir": "cache", "length_buckets": False, "num_workers": 2},
      "distribution": {"strategy": "one_device", "num_gpus": 1, "use_tpu": True,
                       "tpu_name": "t", "tpu_zone": "z", "gcp_project": "p", "master": "m"}}
  assert notes == ["note: --num_tpu_cores is not needed in TF2: the TPU strategy uses every "
                   "core of the TPU named by --tpu_name."]
  # The run: the groups' values, the script's by name (its keep_checkpoint_max wins).
  trainer = got["trainer"]
  assert (trainer["save_checkpoints_steps"], trainer["keep_checkpoint_max"],
          trainer["iterations_per_loop"]) == (7, 9, 11)
  assert (trainer["train_batch_size"], trainer["eval_batch_size"]) == (4, 2)
  assert (trainer["mixed_precision"], trainer["enable_xla"], trainer["seed"]) == (
      "mixed_bfloat16", True, 5)
  assert (trainer["init_checkpoint"], trainer["albert_config_file"]) == ("ckpt", TINY)
  assert got["finetune"] == {
      "output_dir": str(tmp_path), "spm_model_file": "sp.model", "vocab_file": "vocab.txt",
      "do_lower_case": False, "max_seq_length": 64, "cache_dir": "cache",
      "hub_module_handle": "hub", "bucket_boundaries": None, "num_workers": 2, "seed": 5,
      "init_skip": [], "features_only": False}
  assert got["vocab_size"] == 1000  # configs/tiny, read from --albert_config_file


def test_the_groups_defaults_are_the_originals(tmp_path):
  notes, got = _run(f"--albert_config_file={TINY}", f"--output_dir={tmp_path}")
  assert notes == []
  values = got["values"]
  assert values["tokenizer"]["do_lower_case"] is True
  assert values["loop"] == {"save_checkpoints_steps": 1000, "keep_checkpoint_max": 5,
                            "iterations_per_loop": 1000}
  assert values["tf2"] == {"mixed_precision": "float32", "enable_xla": False, "seed": 12345,
                           "gradient_accumulation_steps": 1, "recompute_grad": False}
  assert values["finetune"] == {"cached_dir": None, "length_buckets": True, "num_workers": None}
  assert values["distribution"] == {"strategy": "auto", "num_gpus": None, "use_tpu": False,
                                    "tpu_name": None, "tpu_zone": None, "gcp_project": None,
                                    "master": None}
  assert got["finetune"]["bucket_boundaries"] == [32, 64]


def test_prepare_only_builds_the_named_splits_else_the_default():
  assert albert_flags.prepare_only_splits(False, False, False) == ("train", "eval")
  assert albert_flags.prepare_only_splits(False, False, True) == ("predict",)
  assert albert_flags.prepare_only_splits(True, False, True) == ("train", "predict")
  assert albert_flags.prepare_only_splits(False, False, False, default=("predict",)) == (
      "predict",)


CUSTOM_PROGRAM = r"""
import sys
from absl import flags
from albert.cli import flags as f
f.define_model_flags()
f.define_custom_task_flags()
flags.FLAGS(["program"] + sys.argv[1:])
print(f.custom_task_from_flags().labels)
"""


def test_a_custom_task_takes_its_labels_from_an_hf_folder_that_names_them():
  """Without --labels, an HF folder's id2label (in its order) is the custom task's label list;
  --labels wins; a folder with no named labels or a TF1 checkpoint leaves the list to the
  training file."""
  hf = os.path.join(REPO_DIR, "tests", "testdata", "hf")

  def labels(*argv):
    done = subprocess.run([sys.executable, "-c", CUSTOM_PROGRAM, *argv], cwd=REPO_DIR,
                          env=dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="3"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]

  classifier = f"--init_checkpoint={os.path.join(hf, 'sequence_classification')}"
  assert labels(classifier) == "('contradiction', 'entailment', 'neutral')"
  assert labels(classifier, "--labels=neutral,entailment,contradiction") == (
      "('neutral', 'entailment', 'contradiction')")
  assert labels(classifier, "--task_type=regression") == "None"
  assert labels(f"--init_checkpoint={os.path.join(hf, 'pretraining')}") == "None"
  assert labels("--init_checkpoint=run/model.ckpt-3") == "None"


SERVING_PROGRAM = r"""
import dataclasses, json, sys
from absl import flags
from albert.cli import flags as f
before = set(flags.FLAGS)
f.define_serving_export_flags(tflite=sys.argv[1] == "tflite")
defined = sorted(set(flags.FLAGS) - before)
flags.FLAGS(["program"] + sys.argv[2:])
print(json.dumps({"defined": defined,
                  "values": dataclasses.asdict(f.serving_export_from_flags())}))
"""


def test_the_serving_export_group_defines_tflite_only_where_asked():
  def run(*argv):
    done = subprocess.run([sys.executable, "-c", SERVING_PROGRAM, *argv], cwd=REPO_DIR,
                          env=dict(os.environ, PYTHONPATH=REPO_DIR), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
  assert run("onnx", "--export_onnx") == {
      "defined": ["export_onnx"], "values": {"export_onnx": True, "export_tflite": False}}
  assert run("tflite", "--export_tflite") == {
      "defined": ["export_onnx", "export_tflite"],
      "values": {"export_onnx": False, "export_tflite": True}}
