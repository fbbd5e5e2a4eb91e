"""The GLUE recipe (scripts/run_glue.py, albert/data/glue/recipe.py): the original's per-task
settings, scaling and subsets, the published figures, the run_classifier.py commands, and one
end-to-end run of two tasks (MNLI with MNLI-mm and AX, STS-B) on the GLUE slices of testdata with
a tiny model: summary table, submission folder and zip, rerun skips, changed settings refused.
"""

from __future__ import annotations

import importlib.util
import json
import os
import zipfile

import pytest

from albert.data.glue import recipe as glue_recipe
from albert.data.glue import submission as glue_submission
from albert.data.glue.recipe import RecipeOverrides, TaskResult
from albert.errors import FlagError, InputError
from albert.train.run_dir import parse_results
from conftest import REPO_DIR, TESTDATA, load_script

run_glue = load_script("run_glue")
GLUE = os.path.join(TESTDATA, "glue")
SPM = os.path.join(TESTDATA, "albert_spm", "30k-clean.model")

# run_glue.sh of the original: (task, warmup_step, learning_rate, train_step,
# save_checkpoints_steps, train_batch_size), every task at max_seq_length 512.
RUN_GLUE_SH = [("SST-2", 1256, 1e-5, 20935, 100, 32), ("MNLI", 1000, 3e-5, 10000, 100, 128),
               ("CoLA", 320, 1e-5, 5336, 100, 16), ("QNLI", 1986, 1e-5, 33112, 200, 32),
               ("QQP", 1000, 5e-5, 14000, 100, 128), ("RTE", 200, 3e-5, 800, 100, 32),
               ("STS-B", 214, 2e-5, 3598, 100, 16), ("MRPC", 200, 2e-5, 800, 100, 32)]


def test_recipes_are_the_originals_run_glue_sh_plus_wnli():
  rows = [(r.task, r.warmup_step, r.learning_rate, r.train_step, r.save_checkpoints_steps,
           r.train_batch_size) for r in glue_recipe.RECIPES]
  assert rows[:8] == RUN_GLUE_SH
  assert {r.max_seq_length for r in glue_recipe.RECIPES} == {512}
  assert [r.task for r in glue_recipe.RECIPES[8:]] == ["WNLI"]
  assert {r.source for r in glue_recipe.RECIPES[:8]} == {"run_glue.sh"}
  # every task of the GLUE benchmark has a recipe or is predicted by MNLI's model
  covered = glue_recipe.submission_tasks(glue_recipe.RECIPES)
  assert sorted(covered) == sorted(glue_submission.SUBMISSION_FILES)


def test_the_docs_table_is_the_recipe():
  with open(os.path.join(REPO_DIR, "docs", "run_classifier.md"), encoding="utf-8") as f:
    text = f.read().split("### The per-task settings", 1)[1]
  rows = [line.strip("|").split("|") for line in text.splitlines()
          if line.startswith("| ") and not line.startswith(("| task", "| ---"))]
  assert [tuple(cell.strip() for cell in row) for row in rows] == [
      (r.task, f"{r.learning_rate:g}", *map(str, (r.train_batch_size, r.train_step,
                                                 r.warmup_step, r.save_checkpoints_steps,
                                                 r.max_seq_length)))
      for r in glue_recipe.RECIPES]


