"""The pretraining data job on Apache Beam (issue 24): the local job's shards, byte for byte.

The test corpus has several documents per file and short documents (units that take many B
segments from other documents: some get them in the join rounds, the rest from the stored
documents), dupe factor 2, three shards, two seeds; DirectRunner with two worker processes and
with four worker threads. Needs apache-beam (requirements.txt)."""

from __future__ import annotations

import os

import pytest

from albert.data.pretraining import beam as beam_job
from albert.data.pretraining import job
from conftest import GOLDEN, TESTDATA
from support.faults import assert_clean_error, run_script

DATA = os.path.join(TESTDATA, "pretraining")
CORPUS = ",".join(os.path.join(DATA, n) for n in ("toy_corpus.txt", "books_slice.txt"))
SPM = os.path.join(GOLDEN, "spm.model")


def _config(output_file, seed):
  return job.CreateDataConfig(
      input_file=CORPUS, output_file=output_file, spm_model_file=SPM, max_seq_length=32,
      max_predictions_per_seq=5, dupe_factor=2, num_output_shards=3, random_seed=seed,
      num_workers=1, progress_interval=1000.0)


def _shards(directory):
  return {n: open(os.path.join(directory, n), "rb").read()
          for n in sorted(os.listdir(directory)) if not n.startswith(".")}


@pytest.mark.parametrize("seed, options", [
    pytest.param(12345, "--direct_num_workers=2 --direct_running_mode=multi_processing",
                 marks=pytest.mark.slow),
    (12345, "--direct_num_workers=4 --direct_running_mode=multi_threading"),
    (7, "--direct_num_workers=2 --direct_running_mode=multi_threading"),
])
def test_direct_runner_writes_the_local_jobs_shards_byte_for_byte(tmp_path, seed, options):
  job.create_pretraining_data(_config(str(tmp_path / "local" / "train"), seed),
                              log=lambda line: None)
  lines = []
  written = beam_job.run_beam(_config(str(tmp_path / "beam" / "train"), seed), "DirectRunner",
                              options, max_rounds=2, log=lines.append)
  local, beam = _shards(tmp_path / "local"), _shards(tmp_path / "beam")
  assert sorted(local) == [f"train-0000{s}-of-00003" for s in range(3)]
  assert [os.path.basename(p) for p in written] == sorted(beam) == sorted(local)
  for name in local:
    assert len(local[name]) > 10000 and beam[name] == local[name], name
  assert sorted(os.listdir(tmp_path / "beam")) == sorted(beam)  # the stored documents removed


def test_other_seeds_give_other_shards(tmp_path):
  """The byte identity above is not that of a constant: the seed changes every shard."""
  for seed in (12345, 7):
    job.create_pretraining_data(_config(str(tmp_path / str(seed) / "train"), seed),
                                log=lambda line: None)
  a, b = _shards(tmp_path / "12345"), _shards(tmp_path / "7")
  assert all(a[n] != b[n] for n in a)


@pytest.mark.parametrize("runner, options, needle", [
    ("NoSuchRunner", "", "--runner='NoSuchRunner': use one of DirectRunner"),
    ("DirectRunner", "--direct_num_wrkers=2", "unknown Beam option --direct_num_wrkers"),
    ("DirectRunner", "--project='unclosed", "--beam_pipeline_options: No closing quotation"),
])
def test_bad_beam_settings_are_one_line(tmp_path, runner, options, needle):
  done = run_script("create_pretraining_data.py", f"--input_file={CORPUS}", f"--spm_model_file={SPM}",
                    f"--output_file={tmp_path / 'out'}", f"--runner={runner}",
                    f"--beam_pipeline_options={options}")
  assert_clean_error(done, needle)
  assert not os.listdir(tmp_path)
