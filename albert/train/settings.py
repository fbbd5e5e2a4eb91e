"""The settings of a Trainer run: `TrainerConfig` (batches, length, checkpoints, loop, precision,
accumulation) and `OptimizerConfig` (the optimizer and its schedule), each checking its own
values (`validate`: one-line errors naming the flag). Imported by (and from) `trainer.py`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from albert import optimization
from albert.errors import FlagError, TrainingError


@dataclasses.dataclass
class OptimizerConfig:
  optimizer: str = "lamb"  # lamb | adamw
  learning_rate: float = 0.00176
  num_warmup_steps: int = 3125
  start_warmup_step: int = 0
  poly_power: float = 1.0
  weight_decay_rate: float = 0.01
  # Epoch-based runs (SQuAD): warmup = int(num_train_steps * warmup_proportion) when set.
  warmup_proportion: Optional[float] = None

  def validate(self) -> None:
    if self.optimizer not in optimization.OPTIMIZERS:
      raise TrainingError(f"--optimizer must be one of {', '.join(optimization.OPTIMIZERS)}, "
                          f"got {self.optimizer!r}")
    if not self.learning_rate > 0:
      raise TrainingError(f"--learning_rate must be positive, got {self.learning_rate}")
    for key in ("num_warmup_steps", "start_warmup_step"):
      if getattr(self, key) < 0:
        raise TrainingError(f"--{key} must not be negative, got {getattr(self, key)}")
    if self.warmup_proportion is not None and not 0 <= self.warmup_proportion <= 1:
      raise TrainingError(f"--warmup_proportion must be in [0, 1], got {self.warmup_proportion}")


@dataclasses.dataclass
class TrainerConfig:
  output_dir: str
  train_batch_size: int = 4096  # global
  eval_batch_size: int = 64  # global
  predict_batch_size: Optional[int] = None  # global; None: eval_batch_size
  num_train_steps: int = 125000
  # Epoch-based runs: steps = int(task.num_train_examples() / train_batch_size * epochs).
  num_train_epochs: Optional[float] = None
  save_checkpoints_steps: int = 5000
  keep_checkpoint_max: int = 5
  iterations_per_loop: int = 1000
  max_eval_steps: Optional[int] = 100  # a cap for tasks whose eval input streams
  init_checkpoint: Optional[str] = None
  init_from_group0: bool = False
  # Where --do_predict alone reads its weights: None means model.ckpt-best of output_dir, else
  # the latest model.ckpt-N, else init_checkpoint.
  predict_checkpoint: Optional[str] = None
  albert_config_file: Optional[str] = None  # the source of the task's config (for messages)
  enable_xla: bool = False
  mixed_precision: str = "float32"  # float32 | mixed_float16 | mixed_bfloat16
  seed: int = 12345
  clip_norm: float = 1.0
  # One optimizer step = this many micro-batches of train_batch_size / N (global), their
  # gradients added up, then clipped and applied once: the step of one batch of the full size.
  gradient_accumulation_steps: int = 1
  recompute_grad: bool = False  # recompute each transformer layer in the backward pass
  steps_flag: str = "num_train_steps"  # the flag num_train_steps came from (run_race: train_step)

  def validate(self) -> None:
    for key in ("train_batch_size", "eval_batch_size", "save_checkpoints_steps",
                "keep_checkpoint_max", "iterations_per_loop"):
      if getattr(self, key) <= 0:
        raise TrainingError(f"--{key} must be positive, got {getattr(self, key)}")
    for key in ("predict_batch_size", "max_eval_steps"):
      if getattr(self, key) is not None and getattr(self, key) <= 0:
        raise TrainingError(f"--{key} must be positive, got {getattr(self, key)}")
    if self.num_train_steps is not None and self.num_train_steps < 0:
      raise TrainingError(f"--{self.steps_flag} must not be negative, got {self.num_train_steps}")
    if self.num_train_epochs is not None and not self.num_train_epochs > 0:
      raise TrainingError(f"--num_train_epochs must be positive, got {self.num_train_epochs}")
    if self.gradient_accumulation_steps < 1:
      raise FlagError(f"--gradient_accumulation_steps must be at least 1, got "
                      f"{self.gradient_accumulation_steps}")
    if self.train_batch_size % self.gradient_accumulation_steps:
      raise FlagError(f"--train_batch_size={self.train_batch_size} is not divisible by "
                      f"--gradient_accumulation_steps={self.gradient_accumulation_steps} (the "
                      "batch size is the global batch of one optimizer step, split into that "
                      "many micro-batches)")
    if self.mixed_precision not in ("float32", "mixed_float16", "mixed_bfloat16"):
      raise TrainingError(f"--mixed_precision must be float32, mixed_float16 or mixed_bfloat16, "
                          f"got {self.mixed_precision!r}")
    if not self.output_dir:
      raise TrainingError("--output_dir is required")

  @property
  def predict_batch(self) -> int:
    """The global batch of the predict split: predict_batch_size, else eval_batch_size."""
    return self.predict_batch_size or self.eval_batch_size
