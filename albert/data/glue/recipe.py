"""The GLUE recipe as data (TF-free): per-task hyper-parameters, published figures, the summary.

`scripts/run_glue.py` (behind `scripts/run_glue.sh`) fine-tunes and evaluates every GLUE task
from one checkpoint; this module owns what it runs and how it reports, without TensorFlow:

* `RECIPES`: one `TaskRecipe` per task, the original's `run_glue.sh` settings (learning rate,
  batch size, steps, warmup, checkpoint interval; `max_seq_length` 512, AdamW, lower-cased);
* `plan(names, RecipeOverrides)`: the chosen tasks in recipe order, scaled down for a smoke run
  (`train_step_scale` scales steps and warmup; the checkpoint interval is kept, but never longer
  than the run) or with one value forced for every task;
* `PUBLISHED`: the original README's dev-set figures per model size and version, and
  `published(task, size, version)`; `model_size_of(hidden_size)` names a released size;
* `TaskResult`, `task_result(...)` (a task's dev metric at its `model.ckpt-best`, from the rows
  of its `eval_results.txt`) and `summary_markdown(...)` / `summary_data(...)`, the one table of
  the whole recipe beside the published figures.

Scores are fractions as in `eval_results.txt`; tables show them x 100, as the papers do.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

from albert.data.glue import tasks as glue
from albert.errors import FlagError


@dataclasses.dataclass(frozen=True)
class TaskRecipe:
  """One task's settings, under the names of run_classifier.py's flags."""

  task: str  # the official GLUE folder name, also run_classifier's --task_name
  warmup_step: int
  learning_rate: float
  train_step: int
  save_checkpoints_steps: int
  train_batch_size: int
  max_seq_length: int = 512
  source: str = "run_glue.sh"

  @property
  def name(self) -> str:
    """The original's (lower-case) task name."""
    return glue.canonical_task_name(self.task)

  def flags(self) -> Dict[str, object]:
    """run_classifier.py's flags of this task (besides the model, data and output flags)."""
    return {"task_name": self.task, "learning_rate": self.learning_rate,
            "train_batch_size": self.train_batch_size, "train_step": self.train_step,
            "warmup_step": self.warmup_step,
            "save_checkpoints_steps": self.save_checkpoints_steps,
            "max_seq_length": self.max_seq_length}


# Source: google-research/albert `run_glue.sh` (the README: "Good default flag values for each
# GLUE task can be found in run_glue.sh"). Each line there is `run_task <task> <warmup_step>
# <learning_rate> <train_step> <save_checkpoints_steps> <train_batch_size>`, and every task gets
# --max_seq_length=512 --optimizer=adamw --do_lower_case; it trains, then scores every
# checkpoint and predicts from the best. The fields below are in that order. run_glue.sh has
# no WNLI line: WNLI's row is quoted from the paper's table of fine-tuning hyper-parameters
# (Lan et al., ICLR 2020, appendix A.4, Table 14: lr 2e-5, batch 16, 2000 steps, warmup 250,
# seq 512; not checked against a stored copy here) with the checkpoint interval most run_glue.sh
# tasks use, 100. That table also lists an encoder dropout for fine-tuning; run_glue.sh does not
# set one (the model's albert_config.json decides), and neither does the recipe.
RECIPES: Tuple[TaskRecipe, ...] = (
    TaskRecipe("SST-2", 1256, 1e-5, 20935, 100, 32),
    TaskRecipe("MNLI", 1000, 3e-5, 10000, 100, 128),
    TaskRecipe("CoLA", 320, 1e-5, 5336, 100, 16),
    TaskRecipe("QNLI", 1986, 1e-5, 33112, 200, 32),
    TaskRecipe("QQP", 1000, 5e-5, 14000, 100, 128),
    TaskRecipe("RTE", 200, 3e-5, 800, 100, 32),
    TaskRecipe("STS-B", 214, 2e-5, 3598, 100, 16),
    TaskRecipe("MRPC", 200, 2e-5, 800, 100, 32),
    TaskRecipe("WNLI", 250, 2e-5, 2000, 100, 16, source="paper Table 14"),
)
_BY_NAME = {r.name: r for r in RECIPES}

# Predicted by another task's model (the task table's extra test splits): their files belong
# to that task's run.
_PREDICTED_BY = {extra.task: spec.name for spec in glue.TASKS.values()
                 for extra in spec.extra_splits if extra.split == "test"}


@dataclasses.dataclass(frozen=True)
class RecipeOverrides:
  """What a run changes for every task (None: the recipe's value)."""

  train_step_scale: float = 1.0
  train_batch_size: Optional[int] = None
  max_seq_length: Optional[int] = None
  save_checkpoints_steps: Optional[int] = None


