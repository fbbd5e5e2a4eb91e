"""albert.tasks.finetune.finetune_run: the one builder of a fine-tuning run's three configs
(the scripts' flags, scripts/run_glue.py, scripts/main_job.py and the benchmarks all use it)."""

from __future__ import annotations

import os
import textwrap

import pytest

from albert.config import AlbertConfig
from albert.errors import FlagError
from albert.tasks import finetune
from albert.tasks.classifier import ClassifierTask, ClassifierTaskConfig
from albert.tasks.finetune import FinetuneConfig, finetune_run
from albert.train.run_dir import parse_results
from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig
from conftest import REPO_DIR
from support.classifier_runs import SPM

TINY_FILE = os.path.join(REPO_DIR, "configs", "tiny", "albert_config.json")


def test_the_configs_hold_what_is_given(tmp_path):
  out = str(tmp_path / "run")
  run = finetune_run(
      output_dir=out, albert_config_file=TINY_FILE, init_checkpoint="ckpt", spm_model_file=SPM,
      do_lower_case=False, max_seq_length=64, cached_dir="cache", num_workers=2,
      init_skip=["bert/pooler/"], train_batch_size=16, eval_batch_size=4, predict_batch_size=2,
      num_train_steps=30, steps_flag="train_step", save_checkpoints_steps=10,
      keep_checkpoint_max=2, iterations_per_loop=5, enable_xla=True,
      mixed_precision="mixed_bfloat16", seed=7, optimizer="lamb", learning_rate=1e-3,
      num_warmup_steps=3)
  assert run.finetune == FinetuneConfig(
      albert_config=AlbertConfig.from_json_file(TINY_FILE), output_dir=out, spm_model_file=SPM,
      vocab_file=None, do_lower_case=False, max_seq_length=64, cache_dir="cache",
      hub_module_handle=None, bucket_boundaries=(32, 64), num_workers=2, seed=7,
      init_skip=("bert/pooler/",), features_only=False)
  assert run.trainer == TrainerConfig(
      output_dir=out, train_batch_size=16, eval_batch_size=4, predict_batch_size=2,
      num_train_steps=30, num_train_epochs=None, save_checkpoints_steps=10,
      keep_checkpoint_max=2, iterations_per_loop=5, max_eval_steps=None,
      init_checkpoint="ckpt", init_from_group0=False, albert_config_file=TINY_FILE,
      enable_xla=True, mixed_precision="mixed_bfloat16", seed=7, steps_flag="train_step")
  assert run.optimizer == OptimizerConfig(optimizer="lamb", learning_rate=1e-3,
                                          num_warmup_steps=3, warmup_proportion=None)


def test_the_defaults_are_run_classifiers(tmp_path):
  run = finetune_run(output_dir=str(tmp_path), albert_config_file=TINY_FILE,
                     train_batch_size=32, eval_batch_size=8, num_train_steps=1000)
  f, t, o = run.finetune, run.trainer, run.optimizer
  assert (f.do_lower_case, f.max_seq_length, f.cache_dir, f.num_workers, f.seed) == (
      True, 512, None, None, 12345)
  assert f.bucket_boundaries == (32, 64, 128, 256, 512)  # --length_buckets
  assert (t.predict_batch_size, t.save_checkpoints_steps, t.keep_checkpoint_max,
          t.iterations_per_loop, t.mixed_precision, t.enable_xla, t.steps_flag) == (
              None, 1000, 5, 1000, "float32", False, "num_train_steps")
  assert (o.optimizer, o.learning_rate, o.num_warmup_steps, o.warmup_proportion) == (
      "adamw", 5e-5, 0, None)
  # run_squad.py: epochs (steps resolved by the Trainer) and a warmup proportion
  squad = finetune_run(output_dir=str(tmp_path), albert_config_file=TINY_FILE,
                       train_batch_size=32, eval_batch_size=8, num_train_epochs=3.0,
                       warmup_proportion=0.1, length_buckets=False)
  assert (squad.trainer.num_train_steps, squad.trainer.num_train_epochs) == (None, 3.0)
  assert squad.optimizer.warmup_proportion == 0.1
  assert squad.finetune.bucket_boundaries is None


def test_a_given_config_is_used_as_is_and_its_file_named(tmp_path):
  # scripts/main_job.py: the config with the trained vocabulary, written beside the run
  config = AlbertConfig.from_json_file(TINY_FILE).replace(vocab_size=4000)
  run = finetune_run(output_dir=str(tmp_path), albert_config=config,
                     albert_config_file=TINY_FILE, train_batch_size=8, eval_batch_size=8)
  assert run.finetune.albert_config.vocab_size == 4000
  assert run.trainer.albert_config_file == TINY_FILE


def test_without_a_model_config_it_is_one_clear_error(tmp_path):
  with pytest.raises(FlagError) as error:
    finetune_run(output_dir=str(tmp_path), train_batch_size=8, eval_batch_size=8)
  assert str(error.value) == "--albert_config_file is required (or --albert_hub_module_handle)"
  # --prepare_only builds features without a model; a hub module brings its own config
  assert finetune_run(output_dir=str(tmp_path), train_batch_size=8, eval_batch_size=8,
                      features_only=True).finetune.albert_config is None
  hub = finetune_run(output_dir=str(tmp_path), train_batch_size=8, eval_batch_size=8,
                     albert_hub_module_handle="/hub/albert")
  assert hub.finetune.albert_config is None and hub.finetune.hub_module_handle == "/hub/albert"


def test_the_docstring_example_runs(tmp_path, monkeypatch):
  doc = finetune.finetune_run.__doc__
  code = textwrap.dedent(doc[doc.index("Example"):].split(":\n", 1)[1])
  assert code.count('"/tmp/rte"') == 1
  code = code.replace('"/tmp/rte"', repr(str(tmp_path / "rte")))
  monkeypatch.chdir(REPO_DIR)  # the example's paths are relative to the repository
  exec(code, {"AlbertConfig": AlbertConfig, "finetune_run": finetune_run,  # pylint: disable=exec-used
              "ClassifierTask": ClassifierTask, "ClassifierTaskConfig": ClassifierTaskConfig,
              "Trainer": Trainer})
  results = parse_results((tmp_path / "rte" / "eval_results.txt").read_text())
  assert [int(r["global_step"]) for r in results] == [4]
