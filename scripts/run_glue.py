"""The GLUE recipe: every GLUE task fine-tuned and evaluated from one checkpoint, one summary.

`bash scripts/run_glue.sh --model_dir=albert_base_v2 --data_dir=glue --output_dir=runs/glue`
(or `python scripts/run_glue.py ...`) does what the original's `run_glue.sh` does, in one
process: for each task (SST-2, MNLI, CoLA, QNLI, QQP, RTE, STS-B, MRPC, WNLI) it runs the
classifier task of `run_classifier.py` with that task's hyper-parameters
(`albert.data.glue.recipe.RECIPES`: learning rate, batch size, steps, warmup, checkpoint
interval, max_seq_length 512, AdamW) in `<output_dir>/<task>/`: trains, scores every checkpoint
(`eval_results.txt`, `model.ckpt-best`, `best_trial.txt`) and predicts the test set with the best
one (`test_results.tsv`, `submit_results.tsv`); MNLI's model also scores MNLI-mm dev and predicts
MNLI-mm and AX. Then it writes:
* `<output_dir>/submission/` (the GLUE server's files of every task) and `submission.zip`,
  checked with `glue_submission.check_submission`;
* `<output_dir>/glue_summary.md` and `.json`: the dev metric of each task at its best
  checkpoint beside the original README's figure for the same model size, and the settings run.

The model: `--model_dir` holding `albert_config.json`, `30k-clean.model` and `model.ckpt-best`
(a released ALBERT tarball), or the explicit flags of run_classifier.py. `--tasks=MRPC,RTE` runs
a subset; `--train_step_scale=0.01` scales steps and warmup down for a smoke run. Rerunning
resumes: finished tasks (`<task>/recipe.json`) are skipped, an interrupted one resumes where it
stopped (the Trainer scores nothing twice); a task dir run with other settings is refused.
`--print_commands` prints the equivalent run_classifier.py command of each task instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from typing import Dict, List, Optional, Sequence

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_DIR not in sys.path:
  sys.path.insert(0, REPO_DIR)

from albert import files  # noqa: E402
from albert.data.glue import recipe as glue_recipe  # noqa: E402
from albert.data.glue import submission as glue_submission
from albert.data.glue.recipe import RecipeOverrides, TaskRecipe  # noqa: E402
from albert.errors import FlagError, InputError  # noqa: E402
from albert.train.run_dir import describe_differences  # noqa: E402

STATE_FILE = "recipe.json"
SUMMARY = "glue_summary"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  model = p.add_argument_group("model (a released model directory, or run_classifier's flags)")
  model.add_argument("--model_dir", help="holds albert_config.json, 30k-clean.model (or one "
                     "*.model) and model.ckpt-best (or one checkpoint)")
  model.add_argument("--albert_config_file")
  model.add_argument("--spm_model_file")
  model.add_argument("--vocab_file")
  model.add_argument("--init_checkpoint")
  model.add_argument("--albert_hub_module_handle")
  model.add_argument("--do_lower_case", action=argparse.BooleanOptionalAction, default=True)
  p.add_argument("--data_dir", required=True, help="the GLUE root (SST-2/, MNLI/, diagnostic/, "
                 "...), as run_glue.sh passes it")
  p.add_argument("--output_dir", required=True, help="the root: one run_classifier output_dir "
                 "per task, the submission folder, the summary")
  p.add_argument("--tasks", default="all", help="comma-separated GLUE tasks (default: all)")
  p.add_argument("--model_size", default="auto",
                 choices=("auto", "none") + glue_recipe.SIZES,
                 help="the released size whose published figures the summary shows (auto: "
                 "from the config's hidden_size)")
  p.add_argument("--model_version", default="v2", choices=glue_recipe.VERSIONS)
  run = p.add_argument_group("changes for every task (default: each task's recipe)")
  run.add_argument("--train_step_scale", type=float, default=1.0,
                   help="multiplies steps and warmup (smoke runs); the checkpoint interval is "
                   "kept, but not beyond the run's end")
  run.add_argument("--train_batch_size", type=int)
  run.add_argument("--max_seq_length", type=int)
  run.add_argument("--save_checkpoints_steps", type=int)
  p.add_argument("--eval_batch_size", type=int, default=8)
  p.add_argument("--predict_batch_size", type=int, default=8)
  p.add_argument("--keep_checkpoint_max", type=int, default=5)
  p.add_argument("--iterations_per_loop", type=int, default=1000)
  tf2 = p.add_argument_group("TF2 additions, as in run_classifier.py")
  tf2.add_argument("--length_buckets", action=argparse.BooleanOptionalAction, default=True)
  tf2.add_argument("--num_workers", type=int)
  tf2.add_argument("--distribution_strategy", default="auto")
  tf2.add_argument("--num_gpus", type=int)
  tf2.add_argument("--mixed_precision", default="float32",
                   choices=("float32", "mixed_float16", "mixed_bfloat16"))
  tf2.add_argument("--enable_xla", action=argparse.BooleanOptionalAction, default=False)
  tf2.add_argument("--seed", type=int, default=12345)
  p.add_argument("--print_commands", action="store_true",
                 help="print each task's run_classifier.py command and stop")
  return p.parse_args(argv)


# --------------------------------------------------------------------------------- the model
def model_files(args: argparse.Namespace) -> Dict[str, Optional[str]]:
  """albert_config_file, spm_model_file, vocab_file, init_checkpoint, albert_hub_module_handle
  (absolute paths), from the explicit flags, else from --model_dir."""
  found = {k: getattr(args, k) for k in ("albert_config_file", "spm_model_file", "vocab_file",
                                         "init_checkpoint", "albert_hub_module_handle")}
  directory = args.model_dir
  if directory:
    if not os.path.isdir(directory):
      raise FlagError(f"--model_dir={directory}: no such directory")
    names = sorted(os.listdir(directory))
    config = os.path.join(directory, "albert_config.json")
    if not found["albert_config_file"] and os.path.isfile(config):
      found["albert_config_file"] = config
    models = ["30k-clean.model"] if "30k-clean.model" in names else [
        n for n in names if n.endswith(".model")]
    if not found["spm_model_file"] and not found["vocab_file"] and len(models) == 1:
      found["spm_model_file"] = os.path.join(directory, models[0])
    if not found["init_checkpoint"]:
      best = os.path.join(directory, "model.ckpt-best")
      found["init_checkpoint"] = best if os.path.isfile(best + ".index") else directory
  hub = found["albert_hub_module_handle"]
  if not found["albert_config_file"] and not hub:
    raise FlagError("no albert_config.json: give --model_dir (holding albert_config.json) or "
                    "--albert_config_file (or --albert_hub_module_handle)")
  if not found["spm_model_file"] and not found["vocab_file"] and not hub:
    raise FlagError("no tokenizer: give --model_dir (holding 30k-clean.model) or "
                    "--spm_model_file")
  if not found["init_checkpoint"] and not hub:
    raise FlagError("no pretrained weights: give --model_dir (holding model.ckpt-best), "
                    "--init_checkpoint or --albert_hub_module_handle; a GLUE recipe from random "
                    "weights would compare nothing")
  for key, value in found.items():
    if value and key != "albert_hub_module_handle" and "://" not in value:
      found[key] = os.path.abspath(value)
  return found


def settings_of(recipe: TaskRecipe, args: argparse.Namespace, model: Dict[str, Optional[str]]
                ) -> Dict[str, object]:
  """Everything that decides a task's results (a rerun must match it to resume or skip)."""
  settings = dict(model, **recipe.flags(), do_lower_case=args.do_lower_case, optimizer="adamw",
                  eval_batch_size=args.eval_batch_size,
                  predict_batch_size=args.predict_batch_size, seed=args.seed,
                  mixed_precision=args.mixed_precision, data_dir=os.path.abspath(args.data_dir))
  return json.loads(json.dumps(settings))


