"""Reproducible randomness, work units, output shards and the bounded shuffle.

This module owns the parts of the run that decide *where* things go, so that the output depends
only on the seed and the settings, never on the number of workers or on the order in which they
finish:

* `derive_seed(seed, *parts)`: an independent generator seed for any named piece of work; the
  instances of (dupe d, document i) use `random.Random(derive_seed(seed, "instances", d, i))`.
* `Permutation`: a keyed pseudo-random permutation of [0, n) in O(1) memory (a Feistel network
  with cycle walking). The run visits the `dupe_factor x documents` work units in this order,
  which plays the role of the original's shuffles of documents and instances.
* `shard_ranges`: output shard s gets the units at permuted positions [s*n/S, (s+1)*n/S).
* `ShuffleBuffer`: a seeded bounded shuffle of each shard's instances (a full shuffle when the
  shard fits in the buffer).
* `output_paths`: `--output_file` as the original's comma-separated list, or one name expanded to
  `--num_output_shards` files (`name-00003-of-00100`, or a `{shard}` / `{num_shards}` pattern).
* `SettingsMarker`: an empty hidden file named after the settings' fingerprint next to the first
  output; shards present beside a marker with the same fingerprint are complete and are skipped
  by a rerun (an empty file is also a valid TFRecord file, so globs such as `out/*` stay safe).
  `resume_plan` lists the shards still to write; `replace_outputs` removes the files of other
  settings and writes the marker of these.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

from albert import files

_MASK64 = (1 << 64) - 1


def derive_seed(seed: int, *parts: Any) -> int:
  """A 128-bit seed derived from `seed` and the parts (stable across runs and platforms)."""
  text = "/".join([str(int(seed))] + [str(p) for p in parts])
  return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest(), "little")


def _mix64(z: int) -> int:
  z = (z + 0x9E3779B97F4A7C15) & _MASK64
  z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
  z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
  return z ^ (z >> 31)


class Permutation:
  """A pseudo-random bijection of [0, size) keyed by `key`; `perm(i)` in O(1) time and memory."""

  ROUNDS = 6

  def __init__(self, size: int, key: int):
    self.size = size
    bits = max(2, (max(size, 1) - 1).bit_length())
    bits += bits % 2
    self._half = bits // 2
    self._mask = (1 << self._half) - 1
    self._keys = [derive_seed(key, "round", r) & _MASK64 for r in range(self.ROUNDS)]

  def _encrypt(self, x: int) -> int:
    half, mask = self._half, self._mask
    left, right = x >> half, x & mask
    for k in self._keys:
      left, right = right, left ^ (_mix64(right ^ k) & mask)
    return (left << half) | right

  def __call__(self, index: int) -> int:
    if not 0 <= index < self.size:
      raise IndexError(f"{index} is outside [0, {self.size})")
    x = self._encrypt(index)
    while x >= self.size:
      x = self._encrypt(x)
    return x


def shard_ranges(num_units: int, num_shards: int) -> List[Tuple[int, int]]:
  """[start, stop) of the permuted unit positions of each shard (sizes differ by at most 1)."""
  return [(s * num_units // num_shards, (s + 1) * num_units // num_shards)
          for s in range(num_shards)]


class ShuffleBuffer:
  """A seeded shuffle of a stream through a buffer of at most `size` items.

  `push` returns an item to emit once the buffer is full (a random one, replaced by the new item);
  `drain` emits the rest in random order. With `size` >= the stream length this is a uniform
  shuffle of the whole stream; `size` 0 keeps the order.
  """

  def __init__(self, size: int, rng: random.Random):
    self.size = size
    self.rng = rng
    self.items: List[Any] = []

  def push(self, item: Any) -> Optional[Any]:
    if self.size == 0:
      return item
    if len(self.items) < self.size:
      self.items.append(item)
      return None
    j = self.rng.randrange(self.size)
    out, self.items[j] = self.items[j], item
    return out

  def drain(self) -> Iterator[Any]:
    self.rng.shuffle(self.items)
    items, self.items = self.items, []
    yield from items


def output_paths(output_file: str, num_output_shards: int = 0,
                 flag: str = "--output_file") -> List[str]:
  """The output files: the original's comma-separated list, or one name/pattern x num shards."""
  names = [p.strip() for p in (output_file or "").split(",") if p.strip()]
  if not names:
    raise ValueError(f"{flag} is required: the TFRecord file(s) to write")
  if num_output_shards < 0:
    raise ValueError(f"--num_output_shards={num_output_shards} must be >= 0")
  if num_output_shards:
    if len(names) != 1:
      raise ValueError(f"{flag} must be a single name or pattern with --num_output_shards "
                       f"(got {len(names)} names)")
    name = names[0]
    if "{" in name:
      try:
        paths = [name.format(shard=s, num_shards=num_output_shards)
                 for s in range(num_output_shards)]
      except (KeyError, IndexError, ValueError) as e:
        example = "train-{shard:05d}-of-{num_shards:05d}.tfrecord"
        raise ValueError(f"{flag}={name!r}: a pattern may only use {{shard}} and "
                         f"{{num_shards}} (e.g. {example}): {e}") from None
    else:
      paths = [f"{name}-{s:05d}-of-{num_output_shards:05d}" for s in range(num_output_shards)]
  else:
    paths = names
  duplicates = sorted({p for p in paths if paths.count(p) > 1})
  if duplicates:
    raise ValueError(f"{flag}: output file {duplicates[0]!r} is named more than once")
  for path in paths:
    if files.isdir(path):
      raise ValueError(f"{flag}: {path!r} is a directory; name the output file(s)")
  return paths


