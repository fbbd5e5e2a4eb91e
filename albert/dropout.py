"""Dropout whose random state is part of the checkpoint, so that a resumed run is exact.

Keras' `Dropout` draws from random ops whose state lives outside every checkpoint: a run that is
killed and resumed would draw other masks than an uninterrupted one. Here each layer owns a
seeded `tf.random.Generator` (its state is a variable tracked by `tf.train.Checkpoint`, but not
one of the layer's `weights`, so TF1-name checkpoints are unchanged). The seed comes from
Python's `random` at construction, which `tf_keras.utils.set_random_seed` seeds: building the
same model after the same seed gives the same masks. It works under tf.distribute (each replica
draws its own stream) and XLA.
"""

from __future__ import annotations

import random
from typing import Optional

import tensorflow as tf
import tf_keras


class SeededDropout(tf_keras.layers.Layer):
  """Inverted dropout with probability `rate` of dropping, active only when `training` is true.

  Example:
    >>> drop = SeededDropout(0.5, seed=1)
    >>> drop(tf.ones([2, 3]), training=False).numpy().tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
  """

  def __init__(self, rate: float, seed: Optional[int] = None, **kwargs):
    super().__init__(**kwargs)
    if not 0 <= rate < 1:
      raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    self.rate = float(rate)
    self.seed = random.randint(0, 2**31 - 1) if seed is None else int(seed)
    self.supports_masking = True

  def build(self, input_shape):
    if self.rate > 0:
      self.generator = tf.random.Generator.from_seed(self.seed)
    super().build(input_shape)

  def call(self, x, training=None):
    if not training or self.rate == 0:
      return x
    keep = self.generator.uniform(tf.shape(x), dtype=tf.float32) >= self.rate
    return tf.where(keep, x / tf.cast(1.0 - self.rate, x.dtype), tf.zeros_like(x))

  def get_config(self):
    return {**super().get_config(), "rate": self.rate, "seed": self.seed}
