"""The training loop with the pretraining task: checkpoints, eval, best, init, NaN, bad settings."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from albert import checkpoint
from albert.config import AlbertConfig
from albert.errors import InputError
from albert.tasks.pretraining import PretrainingDataConfig
from albert.tasks.pretraining import PretrainingTask, PretrainingTaskConfig
from albert.errors import TrainingError
from albert.train.distribute import distributed_dataset
from albert.train.loop import make_train_loop, model_inputs
from albert.train.trainer import OptimizerConfig, Trainer, TrainerConfig
from conftest import MODEL_A
from support.records import write_records
from support.trainers import SMALL, make_trainer

EVAL_KEYS = ["global_step", "loss", "masked_lm_accuracy", "masked_lm_loss",
             "sentence_order_accuracy", "sentence_order_loss"]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  directory = tmp_path_factory.mktemp("records")
  return [write_records(str(directory / f"part-{i}.tfrecord"), 40, seed=i) for i in range(2)]


def _run_make_train_loop(output_dir, files, dense, steps, clip_norm=1.0):
  """(initial weights, weights after `steps`, last gradient norm, first-batch gradients) of
  make_train_loop on a dropout-free SMALL model."""
  config = SMALL.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  trainer = make_trainer(output_dir, files, albert_config=config)
  trainer.build()
  model = trainer.model
  inputs = lambda features: model_inputs(model, features)  # noqa: E731
  initial = [v.numpy() for v in model.trainable_variables]
  features = next(iter(distributed_dataset(trainer.strategy, trainer.task, "train", 4)))
  with tf.GradientTape() as tape:
    loss, _ = trainer.task.compute_loss(features, model(inputs(features), training=True))
  grads = tape.gradient(loss, model.trainable_variables)
  loop = make_train_loop(
      trainer.strategy, lambda f: model(inputs(f), training=True),
      lambda: model.trainable_variables, trainer.optimizer, trainer.task, trainer.train_metrics,
      clip_norm=clip_norm, dense_gradients=dense)
  out = loop(iter(distributed_dataset(trainer.strategy, trainer.task, "train", 4)),
             tf.constant(steps))
  assert int(out["bad_step"]) == -1 and trainer.global_step == steps
  assert int(out["examples"]) == 4 * steps
  return initial, [v.numpy() for v in model.trainable_variables], float(out["norm"]), grads


def test_sparse_and_dense_embedding_gradients_apply_alike(tmp_path, records):
  """make_train_loop with the embedding lookups' IndexedSlices gradients kept sparse (as
  tf-models' trainer keeps them; the benchmark's peer runs so) or made dense (the Trainer):
  without clipping, bit-identical weights after 3 LAMB steps."""
  initial, dense, _, grads = _run_make_train_loop(tmp_path / "dense", records, True, 3, 1e9)
  _, sparse, _, _ = _run_make_train_loop(tmp_path / "sparse", records, False, 3, 1e9)
  assert any(isinstance(g, tf.IndexedSlices) for g in grads)
  assert len(initial) == len(dense) == len(sparse)
  for start, a, b in zip(initial, dense, sparse):
    assert not np.array_equal(a, start)  # every variable was trained
    np.testing.assert_array_equal(b, a)


def test_clipping_uses_the_norm_of_the_summed_embedding_gradient(tmp_path, records):
  """The Trainer clips with the norm of the true (dense) gradient. Sparse gradients hold one
  slice per looked-up token, so their 'norm' (what tf.clip_by_global_norm computes for them,
  as the original did on CPU/GPU; on TPU it used one-hot embeddings, hence dense gradients)
  counts repeated tokens separately and differs."""
  _, _, dense_norm, grads = _run_make_train_loop(tmp_path / "dense", records, True, 1)
  _, _, sparse_norm, _ = _run_make_train_loop(tmp_path / "sparse", records, False, 1)
  true_norm = float(tf.linalg.global_norm([tf.convert_to_tensor(g) for g in grads]))
  slices_norm = float(tf.linalg.global_norm(grads))
  assert dense_norm == pytest.approx(true_norm, rel=1e-5)
  assert sparse_norm == pytest.approx(slices_norm, rel=1e-5)
  assert abs(slices_norm - true_norm) > 1e-3 * true_norm


def test_train_and_eval_writes_the_originals_files(tmp_path, records):
  lines = []
  results = make_trainer(tmp_path, records, lines=lines).run(do_train=True, do_eval=True)
  files = set(os.listdir(tmp_path))
  assert {"model.ckpt-3.index", "model.ckpt-6.index", "model.ckpt-best.index", "checkpoint",
          "eval_results.txt", "train_state", "summaries"} <= files
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("model.ckpt-6")
  assert sorted(results) == EVAL_KEYS and results["global_step"] == 6
  text = open(tmp_path / "eval_results.txt").read()
  assert text.count("global_step = ") == 2
  for key in EVAL_KEYS:
    assert f"\n{key} = " in "\n" + text
  assert "model.ckpt-best" not in text  # only key = value lines, as the original's
  assert len(text.strip().splitlines()) == 2 * len(EVAL_KEYS)
  best_step, best_value = open(tmp_path / "best_trial.txt").read().split(":")[1:]
  assert any(l.startswith("New best masked_lm_accuracy") and "model.ckpt-best" in l
             for l in lines)
  assert int(best_step) in (3, 6) and 0 <= float(best_value) <= 1
  # Progress lines: step, loss, accuracies, learning rate, throughput, ETA. Loops of 2 steps
  # end early where a checkpoint is due (every 3).
  progress = [l for l in lines if l.startswith("step ")]
  assert [l.split()[1] for l in progress] == ["2/6", "3/6", "5/6", "6/6"]
  assert all("masked_lm_accuracy" in l and "lr " in l and "examples/s" in l and "ETA" in l
             for l in progress)
  # The TF1 checkpoint has the original names (no optimizer state, no RNG state).
  names = set(tf.train.load_checkpoint(str(tmp_path / "model.ckpt-6"))
              .get_variable_to_shape_map())
  assert "bert/encoder/transformer/group_0/inner_group_0/attention_1/self/query/kernel" in names
  assert "cls/seq_relationship/output_weights" in names and "global_step" in names
  assert not any("adam" in n or "generator" in n.lower() for n in names)


def test_best_checkpoint_is_a_copy_of_the_best_step(tmp_path, records):
  make_trainer(tmp_path, records, num_train_steps=9).run(do_train=True, do_eval=True)
  text = open(tmp_path / "eval_results.txt").read()
  blocks = [b for b in text.split("global_step = ")[1:]]
  accuracy = {int(b.split("\n")[0]): float(b.split("masked_lm_accuracy = ")[1].split("\n")[0])
              for b in blocks}
  best_step = max(accuracy, key=lambda s: (accuracy[s], -s))
  _, best = checkpoint.read_checkpoint(str(tmp_path / "model.ckpt-best"))
  _, chosen = checkpoint.read_checkpoint(str(tmp_path / f"model.ckpt-{best_step}"))
  assert best.keys() == chosen.keys()
  for name in best:
    np.testing.assert_array_equal(best[name], chosen[name])
  assert all(os.path.exists(tmp_path / f"model.ckpt-{s}.index") for s in (3, 6, 9))


def test_resume_in_process_continues_from_the_saved_step(tmp_path, records):
  make_trainer(tmp_path, records, num_train_steps=6).run()
  lines = []
  make_trainer(tmp_path, records, num_train_steps=6, lines=lines).run()
  assert any("Resuming from" in l and "at step 6" in l for l in lines)
  assert not any(l.startswith("step ") for l in lines)  # nothing left to do


def test_keep_checkpoint_max(tmp_path, records):
  make_trainer(tmp_path, records, num_train_steps=12, keep_checkpoint_max=2).run()
  steps = sorted(int(f.split("-")[1].split(".")[0]) for f in os.listdir(tmp_path)
                 if f.startswith("model.ckpt-") and f.endswith(".index"))
  assert steps == [9, 12]
  assert len([f for f in os.listdir(tmp_path / "train_state") if f.endswith(".index")]) == 2


def test_init_from_the_original_checkpoint_and_group0(tmp_path, records):
  config_a = AlbertConfig.from_json_file(os.path.join(MODEL_A, "albert_config.json"))
  lines = []
  # One step at learning rate 0 (the first warmup step) leaves the loaded weights as they are.
  trainer = make_trainer(tmp_path / "a", records, albert_config=config_a, lines=lines,
                         init_checkpoint=MODEL_A, num_train_steps=1)
  trainer.run(do_train=True)
  assert any("Loaded 32 variables" in l for l in lines)
  _, golden = checkpoint.read_checkpoint(MODEL_A)
  for var in trainer.model.weights:
    np.testing.assert_array_equal(var.numpy(), golden[checkpoint.variable_name(var)])
  lines = []
  grouped = make_trainer(tmp_path / "b", records, albert_config=config_a.replace(
      num_hidden_groups=2), lines=lines, init_checkpoint=MODEL_A, init_from_group0=True,
      num_train_steps=1)
  grouped.run(do_train=True)
  assert any("Loaded 48 variables" in l and "16 read from another name" in l for l in lines)


def test_eval_only_reads_the_latest_checkpoint(tmp_path, records):
  make_trainer(tmp_path, records).run(do_train=True)
  lines = []
  results = make_trainer(tmp_path, records, lines=lines).run(do_train=False, do_eval=True)
  assert results["global_step"] == 6 and sorted(results) == EVAL_KEYS
  assert any("Evaluating" in l and "step 6" in l for l in lines)


class NanAtStep3(PretrainingTask):
  def compute_loss(self, features, outputs):
    loss, aux = super().compute_loss(features, outputs)
    step = self.optimizer_iterations
    # Added, not multiplied: no NaN leaks into the gradients of the steps before.
    return loss + tf.where(tf.equal(step, 3), float("nan"), 0.0), aux


def test_non_finite_loss_stops_cleanly(tmp_path, records):
  trainer = make_trainer(tmp_path, records, task_class=NanAtStep3, num_train_steps=6,
                         save_checkpoints_steps=2, iterations_per_loop=2)
  trainer.build()
  trainer.task.optimizer_iterations = trainer.optimizer.iterations
  with pytest.raises(TrainingError, match=r"became nan .*at step 3.*ckpt-2"):
    trainer.run(do_train=True)
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("model.ckpt-2")
  assert not os.path.exists(tmp_path / "model.ckpt-4.index")


def test_bad_settings_fail_before_any_work(tmp_path, records):
  with pytest.raises(InputError, match="no file matches"):
    make_trainer(tmp_path, [str(tmp_path / "missing-*.tfrecord")]).run()
  with pytest.raises(InputError, match="length 16, but --max_seq_length=32"):
    trainer = make_trainer(tmp_path, records)
    trainer.task.config.train_data.max_seq_length = 32
    trainer.run()
  with pytest.raises(InputError, match="max_position_embeddings"):
    trainer = make_trainer(tmp_path, records, albert_config=SMALL.replace(
        max_position_embeddings=8))
    trainer.run()

  class ThreeReplicas:
    num_replicas_in_sync = 3
  with pytest.raises(TrainingError, match="train_batch_size=4 is not divisible by the 3"):
    data = PretrainingDataConfig(input_file=records[0], max_seq_length=16,
                                 max_predictions_per_seq=3)
    Trainer(PretrainingTask(PretrainingTaskConfig(SMALL, data, data)),
            TrainerConfig(output_dir=str(tmp_path), train_batch_size=4, eval_batch_size=3),
            OptimizerConfig(), strategy=ThreeReplicas()).run()
  assert not os.path.exists(tmp_path / "train_state")
  with pytest.raises(TrainingError, match="nothing to do"):
    make_trainer(tmp_path, records).run(do_train=False, do_eval=False)


@pytest.mark.parametrize("flag", ["num_train_steps", "train_step"])
def test_training_zero_steps_is_refused_before_any_work(tmp_path, records, flag):
  """It used to exit 0 having done nothing; every script's trainer config is checked here."""
  named = {} if flag == "num_train_steps" else {"steps_flag": flag}  # run_classifier, run_race
  with pytest.raises(TrainingError) as error:
    make_trainer(tmp_path / "run", records, num_train_steps=0, **named).run(do_train=True)
  assert str(error.value) == f"--{flag}=0: --do_train needs at least one training step"
  assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("overrides", [{"enable_xla": True}, {"mixed_precision": "mixed_bfloat16"},
                                       {"mixed_precision": "mixed_float16"}],
                         ids=["xla", "bfloat16", "float16"])
