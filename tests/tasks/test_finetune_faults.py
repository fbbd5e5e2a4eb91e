"""Faults of the fine-tuning programs (issue 18): a split without any example, and Ctrl-C or
SIGTERM while a run predicts or converts its features.

Each test drives the real script in a subprocess with a time limit and asserts one last line
(`error: ...` and exit status 1, or `stopped: ...` and 130), and that nothing new is left in the
output directory (no prediction file, no half-written feature cache). Where the moment of the
signal matters, a wrapper prints a marker line from inside the loop (after a few predicted
batches, after a few converted chunks) and the test sends the signal when it reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO_DIR, TESTDATA
from support.faults import assert_clean_error, listing, script_command, script_env
from support.classifier_runs import SPM, TINY, make_trainer

GLUE = os.path.join(TESTDATA, "glue")
RACE = os.path.join(TESTDATA, "race", "RACE")
TIMEOUT = 120  # an empty split once made the programs spin for ever


def _config(tmp_path) -> str:
  path = str(tmp_path / "albert_config.json")
  TINY.to_json_file(path)
  return path


def _glue_args(tmp_path, data_dir, out, *extra):
  return (f"--data_dir={data_dir}", "--task_name=SST-2",
          f"--albert_config_file={_config(tmp_path)}", f"--spm_model_file={SPM}",
          "--max_seq_length=64", "--train_batch_size=8", "--train_step=4",
          "--save_checkpoints_steps=4", "--iterations_per_loop=4", f"--output_dir={out}", *extra)


def _run(command, **kwargs):
  return subprocess.run(command, cwd=REPO_DIR, env=script_env(), capture_output=True, text=True,
                        timeout=TIMEOUT, **kwargs)


# --------------------------------------------------------------------- a split without example
@pytest.mark.parametrize("name, content, action", [
    ("train.tsv", "header", "--do_train"),  # spun at 100% CPU for ever
    ("dev.tsv", "header", "--do_eval"),  # AttributeError: 'NoneType' ... 'prefetch'
    ("test.tsv", "", "--do_predict"),  # 0 bytes
])
def test_an_empty_glue_split_is_one_line_before_anything_is_written(tmp_path, name, content,
                                                                    action):
  data = tmp_path / "glue"
  shutil.copytree(os.path.join(GLUE, "SST-2"), data / "SST-2")
  path = data / "SST-2" / name
  header = path.read_text(encoding="utf-8").splitlines()[0]
  path.write_text(header + "\n" if content == "header" else "", encoding="utf-8")
  out = tmp_path / "out"
  done = _run(script_command("run_classifier.py", *_glue_args(tmp_path, data, out, action)))
  why = "no line after the header" if content else "the file is empty"
  assert_clean_error(done, f"{path}: no example ({why})")
  assert not out.exists()


def test_a_squad_file_without_question_is_one_line_before_anything_is_written(tmp_path):
  empty = tmp_path / "empty.json"
  empty.write_text(json.dumps({"version": "1.1", "data": [
      {"title": "Nothing", "paragraphs": [{"context": "No question here.", "qas": []}]}]}))
  out = tmp_path / "out"
  done = _run(script_command(
      "run_squad.py", f"--albert_config_file={_config(tmp_path)}", f"--spm_model_file={SPM}",
      f"--output_dir={out}", "--max_seq_length=64", "--doc_stride=32", "--max_query_length=16",
      "--do_predict", f"--predict_file={empty}"))
  assert_clean_error(done, f"{empty}: no question")
  assert not out.exists()


def test_a_race_folder_without_question_is_one_line_before_anything_is_written(tmp_path):
  data = tmp_path / "data" / "RACE"
  shutil.copytree(RACE, data)
  for level in ("middle", "high"):
    for path in (data / "train" / level).iterdir():
      passage = json.loads(path.read_text(encoding="utf-8"))
      passage.update(questions=[], options=[], answers=[])
      path.write_text(json.dumps(passage), encoding="utf-8")
  out = tmp_path / "out"
  done = _run(script_command(
      "run_race.py", f"--data_dir={tmp_path / 'data'}", f"--output_dir={out}",
      f"--albert_config_file={_config(tmp_path)}", f"--spm_model_file={SPM}",
      "--max_seq_length=64", "--max_qa_length=16", "--train_batch_size=8", "--train_step=2"))
  assert_clean_error(done, f"{data / 'train'}: no question in the RACE train split")
  assert not out.exists()


# --------------------------------------------------------------------- Ctrl-C and SIGTERM
def _hooked(script: str, hook: str, *args: str):
  """`script` run by a wrapper that first runs `hook` (which patches a seam to print a marker)."""
  wrapper = textwrap.dedent(hook) + textwrap.dedent("""
      import runpy, sys
      sys.argv = sys.argv[1:]
      runpy.run_path(sys.argv[0], run_name="__main__")
  """)
  return [sys.executable, "-c", wrapper, os.path.join(REPO_DIR, script), *args]


_AFTER_3_BATCHES = """
    from albert.train.evaluator import Evaluator
    make = Evaluator.make_predict_step
    def make_predict_step(self):
      step, calls = make(self), []
      def counted(features):
        calls.append(1)
        if len(calls) == 3:
          print("marker: 3 batches predicted", flush=True)
        return step(features)
      return counted
    Evaluator.make_predict_step = make_predict_step
