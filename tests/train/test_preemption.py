"""Preemption (issue 24): SIGTERM, what Kubernetes and spot VMs send before they take a machine.

A single-worker run saves its resume state at the step reached and stops with one line (the
Ctrl-C test's twin lives in test_training_faults.py); in a run of two real worker processes on
loopback (`TF_CONFIG`, MultiWorkerMirroredStrategy on CPU), SIGTERM to one of them stops both at
the same step with the state saved, and rerunning the same commands ends with the weights of an
uninterrupted two-worker run, bit for bit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from support.pretraining_runs import command, environment
from support.trainers import assert_same_weights, checkpoint_weights

STEPS = 8


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


# Worker `index` sends itself SIGTERM once step `step`'s host loop is done (the signal lands
# while the loop's progress line is printed, as an outside one would between two steps).
PREEMPTED = textwrap.dedent("""
    import json, os, runpy, signal, sys
    step, index = int(os.environ["PREEMPT_STEP"]), int(os.environ["PREEMPT_INDEX"])
    me = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    from albert.train.trainer import Trainer
    original = Trainer._log_progress
    def log_progress(self, *args, **kwargs):
      original(self, *args, **kwargs)
      if self.global_step == step and me == index:
        os.kill(os.getpid(), signal.SIGTERM)
    Trainer._log_progress = log_progress
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def _two_workers(base, out, preempt=None, timeout=240):
  """Runs run_pretraining.py as worker 0 and 1 of one cluster; returns their CompletedProcess-
  like (returncode, stdout, stderr) pairs. `preempt=(index, step)`: that worker gets SIGTERM."""
  ports = _free_ports(2)
  cluster = {"worker": [f"localhost:{p}" for p in ports]}
  args = command(base, out, "--train_batch_size=8", steps=STEPS)
  processes = []
  for index in range(2):
    env = environment()
    env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    env["CUDA_VISIBLE_DEVICES"] = ""
    run = args
    if preempt is not None:
      env["PREEMPT_INDEX"], env["PREEMPT_STEP"] = str(preempt[0]), str(preempt[1])
      run = [sys.executable, "-c", PREEMPTED] + args[1:]
    processes.append(subprocess.Popen(run, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
  done = []
  try:
    for process in processes:
      stdout, stderr = process.communicate(timeout=timeout)
      done.append((process.returncode, stdout, stderr))
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
  return done


@pytest.mark.slow
def test_sigterm_to_one_of_two_workers_stops_both_at_one_step_and_the_rerun_resumes(tmp_path):
  straight = tmp_path / "straight"
  for returncode, _, stderr in _two_workers(tmp_path, straight):
    assert returncode == 0, stderr[-3000:]

  out = tmp_path / "preempted"
  stopped = _two_workers(tmp_path, out, preempt=(1, 3))  # the non-chief worker, after step 3
  for index, (returncode, stdout, stderr) in enumerate(stopped):
    assert returncode == 130, (index, stderr[-3000:])
    assert "Traceback" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("stopped: at step 3 of 8; "), last
    assert last.endswith("rerun the same command to resume"), last
    assert "CollectiveAllReduceStrategy, 2 replica(s)" in stdout  # MultiWorkerMirrored
  assert "SIGTERM: stopping after the current loop" in stopped[1][1]
  assert "another worker was asked to stop" in stopped[0][2].splitlines()[-1]
  assert "another worker was asked to stop" not in stopped[1][2].splitlines()[-1]
  assert sorted(os.listdir(out / "train_state")) == [
      "checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index", "ckpt-3.data-00000-of-00001",
      "ckpt-3.index", "run_identity.json"]
  assert not (out / "model.ckpt-4.index").exists()

  resumed = _two_workers(tmp_path, out)
  for returncode, stdout, stderr in resumed:
    assert returncode == 0, stderr[-3000:]
    assert "at step 3" in stdout and "Resuming from" in stdout
  assert_same_weights(checkpoint_weights(str(out / f"model.ckpt-{STEPS}")),
                      checkpoint_weights(str(straight / f"model.ckpt-{STEPS}")))
