"""Records: the one `tf.train.Example` encoder, the pretraining format, TFRecord framing (TF-free).

This module owns the on-disk format of every record file the data jobs write:

* `feature_spec(max_seq_length, max_predictions_per_seq)`: the features of the original's
  pretraining records, names, types and lengths (ARCHITECTURE.md, item 4): `input_ids,
  input_mask, segment_ids, token_boundary` int64 [max_seq_length]; `masked_lm_positions,
  masked_lm_ids` int64 and `masked_lm_weights` float [max_predictions_per_seq];
  `next_sentence_labels` int64 [1] (the SOP label).
* `ExampleEncoder`: the serialized `tf.train.Example` protocol buffer, written by hand (the wire
  format is small and fixed) so that the worker processes never import TensorFlow (an import
  costs ~700 MB and ~4 s per process): keys encoded once, int64 values packed from a varint
  table. Every converter uses it: pretraining instances (`encode_instance`, the original's
  order), the GLUE, SQuAD and RACE feature caches (`encode_example` for a whole dict, or entry
  by entry where a converter keeps the entries that repeat).
* `frame_records`: TFRecord framing (length, masked CRC-32C of the length, data, masked CRC-32C of
  the data). CRC-32C is computed with numpy for a whole batch of records at once (slicing-by-8 over
  right-aligned records), which is exact and fast enough that framing costs a few percent.
* `AtomicRecordFile`: writes to a temporary name in the target directory, renames on success and
  removes the temporary file on failure, so a file under its final name is always complete.

Reading back uses TensorFlow (the input pipeline, tests, `inspection.py`): `parse_spec(schema)`
gives `tf.io.parse_single_example`'s spec of any schema (`parse_spec(feature_spec(...))` is the
original's `name_to_features`), importing TensorFlow only when called.
"""

from __future__ import annotations

import os
import struct
import tempfile
from typing import Dict, List, Sequence, Tuple

import numpy as np

from albert import files
from albert.errors import OutputError, output_error

FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids", "token_boundary", "masked_lm_positions",
                 "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")


def feature_spec(max_seq_length: int, max_predictions_per_seq: int) -> Dict[str, Tuple[str, int]]:
  """Feature name -> (dtype name, length), exactly the original's records."""
  return {
      "input_ids": ("int64", max_seq_length),
      "input_mask": ("int64", max_seq_length),
      "segment_ids": ("int64", max_seq_length),
      "token_boundary": ("int64", max_seq_length),
      "masked_lm_positions": ("int64", max_predictions_per_seq),
      "masked_lm_ids": ("int64", max_predictions_per_seq),
      "masked_lm_weights": ("float32", max_predictions_per_seq),
      "next_sentence_labels": ("int64", 1),
  }