def test_subsets_scaling_and_overrides():
  chosen = glue_recipe.plan(["sts-b", "Mnli", "SST-2", "STS-B", ""])
  assert [r.task for r in chosen] == ["SST-2", "MNLI", "STS-B"]  # recipe order, once each
  assert glue_recipe.plan(["all"]) == list(glue_recipe.RECIPES) == glue_recipe.plan(None)
  assert glue_recipe.submission_tasks(chosen) == ["sst-2", "mnli", "mismnli", "ax", "sts-b"]
  small = {r.task: r for r in glue_recipe.plan(None, RecipeOverrides(train_step_scale=0.001))}
  # steps and warmup scaled (rounded), the checkpoint interval kept but not beyond the end
  assert (small["SST-2"].train_step, small["SST-2"].warmup_step,
          small["SST-2"].save_checkpoints_steps) == (21, 1, 21)
  assert (small["QNLI"].train_step, small["QNLI"].warmup_step,
          small["QNLI"].save_checkpoints_steps) == (33, 2, 33)
  assert small["MNLI"].learning_rate == 3e-5 and small["MNLI"].train_batch_size == 128
  tenth = {r.task: r for r in glue_recipe.plan(None, RecipeOverrides(train_step_scale=0.1))}
  assert (tenth["MNLI"].train_step, tenth["MNLI"].save_checkpoints_steps) == (1000, 100)
  tiny = glue_recipe.plan(["RTE"], RecipeOverrides(train_step_scale=1e-6))[0]
  assert (tiny.train_step, tiny.warmup_step) == (1, 0)
  forced = glue_recipe.plan(["CoLA"], RecipeOverrides(
      train_batch_size=4, max_seq_length=64, save_checkpoints_steps=7))[0]
  assert (forced.train_batch_size, forced.max_seq_length, forced.save_checkpoints_steps,
          forced.train_step) == (4, 64, 7, 5336)


def test_bad_task_lists_and_settings_are_named():
  with pytest.raises(FlagError, match=r"--tasks: unknown GLUE task 'sst3'; the recipe's tasks "
                     r"are SST-2, MNLI, CoLA, QNLI, QQP, RTE, STS-B, MRPC, WNLI"):
    glue_recipe.select(["SST-2", "sst3"])
  for name in ("ax", "MNLI-mm", "mismnli"):
    with pytest.raises(FlagError, match=r"predicted by the MNLI model.*list MNLI instead"):
      glue_recipe.select([name])
  with pytest.raises(FlagError, match=r"--tasks=, names no task"):
    glue_recipe.select(["", ""])
  with pytest.raises(FlagError, match=r"--train_step_scale must be positive, got 0"):
    glue_recipe.plan(None, RecipeOverrides(train_step_scale=0))
  with pytest.raises(FlagError, match=r"--train_batch_size must be positive, got -1"):
    glue_recipe.plan(None, RecipeOverrides(train_batch_size=-1))


def test_published_figures_of_the_readme():
  assert glue_recipe.published("MNLI", "base", "v2") == 84.6
  assert glue_recipe.published("sst-2", "large", "v1") == 91.7
  assert glue_recipe.published("CoLA", "base", "v2") is None  # the README has MNLI/SST-2 only
  assert glue_recipe.published("CoLA", "xxlarge", "v1") == 71.4
  assert glue_recipe.published("MNLI", None, "v2") is None
  with pytest.raises(FlagError, match=r"--model_size must be one of base, large"):
    glue_recipe.published("MNLI", "huge", "v2")
  for size in glue_recipe.SIZES:  # v2 beats v1 on both tasks except for xxlarge (README)
    for task in ("mnli", "sst-2"):
      v1, v2 = (glue_recipe.PUBLISHED[(size, v)][task] for v in ("v1", "v2"))
      assert (v2 > v1) == (size != "xxlarge")
  full = glue_recipe.PUBLISHED[("xxlarge", "v1")]
  assert sorted(full) == sorted(r.name for r in glue_recipe.RECIPES if r.task != "WNLI")
  assert [glue_recipe.model_size_of(h) for h in (768, 1024, 2048, 4096, 32)] == [
      "base", "large", "xlarge", "xxlarge", None]


