"""Ordinary faults of the data, export and main-job programs: one line, no traceback, nothing lost.

Each test drives the real scripts as subprocesses where the fault is about the process (exit
status, leftovers, a kill) and asserts: exit status 1, no traceback, the file or flag named in
the message, and that the output is unchanged (or complete and resumable). Disk faults use a
real small tmpfs in a private mount namespace where the machine allows one, else the simulated
fault of tests/support/fault_injection (see tests/support/faults.py).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from albert import files
from albert.export import encoder as export
from albert.cli import startup
from albert.export import job as export_job
from albert.errors import CheckpointError, ExportError, OutputError
from conftest import GOLDEN, REPO_DIR, TESTDATA, load_script
from support.exports import tiny_export, write_albert_directory
from support.faults import (Done, assert_clean_error, injected_fault_env, listing, locked_directory,
                    run_on_tmpfs, run_script, script_command, tmpfs_available)

SPM = os.path.join(GOLDEN, "spm.model")
TOY = os.path.join(TESTDATA, "pretraining", "toy_corpus.txt")
BOOKS = os.path.join(TESTDATA, "pretraining", "books_slice.txt")
RECORDS = ("--max_seq_length=32", "--max_predictions_per_seq=5", "--dupe_factor=1",
           f"--spm_model_file={SPM}", "--num_workers=1")
main_job = load_script("main_job")


def create(*args: str, **kwargs):
  return run_script("create_pretraining_data.py", *args, **kwargs)


def export_args(albert_directory: str, export_path: str, *more: str):
  return (f"--albert_directory={albert_directory}", "--checkpoint_name=model.ckpt-0",
          f"--export_path={export_path}", *more)


def no_cuinit_line(stderr: str) -> bool:
  """Where no NVIDIA device exists, TensorFlow's cuInit error line is dropped (albert.cli.startup)."""
  return startup.nvidia_device_present() or startup.CUINIT_MARK not in stderr


@pytest.fixture(scope="module")
def albert_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("albert_tiny") / "albert_tiny")
  write_albert_directory(directory)
  return directory


# ------------------------------------------------------------------- output path problems
def test_output_path_whose_parent_is_a_file(tmp_path, albert_dir):
  blocker = tmp_path / "afile"
  blocker.write_text("not a folder")
  inside = str(blocker / "out")
  before = listing(str(tmp_path))
  assert_clean_error(create(f"--input_file={TOY}", f"--output_file={inside}/x.tfrecord",
                            *RECORDS), "--output_file=", f"{blocker} is a file, not a directory")
  assert_clean_error(create("train_vocab", f"--input_file={TOY}", f"--model_prefix={inside}/v",
                            "--vocab_size=100"), f"--model_prefix={inside}/v",
                     f"{blocker} is a file")
  done = run_script("export_to_tfhub.py", *export_args(albert_dir, inside))
  assert_clean_error(done, f"--export_path={inside}", f"{blocker} is a file")
  assert no_cuinit_line(done.stderr), done.stderr
  with pytest.raises(SystemExit) as stopped:  # in-process: the job's checks need no new process
    main_job.main([f"--output_dir={inside}"])
  assert stopped.value.code == 1
  assert listing(str(tmp_path)) == before and blocker.read_text() == "not a folder"


def test_output_directory_that_cannot_be_written(tmp_path, albert_dir):
  locked = str(tmp_path / "locked")
  with locked_directory(locked) as how:
    # Locked for real, the up-front check names the flag; simulated (os.access cannot see the
    # fault), the failing write names the folder or file: both name the place and the cause.
    env = None if how else injected_fault_env("EROFS", locked)
    expected = "is not writable" if how else "read-only file system"
    flag = lambda name: f"{name}=" if how else ""  # noqa: E731
    assert_clean_error(create(f"--input_file={TOY}", f"--output_file={locked}/x.tfrecord",
                              *RECORDS, env=env), flag("--output_file") + locked, expected)
    assert_clean_error(create("train_vocab", f"--input_file={TOY}",
                              f"--model_prefix={locked}/v", "--vocab_size=100", env=env),
                       flag("--model_prefix") + f"{locked}/v", expected)
    done = run_script("export_to_tfhub.py", *export_args(albert_dir, f"{locked}/hub"), env=env)
    assert_clean_error(done, flag("--export_path") + f"{locked}/hub", expected)
  assert os.listdir(locked) == []