def command_of(recipe: TaskRecipe, args: argparse.Namespace,
               model: Dict[str, Optional[str]]) -> str:
  """The run_classifier.py command that runs this task as the recipe does."""
  flags = dict(data_dir=os.path.abspath(args.data_dir),
               output_dir=os.path.join(os.path.abspath(args.output_dir), recipe.task),
               **{k: v for k, v in model.items() if v}, **recipe.flags(), optimizer="adamw",
               eval_batch_size=args.eval_batch_size, predict_batch_size=args.predict_batch_size,
               seed=args.seed)
  parts = ["python", "run_classifier.py"] + [f"--{k}={shlex.quote(str(v))}"
                                             for k, v in flags.items()]
  parts += ["--do_lower_case" if args.do_lower_case else "--nodo_lower_case",
            "--do_train", "--do_eval", "--do_predict"]
  return " ".join(parts)


# ------------------------------------------------------------------------------- one task
def _read_state(path: str) -> Optional[Dict]:
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as error:
      raise InputError(f"{path}: not the recipe's JSON ({error}); remove it to rerun the "
                       "task") from None


def _check_same(path: str, state: Dict, settings: Dict) -> None:
  before = state.get("settings", {})
  if before != settings:
    shown = describe_differences(before, settings)
    raise FlagError(f"{path}: this task was run with other settings ({shown}). Use another "
                    f"--output_dir, or remove {os.path.dirname(path)} to run it again")