def test_task_result_and_summary_table():
  recipe = glue_recipe.plan(["MRPC"])[0]
  scored = {100: {"eval_accuracy": 0.8, "f1": 0.85, "global_step": 100},
            200: {"eval_accuracy": 0.875, "f1": 0.9, "global_step": 200}}
  result = glue_recipe.task_result(recipe, "eval_accuracy", scored, 200)
  assert result == TaskResult("MRPC", "eval_accuracy", 0.875, 200, 800, {"F1": 0.9})
  with pytest.raises(FlagError, match=r"MRPC: eval_results.txt has no eval_accuracy for the "
                     r"best step 300"):
    glue_recipe.task_result(recipe, "eval_accuracy", scored, 300)
  text = glue_recipe.summary_markdown([result], [recipe], "xxlarge", "v1", ["Zip: z"])
  assert "| MRPC | accuracy | 87.50 | 90.9 | -3.40 | 200 | 800 | F1 90.00 |" in text
  assert "| MRPC | 2e-05 | 32 | 800 | 200 | 100 | 512 | run_glue.sh |" in text
  assert text.endswith("## Submission\n\nZip: z\n")
  row, = glue_recipe.summary_data([result], "base", "v2")
  assert (row["percent"], row["published"], row["difference"]) == (87.5, None, None)


def _run_classifier_flags():
  from absl import flags
  path = os.path.join(REPO_DIR, "run_classifier.py")
  spec = importlib.util.spec_from_file_location("run_classifier_for_names", path)
  spec.loader.exec_module(importlib.util.module_from_spec(spec))  # defines its absl flags
  return flags.FLAGS


def test_printed_commands_are_run_classifier_commands(tmp_path, capsys):
  init = tmp_path / "model.ckpt-best"
  code = run_glue.main([f"--data_dir={GLUE}", f"--output_dir={tmp_path / 'out'}",
                        f"--albert_config_file={REPO_DIR}/configs/v2/base/albert_config.json",
                        f"--spm_model_file={SPM}", f"--init_checkpoint={init}",
                        "--tasks=RTE,MRPC", "--print_commands"])
  assert code == 0
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 2 and not (tmp_path / "out").exists()
  defined = _run_classifier_flags()
  for line, task in zip(lines, ("RTE", "MRPC")):
    words = line.split()
    assert words[:2] == ["python", "run_classifier.py"]
    values = dict(w[2:].split("=", 1) for w in words[2:] if "=" in w)
    switches = {w[2:] for w in words[2:] if "=" not in w}
    assert all(name in defined for name in values)
    assert switches == {"do_lower_case", "do_train", "do_eval", "do_predict"}
    recipe = glue_recipe.plan([task])[0]
    for name, value in recipe.flags().items():
      assert values[name] == str(value)
    assert values["output_dir"] == str(tmp_path / "out" / task)
    assert values["init_checkpoint"] == str(init) and values["optimizer"] == "adamw"


