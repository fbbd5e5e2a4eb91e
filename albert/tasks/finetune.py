"""What the fine-tuning tasks (GLUE, SQuAD, RACE) share, so that each task file holds only its own.

`FinetuneConfig` is the part of every fine-tuning task's config they share (each task's own
config holds it as `finetune`); `FinetuneTask` (a `Task`) owns:
* the tokenizer: `--spm_model_file` / `--vocab_file` / `--do_lower_case`, or the tokenizer asset
  of `--albert_hub_module_handle`; a SentencePiece model larger than the config's `vocab_size`,
  and a `max_seq_length` above `max_position_embeddings`, are refused before any work;
* the encoder: a fresh `bert` from the albert config, or the hub module's (its variables keep
  the original `bert/...` names, so fine-tuned checkpoints are TF1-name checkpoints either way);
* `prepare(split)`: the shared checks and the subclass's `check_data(split)`, then one feature
  cache per split (the subclass's `build_cache(split)`), with the splits scored or predicted
  beside it (MNLI's mismatched sets, SQuAD's held-out articles); read back by
  `albert.train.input_pipeline` as fixed-shape batches (train: shuffled and repeated; eval and
  predict: one ordered pass whose padding rows have `is_real_example` 0), optionally in length
  buckets;
* `initialize`: a pretrained or fine-tuned TF1-name checkpoint must restore the whole encoder
  (one that restores none of it is an error, never a silent random start: the most reported
  failure of the original); head variables of the right shape are loaded too (so an original
  fine-tuned checkpoint evaluates as is), and those of another shape are skipped and named.

A subclass sets `name`, `best_metric` and implements `check_data(split)`, `build_cache(split)
-> (path, metadata)`, `schema(split)`, `build_model()`, `compute_loss`, `prediction_outputs`,
`postprocess`. Evaluation is by predict + postprocess (metrics such as MCC, F1 or SQuAD's cannot
stream).
"""

from __future__ import annotations

import abc
import dataclasses
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

import tensorflow as tf
import tf_keras

from albert import files
from albert import checkpoint
from albert.train import input_pipeline
from albert.config import AlbertConfig
from albert.data import cache as cache_lib
from albert.hf import names
from albert.tokenization import TokenizerSpec
from albert.errors import CheckpointError, FlagError, InputError
from albert.train.loop import StopRequest
from albert.train.task import Task
from albert.train.trainer import OptimizerConfig, TrainerConfig


@dataclasses.dataclass
class FinetuneConfig:
  """The settings every fine-tuning task shares (flag names in comments)."""

  albert_config: Optional[AlbertConfig]  # --albert_config_file (None: from the hub module)
  output_dir: str  # --output_dir (the default cache folder is inside it)
  spm_model_file: Optional[str] = None  # --spm_model_file
  vocab_file: Optional[str] = None  # --vocab_file
  do_lower_case: bool = True  # --do_lower_case
  max_seq_length: int = 512  # --max_seq_length
  cache_dir: Optional[str] = None  # --cached_dir (default <output_dir>/cache)
  hub_module_handle: Optional[str] = None  # --albert_hub_module_handle
  bucket_boundaries: Optional[Tuple[int, ...]] = None  # length buckets (None: pad to the cap)
  num_workers: Optional[int] = None  # feature conversion processes (None: every core)
  seed: int = 12345
  # Variable-name prefixes not read from --init_checkpoint (they keep their fresh
  # initialisation), e.g. ("bert/pooler/",) for a model whose sentence-order head never learned.
  init_skip: Tuple[str, ...] = ()
  # --prepare_only: the task only builds feature caches (no model), so it needs no albert config.
  features_only: bool = False


def default_buckets(max_seq_length: int) -> Tuple[int, ...]:
  """A few padded lengths up to the cap: 32, 64, 128, ... (XLA compiles one shape each)."""
  boundaries = []
  length = 32
  while length < max_seq_length:
    boundaries.append(length)
    length *= 2
  return tuple(boundaries) + (max_seq_length,)


