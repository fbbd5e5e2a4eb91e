"""Synthetic pretraining records in the original's format, for tests of the input and the loop.

The text is a learnable toy language: each sequence repeats a short random pattern, so that
masked tokens can be predicted from the context and MLM accuracy rises quickly.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf


def _int64(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _float(values):
  return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def write_records(path: str, count: int, seq_length: int = 16, predictions: int = 3,
                  vocab_size: int = 1000, seed: int = 0, vary_predictions: bool = False) -> str:
  """Writes `count` examples to `path`; returns the path. `vary_predictions`: each example
  has 1 to `predictions` real masked positions (the rest padded, weight 0)."""
  rng = np.random.RandomState(seed)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with tf.io.TFRecordWriter(path) as writer:
    for _ in range(count):
      length = rng.randint(seq_length // 2, seq_length + 1)
      pattern = rng.randint(5, vocab_size, size=rng.randint(2, 4))
      body = np.resize(pattern, length - 3)
      split = rng.randint(1, length - 3)
      ids = np.concatenate([[2], body[:split], [3], body[split:], [3]])
      segments = np.array([0] * (split + 2) + [1] * (length - split - 2))
      label = int(rng.randint(0, 2))
      positions = np.sort(rng.choice(np.arange(1, length - 1), predictions, replace=False))
      masked_ids = ids[positions].copy()
      ids[positions] = 4  # [MASK]
      pad = seq_length - length
      weights = [1.0] * predictions
      if vary_predictions:
        real = rng.randint(1, predictions + 1)
        weights = [1.0] * real + [0.0] * (predictions - real)
      features = {
          "input_ids": _int64(np.pad(ids, (0, pad))),
          "input_mask": _int64([1] * length + [0] * pad),
          "segment_ids": _int64(np.pad(segments, (0, pad))),
          "token_boundary": _int64([1] * length + [0] * pad),
          "masked_lm_positions": _int64(positions),
          "masked_lm_ids": _int64(masked_ids),
          "masked_lm_weights": _float(weights),
          "next_sentence_labels": _int64([label]),
      }
      writer.write(tf.train.Example(
          features=tf.train.Features(feature=features)).SerializeToString())
  return path
