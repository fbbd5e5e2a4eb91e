"""GLUE examples -> the original's features and records (TF-free).

* `convert_example`: the original's `convert_single_example`: `[CLS] A [SEP] B [SEP]` (an empty
  text_b makes a single sentence), its `_truncate_seq_pair` (`truncate_seq_pair`: pop from the
  end of the longer list, from B when equal; total L - 3), single sentences cut to L - 2,
  segment ids 1 from B through the last `[SEP]`, zero padding, the label's index (a float for
  STS-B), `is_real_example` 1, plus the unpadded length.
* `FeatureConverter` computes the same features faster (batched SentencePiece calls) and
  serializes them as the original's `tf.train.Example` (`feature_schema`: `input_ids,
  input_mask, segment_ids, label_ids, is_real_example`, int64 except STS-B's float label),
  byte for byte what `albert.data.records.encode_example` writes (a multi-label custom task's
  `label_ids` is one 0/1 per label: `feature_schema(..., num_multi_labels=L)`), through the shared
  `records.ExampleEncoder` with the entries that repeat (a mask of each length, each label)
  kept.
* `check_max_seq_length`: the one check of `--max_seq_length` (room for `[CLS]`, `[SEP]`,
  `[SEP]`).

The parallel, cached conversion of a whole split is in `cache.py`.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple, Union

from albert import tokenization
from albert.data import records as records_lib
from albert.data.glue.reader import InputExample
from albert.errors import DataError, FlagError

FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids", "label_ids", "is_real_example")


def feature_schema(max_seq_length: int, is_regression: bool = False,
                   num_multi_labels: int = 0) -> Dict[str, Tuple[str, int]]:
  """The original's record features: name -> (dtype name, length), for the input pipeline;
  `num_multi_labels` > 0: a multi-label task's 0/1 per label."""
  return {"input_ids": ("int64", max_seq_length), "input_mask": ("int64", max_seq_length),
          "segment_ids": ("int64", max_seq_length),
          "label_ids": ("float32" if is_regression else "int64", max(1, num_multi_labels)),
          "is_real_example": ("int64", 1)}


@dataclasses.dataclass
class InputFeatures:
  """The original's `InputFeatures`, plus `length` (tokens before padding)."""
  input_ids: List[int]
  input_mask: List[int]
  segment_ids: List[int]
  label_id: Union[int, float, List[int]]
  is_real_example: bool = True
  length: int = 0

  def as_record_features(self, is_regression: bool) -> Dict[str, Tuple[str, Sequence]]:
    """`{name: (kind, values)}` for `records.encode_example`, in the original's order."""
    return {"input_ids": ("int64", self.input_ids), "input_mask": ("int64", self.input_mask),
            "segment_ids": ("int64", self.segment_ids),
            "label_ids": ("float32" if is_regression else "int64",
                          self.label_id if isinstance(self.label_id, list) else [self.label_id]),
            "is_real_example": ("int64", [int(self.is_real_example)])}


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_length: int) -> None:
  """The original's `_truncate_seq_pair`: pops from the longer list (B when equal), in place."""
  while len(tokens_a) + len(tokens_b) > max_length:
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def _assemble(ids_a: List[int], ids_b: Optional[List[int]], cls_id: int, sep_id: int,
              max_seq_length: int) -> Tuple[List[int], int]:
  """Truncated `[CLS] A [SEP] (B [SEP])` ids and the number of segment-0 positions."""
  if ids_b:
    truncate_seq_pair(ids_a, ids_b, max_seq_length - 3)
    ids = [cls_id] + ids_a + [sep_id]
    first = len(ids)
    return ids + ids_b + [sep_id], first
  ids = [cls_id] + ids_a[:max_seq_length - 2] + [sep_id]
  return ids, len(ids)


def label_id(example: InputExample, label_map: Optional[Dict[str, int]]
             ) -> Union[int, float, List[int]]:
  """The label's index (the original's `label_map[label]`), the STS-B score as a float, or for
  a multi-label example (a tuple of labels) one 0/1 per label of the map."""
  if label_map is None:
    return float(example.label)
  if isinstance(example.label, tuple):
    hot = [0] * len(label_map)
    for name in example.label:
      if name not in label_map:
        raise DataError(f"example {example.guid!r}: label {name!r} is not one of "
                        f"{', '.join(map(str, label_map))}")
      hot[label_map[name]] = 1
    return hot
  if example.label not in label_map:
    raise DataError(f"example {example.guid!r}: label {example.label!r} is not one of "
                    f"{', '.join(map(str, label_map))}")
  return label_map[example.label]


def _label_map(label_list: Sequence[Optional[str]], is_regression: bool):
  return None if is_regression else {label: i for i, label in enumerate(label_list)}


def check_max_seq_length(max_seq_length: int) -> int:
  """`--max_seq_length` of GLUE features: room for `[CLS]`, `[SEP]`, `[SEP]`."""
  if max_seq_length < 3:
    raise FlagError(f"--max_seq_length={max_seq_length}: needs room for [CLS], [SEP], [SEP]")
  return max_seq_length


def convert_example(example: InputExample, label_list: Sequence[Optional[str]],
                    max_seq_length: int, tokenizer: tokenization.FullTokenizer,
                    is_regression: bool = False) -> InputFeatures:
  """The original's `convert_single_example`, through `tokenizer.tokenize` (reference path)."""
  check_max_seq_length(max_seq_length)
  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = tokenizer.tokenize(example.text_b) if example.text_b else None
  if tokens_b:
    truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"] + tokens_b + ["[SEP]"]
    segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
  else:
    tokens = ["[CLS]"] + tokens_a[:max_seq_length - 2] + ["[SEP]"]
    segment_ids = [0] * len(tokens)
  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  length = len(input_ids)
  pad = max_seq_length - length
  return InputFeatures(input_ids=input_ids + [0] * pad, input_mask=[1] * length + [0] * pad,
                       segment_ids=segment_ids + [0] * pad,
                       label_id=label_id(example, _label_map(label_list, is_regression)),
                       is_real_example=True, length=length)