def parse_spec(schema: Dict[str, Tuple[str, int]]):
  """`tf.io.parse_single_example`'s spec of a schema `{name: (dtype name, length)}` (such as
  `feature_spec(...)`, the original's `name_to_features`); imports TensorFlow when called."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  dtypes = {"int64": tf.int64, "float32": tf.float32}
  return {name: tf.io.FixedLenFeature([length], dtypes[dtype])
          for name, (dtype, length) in schema.items()}


# ---------------------------------------------------------------------------------------------
# Protocol buffer wire format (only what tf.train.Example needs).


def varint(value: int) -> bytes:
  """The protobuf varint of a non-negative int."""
  out = bytearray()
  while True:
    byte = value & 0x7F
    value >>= 7
    if value:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def varint_table(size: int) -> List[bytes]:
  """`[varint(i) for i in range(size)]`, built quickly (values below 2**21 in closed form)."""
  table = [bytes((i,)) for i in range(min(size, 128))]
  table += [bytes((i & 0x7F | 0x80, i >> 7)) for i in range(128, min(size, 1 << 14))]
  table += [bytes((i & 0x7F | 0x80, (i >> 7) & 0x7F | 0x80, i >> 14))
            for i in range(1 << 14, min(size, 1 << 21))]
  table += [varint(i) for i in range(1 << 21, size)]
  return table


_SMALL_VARINTS = varint_table(1 << 14)


def _field(tag: bytes, payload: bytes) -> bytes:
  """A length-delimited protobuf field: tag, varint length, payload."""
  size = len(payload)
  return tag + (_SMALL_VARINTS[size] if size < 16384 else varint(size)) + payload


class ExampleEncoder:
  """The one `tf.train.Example` encoder of the data jobs, without TensorFlow.

  Message layout: Example.features(1) -> Features.feature(1, map entries key(1) / value(2)) ->
  Feature.int64_list(3) or float_list(2) -> packed `value`(1). Keys are encoded once per name;
  int64 values are packed from a varint table (0/1 masks and other values below 128 are their
  own bytes), negative ones as their two's complement, as protobuf does; floats as packed
  little-endian float32. Entries are written in the order given, so a converter may keep
  entries that do not change (a mask of each length, a label) and join them per record.

  Args:
    table_size: values below it are packed by table lookup (the vocabulary size is enough for
      ids); larger ones are computed.
  """

  def __init__(self, table_size: int = 1 << 17):
    self._varints = varint_table(max(table_size, 128))
    self._keys: Dict[str, bytes] = {}

  def key(self, name: str) -> bytes:
    """The encoded map key of a feature name."""
    key = self._keys.get(name)
    if key is None:
      key = self._keys[name] = _field(b"\x0a", name.encode("utf-8"))
    return key

  def packed(self, values: Sequence[int]) -> bytes:
    """Packed varints of int64 values (a list or tuple of ints, or any iterable of ints)."""
    if not isinstance(values, (list, tuple)):
      values = [int(v) for v in values]
    if not values:
      return b""
    high = max(values)
    table = self._varints
    if high < 128:
      try:
        return bytes(values)
      except ValueError:  # a negative value
        pass
    elif high < len(table) and min(values) >= 0:
      return b"".join([table[v] for v in values])
    return b"".join([varint(int(v) % (1 << 64)) for v in values])

  def packed_ids(self, values: Sequence[int]) -> bytes:
    """`packed(values)` of a list of ids or positions (ints in [0, table size)), by table lookup
    alone: the hot path of the converters (a value beyond the table raises IndexError)."""
    table = self._varints
    return b"".join([table[v] for v in values])

  def int64(self, name: str, packed: bytes) -> bytes:
    """The map entry of an int64 feature from its packed values (`packed(values)`)."""
    key = self._keys.get(name) or self.key(name)
    return _field(b"\x0a", key + _field(b"\x12", _field(b"\x1a", _field(b"\x0a", packed))))

  def float32(self, name: str, values: Sequence[float]) -> bytes:
    """The map entry of a float feature."""
    values = list(values)
    packed = struct.pack(f"<{len(values)}f", *values)
    key = self._keys.get(name) or self.key(name)
    return _field(b"\x0a", key + _field(b"\x12", _field(b"\x12", _field(b"\x0a", packed))))

  @staticmethod
  def example(entries: Sequence[bytes]) -> bytes:
    """The serialized Example of map entries (`int64`, `float32`), in their order."""
    return _field(b"\x0a", b"".join(entries))

  def encode(self, features: Dict[str, Tuple[str, Sequence]]) -> bytes:
    """Serializes `{name: ("int64" | "float32", values)}`, features in the given order."""
    entries = []
    for name, (kind, values) in features.items():
      if kind == "int64":
        entries.append(self.int64(name, self.packed(values)))
      elif kind == "float32":
        entries.append(self.float32(name, values))
      else:
        raise ValueError(f"feature {name!r}: kind must be int64 or float32, got {kind!r}")
    return self.example(entries)

  def encode_instance(self, max_seq_length: int, max_predictions_per_seq: int,
                      input_ids: Sequence[int], segment_ids: Sequence[int],
                      token_boundary: Sequence[int], masked_lm_positions: Sequence[int],
                      masked_lm_ids: Sequence[int], next_sentence_label: int) -> bytes:
    """One pretraining instance as the original's record (`feature_spec`): padded to the fixed
    lengths (ids and positions 0, weights 0.0), features in the original's order."""
    length = len(input_ids)
    pad = max_seq_length - length
    num_masked = len(masked_lm_positions)
    pad_p = max_predictions_per_seq - num_masked
    if pad < 0 or pad_p < 0:
      raise ValueError(f"instance of {length} tokens / {num_masked} predictions exceeds "
                       f"max_seq_length={max_seq_length} / "
                       f"max_predictions_per_seq={max_predictions_per_seq}")
    zeros = b"\x00" * pad
    int64, packed = self.int64, self.packed_ids
    return self.example([
        int64("input_ids", packed(input_ids) + zeros),
        int64("input_mask", b"\x01" * length + zeros),
        int64("segment_ids", bytes(segment_ids) + zeros),
        int64("token_boundary", bytes(token_boundary) + zeros),
        int64("masked_lm_positions", packed(masked_lm_positions) + b"\x00" * pad_p),
        int64("masked_lm_ids", packed(masked_lm_ids) + b"\x00" * pad_p),
        self.float32("masked_lm_weights", [1.0] * num_masked + [0.0] * pad_p),
        int64("next_sentence_labels", bytes([next_sentence_label])),
    ])


