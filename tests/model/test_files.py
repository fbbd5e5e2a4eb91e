"""albert.files and albert.errors: atomic writes, staged directories, output checks, one-line errors."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys

import pytest
import tensorflow as tf

from albert import errors, files
from conftest import REPO_DIR


def _mode(path) -> int:
  return stat.S_IMODE(os.stat(path).st_mode)


def test_write_text_is_atomic_and_follows_the_umask(tmp_path):
  target = tmp_path / "sub" / "results.txt"
  files.write_text(str(target), "a = 1\n")
  assert target.read_text() == "a = 1\n"
  assert _mode(target) == 0o666 & ~files.umask()
  files.append_text(str(target), "b = 2\n")
  assert target.read_text() == "a = 1\nb = 2\n"
  assert sorted(os.listdir(target.parent)) == ["results.txt"]  # no temporary file left


def test_write_bytes_names_the_path_when_the_parent_is_a_file(tmp_path):
  (tmp_path / "file").write_text("x")
  with pytest.raises(errors.OutputError, match=r"cannot (write|create) .*file.*not a directory"):
    files.write_bytes(str(tmp_path / "file" / "out.bin"), b"data")


def test_write_directory_refuses_replaces_and_cleans_up(tmp_path):
  target = str(tmp_path / "out")

  def write(text):
    def fn(directory):
      os.makedirs(os.path.join(directory, "variables"))
      with open(os.path.join(directory, "saved_model.pb"), "w") as f:
        f.write(text)
    return fn

  assert files.write_directory(target, write("one")) == target
  with pytest.raises(errors.ExportError, match="--overwrite"):
    files.write_directory(target, write("two"))
  files.write_directory(target, write("two"), overwrite=True)
  assert open(os.path.join(target, "saved_model.pb")).read() == "two"
  # Folders get the umask's permissions (mkdtemp would make them 0700).
  assert _mode(target) == _mode(os.path.join(target, "variables")) == 0o777 & ~files.umask()

  def fail(directory):
    write("three")(directory)
    raise RuntimeError("interrupted")

  with pytest.raises(RuntimeError):
    files.write_directory(target, fail, overwrite=True)
  assert open(os.path.join(target, "saved_model.pb")).read() == "two"
  assert sorted(os.listdir(tmp_path)) == ["out"]  # no temporary directories left
  os.makedirs(tmp_path / "empty")
  files.write_directory(str(tmp_path / "empty"), write("four"))  # an empty folder is fine


def test_leftovers_of_a_killed_writer_are_removed(tmp_path):
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  pid = int(dead.stdout)
  for name in (f"out.tmp-{pid}-abc", f"out.old-{pid}-def"):
    os.makedirs(tmp_path / name / "variables")
  (tmp_path / f"out.tmp-{os.getppid()}-live").mkdir()  # a live process's: kept
  files.write_directory(str(tmp_path / "out"), lambda d: open(os.path.join(d, "x"), "w").close())
  assert sorted(os.listdir(tmp_path)) == ["out", f"out.tmp-{os.getppid()}-live"]


def test_copy_tree_copies_saved_model_pb_last(tmp_path, monkeypatch):
  source = tmp_path / "src"
  (source / "variables").mkdir(parents=True)
  for name in ("saved_model.pb", "variables/variables.index", "fingerprint.pb"):
    (source / name).write_text(name)
  copied = []
  real_copy = tf.io.gfile.copy
  monkeypatch.setattr(tf.io.gfile, "copy",
                      lambda a, b, overwrite=False: (copied.append(os.path.basename(b)),
                                                     real_copy(a, b, overwrite))[1])
  files.copy_tree(str(source), str(tmp_path / "dst"))
  assert copied[-1] == "saved_model.pb" and len(copied) == 3
  assert (tmp_path / "dst" / "variables" / "variables.index").read_text() == \
      "variables/variables.index"


def test_check_output_dir(tmp_path):
  assert files.check_output_dir(str(tmp_path / "new" / "run")) == str(tmp_path / "new" / "run")
  assert not (tmp_path / "new").exists()  # nothing created
  (tmp_path / "afile").write_text("x")
  with pytest.raises(errors.FlagError, match=r"--output_dir=.*afile is a file, not a directory"):
    files.check_output_dir(str(tmp_path / "afile" / "run"))
  with pytest.raises(errors.FlagError, match="--output_dir is required"):
    files.check_output_dir("")
  if os.geteuid() != 0:  # root may write anywhere
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(errors.FlagError, match="not writable"):
      files.check_output_dir(str(locked / "run"))


def test_every_library_error_is_one_family():
  from albert import checkpoint, config, hub
  from albert.export import encoder as export
  from albert.train import trainer as training
  from albert.data import DataError
  from albert.data.pretraining import corpus
  from albert.data.pretraining import inspection
  from albert.data.pretraining import job as pretraining
  family = [config.ConfigError, checkpoint.CheckpointError, export.ExportError,
            hub.HubHandleError, training.TrainingError, DataError, corpus.CorpusError,
            inspection.RecordError, pretraining.SettingsError, errors.InputError,
            errors.OutputError, errors.FlagError, errors.TokenizerError]
  assert all(issubclass(cls, errors.AlbertError) for cls in family)
  assert len({cls.__name__ for cls in family}) == len(family)  # distinct names


def _run_cleanly_in_a_process(body: str) -> subprocess.CompletedProcess:
  code = ("import sys\nfrom albert import errors\n"
          f"def main():\n    {body}\n"
          "sys.exit(errors.run_cleanly(main))\n")
  env = dict(os.environ, PYTHONPATH=REPO_DIR)
  return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                        timeout=60)


def test_run_cleanly_prints_one_line_for_the_family_and_keeps_tracebacks_of_bugs():
  result = _run_cleanly_in_a_process("raise errors.InputError('train.tsv line 3: bad label')")
  assert result.returncode == 1 and result.stderr == "error: train.tsv line 3: bad label\n"
  result = _run_cleanly_in_a_process(
      "raise OSError(28, 'No space left on device', '/data/out.tfrecord')")
  assert result.returncode == 1
  assert result.stderr.strip() == ("error: cannot write /data/out.tfrecord: No space left on "
                                   "device (the disk is full)")
  # A bug-shaped error (here what a TF shape mismatch raises) keeps its traceback.
  result = _run_cleanly_in_a_process("raise ValueError('Shapes (2, 3) and (4,) are incompatible')")
  assert result.returncode == 1 and "Traceback" in result.stderr
  result = _run_cleanly_in_a_process("raise KeyboardInterrupt")
  assert result.returncode == 130 and "Traceback" not in result.stderr
  assert "rerun the same command to resume" in result.stderr


def test_describe_os_error_names_the_cause():
  error = OSError(errno.EROFS, "Read-only file system", "/mnt/ro/x")
  assert errors.describe_os_error(error) == \
      "cannot write /mnt/ro/x: Read-only file system"
  error = OSError(errno.ENOTDIR, "Not a directory", "/a/file/x")
  assert "a part of the path is a file" in errors.describe_os_error(error)


def test_the_file_system_shim_on_a_remote_file_system():
  """ram:// (the tf.io.gfile path of gs://, s3://): a rewritten file holds the new bytes only
  (the in-memory file system appends otherwise); a checkpoint prefix is no folder though ram://
  says so; a missing file is a FileNotFoundError naming it; text reads by lines."""
  root = "ram://shim-test"
  files.write_text(f"{root}/a.txt", "one\ntwo\n")
  files.write_text(f"{root}/a.txt", "three\nfour\n")
  with files.open_file(f"{root}/a.txt", encoding="utf-8") as f:
    assert f.readlines() == ["three\n", "four\n"]
  with files.open_file(f"{root}/a.txt", "rb") as f:
    assert f.readline(3) == b"thr" and f.read() == b"ee\nfour\n"
  files.write_bytes(f"{root}/model.ckpt-4.index", b"x")
  files.write_bytes(f"{root}/sub/b", b"y")
  assert tf.io.gfile.isdir(f"{root}/model.ckpt-4")  # ram://'s own answer
  assert not files.isdir(f"{root}/model.ckpt-4") and files.isdir(f"{root}/sub")
  assert files.isdir(root) and files.isfile(f"{root}/sub/b") and files.size(f"{root}/a.txt") == 11
  assert files.glob_paths(f"{root}/*.txt") == [f"{root}/a.txt"]
  with pytest.raises(FileNotFoundError) as missing:
    files.open_file(f"{root}/nope.txt")
  assert missing.value.filename == f"{root}/nope.txt"
  with pytest.raises(errors.FlagError, match=r"--output_dir=nosuch://b/x: cannot be reached "
                     r"\(.*not implemented"):
    files.check_output_dir("nosuch://b/x")