def test_read_only_file_system(tmp_path, albert_dir):
  mount = str(tmp_path / "ro")
  commands = [script_command("create_pretraining_data.py", f"--input_file={TOY}",
                             f"--output_file={mount}/x.tfrecord", *RECORDS),
              script_command("export_to_tfhub.py", *export_args(albert_dir, f"{mount}/hub"))]
  if tmpfs_available():
    results, tree = run_on_tmpfs(mount, commands, size_kb=1024, read_only=True)
  else:
    os.makedirs(mount)
    env = injected_fault_env("EROFS", mount)
    results = [(d.returncode, d.stdout, d.stderr) for d in (
        subprocess.run(c, cwd=REPO_DIR, env=dict(os.environ, **env, TF_CPP_MIN_LOG_LEVEL="2"),
                       capture_output=True, text=True) for c in commands)]
    tree = listing(mount)
  real = tmpfs_available()  # a real one is seen by the up-front check, which names the flag
  assert_clean_error(Done(results[0]), ("--output_file=" if real else "") + mount,
                     "read-only file system")
  assert_clean_error(Done(results[1]), ("--export_path=" if real else "") + f"{mount}/hub",
                     "read-only file system")
  assert tree == []


# ------------------------------------------------------------------------- a disk that fills
def test_full_disk_while_writing_records_keeps_complete_shards_and_resumes(tmp_path):
  """4 shards of ~0.4 MB on a 1 MB disk: the third fails; a rerun on a larger disk finishes."""
  mount, copy, whole = str(tmp_path / "disk"), str(tmp_path / "copy"), str(tmp_path / "whole")
  args = (f"--input_file={BOOKS}", "--num_output_shards=4", "--max_seq_length=64",
          "--max_predictions_per_seq=10", "--dupe_factor=5", f"--spm_model_file={SPM}",
          "--num_workers=1")
  command = script_command("create_pretraining_data.py", f"--output_file={mount}/out", *args)
  if tmpfs_available():
    results, tree = run_on_tmpfs(mount, [command, ["cp", "-a", mount, f"{copy}-failed"],
                                         ("remount", 4096), command, ["cp", "-a", mount, copy]],
                                 size_kb=1000)
    failed, rerun = Done(results[0]), Done(results[2])
    left_after_failure = listing(f"{copy}-failed")
  else:
    os.makedirs(mount)
    env = dict(os.environ, **injected_fault_env("ENOSPC", mount, budget=1_000_000),
               TF_CPP_MIN_LOG_LEVEL="2")
    failed = subprocess.run(command, cwd=REPO_DIR, env=env, capture_output=True, text=True)
    left_after_failure = listing(mount)
    rerun = run_script("create_pretraining_data.py", f"--output_file={mount}/out", *args)
    shutil.copytree(mount, copy)
    tree = listing(mount)
  line = assert_clean_error(failed, "No space left on device", "the disk is full")
  shard = line.split("cannot write ")[1].split(":")[0]
  assert shard.startswith(f"{mount}/out-0000") and shard.endswith("-of-00004")
  complete = [n for n in left_after_failure if not n.startswith(".")]
  assert complete and len(complete) < 4 and os.path.basename(shard) not in complete
  assert [n for n in left_after_failure if ".tmp-" in n or ".tokens-" in n] == []
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert f"{len(complete)} of 4 output file(s) are complete" in rerun.stderr
  assert len([n for n in tree if not n.startswith(".")]) == 4
  # The resumed output is byte for byte the output of one uninterrupted run.
  done = run_script("create_pretraining_data.py", f"--output_file={whole}/out", *args)
  assert done.returncode == 0, done.stderr[-2000:]
  for k in range(4):
    name = f"out-{k:05d}-of-00004"
    with open(os.path.join(copy, name), "rb") as a, open(os.path.join(whole, name), "rb") as b:
      assert a.read() == b.read(), name