def test_xla_and_mixed_precision_train(tmp_path, records, overrides):
  lines = []
  trainer = make_trainer(tmp_path, records, lines=lines, num_train_steps=4,
                         save_checkpoints_steps=4, **overrides)
  trainer.run(do_train=True)
  assert trainer.global_step == 4
  _, values = checkpoint.read_checkpoint(str(tmp_path / "model.ckpt-4"))
  assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in values.values())
  progress = [l for l in lines if l.startswith("step ")]
  assert progress and all("loss nan" not in l for l in progress)
  precision = overrides.get("mixed_precision", "float32")
  assert any(l.startswith("Strategy:") and precision in l for l in lines)


def test_same_seed_same_run(tmp_path, records):
  for name in ("a", "b"):
    make_trainer(tmp_path / name, records, num_train_steps=3, save_checkpoints_steps=3).run()
  _, a = checkpoint.read_checkpoint(str(tmp_path / "a" / "model.ckpt-3"))
  _, b = checkpoint.read_checkpoint(str(tmp_path / "b" / "model.ckpt-3"))
  for name in a:
    np.testing.assert_array_equal(a[name], b[name])


def test_task_loss_and_metrics_on_the_golden_batch():
  """The loss the trainer minimises is the original model_fn's total loss (golden model_A)."""
  from conftest import golden_arrays
  config_a = AlbertConfig.from_json_file(os.path.join(MODEL_A, "albert_config.json"))
  task = PretrainingTask(PretrainingTaskConfig(albert_config=config_a))
  model = task.build_model()
  checkpoint.load_tf1_checkpoint(model, MODEL_A)
  g = golden_arrays()
  features = {k[len("input/"):]: v for k, v in g.items() if k.startswith("input/")}
  outputs = model({k: features[k] for k in ("input_ids", "input_mask", "segment_ids",
                                             "masked_lm_positions")})
  loss, aux = task.compute_loss(features, outputs)
  assert float(loss) == pytest.approx(float(g["output/total_loss"]), abs=2e-6)
  metrics = task.build_metrics()
  task.update_metrics(metrics, features, aux)
  weights = g["input/masked_lm_weights"].reshape(-1)
  per_example = g["output/mlm_per_example_loss"]
  assert float(metrics["masked_lm_loss"].result()) == pytest.approx(
      float((per_example * weights).sum() / weights.sum()), abs=2e-6)
  predicted = g["output/mlm_log_probs"].argmax(-1)
  correct = (predicted == g["input/masked_lm_ids"].reshape(-1)) * weights
  assert float(metrics["masked_lm_accuracy"].result()) == pytest.approx(
      correct.sum() / weights.sum(), abs=1e-6)
  assert float(metrics["sentence_order_loss"].result()) == pytest.approx(
      float(g["output/sop_loss"]), abs=2e-6)


def test_summaries_hold_the_training_curves(tmp_path, records):
  make_trainer(tmp_path, records).run(do_train=True, do_eval=True)
  tags = set()
  for split in ("train", "eval"):
    for path in tf.io.gfile.glob(str(tmp_path / "summaries" / split / "events.*")):
      for event in tf.compat.v1.train.summary_iterator(path):
        tags.update(f"{split}/{v.tag}" for v in event.summary.value)
  assert {"train/loss", "train/learning_rate", "train/gradient_norm",
          "train/masked_lm_accuracy", "train/sentence_order_accuracy",
          "train/examples_per_second", "eval/masked_lm_accuracy", "eval/loss"} <= tags