def test_the_shell_command_takes_paths_from_the_callers_directory(tmp_path):
  import subprocess
  (tmp_path / "model").mkdir()
  for name in ("albert_config.json", "30k-clean.model", "model.ckpt-best.index"):
    (tmp_path / "model" / name).write_text("")
  result = subprocess.run(
      ["bash", os.path.join(REPO_DIR, "scripts", "run_glue.sh"), "--model_dir=model",
       "--data_dir=glue", "--output_dir=runs", "--tasks=rte", "--print_commands"],
      cwd=tmp_path, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  words = result.stdout.split()
  for flag, path in (("data_dir", "glue"), ("output_dir", "runs/RTE"),
                     ("init_checkpoint", "model/model.ckpt-best"),
                     ("spm_model_file", "model/30k-clean.model")):
    assert f"--{flag}={tmp_path / path}" in words


def test_model_directory_and_missing_parts(tmp_path):
  model = tmp_path / "albert_base"
  model.mkdir()
  args = run_glue.parse_args([f"--model_dir={model}", "--data_dir=g", "--output_dir=o"])
  with pytest.raises(FlagError, match=r"no albert_config.json: give --model_dir"):
    run_glue.model_files(args)
  (model / "albert_config.json").write_text("{}")
  with pytest.raises(FlagError, match=r"no tokenizer: give --model_dir \(holding "
                     r"30k-clean.model\) or --spm_model_file"):
    run_glue.model_files(args)
  for name in ("30k-clean.model", "other.model", "model.ckpt-best.index"):
    (model / name).write_text("")
  found = run_glue.model_files(args)
  assert found == {"albert_config_file": str(model / "albert_config.json"),
                   "spm_model_file": str(model / "30k-clean.model"), "vocab_file": None,
                   "init_checkpoint": str(model / "model.ckpt-best"),
                   "albert_hub_module_handle": None}
  (model / "model.ckpt-best.index").unlink()  # no best: the directory (its latest checkpoint)
  explicit = run_glue.parse_args([f"--model_dir={model}", f"--spm_model_file={SPM}",
                                  "--data_dir=g", "--output_dir=o"])
  found = run_glue.model_files(explicit)
  assert found["init_checkpoint"] == str(model) and found["spm_model_file"] == SPM
  bare = run_glue.parse_args([f"--albert_config_file={model / 'albert_config.json'}",
                              f"--spm_model_file={SPM}", "--data_dir=g", "--output_dir=o"])
  with pytest.raises(FlagError, match=r"no pretrained weights"):
    run_glue.model_files(bare)
  with pytest.raises(FlagError, match=r"--model_dir=.*nowhere: no such directory"):
    run_glue.model_files(run_glue.parse_args(
        [f"--model_dir={tmp_path / 'nowhere'}", "--data_dir=g", "--output_dir=o"]))


# ------------------------------------------------------------------------------ end to end
def _tiny_model_dir(directory):
  import shutil
  from albert import checkpoint
  from albert.config import AlbertConfig
  from albert.models import build_encoder_model
  directory.mkdir()
  config = AlbertConfig(vocab_size=30000, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  config.to_json_file(str(directory / "albert_config.json"))
  shutil.copy(SPM, directory / "30k-clean.model")
  checkpoint.save_tf1_checkpoint(build_encoder_model(config), str(directory / "model.ckpt-best"))
  return directory


def _lines(path):
  with open(path, encoding="utf-8") as f:
    return f.read().splitlines()


def _argv(model, out, tasks, scale="0.0005"):
  return [f"--model_dir={model}", f"--data_dir={GLUE}", f"--output_dir={out}", f"--tasks={tasks}",
          f"--train_step_scale={scale}", "--max_seq_length=32", "--train_batch_size=8",
          "--model_size=xxlarge", "--model_version=v1", "--seed=3", "--num_workers=1"]


def _check_tasks(out, summary, expected):
  """Each summary row is its task's best eval_results row; the run's files are there."""
  assert [row["task"] for row in summary["tasks"]] == [task for task, *_ in expected]
  for row, (task, metric, published, steps) in zip(summary["tasks"], expected):
    task_dir = out / task
    recorded = parse_results((task_dir / "eval_results.txt").read_text())
    assert [int(r["global_step"]) for r in recorded] == [steps]  # one checkpoint, scored once
    _, best_step, best_value = (task_dir / "best_trial.txt").read_text().split(":")
    assert row["metric"] == metric and row["best_step"] == int(best_step) == steps
    assert row["value"] == pytest.approx(float(best_value)) == recorded[0][metric]
    assert row["published"] == published
    assert row["difference"] == round(round(100 * row["value"], 2) - published, 2)
    for name in ("model.ckpt-best.index", "test_results.tsv", "submit_results.tsv",
                 "albert_config.json"):
      assert (task_dir / name).exists(), name
    assert json.loads((task_dir / "recipe.json").read_text())["status"] == "done"


def _check_submission(out, rows, table):
  """The folder holds `rows` (file -> test rows), the zip the same files at its root."""
  submission = out / "submission"
  assert sorted(os.listdir(submission)) == sorted(rows)
  for name, count in rows.items():
    lines = _lines(submission / name)
    assert lines[0] == "index\tprediction" and len(lines) == count + 1
  assert all(0 <= float(l.split("\t")[1]) <= 5 for l in _lines(submission / "STS-B.tsv")[1:])
  problems = glue_submission.check_submission(submission)  # the slices are not the test sets
  assert f"STS-B.tsv: 20 predictions, the GLUE test set has 1379" in problems
  assert "Not ready to upload:\n" + "".join(f"- {p}\n" for p in problems) in table
  with zipfile.ZipFile(out / "submission.zip") as archive:
    assert sorted(archive.namelist()) == sorted(rows)
    for name in rows:
      assert archive.read(name) == (submission / name).read_bytes()


def test_recipe_on_one_task_skips_when_rerun_and_refuses_other_settings(tmp_path, capsys):
  model = _tiny_model_dir(tmp_path / "model")
  out = tmp_path / "glue"
  argv = _argv(model, out, "sts-b")
  assert run_glue.main(argv) == 0
  printed = capsys.readouterr().out
  summary = json.loads((out / "glue_summary.json").read_text())
  _check_tasks(out, summary, [("STS-B", "pearson", 93.0, 2)])
  row = summary["tasks"][0]
  spearman = parse_results((out / "STS-B" / "eval_results.txt").read_text())[0]["spearman"]
  assert row["extras"] == {"Spearman": round(100 * spearman, 2)}
  table = (out / "glue_summary.md").read_text()
  assert table in printed
  assert (f"| STS-B | Pearson | {100 * row['value']:.2f} | 93.0 | {row['difference']:+.2f} | "
          f"2 | 2 | Spearman {100 * spearman:.2f} |") in table
  assert "| STS-B | 2e-05 | 8 | 2 | 0 | 2 | 32 | run_glue.sh |" in table
  _check_submission(out, {"STS-B.tsv": 20}, table)
  # Rerun: skipped, nothing trained or scored again, the same summary.
  results_before = (out / "STS-B" / "eval_results.txt").read_text()
  assert run_glue.main(argv) == 0
  assert "== STS-B (1/1): done earlier, skipped" in capsys.readouterr().out
  assert json.loads((out / "glue_summary.json").read_text()) == summary
  assert (out / "STS-B" / "eval_results.txt").read_text() == results_before
  # Other settings in the same output_dir are refused, naming the file and what changed.
  with pytest.raises(SystemExit, match="1"):
    run_glue.main(_argv(model, out, "sts-b", scale="0.001"))
  error = capsys.readouterr().err.strip().splitlines()[-1]
  assert error.startswith(f"error: {out}/STS-B/recipe.json: this task was run with other "
                          "settings (save_checkpoints_steps: 2 there, 4 now; train_step: 2 "
                          "there, 4 now)")
  assert not (out / "STS-B" / "model.ckpt-4.index").exists()


@pytest.mark.slow
def test_recipe_end_to_end_on_two_tasks(tmp_path, capsys):
  model = _tiny_model_dir(tmp_path / "model")
  out = tmp_path / "glue"
  argv = _argv(model, out, "STS-B,MNLI")
  assert run_glue.main(argv) == 0
  printed = capsys.readouterr().out
  summary = json.loads((out / "glue_summary.json").read_text())
  _check_tasks(out, summary, [("MNLI", "eval_accuracy", 90.8, 5), ("STS-B", "pearson", 93.0, 2)])
  mnli = summary["tasks"][0]
  mm = parse_results((out / "MNLI" / "eval_results.txt").read_text())[0]["eval_accuracy_mm"]
  assert mnli["extras"] == {"MNLI-mm accuracy": round(100 * mm, 2)}
  table = (out / "glue_summary.md").read_text()
  assert table in printed
  assert (f"| MNLI | accuracy | {100 * mnli['value']:.2f} | 90.8 | {mnli['difference']:+.2f} | "
          f"5 | 5 | MNLI-mm accuracy {100 * mm:.2f} |") in table
  # MNLI's model wrote MNLI-m, MNLI-mm and AX (rows of the test slices)
  _check_submission(out, {"MNLI-m.tsv": 2, "MNLI-mm.tsv": 2, "AX.tsv": 20, "STS-B.tsv": 20},
                    table)
  assert glue_submission.check_submission(out / "submission", ["mnli", "mismnli", "ax"]) == [
      "MNLI-m.tsv: 2 predictions, the GLUE test set has 9796",
      "MNLI-mm.tsv: 2 predictions, the GLUE test set has 9847",
      "AX.tsv: 20 predictions, the GLUE test set has 1104"]
  # Rerun: both skipped.
  assert run_glue.main(argv) == 0
  assert capsys.readouterr().out.count("done earlier, skipped") == 2
  assert json.loads((out / "glue_summary.json").read_text()) == summary
  # An interrupted task (status "running") resumes: nothing left to train, nothing scored twice.
  results_before = (out / "MNLI" / "eval_results.txt").read_text()
  state_path = out / "MNLI" / "recipe.json"
  state = json.loads(state_path.read_text())
  state_path.write_text(json.dumps(dict(state, status="running")))
  assert run_glue.main(argv) == 0
  assert "== MNLI (1/2): lr 3e-05, batch 8, 5 steps" in capsys.readouterr().out
  assert (out / "MNLI" / "eval_results.txt").read_text() == results_before
  assert json.loads(state_path.read_text())["status"] == "done"
  assert json.loads((out / "glue_summary.json").read_text()) == summary
  # Tasks of an earlier run stay in the summary when a later run adds another (or none).
  assert run_glue.main(_argv(model, out, "MNLI")) == 0
  assert [r["task"] for r in json.loads((out / "glue_summary.json").read_text())["tasks"]] == [
      "MNLI", "STS-B"]


def test_a_task_that_cannot_start_leaves_nothing(tmp_path, capsys):
  model = tmp_path / "model"
  model.mkdir()
  (model / "albert_config.json").write_text(json.dumps(
      {"vocab_size": 30000, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
       "intermediate_size": 64, "embedding_size": 16, "max_position_embeddings": 64}))
  (tmp_path / "glue").mkdir()  # a GLUE root without the task folders
  with pytest.raises(SystemExit, match="1"):
    run_glue.main([f"--model_dir={model}", f"--spm_model_file={SPM}",
                   f"--init_checkpoint={tmp_path / 'x'}", f"--data_dir={tmp_path / 'glue'}",
                   f"--output_dir={tmp_path / 'out'}", "--tasks=RTE", "--max_seq_length=32"])
  error = capsys.readouterr().err.strip().splitlines()[-1]
  assert error.startswith("error: GLUE rte train file not found: ")
  assert f"{tmp_path}/glue/RTE/train.tsv" in error
  assert not (tmp_path / "out" / "RTE").exists()
  with pytest.raises(InputError, match=r"recipe.json: not the recipe's JSON"):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "recipe.json").write_text("{")
    run_glue._read_state(str(tmp_path / "bad" / "recipe.json"))


def test_the_shell_command_reports_a_task_error_without_the_cuinit_line(tmp_path):
  """Issue 18: run_glue.sh printed TensorFlow's cuInit false alarm before its error line."""
  import subprocess
  from albert.cli import startup
  model = tmp_path / "model"
  model.mkdir()
  (model / "albert_config.json").write_text(json.dumps(
      {"vocab_size": 1000, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
       "intermediate_size": 64, "embedding_size": 16, "max_position_embeddings": 64}))
  result = subprocess.run(
      ["bash", os.path.join(REPO_DIR, "scripts", "run_glue.sh"), f"--model_dir={model}",
       f"--spm_model_file={SPM}", f"--init_checkpoint={tmp_path / 'x'}", f"--data_dir={GLUE}",
       f"--output_dir={tmp_path / 'out'}", "--tasks=RTE", "--max_seq_length=32"],
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr[-2000:]
  lines = result.stderr.strip().splitlines()
  assert lines[-1].startswith(f"error: the tokenizer ({SPM}) has 30000 pieces, but the albert "
                              "config's vocab_size is 1000"), lines
  if not startup.nvidia_device_present():  # where a GPU exists the line may be a real problem
    assert lines == lines[-1:], lines