class FinetuneTask(Task):
  """The shared half of GLUE, SQuAD and RACE; see the module docstring.

  Args:
    config: the task's config; its `finetune` field is a `FinetuneConfig`.
    log: where the task's lines go; default: printed.
  """

  eval_by_predict = True
  keep_unscored_checkpoints = True

  def __init__(self, config, log: Optional[Callable[[str], None]] = None):
    super().__init__(config, log)
    shared = config.finetune
    self._caches: Dict[str, Tuple[str, Dict[str, Any]]] = {}
    self._checked = set()
    self._hub_info = None
    if shared.hub_module_handle:
      from albert import hub  # pylint: disable=g-import-not-at-top
      # The module's own config; the explicit one only for a module that carries none.
      self._hub_info = hub.inspect_handle(shared.hub_module_handle,
                                          albert_config=shared.albert_config)
      module_config = self._hub_info.albert_config
      if shared.albert_config is not None and module_config is not None:
        differences = shared.albert_config.differences(module_config)
        if differences:
          shown = "; ".join(f"{k}: {a!r} in the file, {b!r} in the module"
                            for k, (a, b) in differences.items())
          raise FlagError(
              f"--albert_config_file disagrees with the albert config of the hub module "
              f"{shared.hub_module_handle} ({shown}): the module's encoder is what runs. Leave "
              "out --albert_config_file (a hub module's config comes from the module)")
      if module_config is not None:
        shared.albert_config = module_config
    elif shared.albert_config is None and not shared.features_only:
      raise FlagError("--albert_config_file is required (or --albert_hub_module_handle)")

  @property
  def albert_config(self) -> Optional[AlbertConfig]:
    return self.config.finetune.albert_config

  # ------------------------------------------------------------------------------- tokenizer
  def tokenizer_spec(self) -> TokenizerSpec:
    c = self.config.finetune
    spm_model, vocab = c.spm_model_file, c.vocab_file
    do_lower_case = c.do_lower_case
    if not spm_model and not vocab and self._hub_info is not None:
      spm_model, vocab = self._hub_info.sp_model_file, self._hub_info.vocab_file
    if not spm_model and not vocab:
      raise FlagError("give --spm_model_file (the English ALBERT models' 30k-clean.model) or "
                      "--vocab_file (or a hub module that carries one)")
    return TokenizerSpec(spm_model_file=spm_model, vocab_file=None if spm_model else vocab,
                         do_lower_case=do_lower_case)

  def _check_tokenizer(self) -> None:
    spec = self.tokenizer_spec()
    for path, flag in ((spec.spm_model_file, "--spm_model_file"), (spec.vocab_file,
                                                                   "--vocab_file")):
      if path and "://" not in path and not files.isfile(path):
        raise InputError(f"{flag}={path}: no such file")
    tokenizer = spec.build()
    size = len(tokenizer.vocab)
    self._check_hub_tokenizer(spec, tokenizer)
    albert_config = self.albert_config
    if albert_config is not None and size > albert_config.vocab_size:
      raise FlagError(f"the tokenizer ({spec.spm_model_file or spec.vocab_file}) has {size} "
                      f"pieces, but the albert config's vocab_size is "
                      f"{albert_config.vocab_size}: the model would see ids it has no "
                      "embedding for. Use the vocabulary the model was pretrained with")

  def _check_hub_tokenizer(self, spec: TokenizerSpec, tokenizer) -> None:
    """An explicit tokenizer beside a hub module must be the module's own vocabulary."""
    info, shared = self._hub_info, self.config.finetune
    if info is None or not (shared.spm_model_file or shared.vocab_file):
      return
    flag = "--spm_model_file" if spec.spm_model_file else "--vocab_file"
    given = f"{flag}={spec.spm_model_file or spec.vocab_file}"
    size = len(tokenizer.vocab)
    if info.sp_model_file or info.vocab_file:
      module_file = info.sp_model_file or info.vocab_file
      module_vocab = TokenizerSpec(spm_model_file=info.sp_model_file,
                                   vocab_file=None if info.sp_model_file else info.vocab_file,
                                   do_lower_case=spec.do_lower_case).build().vocab
      if module_vocab == tokenizer.vocab:
        return
      what = f"{len(module_vocab)} pieces, {os.path.basename(module_file)}"
      if len(module_vocab) == size:
        piece, index = min(set(tokenizer.vocab.items()) - set(module_vocab.items()),
                           key=lambda item: item[1])
        what += f"; other pieces: e.g. id {index} is {piece!r} in {flag}"
      advice = "Leave it out (a hub module's tokenizer comes from the module)"
    elif info.albert_config is not None and info.albert_config.vocab_size != size:
      what = f"vocab_size {info.albert_config.vocab_size} in its albert config"
      advice = "Give the vocabulary the module was pretrained with"
    else:
      return
    raise FlagError(
        f"{given} ({size} pieces) is not the vocabulary of the hub module "
        f"{shared.hub_module_handle} ({what}): the encoder would embed the ids of one "
        f"vocabulary as those of the other. {advice}")

  # ------------------------------------------------------------------------------ prepare
  def _splits_with(self, split: str) -> Tuple[str, ...]:
    """`split` and the splits scored or predicted with it (MNLI's, SQuAD's held-out)."""
    extra = {"eval": self.extra_eval_splits, "predict": self.predict_splits[1:]}.get(split, ())
    return (split,) + tuple(s for s in extra if s != split)

  def prepare(self, split: str, check_only: bool = False) -> None:
    """Checks the settings, the tokenizer and the data of `split` and of the splits scored or
    predicted with it, then (unless `check_only`) builds or reuses their feature caches."""
    splits = self._splits_with(split)
    for name in splits:
      if name not in self._checked:
        if not self._checked:
          self._check_shared()
        self.check_data(name)
        self._checked.add(name)
    if not check_only:
      for name in splits:
        if name not in self._caches:
          self._caches[name] = self.build_cache(name)

  def prepare_only(self, splits) -> None:
    """`--prepare_only`: checks every split in `splits`, then builds their feature caches;
    builds no model."""
    for split in splits:
      self.prepare(split, check_only=True)
    with StopRequest():  # Ctrl-C or SIGTERM: stopped at once, no cache file left half-written
      for split in splits:
        self.prepare(split)

  def _check_shared(self) -> None:
    """max_seq_length against the albert config, and the tokenizer."""
    c = self.config.finetune
    if c.albert_config is not None:
      c.albert_config.check_sequence_length(c.max_seq_length)
    if c.max_seq_length < 3:
      raise FlagError(f"--max_seq_length={c.max_seq_length} is too small ([CLS] x [SEP])")
    self._check_tokenizer()

  @abc.abstractmethod
  def check_data(self, split: str) -> None:
    """Raises a clear error naming the file or flag if `split`'s data cannot be read; writes
    nothing (the subclass's half of `prepare`'s checks)."""

  @abc.abstractmethod
  def build_cache(self, split: str) -> Tuple[str, Dict[str, Any]]:
    """Builds (or reuses) the split's feature cache; returns (record file, metadata)."""

  def _cache(self, split: str) -> Tuple[str, Dict[str, Any]]:
    if split not in self._caches:
      raise RuntimeError(f"task {self.name}: the {split!r} split is not prepared; call "
                         f"prepare({split!r}) first")
    return self._caches[split]

  @property
  def cache_dir(self) -> str:
    shared = self.config.finetune
    return shared.cache_dir or os.path.join(shared.output_dir, "cache")

  def metadata(self, split: str) -> Dict[str, Any]:
    """The metadata of a prepared split's feature cache (counts, fingerprint, per-example ids)."""
    return self._cache(split)[1]

  def decode(self, split: str, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Per-record changes after parsing (e.g. a reshape); the default changes nothing."""
    return features

  def finalize(self, split: str, batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Per-batch changes after batching (undoes a `decode` reshape); the default: none."""
    return batch

  def data_fingerprint(self, split: str) -> Optional[str]:
    return self.metadata(split).get("fingerprint")

  def run_identity(self) -> Dict[str, Any]:
    """The task, max_seq_length and the tokenizer (lower-casing and its file's digest)."""
    spec = self.tokenizer_spec()
    model_file = spec.spm_model_file or spec.vocab_file
    digest = (cache_lib.file_digest(model_file)[:16]
              if model_file and files.isfile(model_file) else model_file)
    return {"task": self.name, "max_seq_length": self.config.finetune.max_seq_length,
            "do_lower_case": bool(spec.do_lower_case), "tokenizer_sha256": digest}

  def input_files(self, split: str) -> List[str]:
    return [self._caches[split][0]] if split in self._caches else []

  def num_train_examples(self) -> Optional[int]:
    meta = self.metadata("train")
    return meta.get("num_examples", meta.get("num_records"))

  def build_dataset(self, split, batch_size, input_context=None):
    mode = "train" if split == "train" else "one_pass"
    return input_pipeline.make_dataset(
        [self._cache(split)[0]], self.schema(split), batch_size, mode, input_context,
        seed=self.config.finetune.seed, decode=lambda features: self.decode(split, features),
        finalize=lambda batch: self.finalize(split, batch),
        bucket_boundaries=self.config.finetune.bucket_boundaries)

  # ---------------------------------------------------------------------------------- model
  def encoder(self) -> Optional[str]:
    """What the model builders take as `encoder`: the hub handle, or None (a fresh `bert`)."""
    return self.config.finetune.hub_module_handle or None

  def initial_weights_note(self) -> Optional[str]:
    handle = self.config.finetune.hub_module_handle
    return f"Encoder weights from the hub module {handle}" if handle else None

  def initialize(self, model: tf_keras.Model, init_checkpoint: str,
                 init_from_group0: bool = False) -> checkpoint.LoadReport:
    """Loads the encoder (all of it, or an error) and the head variables of the right shape."""
    prefix = checkpoint.resolve_checkpoint(init_checkpoint)
    reader = checkpoint.open_reader(prefix)
    shapes = reader.get_variable_to_shape_map()
    variables = checkpoint.variables_by_name(model)
    skip = tuple(self.config.finetune.init_skip)
    # An HF AlbertForQuestionAnswering has no pooler (SQuAD does not use it): it starts fresh.
    no_pooler = {n: "not in the Hugging Face folder (its architecture has no pooler)"
                 for n in variables if n.startswith("bert/pooler/")
                 and getattr(reader, "has_pooler", True) is False}
    encoder = {n for n in variables if n.startswith("bert/") and not n.startswith(skip or "\0")}
    # An HF classifier's rows follow its id2label: reordered to the task's labels, or left out.
    order, other_labels = names.label_order(getattr(reader, "labels", None), self.head_labels())
    head = {"output_weights", "output_bias"}
    chosen = [v for n, v in variables.items() if not (skip and n.startswith(skip)) and (
        n in encoder or n not in shapes or list(shapes[n]) == list(v.shape))
              and not (other_labels and n in head)]
    try:
      report = checkpoint.load_tf1_checkpoint(chosen, prefix, init_from_group0=init_from_group0)
    except CheckpointError as error:
      if "restores nothing" in str(error):
        raise CheckpointError(f"--init_checkpoint={init_checkpoint} restores none of the "
                              f"encoder's variables: {error}. Fine-tuning would start from "
                              "random weights; give a pretrained ALBERT checkpoint") from None
      raise
    missing = sorted(n for n in encoder if n not in report.loaded and n not in no_pooler)
    if missing:
      raise CheckpointError(
          f"--init_checkpoint={init_checkpoint} lacks {len(missing)} of the encoder's "
          f"{len(encoder)} variables (e.g. {', '.join(missing[:3])}): is it a checkpoint of "
          "this albert config? (--init_from_group0 reads every group from group_0)")
    if order is not None and head <= set(report.loaded):
      self.log(checkpoint.reorder_head_rows(variables, order, reader.labels, self.head_labels()))
    # Head variables of another shape and skipped prefixes stay out of the load: new variables.
    report.missing = [n for n in report.missing if n not in no_pooler]
    report.mark_new(no_pooler)
    if other_labels:
      report.mark_new({n: f"{other_labels}: fine-tuning starts the head fresh"
                       for n in head if n in variables and n in shapes})
    return report.mark_new({
        n: ("not read from the checkpoint: fine-tuning starts it fresh" if skip and
            n.startswith(skip) else f"another shape in the checkpoint: {list(shapes[n])}, "
            f"the model's {list(v.shape)}")
        for n, v in variables.items()
        if n in shapes and n not in report.loaded and n not in report.new})


# ============================================================================ The run's configs
# The one builder of a fine-tuning run: the scripts (their flags, through albert/cli/flags.py),
# scripts/run_glue.py, scripts/main_job.py and the benchmarks all make the FinetuneConfig,
# TrainerConfig and OptimizerConfig of a run here, from plain values named after the flags.
@dataclasses.dataclass
class FinetuneRun:
  """The three configs of one fine-tuning run (what `finetune_run` returns)."""

  finetune: FinetuneConfig  # the task's shared settings: tokenizer, encoder, feature caches
  trainer: TrainerConfig
  optimizer: OptimizerConfig


def finetune_run(
    *, output_dir: str, albert_config: Optional[AlbertConfig] = None,
    albert_config_file: Optional[str] = None, init_checkpoint: Optional[str] = None,
    albert_hub_module_handle: Optional[str] = None, spm_model_file: Optional[str] = None,
    vocab_file: Optional[str] = None, do_lower_case: bool = True, max_seq_length: int = 512,
    cached_dir: Optional[str] = None, length_buckets: bool = True,
    num_workers: Optional[int] = None, init_skip: Tuple[str, ...] = (),
    features_only: bool = False, train_batch_size: int, eval_batch_size: int,
    predict_batch_size: Optional[int] = None, num_train_steps: Optional[int] = None,
    num_train_epochs: Optional[float] = None, steps_flag: str = "num_train_steps",
    save_checkpoints_steps: int = 1000, keep_checkpoint_max: int = 5,
    iterations_per_loop: int = 1000, enable_xla: bool = False, mixed_precision: str = "float32",
    seed: int = 12345, gradient_accumulation_steps: int = 1, recompute_grad: bool = False,
    optimizer: str = "adamw", learning_rate: float = 5e-5,
    num_warmup_steps: int = 0, warmup_proportion: Optional[float] = None) -> FinetuneRun:
  """The FinetuneConfig, TrainerConfig and OptimizerConfig of a fine-tuning run.

  Every argument is named after the flag of run_classifier.py / run_squad.py / run_race.py that
  sets it (`cached_dir`: --cached_dir, ...); the defaults are run_classifier.py's, but the batch
  sizes have none: each caller names its own (the scripts' --eval_batch_size defaults differ).

  Args:
    output_dir: the run directory (checkpoints, results; the default cache folder is inside).
    albert_config: the model's config; None reads `albert_config_file` (required unless a hub
      module brings its own, or `features_only`).
    albert_config_file: the config's file (also named in the Trainer's messages).
    init_checkpoint, albert_hub_module_handle: the pretrained weights (TF1 names) or encoder.
    spm_model_file, vocab_file, do_lower_case, max_seq_length: the tokenizer and the features.
    cached_dir, length_buckets, num_workers: where the feature caches go (None:
      <output_dir>/cache), batches padded to a few lengths (`default_buckets`) or to the cap,
      conversion processes (None: every core).
    init_skip: variable-name prefixes not read from `init_checkpoint`.
    features_only: --prepare_only: the caches alone, no model (no albert config needed).
    train_batch_size, eval_batch_size, predict_batch_size: global batches (predict None: eval's).
    num_train_steps, num_train_epochs: the run's length (steps, or epochs resolved by the
      Trainer); `steps_flag` is the flag the steps came from (named in errors).
    save_checkpoints_steps, keep_checkpoint_max, iterations_per_loop, enable_xla,
      mixed_precision, seed, gradient_accumulation_steps, recompute_grad: as the
      TrainerConfig fields of the same names.
    optimizer, learning_rate, num_warmup_steps, warmup_proportion: the OptimizerConfig.

  Example (the tiny model with the 30k-piece vocabulary, the 20-row GLUE files of the tests):

    tiny = AlbertConfig.from_json_file("configs/tiny/albert_config.json")
    run = finetune_run(output_dir="/tmp/rte", albert_config=tiny.replace(vocab_size=30000),
                       spm_model_file="tests/testdata/albert_spm/30k-clean.model",
                       max_seq_length=64, train_batch_size=8, eval_batch_size=8,
                       num_train_steps=4)
    task = ClassifierTask(ClassifierTaskConfig(run.finetune, task_name="rte",
                                               data_dir="tests/testdata/glue"))
    Trainer(task, run.trainer, run.optimizer).run(do_train=True, do_eval=True)
  """
  if albert_config is None and albert_config_file:
    albert_config = AlbertConfig.from_json_file(albert_config_file)
  if init_checkpoint and not albert_hub_module_handle:
    # A Hugging Face folder brings its config and tokenizer (explicit ones must agree).
    albert_config = checkpoint.config_for_checkpoint(albert_config, init_checkpoint)
    folder = checkpoint.hf_settings(init_checkpoint)
    if folder is not None and not (spm_model_file or vocab_file):
      spm_model_file = folder.spm_model_file
    if folder is not None and folder.spm_model_file and folder.do_lower_case != do_lower_case:
      raise FlagError(f"--do_lower_case={do_lower_case} disagrees with the tokenizer_config.json "
                      f"of {init_checkpoint} (do_lower_case {folder.do_lower_case}); pass "
                      f"--do_lower_case={folder.do_lower_case}")
  if albert_config is None and not (features_only or albert_hub_module_handle):
    raise FlagError("--albert_config_file is required (or --albert_hub_module_handle)")
  finetune = FinetuneConfig(
      albert_config=albert_config, output_dir=output_dir, spm_model_file=spm_model_file,
      vocab_file=vocab_file, do_lower_case=do_lower_case, max_seq_length=max_seq_length,
      cache_dir=cached_dir, hub_module_handle=albert_hub_module_handle,
      bucket_boundaries=default_buckets(max_seq_length) if length_buckets else None,
      num_workers=num_workers, seed=seed, init_skip=tuple(init_skip),
      features_only=features_only)
  trainer = TrainerConfig(
      output_dir=output_dir, train_batch_size=train_batch_size, eval_batch_size=eval_batch_size,
      predict_batch_size=predict_batch_size, num_train_steps=num_train_steps,
      num_train_epochs=num_train_epochs, save_checkpoints_steps=save_checkpoints_steps,
      keep_checkpoint_max=keep_checkpoint_max, iterations_per_loop=iterations_per_loop,
      max_eval_steps=None, init_checkpoint=init_checkpoint,
      albert_config_file=albert_config_file, enable_xla=enable_xla,
      mixed_precision=mixed_precision, seed=seed, steps_flag=steps_flag,
      gradient_accumulation_steps=gradient_accumulation_steps, recompute_grad=recompute_grad)
  optimizer_config = OptimizerConfig(optimizer=optimizer, learning_rate=learning_rate,
                                     num_warmup_steps=num_warmup_steps,
                                     warmup_proportion=warmup_proportion)
  return FinetuneRun(finetune, trainer, optimizer_config)