def select(names: Optional[Sequence[str]] = None) -> List[TaskRecipe]:
  """The recipes of `names` (any case, aliases; None or "all": every task), in recipe order."""
  if not names or [n.strip().lower() for n in names] == ["all"]:
    return list(RECIPES)
  wanted = set()
  for raw in names:
    if not raw.strip():
      continue
    try:
      name = glue.canonical_task_name(raw)
    except FlagError:
      name = None
    if name in _PREDICTED_BY:
      raise FlagError(f"--tasks: {raw!r} is predicted by the {_PREDICTED_BY[name].upper()} model "
                      f"(its dev and test files are part of the MNLI run); list MNLI instead")
    if name not in _BY_NAME:
      raise FlagError(f"--tasks: unknown GLUE task {raw!r}; the recipe's tasks are "
                      f"{', '.join(r.task for r in RECIPES)} (any case), or all")
    wanted.add(name)
  if not wanted:
    raise FlagError(f"--tasks={','.join(names)} names no task; give e.g. --tasks=MRPC,RTE or all")
  return [r for r in RECIPES if r.name in wanted]


def scale(recipe: TaskRecipe, overrides: RecipeOverrides) -> TaskRecipe:
  """The recipe with the overrides applied (see the module docstring)."""
  o = overrides
  if not o.train_step_scale > 0:
    raise FlagError(f"--train_step_scale must be positive, got {o.train_step_scale}")
  for key in ("train_batch_size", "max_seq_length", "save_checkpoints_steps"):
    value = getattr(o, key)
    if value is not None and value <= 0:
      raise FlagError(f"--{key} must be positive, got {value}")
  steps = max(1, round(recipe.train_step * o.train_step_scale))
  warmup = min(steps, round(recipe.warmup_step * o.train_step_scale))
  save = o.save_checkpoints_steps or min(recipe.save_checkpoints_steps, steps)
  return dataclasses.replace(
      recipe, train_step=steps, warmup_step=warmup, save_checkpoints_steps=save,
      train_batch_size=o.train_batch_size or recipe.train_batch_size,
      max_seq_length=o.max_seq_length or recipe.max_seq_length)


def plan(names: Optional[Sequence[str]] = None,
         overrides: RecipeOverrides = RecipeOverrides()) -> List[TaskRecipe]:
  """The tasks to run, in recipe order, with the overrides applied."""
  return [scale(r, overrides) for r in select(names)]


def submission_tasks(recipes: Sequence[TaskRecipe]) -> List[str]:
  """The GLUE submission files (as task names) the recipes write: MNLI adds MNLI-mm and AX."""
  found = []
  for recipe in recipes:
    found.append(recipe.name)
    found.extend(t for t, by in _PREDICTED_BY.items() if by == recipe.name)
  return found


# ------------------------------------------------------------------------ published figures
# Source: google-research/albert README.md (last public version). (1) "The result comparison to
# the v1 models": dev-set MNLI and SST-2 accuracy per released model (the other columns are
# SQuAD and RACE). (2) "Results": GLUE dev, single model, row "ALBERT (1.5M)": that is the v1
# xxlarge release (the README: v1 and v2 xxlarge differ only in 1.5M vs 3M pretraining steps;
# its MNLI 90.8 and SST-2 96.9 are the v1 xxlarge figures of (1)). Accuracy for every task but
# CoLA (Matthews correlation) and STS-B (Pearson), as the original's metric_fn and the papers'
# dev tables measure them. The README gives no WNLI dev figure.
README = "google-research/albert README.md"
PUBLISHED: Dict[Tuple[str, str], Dict[str, float]] = {
    ("base", "v2"): {"mnli": 84.6, "sst-2": 92.9},
    ("large", "v2"): {"mnli": 86.5, "sst-2": 94.9},
    ("xlarge", "v2"): {"mnli": 87.9, "sst-2": 95.4},
    ("xxlarge", "v2"): {"mnli": 90.6, "sst-2": 96.8},
    ("base", "v1"): {"mnli": 81.6, "sst-2": 90.3},
    ("large", "v1"): {"mnli": 83.5, "sst-2": 91.7},
    ("xlarge", "v1"): {"mnli": 86.4, "sst-2": 92.4},
    ("xxlarge", "v1"): {"mnli": 90.8, "qnli": 95.3, "qqp": 92.2, "rte": 89.2, "sst-2": 96.9,
                        "mrpc": 90.9, "cola": 71.4, "sts-b": 93.0},
}
SIZES = ("base", "large", "xlarge", "xxlarge")
VERSIONS = ("v1", "v2")
_HIDDEN_SIZES = {768: "base", 1024: "large", 2048: "xlarge", 4096: "xxlarge"}