def test_full_disk_while_exporting(tmp_path, albert_dir):
  mount = str(tmp_path / "disk")
  command = script_command("export_to_tfhub.py", *export_args(
      albert_dir, f"{mount}/hub", "--nowith_mlm", "--nowith_sop", "--noverify"))
  if tmpfs_available():  # the SavedModel (~1 MB) does not fit: TensorFlow's own write fails
    results, tree = run_on_tmpfs(mount, [command], size_kb=700)
    done = Done(results[0])
  else:  # the simulated fault reaches the exporter's own files (TensorFlow's C++ writes pass)
    os.makedirs(mount)
    done = subprocess.run(command, cwd=REPO_DIR, capture_output=True, text=True,
                          env=dict(os.environ, **injected_fault_env("ENOSPC", mount),
                                   TF_CPP_MIN_LOG_LEVEL="2"))
    tree = listing(mount)
  assert_clean_error(done, f"cannot write {mount}/hub: No space left on device",
                     "the disk is full")
  assert tree == []  # no half-written export, no temporary sibling


def test_tensorflow_write_failures_become_output_errors():
  full = tf.errors.ResourceExhaustedError(None, None, "/x/hub.tmp-1-a/saved_model.pb.tmp123; "
                                          "No space left on device")
  error = files.tf_write_error(full, "/x/hub")
  assert isinstance(error, OutputError) and error.errno == errno.ENOSPC
  assert str(error) == "cannot write /x/hub: No space left on device (the disk is full)"
  denied = tf.errors.PermissionDeniedError(None, None, "/ro/hub.tmp-1-a; Read-only file system")
  assert files.tf_write_error(denied, "/ro/hub").errno == errno.EROFS
  bug = tf.errors.InvalidArgumentError(None, None, "shapes do not match")
  assert files.tf_write_error(bug, "/x/hub") is None  # not a fault of the disk: a traceback
  assert files.tf_write_error(ValueError("No space left"), "/x/hub") is None


# ------------------------------------------------------------------------ damaged inputs
def _damaged_copy(albert_dir: str, target: str, suffix: str, damage) -> str:
  shutil.copytree(albert_dir, target)
  path = os.path.join(target, "model.ckpt-0" + suffix)
  with open(path, "rb") as f:
    data = bytearray(f.read())
  with open(path, "wb") as f:
    f.write(damage(data))
  return target