class SettingsMarker:
  """The fingerprint of the settings that wrote the shards, as an empty hidden file."""

  def __init__(self, first_output: str, fingerprint: str):
    self._prefix = os.path.join(_folder(first_output),
                                f".{os.path.basename(first_output)}.settings-")
    self.path = self._prefix + fingerprint[:20]

  def exists(self) -> bool:
    return files.exists(self.path)

  def others(self) -> List[str]:
    return [p for p in _starting_with(self._prefix) if p != self.path]

  def write(self) -> None:
    for path in self.others():
      files.remove(path)
    files.write_bytes(self.path, b"")


def _folder(path: str) -> str:
  return os.path.dirname(path) if files.is_remote(path) else os.path.dirname(os.path.abspath(path))


def _starting_with(prefix: str) -> List[str]:
  """The paths (local or remote) that start with `prefix`, sorted."""
  directory, start = os.path.split(prefix)
  if not files.isdir(directory):
    return []
  return sorted(os.path.join(directory, n) for n in files.listdir(directory) if n.startswith(start))


def stale_temp_files(paths: Sequence[str], mark: str) -> List[str]:
  """Temporary files left by an interrupted write of any of `paths` (local ones: a remote shard
  is uploaded complete)."""
  found = []
  for path in paths:
    if not files.is_remote(path):
      found.extend(_starting_with(os.path.join(_folder(path),
                                               f".{os.path.basename(path)}{mark}")))
  return found


def resume_plan(outputs: Sequence[str], fingerprint: str, log: Callable[[str], None]
                ) -> Tuple[SettingsMarker, bool, List[int]]:
  """(marker, resume, shards to write): shards beside a marker of these settings are complete."""
  marker = SettingsMarker(outputs[0], fingerprint)
  resume = marker.exists()
  todo = [s for s, path in enumerate(outputs) if not (resume and files.exists(path))]
  if len(todo) < len(outputs):
    log(f"{len(outputs) - len(todo)} of {len(outputs)} output file(s) are complete from an "
        "earlier run with the same settings; skipping them")
  return marker, resume, todo


def replace_outputs(outputs: Sequence[str], marker: SettingsMarker,
                    log: Callable[[str], None]) -> None:
  """Removes output files of other settings and writes the marker of these."""
  old = [p for p in outputs if files.exists(p)]
  if old:
    log(f"{len(old)} existing output file(s) were not written with these settings; "
        "replacing them")
    for path in old:
      files.remove(path)
  marker.write()
