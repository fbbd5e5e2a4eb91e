"""Gradient accumulation and recomputation (issue 22): N micro-batches compute the optimizer step
of one batch N times the size (one device and two replicas), a kill inside an accumulation
resumes exactly, recomputation gives the same gradients, and bad settings are one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from albert import checkpoint, layers
from albert.errors import FlagError
from albert.train.trainer import TrainerConfig
from conftest import REPO_DIR
from support import classifier_runs
from support.faults import assert_clean_error
from support.pretraining_runs import command, environment
from support.records import write_records
from support.trainers import SMALL, assert_same_weights, checkpoint_weights, make_trainer

TESTS_DIR = os.path.join(REPO_DIR, "tests")
NO_DROPOUT = SMALL.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  """Records whose examples have 1 to 3 real masked positions: the MLM loss of a micro-batch
  divides by its own count, so a wrong normalisation would show."""
  directory = tmp_path_factory.mktemp("records")
  return [write_records(str(directory / f"part-{i}.tfrecord"), 40, seed=i,
                        vary_predictions=True) for i in range(2)]


# The attention key bias adds the same q.b to every score of a query: the softmax cancels it, so
# its true gradient is 0 and what it gets is rounding noise, which Adam and LAMB normalise into
# full-size steps of a random sign. It is not compared.
NOISE_ONLY = "attention_1/self/key/bias"


def max_relative_difference(a, b) -> float:
  """max over variables of ||a - b|| / ||b|| (every variable but the key bias, see above)."""
  assert a.keys() == b.keys()
  return max(float(np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(b[k]), 1e-30))
             for k in a if k != "global_step" and not k.endswith(NOISE_ONLY))


def _pretrain(out, files, n, optimizer, albert_config=NO_DROPOUT):
  trainer = make_trainer(out, files, albert_config=albert_config, train_batch_size=8,
                         num_train_steps=3, save_checkpoints_steps=3, iterations_per_loop=3,
                         gradient_accumulation_steps=n)
  trainer.optimizer_config.optimizer = optimizer
  lines = []
  trainer.log = lines.append
  trainer.run()
  return checkpoint_weights(out / "model.ckpt-3"), lines


@pytest.mark.parametrize("optimizer", ["lamb", "adamw"])
def test_four_micro_batches_of_two_are_one_batch_of_eight_in_pretraining(tmp_path, records,
                                                                           optimizer):
  big, _ = _pretrain(tmp_path / "one", records, 1, optimizer)
  accumulated, lines = _pretrain(tmp_path / "four", records, 4, optimizer)
  assert max_relative_difference(accumulated, big) < 1e-6
  initial = make_trainer(tmp_path / "init", records, albert_config=NO_DROPOUT)
  initial.build()
  moved = {checkpoint.variable_name(v): v.numpy() for v in initial.model.weights}
  assert all(not np.array_equal(moved[k], big[k]) for k in moved)  # every variable trained
  assert any("each step accumulates 4 micro-batches of 2" in l for l in lines)
  progress = [l for l in lines if l.startswith("step ")]
  assert progress and progress[-1].startswith("step 3/3 | micro-batch 12/12 (4 per step) |")


def test_accumulation_draws_the_same_dropout_masks(tmp_path, records):
  """Masks depend on the step and the example's position in the global batch only."""
  big, _ = _pretrain(tmp_path / "one", records, 1, "lamb", albert_config=SMALL)
  accumulated, _ = _pretrain(tmp_path / "four", records, 4, "lamb", albert_config=SMALL)
  assert max_relative_difference(accumulated, big) < 1e-6


@pytest.mark.parametrize("optimizer", ["adamw", "lamb"])
def test_four_micro_batches_of_two_are_one_batch_of_eight_in_a_classifier(tmp_path, optimizer):
  """RTE on the tiny model (the head's dropout 0.1 on: the masks are the same too)."""
  found = {}
  for n in (1, 4):
    trainer = classifier_runs.make_trainer(tmp_path / str(n), "RTE", num_train_steps=3,
                                           save_checkpoints_steps=3, iterations_per_loop=3,
                                           gradient_accumulation_steps=n)
    trainer.optimizer_config.optimizer = optimizer
    trainer.run(do_train=True)
    found[n] = checkpoint_weights(tmp_path / str(n) / "model.ckpt-3")
  assert max_relative_difference(found[4], found[1]) < 1e-6


def test_two_replicas_with_and_without_accumulation_are_one_device(tmp_path, records):
  """MirroredStrategy over two logical CPUs (a fresh process), dropout on: batch 8 as 1 x 8 on
  one device, 1 x (2 x 4) and 4 x (2 x 1) on two replicas: the same weights."""
  script = textwrap.dedent(f"""
      import json, sys
      import numpy as np
      import tensorflow as tf
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      sys.path.insert(0, {TESTS_DIR!r})
      from albert import checkpoint
      from support.trainers import make_trainer
      from train.test_accumulation import max_relative_difference
      found = {{}}
      for name, n, strategy in (("one", 1, tf.distribute.get_strategy()),
                                ("two", 1, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])),
                                ("two_x4", 4, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        out = {str(tmp_path)!r} + "/" + name
        trainer = make_trainer(out, {list(records)!r}, train_batch_size=8, num_train_steps=3,
                               save_checkpoints_steps=3, iterations_per_loop=3,
                               gradient_accumulation_steps=n, strategy=strategy)
        trainer.run()
        found[name] = checkpoint.read_checkpoint(out + "/model.ckpt-3")[1]
      print(json.dumps({{k: max_relative_difference(v, found["one"]) for k, v in found.items()}}))
  """)
  env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + TESTS_DIR, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=400)
  assert result.returncode == 0, result.stderr[-3000:]
  differences = json.loads(result.stdout.strip().splitlines()[-1])
  assert differences["one"] == 0.0
  assert differences["two"] < 1e-6 and differences["two_x4"] < 1e-6, differences