class FeatureConverter:
  """`convert_example` for many examples at once, and their serialized records.

  With a SentencePiece model the texts of a batch are encoded by one `encode` call; a text with a
  piece that ends in `<digit>,` (the original's re-split quirk) is encoded again by
  `tokenization.encode_ids`, so that ids always equal `convert_tokens_to_ids(tokenize(text))`.
  Records are built by the shared `records.ExampleEncoder`, with the entries that repeat kept;
  `encode_features` gives the bytes of `records.encode_example(features.as_record_features(...))`.
  """

  def __init__(self, tokenizer: tokenization.FullTokenizer, label_list: Sequence[Optional[str]],
               max_seq_length: int, is_regression: bool = False, multi_label: bool = False):
    self.tokenizer = tokenizer
    self.max_seq_length = check_max_seq_length(max_seq_length)
    self.is_regression = is_regression
    self.multi_label = multi_label
    self.label_map = _label_map(label_list, is_regression)
    self.cls_id, self.sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    self._encoder = records_lib.ExampleEncoder(len(tokenizer.vocab) + 1)
    sp = tokenizer.sp_model
    self._unk = sp.unk_id() if sp is not None else None

  # ---------------------------------------------------------------------------- tokenizing
  def encode_texts(self, texts: Sequence[str]) -> List[List[int]]:
    """`convert_tokens_to_ids(tokenize(text))` for each text."""
    tok = self.tokenizer
    sp = tok.sp_model
    if sp is None or tok.fix_digit_comma_split:
      return [tok.convert_tokens_to_ids(tok.tokenize(t)) for t in texts]
    vocab, unk = tok.vocab, self._unk
    out = []
    for text, pieces in zip(texts, sp.encode(list(texts), out_type=str, num_threads=1)):
      if "," in "".join(pieces) and any(len(p) > 1 and p[-1] == "," and p[-2].isdigit()
                                        for p in pieces):
        out.append(tokenization.encode_ids(sp, text))
      else:
        out.append([vocab.get(p, unk) for p in pieces])
    return out

  # ------------------------------------------------------------------------------- features
  def features(self, examples: Sequence[InputExample]) -> List[InputFeatures]:
    """`convert_example` of each example."""
    return [self._features(ex, ids_a, ids_b) for ex, ids_a, ids_b in self._ids(examples)]

  def _ids(self, examples: Sequence[InputExample]):
    texts_a = self.encode_texts([ex.text_a for ex in examples])
    pairs = [i for i, ex in enumerate(examples) if ex.text_b]
    texts_b = self.encode_texts([examples[i].text_b for i in pairs])
    ids_b: List[Optional[List[int]]] = [None] * len(examples)
    for i, ids in zip(pairs, texts_b):
      ids_b[i] = ids
    return zip(examples, texts_a, ids_b)

  def _features(self, example, ids_a, ids_b) -> InputFeatures:
    ids, first = _assemble(ids_a, ids_b, self.cls_id, self.sep_id, self.max_seq_length)
    length = len(ids)
    pad = self.max_seq_length - length
    return InputFeatures(ids + [0] * pad, [1] * length + [0] * pad,
                         [0] * first + [1] * (length - first) + [0] * pad,
                         label_id(example, self.label_map), True, length)

  # -------------------------------------------------------------------------------- records
  def records(self, examples: Sequence[InputExample]) -> Tuple[List[bytes], List[int]]:
    """Serialized records of the examples and their unpadded lengths."""
    out, lengths = [], []
    for example, ids_a, ids_b in self._ids(examples):
      ids, first = _assemble(ids_a, ids_b, self.cls_id, self.sep_id, self.max_seq_length)
      out.append(self._encode(ids, first, label_id(example, self.label_map)))
      lengths.append(len(ids))
    return out, lengths

  def encode_features(self, features: InputFeatures) -> bytes:
    """The record of `features` (equal to `records.encode_example` of them)."""
    length = features.length or sum(features.input_mask)
    first = length - sum(features.segment_ids)
    return self._encode(features.input_ids[:length], first, features.label_id)

  def _constant_entries(self) -> None:
    """Entries that depend only on the length (mask), the label or nothing (is_real_example)."""
    seq, int64 = self.max_seq_length, self._encoder.int64
    self._masks = [int64("input_mask", b"\x01" * n + b"\x00" * (seq - n)) for n in range(seq + 1)]
    self._zeros = [b"\x00" * n for n in range(seq + 1)]
    self._labels = {} if self.is_regression or self.multi_label else {
        i: int64("label_ids", self._encoder.packed([i])) for i in self.label_map.values()}
    self._real = int64("is_real_example", b"\x01")

  def _encode(self, ids: List[int], first: int, label: Union[int, float]) -> bytes:
    if not hasattr(self, "_real"):
      self._constant_entries()
    encoder, length = self._encoder, len(ids)
    zeros = self._zeros[self.max_seq_length - length]
    if self.is_regression:
      label_entry = encoder.float32("label_ids", [label])
    elif self.multi_label:
      label_entry = encoder.int64("label_ids", encoder.packed(label))
    else:
      label_entry = self._labels[label]
    return encoder.example((
        encoder.int64("input_ids", encoder.packed_ids(ids) + zeros),
        self._masks[length],
        encoder.int64("segment_ids", b"\x00" * first + b"\x01" * (length - first) + zeros),
        label_entry,
        self._real,
    ))