def run_task(recipe: TaskRecipe, args, model, strategy, submission_dir: str) -> None:
  """Trains, scores every checkpoint and predicts one task in `<output_dir>/<task>/`."""
  # pylint: disable=g-import-not-at-top  (TensorFlow only when a task runs)
  import tf_keras
  from albert.tasks.classifier import ClassifierTask, ClassifierTaskConfig
  from albert.tasks.finetune import finetune_run
  from albert.train.trainer import Trainer

  def log(line: str) -> None:
    print(f"[{recipe.task}] {line}", flush=True)

  task_dir = os.path.join(args.output_dir, recipe.task)
  tf_keras.backend.clear_session()
  run = finetune_run(
      output_dir=task_dir, **model, do_lower_case=args.do_lower_case,
      max_seq_length=recipe.max_seq_length, length_buckets=args.length_buckets,
      num_workers=args.num_workers, seed=args.seed, train_batch_size=recipe.train_batch_size,
      eval_batch_size=args.eval_batch_size, predict_batch_size=args.predict_batch_size,
      num_train_steps=recipe.train_step, save_checkpoints_steps=recipe.save_checkpoints_steps,
      keep_checkpoint_max=args.keep_checkpoint_max, iterations_per_loop=args.iterations_per_loop,
      enable_xla=args.enable_xla, mixed_precision=args.mixed_precision, optimizer="adamw",
      learning_rate=recipe.learning_rate, num_warmup_steps=recipe.warmup_step)
  task = ClassifierTask(ClassifierTaskConfig(finetune=run.finetune, task_name=recipe.task,
                                             data_dir=args.data_dir,
                                             submission_dir=submission_dir), log=log)
  trainer = Trainer(task, run.trainer, run.optimizer, strategy=strategy, log=log)
  trainer.run(do_train=True, do_eval=True, do_predict=True)


def run_or_skip(recipe: TaskRecipe, args, model, get_strategy, submission_dir: str,
                position: str) -> None:
  """Runs the task unless an earlier run with the same settings finished it."""
  task_dir = os.path.join(args.output_dir, recipe.task)
  path = os.path.join(task_dir, STATE_FILE)
  settings = settings_of(recipe, args, model)
  state = _read_state(path)
  if state is not None:
    _check_same(path, state, settings)
  if state is not None and state.get("status") == "done":
    print(f"\n== {recipe.task} ({position}): done earlier, skipped ({path})", flush=True)
    return
  print(f"\n== {recipe.task} ({position}): lr {recipe.learning_rate:g}, batch "
        f"{recipe.train_batch_size}, {recipe.train_step} steps (warmup {recipe.warmup_step}), "
        f"a checkpoint every {recipe.save_checkpoints_steps}, max_seq_length "
        f"{recipe.max_seq_length}", flush=True)
  existed = os.path.isdir(task_dir)
  record = {"settings": settings, "recipe": dataclasses.asdict(recipe), "status": "running"}
  files.write_text(path, json.dumps(record, indent=1) + "\n")
  start = time.time()
  try:
    run_task(recipe, args, model, get_strategy(), submission_dir)
  except BaseException:
    if sorted(os.listdir(task_dir)) == [STATE_FILE]:  # the run wrote nothing: leave nothing
      os.remove(path)
      if not existed:
        os.rmdir(task_dir)
    raise
  record.update(status="done", seconds=round(time.time() - start, 1))
  files.write_text(path, json.dumps(record, indent=1) + "\n")


def result_of(recipe: TaskRecipe, task_dir: str) -> glue_recipe.TaskResult:
  from albert import metrics  # pylint: disable=g-import-not-at-top
  from albert.train.run_dir import RunDir  # pylint: disable=g-import-not-at-top
  run_dir = RunDir(task_dir)
  best = run_dir.best()
  if best is None:
    raise InputError(f"{task_dir}: no model.ckpt-best; rerun the recipe to finish the task")
  return glue_recipe.task_result(recipe, metrics.best_metric_key(recipe.task),
                                 run_dir.scored_steps(), int(best["step"]))