# run_pretraining.py with a counter of micro-batches in the compiled step (a py_function added
# to the loss): SIGKILL as micro-batch ALBERT_KILL_AT starts its loss. Every run of the test goes
# through it (the py_function is part of the graph, which must be the same in all).
KILLING_WRAPPER = textwrap.dedent("""
    import os, runpy, signal, sys
    import tensorflow as tf
    from albert.tasks.pretraining import PretrainingTask
    original = PretrainingTask.compute_loss
    seen = [0]
    def count():
      seen[0] += 1
      if seen[0] == int(os.environ.get("ALBERT_KILL_AT", "0")):
        os.kill(os.getpid(), signal.SIGKILL)
      return 0.0
    def compute_loss(self, features, outputs):
      loss, aux = original(self, features, outputs)
      return loss + tf.py_function(count, [], tf.float32), aux
    PretrainingTask.compute_loss = compute_loss
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def test_a_kill_inside_an_accumulation_resumes_to_the_uninterrupted_weights(tmp_path):
  """run_pretraining.py with 2 micro-batches per step (dropout on), checkpoints every 2 steps:
  SIGKILL while the second micro-batch of step 6 is computed; the rerun of the same command
  ends with the uninterrupted run's weights, bit for bit."""
  def run(out, kill_at=0):
    args = command(tmp_path, out, "--gradient_accumulation_steps=2")
    return subprocess.run([sys.executable, "-c", KILLING_WRAPPER] + args[1:],
                          env=dict(environment(), ALBERT_KILL_AT=str(kill_at)),
                          capture_output=True, text=True, timeout=300)

  straight, killed = tmp_path / "straight", tmp_path / "killed"
  done = run(straight)
  assert done.returncode == 0, done.stderr[-3000:]
  done = run(killed, kill_at=12)  # micro-batches 11 and 12 are step 6's
  assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
  assert (killed / "model.ckpt-4.index").exists() and not (killed / "model.ckpt-6.index").exists()
  rerun = run(killed)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "Resuming from" in rerun.stdout and "at step 4" in rerun.stdout
  assert_same_weights(checkpoint_weights(killed / "model.ckpt-8"),
                      checkpoint_weights(straight / "model.ckpt-8"))


def test_recompute_gives_the_same_gradients(tmp_path, records):
  """tf.recompute_grad around each layer (dropout on: the recomputed pass draws the same
  masks), against keeping the activations: gradients within 1e-6."""
  trainer = make_trainer(tmp_path, records, albert_config=SMALL.replace(num_hidden_layers=3))
  trainer.build()
  model, task = trainer.model, trainer.task
  backbone = model.get_layer("bert")
  from albert.train.distribute import distributed_dataset
  from albert.train.loop import model_inputs
  features = next(iter(distributed_dataset(trainer.strategy, task, "train", 4)))

  @tf.function
  def gradients():
    with layers.dropout_context(tf.constant(5, tf.int64), 0, 4):
      with tf.GradientTape() as tape:
        loss, _ = task.compute_loss(features, model(model_inputs(model, features),
                                                    training=True))
      return loss, [tf.convert_to_tensor(g) for g in tape.gradient(loss,
                                                                   model.trainable_variables)]

  sublayer = backbone.attention_sublayers["0/0"]  # shared by the 3 layers
  calls, call = [], sublayer.call
  sublayer.call = lambda *args, **kwargs: calls.append(1) or call(*args, **kwargs)
  loss, kept = gradients()
  assert len(calls) == 3
  backbone.recompute_grad = True
  recomputed_loss, recomputed = tf.function(gradients.python_function)()
  assert len(calls) == 3 + 6  # each layer run again in the backward pass
  assert float(recomputed_loss) == float(loss)
  names = [checkpoint.variable_name(v) for v in model.trainable_variables]
  differences = {name: float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
                 for name, a, b in zip(names, recomputed, kept)}
  assert max(d for name, d in differences.items() if not name.endswith(NOISE_ONLY)) < 1e-6
  # The key bias's gradient is rounding noise around 0 (see NOISE_ONLY): tiny either way.
  key_bias = names.index(next(n for n in names if n.endswith(NOISE_ONLY)))
  assert np.max(np.abs(recomputed[key_bias])) < 1e-6 * max(np.max(np.abs(g)) for g in kept)


def test_bad_accumulation_settings_are_one_line(tmp_path, records):
  with pytest.raises(FlagError) as error:
    TrainerConfig(str(tmp_path), gradient_accumulation_steps=0).validate()
  assert str(error.value) == "--gradient_accumulation_steps must be at least 1, got 0"
  with pytest.raises(FlagError, match=r"^--train_batch_size=10 is not divisible by "
                     r"--gradient_accumulation_steps=4 \(the batch size is the global batch"):
    TrainerConfig(str(tmp_path), train_batch_size=10, gradient_accumulation_steps=4).validate()

  class TwoReplicas:
    num_replicas_in_sync = 2
  trainer = make_trainer(tmp_path / "run", records, train_batch_size=12,
                         gradient_accumulation_steps=4, strategy=TwoReplicas())
  with pytest.raises(FlagError, match=r"^--train_batch_size=12 over 2 replicas is 6 per replica, "
                     r"not divisible by --gradient_accumulation_steps=4$"):
    trainer.run()
  assert not (tmp_path / "run").exists()
  done = subprocess.run(command(tmp_path, tmp_path / "script", "--gradient_accumulation_steps=-1"),
                        env=environment(), capture_output=True, text=True, timeout=120)
  assert_clean_error(done, "--gradient_accumulation_steps must be at least 1, got -1")