def test_truncated_checkpoint_given_to_the_export(tmp_path, albert_dir):
  truncated = _damaged_copy(albert_dir, str(tmp_path / "truncated"), ".data-00000-of-00001",
                            lambda data: data[:len(data) // 3])
  done = run_script("export_to_tfhub.py", *export_args(truncated, str(tmp_path / "hub")))
  assert_clean_error(done, f"checkpoint {truncated}/model.ckpt-0", "cannot be read",
                     "truncated")
  assert not os.path.exists(tmp_path / "hub") and sorted(os.listdir(tmp_path)) == ["truncated"]


@pytest.mark.parametrize("suffix, damage, expected", [
    (".index", lambda data: data[:1000], "truncated or corrupted"),
    (".data-00000-of-00001",
     lambda data: data[:4096] + bytes(b ^ 0xFF for b in data[4096:4196]) + data[4196:],
     "Checksum does not match")])
def test_corrupted_checkpoint_given_to_the_export(tmp_path, albert_dir, suffix, damage,
                                                  expected):
  damaged = _damaged_copy(albert_dir, str(tmp_path / "damaged"), suffix, damage)
  config = export.ExportConfig.from_albert_directory(damaged, str(tmp_path / "hub"),
                                                     checkpoint_name="model.ckpt-0")
  with pytest.raises(CheckpointError, match="checkpoint .*damaged/model.ckpt-0") as caught:
    export_job.export(config, log=lambda line: None)
  assert expected in str(caught.value)
  assert not os.path.exists(tmp_path / "hub")


def test_undecodable_corpus_names_the_file_line_and_byte(tmp_path):
  corpus = tmp_path / "latin1.txt"
  corpus.write_bytes("A first line.\nCaf\u00e9 au lait.\n\nAnother document.\n"
                     .encode("latin-1"))
  where = f"{corpus}:2: not valid UTF-8 (byte 0xe9 at column 4, byte 4 of the line"
  out = tmp_path / "out"
  assert_clean_error(create(f"--input_file={corpus}", f"--output_file={out}/x.tfrecord",
                            *RECORDS), where)
  assert_clean_error(create("train_vocab", f"--input_file={corpus}",
                            f"--model_prefix={out}/v", "--vocab_size=100"), where)
  with pytest.raises(SystemExit) as stopped:
    main_job.main([f"--corpus={corpus}", f"--output_dir={out}"])
  assert stopped.value.code == 1
  assert not out.exists()  # not even the output folder


def test_inspect_names_the_damaged_record_file(tmp_path):
  good = tmp_path / "good.tfrecord"
  assert create(f"--input_file={TOY}", f"--output_file={good}", *RECORDS).returncode == 0
  damaged = tmp_path / "damaged.tfrecord"
  damaged.write_bytes(good.read_bytes()[:700])
  done = create("inspect", f"--input_file={good},{damaged}")
  line = assert_clean_error(done, f"{damaged}: truncated record at byte ", "damaged")
  assert "function_node" not in line and "[Op:" not in line
  assert no_cuinit_line(done.stderr), done.stderr


def test_a_genuine_bug_still_shows_its_traceback(tmp_path):
  """A fault of our own code is not an ordinary error: the traceback stays."""
  code = ("import sys, runpy\n"
          "from albert.data.pretraining import job as pretraining\n"
          "def broken(*args, **kwargs):\n"
          "  return {}['missing']\n"
          "pretraining._check_corpus = broken\n"
          "sys.argv = ['create_pretraining_data.py'] + sys.argv[1:]\n"
          "runpy.run_path('create_pretraining_data.py', run_name='__main__')\n")
  done = subprocess.run([sys.executable, "-c", code, f"--input_file={TOY}",
                         f"--output_file={tmp_path}/x.tfrecord", *RECORDS], cwd=REPO_DIR,
                        env=dict(os.environ, PYTHONPATH=REPO_DIR), capture_output=True,
                        text=True, timeout=120)
  assert done.returncode == 1
  assert "Traceback (most recent call last)" in done.stderr and "KeyError: 'missing'" in done.stderr
  assert [n for n in os.listdir(tmp_path) if ".tmp-" in n or ".tokens-" in n] == []


def test_every_script_runs_through_run_cleanly():
  scripts = [os.path.join(REPO_DIR, n) for n in sorted(os.listdir(REPO_DIR)) if n.endswith(".py")]
  scripts += [os.path.join(REPO_DIR, "scripts", n)
              for n in sorted(os.listdir(os.path.join(REPO_DIR, "scripts"))) if n.endswith(".py")]
  assert len(scripts) >= 6
  for path in scripts:
    with open(path, encoding="utf-8") as f:
      source = f.read()
    # run_cleanly itself, startup.run_script (which calls it), or an alias of such a script
    assert any(mark in source for mark in ("run_cleanly(", "startup.run_script(",
                                           "run_squad.main")), \
        f"{path} does not run its main through run_cleanly"


# --------------------------------------------------------------- validate before writing
@pytest.mark.parametrize("flag, message", [
    ("--held_out_documents=0", "--held_out_documents=0: must be at least 1 (the last N "
                               "documents of --corpus are the evaluation set)"),
    ("--held_out_documents=54", "--held_out_documents=54: data/default/corpus.txt has only 54 "
                                "documents; at least one must remain for training"),
    ("--learning_rate=0", "--learning_rate must be positive"),
    ("--num_train_steps=-1", "--num_train_steps must not be negative"),
    ("--vocab_size=10", "--vocab_size=10: must be at least 14"),
    ("--max_seq_length=512", "--max_seq_length=512 exceeds max_position_embeddings=128"),
    ("--albert_config_file=missing.json", "albert config missing.json: cannot be read")])
def test_main_job_checks_flags_and_config_before_writing(tmp_path, capsys, flag, message):
  out = tmp_path / "out"
  with pytest.raises(SystemExit) as stopped:
    main_job.main([f"--output_dir={out}", flag])
  assert stopped.value.code == 1
  err = capsys.readouterr().err
  assert err.strip().splitlines()[-1] == f"error: {message}" or message in err, err
  assert "Traceback" not in err and not out.exists()


def test_main_job_options_have_help_text():
  parser = main_job.build_parser()
  actions = [a for a in parser._actions if a.dest != "help"]  # pylint: disable=protected-access
  assert len(actions) >= 14
  assert all(a.help and len(a.help) > 10 for a in actions), [a.dest for a in actions
                                                              if not a.help]


def test_create_checks_the_summary_file_before_writing_records(tmp_path):
  (tmp_path / "afile").write_text("x")
  out = tmp_path / "records"
  assert_clean_error(create(f"--input_file={TOY}", f"--output_file={out}/x.tfrecord", *RECORDS,
                            f"--summary_file={tmp_path}/afile/summary.json"),
                     f"--summary_file={tmp_path}/afile/summary.json", "is a file")
  assert not out.exists()


def test_progress_lines_are_plain(tmp_path):
  done = create(f"--input_file={TOY}", f"--output_file={tmp_path}/x.tfrecord", *RECORDS)
  assert done.returncode == 0, done.stderr
  lines = done.stderr.splitlines()
  assert lines[0] == "reading 1 file(s) with 1 worker(s)", lines[:3]
  assert "*** create_pretraining_data summary ***" in lines
  assert not [line for line in lines if line[:1] in "IWE" and line[1:5].isdigit()]


# ------------------------------------------------------------------------------- exports
def _tree_state(directory: str):
  """(relative path, mode, mtime_ns, sha256) of everything under `directory`."""
  state = []
  for relative in listing(directory):
    path = os.path.join(directory, relative)
    st = os.stat(path)
    digest = None
    if stat.S_ISREG(st.st_mode):
      with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    state.append((relative, stat.S_IMODE(st.st_mode), st.st_mtime_ns, digest))
  return state


def test_export_refuses_other_inputs_over_an_export_before_touching_it(tmp_path_factory,
                                                                        tmp_path):
  done = tiny_export(tmp_path_factory)
  before = _tree_state(done.export_path)
  config = export.ExportConfig.from_albert_directory(
      done.albert_directory, done.export_path, checkpoint_name="model.ckpt-0",
      do_lower_case=False)
  with pytest.raises(ExportError, match=r"--export_path=.* already exists, exported from other "
                                        r"inputs or settings \(--do_lower_case differ\)"):
    export_job.export(config, log=lambda line: None)
  assert _tree_state(done.export_path) == before


def _dead_pid() -> int:
  return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                            capture_output=True, text=True, check=True).stdout)