def model_size_of(hidden_size: int) -> Optional[str]:
  """The released ALBERT size with this hidden size (base 768 ... xxlarge 4096), or None."""
  return _HIDDEN_SIZES.get(hidden_size)


def published(task: str, size: Optional[str], version: str) -> Optional[float]:
  """The README's dev figure (x 100) of `task` for ALBERT `size` `version`, or None."""
  if size is None:
    return None
  if size not in SIZES or version not in VERSIONS:
    raise FlagError(f"--model_size must be one of {', '.join(SIZES)} and --model_version one of "
                    f"{', '.join(VERSIONS)}; got {size!r}, {version!r}")
  return PUBLISHED[(size, version)].get(glue.canonical_task_name(task))


# ----------------------------------------------------------------------------------- summary
_METRIC_NAMES = {"eval_accuracy": "accuracy", "matthew_corr": "MCC", "pearson": "Pearson"}
_EXTRAS = {"mnli": (("eval_accuracy_mm", "MNLI-mm accuracy"),), "mrpc": (("f1", "F1"),),
           "qqp": (("f1", "F1"),), "sts-b": (("spearman", "Spearman"),)}


@dataclasses.dataclass
class TaskResult:
  """A task's dev result at its best checkpoint."""

  task: str  # GLUE folder name
  metric: str  # the eval_results key that picked model.ckpt-best
  value: float  # as in eval_results.txt (a fraction)
  best_step: int
  train_step: int
  extras: Dict[str, float] = dataclasses.field(default_factory=dict)  # label -> fraction

  @property
  def name(self) -> str:
    return glue.canonical_task_name(self.task)


def task_result(recipe: TaskRecipe, metric: str, scored: Dict[int, Dict[str, float]],
                best_step: int) -> TaskResult:
  """The result of `recipe`'s run: `scored` maps global_step -> eval_results.txt row."""
  if best_step not in scored or metric not in scored[best_step]:
    raise FlagError(f"{recipe.task}: eval_results.txt has no {metric} for the best step "
                    f"{best_step} (best_trial.txt); rerun the recipe to score it")
  row = scored[best_step]
  extras = {label: row[key] for key, label in _EXTRAS.get(recipe.name, ()) if key in row}
  return TaskResult(recipe.task, metric, row[metric], best_step, recipe.train_step, extras)


def _percent(value: Optional[float]) -> str:
  return "" if value is None else f"{100 * value:.2f}"


def summary_data(results: Sequence[TaskResult], size: Optional[str], version: str
                 ) -> List[Dict[str, object]]:
  """One dict per task: the row of the summary table, as numbers (percent)."""
  rows = []
  for r in results:
    figure = published(r.task, size, version)
    ours = round(100 * r.value, 2)
    rows.append({"task": r.task, "metric": r.metric, "value": r.value, "percent": ours,
                 "published": figure,
                 "difference": None if figure is None else round(ours - figure, 2),
                 "best_step": r.best_step, "train_step": r.train_step,
                 "extras": {k: round(100 * v, 2) for k, v in r.extras.items()}})
  return rows


def summary_markdown(results: Sequence[TaskResult], recipes: Sequence[TaskRecipe],
                     size: Optional[str], version: str, submission: Sequence[str]) -> str:
  """The recipe's summary: dev metric per task beside the README's figure, the settings run,
  and the submission lines (`submission`: already formatted lines)."""
  compared = f"ALBERT {size} {version}" if size else "no released size"
  lines = [f"# GLUE dev results (compared with {compared}, {README})", "",
           f"| task | metric | ours | {compared} | difference | best step | steps | also |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
  for row, r in zip(summary_data(results, size, version), results):
    figure = "" if row["published"] is None else f"{row['published']:.1f}"
    difference = "" if row["difference"] is None else f"{row['difference']:+.2f}"
    also = ", ".join(f"{label} {_percent(v)}" for label, v in r.extras.items())
    lines.append(f"| {r.task} | {_METRIC_NAMES.get(r.metric, r.metric)} | {_percent(r.value)} "
                 f"| {figure} | {difference} | {r.best_step} | {r.train_step} | {also} |")
  lines += ["", "Scores x 100 at each task's model.ckpt-best (the checkpoint its metric picked)."
            " The README's figures are the authors' single-model dev results.", "",
            "## Settings", "", "| task | learning rate | batch | steps | warmup | checkpoint every "
            "| max_seq_length | from |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
  for r in recipes:
    lines.append(f"| {r.task} | {r.learning_rate:g} | {r.train_batch_size} | {r.train_step} | "
                 f"{r.warmup_step} | {r.save_checkpoints_steps} | {r.max_seq_length} | "
                 f"{r.source} |")
  lines += ["", "## Submission", ""] + list(submission)
  return "\n".join(lines) + "\n"