_DEFAULT_ENCODER: List[ExampleEncoder] = []


def encode_example(features: Dict[str, Tuple[str, Sequence]]) -> bytes:
  """`ExampleEncoder().encode(features)` with one shared encoder (built on first use)."""
  if not _DEFAULT_ENCODER:
    _DEFAULT_ENCODER.append(ExampleEncoder())
  return _DEFAULT_ENCODER[0].encode(features)


# ---------------------------------------------------------------------------------------------
# CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) and TFRecord framing.


def _crc_table() -> np.ndarray:
  """table[b]: the CRC register after feeding byte b into a zero register."""
  poly = 0x82F63B78
  table = np.zeros(256, dtype=np.uint32)
  for b in range(256):
    crc = b
    for _ in range(8):
      crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    table[b] = crc
  return table


_TABLE = _crc_table()
_MASK_DELTA = 0xA282EAD8
_position_tables = np.zeros((0, 256), dtype=np.uint32)


def _tables_up_to(width: int) -> np.ndarray:
  """[width, 256]: row d is the contribution of a byte followed by d more bytes (zero register).

  CRC-32C is linear: with a zero initial register, the CRC of a message is the XOR of each byte's
  contribution, which depends only on the byte and on how many bytes follow it.
  """
  global _position_tables
  have = _position_tables.shape[0]
  if have < width:
    size = max(width, 2 * have, 1024)
    tables = np.zeros((size, 256), dtype=np.uint32)
    tables[:have] = _position_tables
    if have == 0:
      tables[0] = _TABLE
      have = 1
    for d in range(have, size):
      prev = tables[d - 1]
      tables[d] = (prev >> np.uint32(8)) ^ _TABLE[prev & np.uint32(0xFF)]
    _position_tables = tables
  return _position_tables


def crc32c_batch(messages: Sequence[bytes], rows_per_step: int = 256) -> np.ndarray:
  """CRC-32C of each message (uint32 array), for a whole batch with a few numpy operations.

  Messages are right-aligned in a zero-padded matrix. The initial register value 0xFFFFFFFF is
  folded into each message's first four bytes, which makes the computation start from a zero
  register, where leading zero bytes contribute nothing; then each message's CRC is the XOR of
  its bytes' position-dependent contributions (`_tables_up_to`). Exact for messages of 4 bytes
  or more; shorter ones use the byte-wise loop.
  """
  count = len(messages)
  if count == 0:
    return np.zeros(0, dtype=np.uint32)
  lengths = np.fromiter((len(m) for m in messages), dtype=np.int64, count=count)
  width = max(int(lengths.max()), 1)
  flat_tables = _tables_up_to(width).reshape(-1)
  column_base = np.arange(width - 1, -1, -1, dtype=np.int64) * 256  # column p: width-1-p follow
  crc = np.zeros(count, dtype=np.uint32)
  for first in range(0, count, rows_per_step):
    rows = range(first, min(count, first + rows_per_step))
    data = np.zeros((len(rows), width), dtype=np.uint8)
    for r, row in enumerate(rows):
      message = messages[row]
      if len(message) >= 4:
        data[r, width - len(message):] = np.frombuffer(message, dtype=np.uint8)
        data[r, width - len(message):width - len(message) + 4] ^= 0xFF
    contributions = flat_tables[column_base + data]
    crc[first:first + len(rows)] = np.bitwise_xor.reduce(contributions, axis=1)
  crc ^= np.uint32(0xFFFFFFFF)
  for row in np.nonzero(lengths < 4)[0]:
    crc[row] = crc32c_bytewise(messages[row])
  return crc


