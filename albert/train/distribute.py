"""The tf.distribute strategy of a run: one device, several GPUs, several workers, or a TPU.

`make_strategy(DistributeConfig(...))` is what every script uses. With `strategy="auto"`: a
TPU when `use_tpu`, MultiWorkerMirroredStrategy when `TF_CONFIG` names more than one task,
MirroredStrategy over the GPUs when there are several, otherwise one device (the default
strategy: the GPU if there is one, else the CPU). `distributed_dataset` feeds a task's split to
every replica of a strategy.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Optional

import tensorflow as tf

from albert.errors import FlagError
from albert.train.task import Task

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu")


@dataclasses.dataclass
class DistributeConfig:
  strategy: str = "auto"
  num_gpus: Optional[int] = None  # mirrored strategies: GPUs to use (default all)
  use_tpu: bool = False
  tpu_name: Optional[str] = None
  tpu_zone: Optional[str] = None
  gcp_project: Optional[str] = None
  master: Optional[str] = None

  def __post_init__(self):
    if self.strategy not in STRATEGIES:
      raise FlagError(f"--distribution_strategy must be one of {', '.join(STRATEGIES)}, "
                       f"got {self.strategy!r}")


def _tf_config_workers() -> int:
  raw = os.environ.get("TF_CONFIG")
  if not raw:
    return 0
  try:
    cluster = json.loads(raw).get("cluster", {})
  except json.JSONDecodeError as error:
    raise FlagError(f"TF_CONFIG is not valid JSON: {error}") from None
  return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def _tpu_strategy(config: DistributeConfig) -> tf.distribute.Strategy:
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
      tpu=config.tpu_name or config.master or "", zone=config.tpu_zone, project=config.gcp_project)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def make_strategy(config: DistributeConfig) -> tf.distribute.Strategy:
  """The strategy the config asks for (see the module docstring for `auto`)."""
  kind = config.strategy
  if kind == "auto":
    if config.use_tpu:
      kind = "tpu"
    elif _tf_config_workers() > 1:
      kind = "multi_worker_mirrored"
    elif len(tf.config.list_logical_devices("GPU")) > 1 and config.num_gpus != 1:
      kind = "mirrored"
    else:
      kind = "one_device"
  if kind == "tpu":
    return _tpu_strategy(config)
  if kind == "multi_worker_mirrored":
    return tf.distribute.MultiWorkerMirroredStrategy()
  gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
  if config.num_gpus is not None:
    if config.num_gpus > len(gpus):
      raise FlagError(f"--num_gpus={config.num_gpus} but only {len(gpus)} GPU(s) are visible")
    gpus = gpus[:config.num_gpus]
  if kind == "mirrored":
    return tf.distribute.MirroredStrategy(gpus or ["/cpu:0"])
  # One device: the default strategy (it places work on the GPU when there is one). Unlike
  # OneDeviceStrategy, its input iterator can be checkpointed, which makes resuming instant.
  return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the shared outputs (checkpoints, summaries, results)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not getattr(resolver, "task_type", None):
    return True
  return resolver.task_type == "chief" or (
      resolver.task_type == "worker" and resolver.task_id == 0
      and "chief" not in resolver.cluster_spec().as_dict())


def num_workers(strategy: tf.distribute.Strategy) -> int:
  """How many processes (chief and workers) run the strategy's replicas together."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not getattr(resolver, "task_type", None):
    return 1
  spec = resolver.cluster_spec().as_dict()
  return max(1, sum(len(spec.get(kind, [])) for kind in ("chief", "worker")))


def make_stop_agreement(strategy: tf.distribute.Strategy) -> Callable[[bool], bool]:
  """`agreed(requested) -> bool`: whether any worker of the run was asked to stop.

  A preemption (SIGTERM) reaches one machine; its peers must stop at the same step, or they
  wait forever in the next collective. Every worker calls `agreed` at the same point of its
  loop; on several workers its flag is summed over all of them (one small all-reduce); on one
  process it is the flag itself.
  """
  if num_workers(strategy) <= 1:
    return lambda requested: requested

  @tf.function
  def asked(flag):
    per_replica = strategy.run(lambda: tf.identity(flag))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

  return lambda requested: bool(asked(tf.constant(float(requested))).numpy() > 0)


def distributed_dataset(strategy: tf.distribute.Strategy, task: Task, split: str,
                        global_batch: int, skip_steps: int = 0):
  """The task's batches of `split` on every replica (`global_batch` split among them); the
  batches of the first `skip_steps` global steps are skipped (a resume on several devices)."""
  def dataset_fn(context: tf.distribute.InputContext):
    dataset = task.build_dataset(split, context.get_per_replica_batch_size(global_batch), context)
    if skip_steps:  # each pipeline feeds its local replicas one batch each per step
      local_replicas = context.num_replicas_in_sync // context.num_input_pipelines
      dataset = dataset.skip(skip_steps * local_replicas)
    return dataset
  return strategy.distribute_datasets_from_function(dataset_fn)
