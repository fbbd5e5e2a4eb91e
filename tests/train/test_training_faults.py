"""Faults around training (issue: nothing lost, no traceback): kills, Ctrl-C, damaged resume
states, a run directory of another model, records of another vocabulary, corrupted records and
checkpoints. Process-level faults drive the real run_pretraining.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from albert.errors import CheckpointError, InputError, Interrupted, TrainingError
from albert.train.loop import StopRequest
from conftest import MODEL_A, REPO_DIR
from support.faults import Done, assert_clean_error, listing, run_on_tmpfs, tmpfs_available
from support.records import write_records
from support.pretraining_runs import command, environment
from support.trainers import SMALL, assert_same_weights, checkpoint_weights, make_trainer

STEPS = 8


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """An uninterrupted run_pretraining.py run with --do_eval (8 steps, checkpoints every 2)."""
  base = tmp_path_factory.mktemp("faults")
  out = base / "straight"
  subprocess.run(command(base, out, "--do_eval", "--max_eval_steps=2"), env=environment(),
                 check=True, capture_output=True, timeout=300)
  return base, out


def _wait_for(path, process, timeout=240):
  deadline = time.time() + timeout
  while not os.path.exists(path):
    assert process.poll() is None, process.communicate()[0]
    assert time.time() < deadline, f"{path} did not appear"
    time.sleep(0.02)


def test_a_kill_between_checkpoint_and_evaluation_keeps_the_result(straight):
  """SIGKILL right after model.ckpt-4 is saved, before it is scored: the resumed run scores it
  first, and ends with the uninterrupted run's model.ckpt-best and eval_results.txt."""
  base, reference = straight
  out = base / "killed"
  wrapper = textwrap.dedent(f"""
      import os, runpy, signal, sys
      from albert.train.evaluator import Evaluator
      original = Evaluator.evaluate
      def evaluate(self, split="eval"):
        if self.global_step == 4:
          os.kill(os.getpid(), signal.SIGKILL)  # saved, not yet scored
        return original(self, split)
      Evaluator.evaluate = evaluate
      sys.argv = sys.argv[1:]
      runpy.run_path(sys.argv[0], run_name="__main__")
  """)
  args = command(base, out, "--do_eval", "--max_eval_steps=2")
  killed = subprocess.run([sys.executable, "-c", wrapper] + args[1:], env=environment(),
                          capture_output=True, text=True, timeout=300)
  assert killed.returncode == -signal.SIGKILL
  assert (out / "model.ckpt-4.index").exists() and not (out / "model.ckpt-6.index").exists()
  assert "global_step = 4" not in (out / "eval_results.txt").read_text()
  rerun = subprocess.run(args, env=environment(), capture_output=True, text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr
  assert "Scoring 1 checkpoint(s) without a result: model.ckpt-4" in rerun.stdout
  assert (out / "eval_results.txt").read_text() == (reference / "eval_results.txt").read_text()
  assert (out / "best_trial.txt").read_text() == (reference / "best_trial.txt").read_text()
  assert_same_weights(checkpoint_weights(str(out / "model.ckpt-best")),
                      checkpoint_weights(str(reference / "model.ckpt-best")))


def test_ctrl_c_stops_with_one_line_and_the_rerun_resumes_exactly(straight):
  base, reference = straight
  out = base / "interrupted"
  args = command(base, out, "--do_eval", "--max_eval_steps=2")
  process = subprocess.Popen(args, env=environment(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  _wait_for(out / "train_state" / "ckpt-2.index", process)
  process.send_signal(signal.SIGINT)
  stdout, stderr = process.communicate(timeout=120)
  assert process.returncode == 130, stderr
  assert "Traceback" not in stderr and "Traceback" not in stdout
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("stopped: at step ") and "rerun the same command to resume" in last
  assert not [f for f in os.listdir(out) if ".tmp-" in f]  # nothing half-written
  rerun = subprocess.run(args, env=environment(), capture_output=True, text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr
  assert "Resuming from" in rerun.stdout
  assert_same_weights(checkpoint_weights(str(out / f"model.ckpt-{STEPS}")),
                      checkpoint_weights(str(reference / f"model.ckpt-{STEPS}")))
  assert (out / "eval_results.txt").read_text() == (reference / "eval_results.txt").read_text()


def test_sigterm_saves_the_state_at_the_step_reached_and_the_rerun_resumes_exactly(straight):
  """A preemption (Kubernetes, spot VMs: SIGTERM, then SIGKILL after a grace period): the run
  saves its resume state at the step its current loop reached and exits cleanly (one line,
  status 130); the same command resumes to the uninterrupted run's weights."""
  base, reference = straight
  out = base / "preempted"
  args = command(base, out, "--do_eval", "--max_eval_steps=2")
  process = subprocess.Popen(args, env=environment(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  _wait_for(out / "train_state" / "ckpt-2.index", process)
  process.send_signal(signal.SIGTERM)
  stdout, stderr = process.communicate(timeout=120)
  assert process.returncode == 130, stderr
  assert "Traceback" not in stderr and "Traceback" not in stdout
  assert "SIGTERM: stopping after the current loop" in stdout
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("stopped: at step ") and "rerun the same command to resume" in last
  step = int(re.match(r"stopped: at step (\d+)", last).group(1))
  assert 2 <= step < STEPS
  assert (out / "train_state" / f"ckpt-{step}.index").exists()  # the step reached
  assert not [f for f in os.listdir(out) if ".tmp-" in f]
  rerun = subprocess.run(args, env=environment(), capture_output=True, text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr
  assert f"at step {step}" in rerun.stdout
  assert_same_weights(checkpoint_weights(str(out / f"model.ckpt-{STEPS}")),
                      checkpoint_weights(str(reference / f"model.ckpt-{STEPS}")))
  assert (out / "eval_results.txt").read_text() == (reference / "eval_results.txt").read_text()


def test_one_stop_request_serves_every_loop_and_restores_the_handlers():
  """Nested uses share the outermost request; inside a checking loop the first signal (SIGINT or
  SIGTERM) only asks, a second stops at once; outside the loops a signal stops at once; a stop
  asked for as the last loop ends is not lost; the previous handlers come back."""
  before = {s: signal.getsignal(s) for s in StopRequest.SIGNALS}
  with pytest.raises(Interrupted, match="after batch 3"):
    with StopRequest() as run:  # a whole run
      with StopRequest("batch") as stop:  # its prediction loop
        assert stop is run
        for batch in range(1, 10):
          if batch == 3:
            signal.raise_signal(signal.SIGTERM)  # only asks
          if stop.requested:
            raise Interrupted(f"after batch {batch}")
  assert {s: signal.getsignal(s) for s in StopRequest.SIGNALS} == before
  with pytest.raises(KeyboardInterrupt):
    with StopRequest("batch"):
      signal.raise_signal(signal.SIGINT)
      signal.raise_signal(signal.SIGINT)  # again: at once
      raise AssertionError("not stopped at once")
  with pytest.raises(KeyboardInterrupt):
    with StopRequest():
      signal.raise_signal(signal.SIGTERM)  # no loop to stop cleanly: at once
      raise AssertionError("not stopped at once")
  with pytest.raises(KeyboardInterrupt):
    with StopRequest("loop"):
      signal.raise_signal(signal.SIGINT)  # asked for, never looked at by the loop
  assert {s: signal.getsignal(s) for s in StopRequest.SIGNALS} == before


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  directory = tmp_path_factory.mktemp("records")
  return [write_records(str(directory / f"part-{i}.tfrecord"), 40, seed=i) for i in range(2)]


def _truncate(path, keep=0.5):
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(int(size * keep))


def test_a_damaged_newest_resume_state_falls_back_to_an_intact_one(tmp_path, records):
  make_trainer(tmp_path / "straight", records, num_train_steps=6, save_checkpoints_steps=2,
               iterations_per_loop=1).run()
  run = tmp_path / "damaged"
  make_trainer(run, records, num_train_steps=4, save_checkpoints_steps=2,
               iterations_per_loop=1).run()
  _truncate(str(run / "train_state" / "ckpt-4.data-00000-of-00001"))
  lines = []
  make_trainer(run, records, lines=lines, num_train_steps=6, save_checkpoints_steps=2,
               iterations_per_loop=1).run()
  assert any("resume state" in l and "ckpt-4 cannot be read" in l for l in lines)
  assert any(l.startswith("Resuming from") and "ckpt-2 at step 2" in l for l in lines)
  assert_same_weights(checkpoint_weights(str(run / "model.ckpt-6")),
                      checkpoint_weights(str(tmp_path / "straight" / "model.ckpt-6")))
  # Every state damaged: a clear error naming them; a damaged `checkpoint` file is rebuilt.
  for name in os.listdir(run / "train_state"):
    if name.endswith(".data-00000-of-00001"):
      _truncate(str(run / "train_state" / name))
  (run / "train_state" / "checkpoint").write_text("model_checkpoint_path: \"ckpt-")  # cut short
  lines = []
  with pytest.raises(TrainingError, match=r"no resume state in .*train_state can be read"):
    make_trainer(run, records, lines=lines, num_train_steps=8, save_checkpoints_steps=2).run()
  assert any("checkpoint cannot be read; rebuilt from the 3 resume state(s)" in l for l in lines)


def test_a_run_directory_of_another_model_is_refused_and_left_alone(tmp_path, records):
  make_trainer(tmp_path, records, num_train_steps=2, save_checkpoints_steps=2).run()
  before = (tmp_path / "albert_config.json").read_text()
  other = SMALL.replace(hidden_size=64, intermediate_size=64)
  with pytest.raises(TrainingError, match=r"already holds a run with another albert config: "
                     r".*albert_config.json differs .*hidden_size: 32 there, 64 now"):
    make_trainer(tmp_path, records, albert_config=other, num_train_steps=4,
                 albert_config_file="/configs/other.json").run()
  assert (tmp_path / "albert_config.json").read_text() == before
  assert not (tmp_path / "model.ckpt-4.index").exists()


def test_records_of_another_vocabulary_are_refused(tmp_path, records):
  with pytest.raises(InputError, match=r"part-0.tfrecord: the records hold token id 9\d\d, but "
                     r"the albert config's vocab_size is 500"):
    make_trainer(tmp_path / "run", records, albert_config=SMALL.replace(vocab_size=500)).run()
  assert not (tmp_path / "run").exists()


def test_a_record_out_of_range_later_in_the_file_is_an_input_error(tmp_path):
  """The first records fit the vocabulary (the up-front check reads 200); a later one does not:
  it is caught as it is read, and named as an input error, not a bug."""
  import tensorflow as tf
  path = str(tmp_path / "mixed.tfrecord")
  write_records(path, 300, vocab_size=600, seed=3)
  late = write_records(str(tmp_path / "late.tfrecord"), 1, vocab_size=1000, seed=4)
  spec = {"input_ids": tf.io.FixedLenFeature([16], tf.int64)}
  record = next(iter(tf.data.TFRecordDataset(late)))
  assert int(tf.reduce_max(tf.io.parse_single_example(record, spec)["input_ids"])) >= 600
  with open(path, "ab") as f:
    f.write(open(late, "rb").read())
  with pytest.raises(InputError, match=r"mixed.tfrecord: the train records hold a token id >= "
                     r"vocab_size \(600\)"):
    make_trainer(tmp_path / "run", [path], albert_config=SMALL.replace(vocab_size=600),
                 num_train_steps=200, save_checkpoints_steps=100).run()


def _corrupted_records(tmp_path) -> str:
  """60 records with 8 bytes overwritten in the middle of the file."""
  corrupt = str(tmp_path / "corrupt.tfrecord")
  write_records(corrupt, 60, seed=5)
  data = bytearray(open(corrupt, "rb").read())
  middle = len(data) // 2
  data[middle:middle + 8] = b"\xff" * 8
  open(corrupt, "wb").write(bytes(data))
  return corrupt


def test_a_corrupted_record_file_is_named(tmp_path, records):
  corrupt = _corrupted_records(tmp_path)
  with pytest.raises(InputError, match=r"corrupt.tfrecord: corrupted or truncated TFRecord data"):
    make_trainer(tmp_path / "run", [records[0], corrupt], num_train_steps=40,
                 save_checkpoints_steps=20).run()


def test_a_corrupted_first_record_file_is_named_by_the_upfront_check(tmp_path):
  """The up-front vocabulary check reads the first file's first 200 records: a broken record
  there is named with its file and byte (not a DataLossError traceback), before any output."""
  corrupt = _corrupted_records(tmp_path)
  with pytest.raises(InputError, match=r"corrupt.tfrecord: corrupted or truncated TFRecord data "
                     r"\((corrupted|truncated) record at byte \d+\b[^{]*\); replace the file"):
    make_trainer(tmp_path / "run", [corrupt], num_train_steps=4).run()
  assert not (tmp_path / "run").exists()


def test_a_truncated_init_checkpoint_is_named_before_any_work(tmp_path, records):
  copy = tmp_path / "ckpt"
  copy.mkdir()
  for name in os.listdir(MODEL_A):
    if name.startswith("model.ckpt-0."):
      (copy / name).write_bytes((open(os.path.join(MODEL_A, name), "rb").read()))
  _truncate(str(copy / "model.ckpt-0.data-00000-of-00001"), keep=0.3)
  from albert.config import AlbertConfig
  config_a = AlbertConfig.from_json_file(os.path.join(MODEL_A, "albert_config.json"))
  with pytest.raises(CheckpointError, match=r"model.ckpt-0 is truncated: its data file has "):
    make_trainer(tmp_path / "run", records, albert_config=config_a,
                 init_checkpoint=str(copy / "model.ckpt-0")).run()
  assert not (tmp_path / "run").exists()
  (copy / "model.ckpt-0.index").write_bytes(b"not an index")
  with pytest.raises(CheckpointError, match=r"model.ckpt-0 cannot be read"):
    make_trainer(tmp_path / "run", records, albert_config=config_a,
                 init_checkpoint=str(copy / "model.ckpt-0")).run()


def test_a_full_disk_while_saving_the_resume_state_is_named_and_leaves_no_temp_dir(tmp_path):
  """The first resume state (train_state/ckpt-2) does not fit: one line naming it and the cause
  (not TensorFlow's node text), and no `ckpt-2_temp/` left filling the disk."""
  base, mount = tmp_path / "base", str(tmp_path / "disk")
  base.mkdir()
  out = f"{mount}/out"
  args = command(base, out, steps=4)
  if tmpfs_available():  # a real full disk: TensorFlow's own write fails
    results, tree = run_on_tmpfs(mount, [args], size_kb=300)
    done = Done(results[0])
  else:  # TensorFlow's writes cannot be failed without a real disk: its error, as it comes
    wrapper = textwrap.dedent(f"""
        import os, runpy, sys
        import tensorflow as tf
        def save(self, checkpoint_number=None, **kwargs):
          os.makedirs(os.path.join(self.directory, f"ckpt-{{checkpoint_number}}_temp"))
          raise tf.errors.ResourceExhaustedError(None, None, "{{{{function_node __wrapped__SaveV2"
              "_dtypes_105_device_/job:localhost/replica:0/task:0/device:CPU:0}}}} "
              f"{{self.directory}}/ckpt-{{checkpoint_number}}_temp/part-00000-of-00001.data-"
              "00000-of-00001.tempstate1; No space left on device [Op:SaveV2]")
        tf.train.CheckpointManager.save = save
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
    """)
    done = subprocess.run([sys.executable, "-c", wrapper] + args[1:], env=environment(),
                          capture_output=True, text=True, timeout=300)
    tree = listing(mount)
  line = assert_clean_error(done, f"cannot write {out}/train_state/ckpt-2: No space left on "
                            "device (the disk is full)")
  assert "function_node" not in line and "[Op:" not in line
  assert "out/train_state" in tree and not [n for n in tree if "_temp" in n], tree


def test_the_checkpoint_state_file_lists_each_checkpoint_once(tmp_path, records):
  make_trainer(tmp_path, records, num_train_steps=9, save_checkpoints_steps=3).run()
  lines = (tmp_path / "checkpoint").read_text().splitlines()
  assert lines == ['model_checkpoint_path: "model.ckpt-9"',
                   'all_model_checkpoint_paths: "model.ckpt-3"',
                   'all_model_checkpoint_paths: "model.ckpt-6"',
                   'all_model_checkpoint_paths: "model.ckpt-9"']


def test_a_late_warmup_start_is_warned(tmp_path, records):
  lines = []
  trainer = make_trainer(tmp_path, records, lines=lines, num_train_steps=2)
  trainer.optimizer_config.start_warmup_step = 5
  trainer.run()
  assert any(l.startswith("warning: --start_warmup_step=5 is at or past --num_train_steps=2")
             for l in lines)


def test_a_second_run_of_a_directory_is_refused_while_the_first_holds_it(tmp_path, records):
  """Two runs into one output_dir at once would both train and score every checkpoint twice:
  the second is refused while the first runs; a lock left by a killed run does not block."""
  out = tmp_path / "run"
  holding = tmp_path / "holding"
  first = textwrap.dedent(f"""
      import sys, time
      sys.path.insert(0, {os.path.join(REPO_DIR, "tests")!r})
      from albert.train import trainer as training
      from support.trainers import make_trainer
      def hold(self, *args):
        open({str(holding)!r}, "w").close()
        time.sleep(600)
      training.Trainer.build = hold  # holds the directory, as a long run does
      make_trainer({str(out)!r}, {list(records)!r}).run()
  """)
  process = subprocess.Popen([sys.executable, "-c", first], env=environment(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    _wait_for(holding, process)
    with pytest.raises(TrainingError, match=rf"{out} is in use by another run \(process "
                       rf"{process.pid}, which holds {out}/train_state/lock\): wait for it"):
      make_trainer(out, records).run()
  finally:
    process.kill()  # SIGKILL: no clean-up
    process.wait()
  assert (out / "train_state" / "lock").exists()
  lines = []
  make_trainer(out, records, lines=lines).run()
  assert (out / "model.ckpt-6.index").exists()
  assert not (out / "train_state" / "lock").exists()