# --------------------------------------------------------------------------- the whole run
def finished_recipes(output_dir: str, ran: Sequence[TaskRecipe]) -> List[TaskRecipe]:
  """The recipes of this run, plus tasks an earlier run of this output_dir finished."""
  names = {r.name for r in ran}
  found = list(ran)
  for recipe in glue_recipe.RECIPES:
    state = _read_state(os.path.join(output_dir, recipe.task, STATE_FILE))
    if recipe.name not in names and state and state.get("status") == "done":
      found.append(TaskRecipe(**state["recipe"]))
  order = [r.name for r in glue_recipe.RECIPES]
  return sorted(found, key=lambda r: order.index(r.name))


def submission_lines(directory: str, zip_path: str) -> List[str]:
  """Checks the submission folder, zips what it holds; the summary's lines about it."""
  present = [n for n in glue_submission.SUBMISSION_FILES.values()
             if os.path.isfile(os.path.join(directory, n))]
  if not present:
    return [f"No submission file in {directory}."]
  glue_submission.zip_submission(directory, zip_path)
  problems = glue_submission.check_submission(directory)
  lines = [f"Folder: {directory} ({len(present)} of {len(glue_submission.SUBMISSION_FILES)} "
           f"files: {', '.join(present)})", f"Zip: {zip_path}", ""]
  if not problems:
    return lines + ["Ready to upload: every file the GLUE server expects, with the row counts "
                    "of the official test sets."]
  return lines + ["Not ready to upload:"] + [f"- {p}" for p in problems]


def comparison_size(args, recipes: Sequence[TaskRecipe]) -> Optional[str]:
  if args.model_size == "none":
    return None
  if args.model_size != "auto":
    return args.model_size
  for recipe in recipes:  # the config each run recorded (also for hub modules)
    path = os.path.join(args.output_dir, recipe.task, "albert_config.json")
    if os.path.isfile(path):
      with open(path, encoding="utf-8") as f:
        return glue_recipe.model_size_of(json.load(f).get("hidden_size"))
  return None


def _run(args: argparse.Namespace) -> None:
  overrides = RecipeOverrides(train_step_scale=args.train_step_scale,
                              train_batch_size=args.train_batch_size,
                              max_seq_length=args.max_seq_length,
                              save_checkpoints_steps=args.save_checkpoints_steps)
  recipes = glue_recipe.plan(args.tasks.split(","), overrides)
  model = model_files(args)
  if args.print_commands:
    for recipe in recipes:
      print(command_of(recipe, args, model))
    return
  if not os.path.isdir(args.data_dir):
    raise FlagError(f"--data_dir={args.data_dir}: no such directory (the GLUE root)")
  files.check_output_dir(args.output_dir)

  submission_dir = os.path.join(args.output_dir, "submission")
  strategy = []  # made when a task first needs it (a rerun of finished tasks imports no TF)

  def get_strategy():
    if not strategy:
      # pylint: disable=g-import-not-at-top
      from albert.cli import startup
      startup.start_tensorflow()  # before TensorFlow's first import: no cuInit false alarm
      from absl import logging
      from albert.train.distribute import DistributeConfig, make_strategy
      logging.set_verbosity(logging.WARNING)
      strategy.append(make_strategy(DistributeConfig(strategy=args.distribution_strategy,
                                                     num_gpus=args.num_gpus)))
    return strategy[0]

  for i, recipe in enumerate(recipes):
    run_or_skip(recipe, args, model, get_strategy, submission_dir, f"{i + 1}/{len(recipes)}")

  shown = finished_recipes(args.output_dir, recipes)
  results = [result_of(r, os.path.join(args.output_dir, r.task)) for r in shown]
  size = comparison_size(args, shown)
  lines = submission_lines(submission_dir, os.path.join(args.output_dir, "submission.zip"))
  text = glue_recipe.summary_markdown(results, shown, size, args.model_version, lines)
  data = {"compared_with": {"size": size, "version": args.model_version,
                            "source": glue_recipe.README},
          "model": model, "tasks": glue_recipe.summary_data(results, size, args.model_version),
          "settings": [dataclasses.asdict(r) for r in shown],
          "submission": {"directory": submission_dir, "lines": lines}}
  files.write_text(os.path.join(args.output_dir, SUMMARY + ".json"),
                   json.dumps(data, indent=1) + "\n")
  path = files.write_text(os.path.join(args.output_dir, SUMMARY + ".md"), text)
  print("\n" + text + f"\n(written to {path} and {SUMMARY}.json)", flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(argv)
  from albert.errors import run_cleanly  # pylint: disable=g-import-not-at-top
  return run_cleanly(lambda: _run(args))


if __name__ == "__main__":
  sys.exit(main())