def test_export_completes_missing_parts_and_keeps_the_done_ones(tmp_path_factory, tmp_path):
  """A run that exported the encoder but was killed writing the preprocessing model."""
  done = tiny_export(tmp_path_factory)
  hub = str(tmp_path / "hub")
  shutil.copytree(done.export_path, hub)  # copy2: the same bytes and time stamps
  before = _tree_state(hub)
  leftover = tmp_path / f"pre.tmp-{_dead_pid()}-x1y2"  # the killed run's half-written folder
  (leftover / "variables").mkdir(parents=True)
  config = export.ExportConfig.from_albert_directory(
      done.albert_directory, hub, checkpoint_name="model.ckpt-0",
      preprocessing_export_path=str(tmp_path / "pre"), preprocessing_seq_length=16,
      tflite_path=str(tmp_path / "encoder.tflite"), tflite_seq_length=8)
  umask = os.umask(0o027)
  try:
    result = export_job.export(config, log=lambda line: None)
  finally:
    os.umask(umask)
  assert result.kept == [hub] and result.load_report is None  # no checkpoint read
  assert result.removed == [str(leftover)] and not leftover.exists()
  assert _tree_state(hub) == before
  text = result.format()
  assert f"Kept {hub}: exported earlier from the same checkpoint" in text
  assert f"Exported the preprocessing model {tmp_path / 'pre'}" in text
  assert f"Wrote {tmp_path / 'encoder.tflite'}" in text
  # The new parts follow the umask of the run (027): no 0700 folders, no 0600 files.
  for relative, mode, _, digest in _tree_state(str(tmp_path / "pre")):
    assert mode == (0o640 if digest else 0o750), (relative, oct(mode))
  assert stat.S_IMODE(os.stat(tmp_path / "encoder.tflite").st_mode) == 0o640
  # Again: everything is kept, and an existing TFLite file is checked, not trusted.
  again = export_job.export(config, log=lambda line: None)
  assert sorted(again.kept) == sorted([hub, str(tmp_path / "pre"),
                                       str(tmp_path / "encoder.tflite")])
  assert max(again.tflite_max_abs_diff.values()) < 1e-5
  with pytest.raises(ExportError, match="has sequence length 8, not 16"):
    export_job.export(dataclasses.replace(config, tflite_seq_length=16), log=lambda line: None)
  with pytest.raises(ExportError, match=r"--tflite_seq_length=4096 exceeds max_position_embeddings="):
    export_job.export(dataclasses.replace(config, tflite_seq_length=4096), log=lambda line: None)


