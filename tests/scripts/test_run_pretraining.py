"""run_pretraining.py as users run it: a killed process resumes exactly; two workers equal one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from albert import checkpoint
from conftest import REPO_DIR
from support.pretraining_runs import command, environment

SCRIPT = os.path.join(REPO_DIR, "run_pretraining.py")


def final_weights(output_dir, step):
  _, values = checkpoint.read_checkpoint(os.path.join(output_dir, f"model.ckpt-{step}"))
  return values


# Slow (about 40 s): the regular suite resumes after a real SIGKILL in test_training_faults.py
# (between a checkpoint and its evaluation) and after Ctrl-C, to the same weights bit for bit.
@pytest.mark.slow
def test_killed_process_resumes_to_the_same_weights(tmp_path):
  straight = tmp_path / "straight"
  subprocess.run(command(tmp_path, straight), env=environment(), check=True,
                 capture_output=True, timeout=300)

  resumed = tmp_path / "resumed"
  process = subprocess.Popen(command(tmp_path, resumed), env=environment(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  deadline = time.time() + 240
  while not (resumed / "model.ckpt-4.index").exists():
    assert process.poll() is None, process.stdout.read().decode()
    assert time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)  # mid-run, no chance to clean up
  process.wait()
  assert not (resumed / "model.ckpt-8.index").exists()
  rerun = subprocess.run(command(tmp_path, resumed), env=environment(), capture_output=True,
                         text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr
  assert "Resuming from" in rerun.stdout
  a, b = final_weights(straight, 8), final_weights(resumed, 8)
  assert a.keys() == b.keys()
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


# Slow (about 30 s, two worker processes): the regular suite checks two replicas against one with
# MirroredStrategy over two logical CPUs (test_trainer_seams.py, test_optimization.py).
@pytest.mark.slow
def test_two_workers_equal_one_worker_with_the_same_global_batch(tmp_path):
  one = tmp_path / "one"
  subprocess.run(command(tmp_path, one, dropout=0.0, steps=4), env=environment(), check=True,
                 capture_output=True, timeout=300)
  two = tmp_path / "two"
  ports = _free_ports(2)
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  processes = []
  for index in range(2):
    env = environment()
    env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    processes.append(subprocess.Popen(command(tmp_path, two, dropout=0.0, steps=4), env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outputs = [p.communicate(timeout=600)[0] for p in processes]
  assert [p.returncode for p in processes] == [0, 0], "\n".join(outputs)
  assert all("2 replica(s)" in output for output in outputs)
  a, b = final_weights(one, 4), final_weights(two, 4)
  for name in a:
    np.testing.assert_allclose(b[name], a[name], rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("flag, message", [
    ("--albert_config_file=/nonexistent/albert_config.json", "cannot be read"),
    ("--input_file=/nonexistent/*.tfrecord", "no file matches"),
    ("--max_seq_length=32", "length 16, but --max_seq_length=32"),
    ("--max_seq_length=128", "max_position_embeddings"),
    ("--masked_lm_budget=0.5", "masked_lm_budget"),
    ("--learning_rate=0", "--learning_rate must be positive, got 0.0"),
    ("--init_checkpoint=/nonexistent/model.ckpt-5", "checkpoint /nonexistent/model.ckpt-5 not found"),
])
def test_bad_flags_give_one_clear_line(tmp_path, flag, message):
  args = command(tmp_path, tmp_path / "out")
  name = flag.split("=")[0]
  args = [a for a in args if not a.startswith(name + "=")] + [flag]
  result = subprocess.run(args, env=environment(), capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert message in result.stderr
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "out").exists()  # validated before anything was written