def crc32c_bytewise(message: bytes) -> int:
  """Reference CRC-32C, one byte at a time (slow; for short messages and tests)."""
  table = _TABLE
  crc = 0xFFFFFFFF
  for byte in message:
    crc = int(table[(crc ^ byte) & 0xFF]) ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _mask(crc: np.ndarray) -> np.ndarray:
  crc = crc.astype(np.uint64)
  rotated = ((crc >> np.uint64(15)) | (crc << np.uint64(17))) & np.uint64(0xFFFFFFFF)
  return ((rotated + np.uint64(_MASK_DELTA)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def frame_records(records: Sequence[bytes]) -> List[bytes]:
  """Frames each record as TFRecord: u64 length, masked crc(length), data, masked crc(data)."""
  if not records:
    return []
  headers = [struct.pack("<Q", len(r)) for r in records]
  header_crcs = _mask(crc32c_batch(headers))
  data_crcs = _mask(crc32c_batch(records))
  return [h + struct.pack("<I", int(hc)) + r + struct.pack("<I", int(dc))
          for h, hc, r, dc in zip(headers, header_crcs, records, data_crcs)]


# ---------------------------------------------------------------------------------------------
# Atomic files.


class AtomicRecordFile:
  """A file written under a temporary name in its directory and renamed into place on `commit`.

  Used as a context manager: an exception (or a missing `commit`) removes the temporary file, so a
  file under its final name is always complete. A write that fails (a full disk, no permission)
  is an `OutputError` naming the final path, and the temporary file is removed.
  """

  TEMP_MARK = ".tmp-"

  def __init__(self, path: str):
    self.path = path
    self.temp_path = None
    self._file = None
    # A remote shard (gs://, s3://) is written to a local temporary file and uploaded on
    # commit in one piece: an object store cannot rename, and shows an object only complete.
    self.remote = files.is_remote(path)
    directory = tempfile.gettempdir() if self.remote else os.path.dirname(os.path.abspath(path))
    try:
      os.makedirs(directory, exist_ok=True)
      fd, self.temp_path = tempfile.mkstemp(
          prefix=f".{os.path.basename(path)}{self.TEMP_MARK}", dir=directory)
      self._file = os.fdopen(fd, "wb")
    except OSError as error:
      self._fail(error)
    self.num_records = 0
    self.num_bytes = 0

  def _fail(self, error: OSError) -> None:
    """Removes the temporary file; raises an OutputError naming the final path."""
    self.abort()
    if isinstance(error, OutputError):
      raise error
    error.filename = self.path
    raise output_error(error) from None

  def write_framed(self, framed: bytes) -> None:
    try:
      self._file.write(framed)
    except OSError as error:
      self._fail(error)
    self.num_records += 1
    self.num_bytes += len(framed)

  def commit(self) -> None:
    try:
      self._file.flush()
      os.fsync(self._file.fileno())
      self._file.close()
      umask = os.umask(0)
      os.umask(umask)
      os.chmod(self.temp_path, 0o666 & ~umask)
      files.upload(self.temp_path, self.path)
    except OSError as error:
      self._fail(error)

  def abort(self) -> None:
    if self._file is not None and not self._file.closed:
      try:
        self._file.close()
      except OSError:  # the buffered rest cannot be written either (full disk): dropped
        pass
    if self.temp_path and os.path.exists(self.temp_path):
      os.remove(self.temp_path)

  def __enter__(self) -> "AtomicRecordFile":
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    if exc_type is not None or not self._file.closed:
      self.abort()