def test_export_folders_get_the_umask_permissions(tmp_path_factory):
  done = tiny_export(tmp_path_factory)
  mask = files.umask()
  for relative, mode, _, digest in _tree_state(done.export_path):
    assert mode == (0o666 if digest else 0o777) & ~mask, (relative, oct(mode))


def _wait_for(predicate, timeout: float, process) -> bool:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if predicate():
      return True
    if process.poll() is not None:
      return False
    time.sleep(0.05)
  return False


@pytest.mark.slow
def test_killed_export_leaves_a_sibling_that_the_next_run_removes(tmp_path, albert_dir):
  """SIGKILL while TensorFlow writes the SavedModel (about 25 s idle, 45 s under load)."""
  hub = str(tmp_path / "hub")
  args = export_args(albert_dir, hub, "--noverify")
  process = subprocess.Popen(script_command("export_to_tfhub.py", *args), cwd=REPO_DIR,
                             env=dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  siblings = lambda: [n for n in os.listdir(tmp_path) if n.startswith("hub.tmp-")]  # noqa
  writing = lambda: any(os.path.exists(os.path.join(tmp_path, n, "variables"))  # noqa: E731
                        for n in siblings())
  try:
    assert _wait_for(writing, 240, process), process.stderr.read().decode()[-3000:]
  finally:
    process.send_signal(signal.SIGKILL)
    process.wait()
  left = siblings()
  assert len(left) == 1 and left[0].startswith(f"hub.tmp-{process.pid}-")
  assert not os.path.exists(hub)
  done = run_script("export_to_tfhub.py", *args)
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"Removed the leftover of an interrupted export: {tmp_path / left[0]}" in done.stdout
  assert sorted(os.listdir(tmp_path)) == ["hub"]
  assert export_job.export_is_complete(hub)
  assert no_cuinit_line(done.stderr), done.stderr


# ----------------------------------------------------------------- flags the user left out
NOTHING_TO_DO = [
    ("run_classifier.py", ("--data_dir=glue", "--task_name=SST-2"),
     "error: nothing to do: give --do_train, --do_eval, --do_predict, --export_dir or "
     "--prepare_only"),
    ("run_squad.py", (), "error: nothing to do: give --do_train, --do_predict, --export_dir or "
                         "--prepare_only"),
    ("run_race.py", ("--data_dir=race", "--nodo_train", "--nodo_eval"),
     "error: nothing to do: give --do_train, --do_eval, --do_predict, --export_dir or "
     "--prepare_only"),
    ("run_pretraining.py", ("--input_file=x",), "error: nothing to do: give --do_train, "
                                                "--do_eval or both"),
    ("run_classifier.py", ("--data_dir=glue", "--task_name=SST-2", "--do_train"),
     "error: --albert_config_file is required (or --albert_hub_module_handle)"),
    ("run_pretraining.py", ("--do_train", "--input_file=x"),
     "error: --albert_config_file is required"),
]


@pytest.mark.parametrize("script, args, line", NOTHING_TO_DO,
                         ids=[f"{s}-{i}" for i, (s, _, _) in enumerate(NOTHING_TO_DO)])
def test_a_missing_flag_is_one_error_line_not_the_usage(script, args, line, tmp_path):
  """Issue 18: no --do_* flag printed 52 lines of usage (and a missing --albert_config_file a
  traceback) instead of one line naming the flags to give."""
  done = run_script(script, f"--output_dir={tmp_path / 'out'}", *args)
  assert assert_clean_error(done) == line
  assert [l for l in done.stderr.splitlines() if startup.CUINIT_MARK not in l] == [line]
  assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------- TensorFlow start-up
def test_the_cuinit_line_is_dropped_and_nothing_else_even_on_a_crash():
  code = ("import os\n"
          "from albert.cli import startup\n"
          "with startup.stderr_without(startup.CUINIT_MARK):\n"
          "  os.write(2, b'before\\n')\n"
          "  os.write(2, b'E cuda_platform.cc:51] failed call to cuInit: INTERNAL: 303\\n')\n"
          "  os.write(2, b'the last words\\n')\n"
          "  os.abort()\n")
  done = subprocess.run([sys.executable, "-c", code], cwd=REPO_DIR, capture_output=True,
                        text=True, env=dict(os.environ, PYTHONPATH=REPO_DIR), timeout=60)
  assert done.returncode == -signal.SIGABRT
  assert done.stderr.splitlines() == ["before", "the last words"]