"""

_AFTER_3_CHUNKS = """
    from albert.data import workers
    convert = workers.ordered_map
    def ordered_map(*args, **kwargs):
      for n, chunk in enumerate(convert(*args, **kwargs), 1):
        if n == 3:
          print("marker: 3 chunks converted", flush=True)
        yield chunk
    workers.ordered_map = ordered_map
"""


def _big_sst2(directory, rows: int) -> str:
  """A GLUE root whose SST-2 test.tsv repeats the 20 test sentences to `rows` rows."""
  folder = directory / "SST-2"
  folder.mkdir(parents=True)
  shutil.copy(os.path.join(GLUE, "SST-2", "train.tsv"), folder / "train.tsv")
  lines = open(os.path.join(GLUE, "SST-2", "test.tsv"), encoding="utf-8").read().splitlines()
  sentences = [line.split("\t")[1] for line in lines[1:]]
  with open(folder / "test.tsv", "w", encoding="utf-8") as f:
    f.write(lines[0] + "\n")
    f.writelines(f"{i}\t{sentences[i % len(sentences)]}\n" for i in range(rows))
  return str(directory)


def _stop(command, marker: str, signum: int, out, *, ignore_sigint=False, group=False):
  """Runs `command`, sends `signum` when stdout shows `marker`; (stdout, stderr, status, seconds
  from the signal to the exit). `ignore_sigint`: started as a shell starts a background job
  (SIGINT ignored); `group`: the signal goes to the whole process group, as a terminal's Ctrl-C."""
  before = set(listing(str(out)))
  process = subprocess.Popen(
      command, cwd=REPO_DIR, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True, start_new_session=group,
      preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None)
  try:
    seen = []
    for line in process.stdout:
      seen.append(line)
      if line.startswith(marker):
        break
    assert process.poll() is None, "".join(seen) + process.stderr.read()[-3000:]
    sent = time.time()
    if group:
      os.killpg(process.pid, signum)
    else:
      process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    seconds = time.time() - sent
  finally:
    if process.poll() is None:
      process.kill()
      process.communicate()
  new = sorted(set(listing(str(out))) - before)
  return "".join(seen) + stdout, stderr, process.returncode, seconds, new


def _assert_stopped(stderr: str, status: int, seconds: float) -> str:
  assert status == 130, stderr[-3000:]
  assert "Traceback" not in stderr, stderr[-3000:]
  lines = stderr.strip().splitlines()
  assert [l for l in lines if l.startswith("stopped:")] == lines[-1:], stderr[-3000:]
  assert seconds < 20, seconds
  return lines[-1]


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
  """An SST-2 run after one training step, and a GLUE root with 4,000 test rows (500 batches of
  8 to predict: seconds on the tiny model)."""
  base = tmp_path_factory.mktemp("fine_tuned")
  data = _big_sst2(base / "glue", 4_000)
  make_trainer(base / "run", "SST-2", data_dir=data, num_train_steps=1,
               save_checkpoints_steps=1).run(do_train=True)
  return base, data


@pytest.mark.parametrize("signum, background", [
    (signal.SIGINT, True),  # a background job of a script: Ctrl-C was ignored, the run finished
    (signal.SIGTERM, False),  # killed without a word
], ids=["ctrl-c-in-background", "sigterm"])
def test_ctrl_c_or_sigterm_stops_a_prediction_with_one_line(fine_tuned, tmp_path, signum,
                                                            background):
  base, data = fine_tuned
  out = tmp_path / "run"
  shutil.copytree(base / "run", out)
  command = _hooked("run_classifier.py", _AFTER_3_BATCHES,
                    *_glue_args(tmp_path, data, out, "--do_predict"))
  stdout, stderr, status, seconds, new = _stop(command, "marker:", signum, out,
                                               ignore_sigint=background)
  line = _assert_stopped(stderr, status, seconds)
  assert line.startswith("stopped: at step 1, while predicting the predict split ("), line
  assert line.endswith("none of its results was written; rerun the same command to resume")
  name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
  assert f"{name}: stopping after the current batch" in stdout
  # Only the test split's feature cache is new (complete, with its metadata): no prediction.
  assert new and all(n.startswith("cache/sst-2_test-") for n in new), new
  assert sorted(n.endswith(".json") for n in new) == [False, True], new


@pytest.mark.parametrize("signum, group", [
    (signal.SIGINT, True),  # a terminal's Ctrl-C reaches the workers too: each printed a traceback
    (signal.SIGTERM, False),  # killed, it left its temporary cache file
], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_a_feature_conversion_with_one_line(tmp_path, signum, group):
  data = _big_sst2(tmp_path / "glue", 100_000)  # 10 MB: converted by 2 worker processes
  out = tmp_path / "run"
  out.mkdir()
  command = _hooked("run_classifier.py", _AFTER_3_CHUNKS,
                    *_glue_args(tmp_path, data, out, "--prepare_only", "--do_predict",
                                         "--num_workers=2"))
  stdout, stderr, status, seconds, new = _stop(command, "marker:", signum, out, group=group)
  line = _assert_stopped(stderr, status, seconds)
  assert line == "stopped: interrupted; rerun the same command to resume"
  assert "(2 workers)" in stdout and "examples ->" not in stdout
  assert [n for n in new if n.startswith("cache/")] == [], new  # no cache file, whole or partial
