"""SQuAD features: the original's conversion, computed once per paragraph, in parallel.

This module owns `convert_examples_to_features` of the original `squad_utils.py`
(google-research/albert), feature for feature:

* the question is `encode_ids(preprocess_text(question, lower))`, cut to `max_query_length`
  ids; the paragraph is `encode_pieces(preprocess_text(context, lower))` (with the
  tokenizer's digit-comma quirk, see `albert/tokenization.py`);
* windows of `max_seq_length - len(query) - 3` pieces every `doc_stride` pieces;
  `[CLS] query [SEP] window [SEP]`, zero-padded; `segment_ids` 0 / 1 / 0 on padding; `p_mask`
  0 on `[CLS]` and the window, 1 elsewhere; `paragraph_len` = the unpadded length;
  `token_is_max_context` per window position (the original's score, ties to the first window);
* `tok_start_to_orig_index` / `tok_end_to_orig_index`: the character of the context where each
  piece starts / ends, from the alignment of `squad_alignment.py`; a paragraph that aligns
  badly is skipped ("MISMATCH DETECTED" in the original; counted here);
* training: the answer's characters -> pieces; a window without the whole answer, and an
  impossible question, point at [CLS] (0, 0) with `is_impossible` 1; unique ids count from
  1000000000 in output order. (The original sets `example_index` to None in training; here it
  is always the example's index.)

What differs is how it is computed. The original tokenizes and aligns the paragraph again for
every question, with a dynamic program in Python (22.6 ms a question on dev-v1.1). Here a
paragraph is tokenized and aligned once for all its questions, mostly without the dynamic
program (`alignment.align`), and the tokenizer's calls take fast paths that give the same
output (`tokenization.preprocess_text`, `paragraph_pieces`, `query_ids`; tested on all of dev).

Workers (`num_workers`, processes of `albert.data.workers`) convert contiguous slices of
examples and serialize each record but its first entry, `unique_ids`, which the main process
prepends once the order is known (records byte for byte as `albert.data.records.encode_example`
writes them, through the same `records.ExampleEncoder`). The output is identical for any number
of workers. `cache.py` stores it. The tokenizer is a `tokenization.TokenizerSpec` with a
SentencePiece model (`sentencepiece_spec`, `check_spec`).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from albert import tokenization
from albert.data import records as records_lib
from albert.data import workers as workers_lib
from albert.data.squad import alignment
from albert.data.squad.examples import SquadExample
from albert.errors import FlagError, TokenizerError
from albert.tokenization import TokenizerSpec

UNIQUE_ID_BASE = 1000000000
EVAL_RECORD_FEATURES = ("unique_ids", "input_ids", "input_mask", "segment_ids", "p_mask")
TRAIN_RECORD_FEATURES = EVAL_RECORD_FEATURES + ("start_positions", "end_positions",
                                                "is_impossible")


def sentencepiece_spec(spm_model_file: Optional[str], do_lower_case: bool = True
                       ) -> TokenizerSpec:
  """The tokenizer of SQuAD features: a SentencePiece model (and lower-casing)."""
  return check_spec(TokenizerSpec(spm_model_file=spm_model_file, do_lower_case=do_lower_case))


def check_spec(spec: TokenizerSpec) -> TokenizerSpec:
  """`spec`, if it has a SentencePiece model (the original's SQuAD code has no WordPiece path)."""
  if not spec.spm_model_file:
    raise TokenizerError("SQuAD features need a SentencePiece model (--spm_model_file); the "
                         "original's SQuAD code has no WordPiece path")
  return spec


@dataclasses.dataclass(frozen=True)
class FeatureSettings:
  """The original's flags that shape features."""
  max_seq_length: int = 384
  doc_stride: int = 128
  max_query_length: int = 64

  def __post_init__(self):
    if self.doc_stride < 1:
      raise FlagError(f"--doc_stride must be at least 1, got {self.doc_stride}")
    if self.max_query_length < 1:
      raise FlagError(f"--max_query_length must be at least 1, got {self.max_query_length}")
    if self.max_seq_length - self.max_query_length - 3 < 1:
      raise FlagError(
          f"--max_seq_length={self.max_seq_length} leaves no room for the paragraph after a "
          f"question of --max_query_length={self.max_query_length} pieces, [CLS] and two [SEP] "
          f"(the original loops forever); use max_seq_length >= max_query_length + 4")


# ---------------------------------------------------------------------------------------------
# Text -> pieces: albert.tokenization's results, by faster paths where they are the same.


def _needs_resplit(pieces: Sequence[str]) -> bool:
  """Whether `encode_pieces` would re-split a piece (`<digit>,` at its end)."""
  return any(p[-1] == "," and len(p) > 1 and p[-2].isdigit() for p in pieces)


def paragraph_pieces(sp_model, text: str) -> List[str]:
  """`tokenization.encode_pieces(sp_model, text)` (quirks included)."""
  pieces = sp_model.EncodeAsPieces(text)
  return tokenization.encode_pieces(sp_model, text) if _needs_resplit(pieces) else pieces


def query_ids(sp_model, question: str, lower: bool, max_query_length: int) -> List[int]:
  """The original's query: `encode_ids(preprocess_text(question, lower))[:max_query_length]`."""
  text = tokenization.preprocess_text(question, lower=lower)
  pieces = sp_model.EncodeAsPieces(text)
  if _needs_resplit(pieces):
    ids = tokenization.encode_ids(sp_model, text)
  else:
    ids = sp_model.PieceToId(pieces) if pieces else []
  return list(ids[:max_query_length])


# ---------------------------------------------------------------------------------------------
# Paragraphs and windows.


@dataclasses.dataclass
class Paragraph:
  """A context tokenized and aligned once: piece ids and each piece's first / last character."""
  doc_ids: List[int]
  tok_start_to_orig: np.ndarray  # [pieces] int32
  tok_end_to_orig: np.ndarray  # [pieces] int32
  orig_to_chartok: np.ndarray  # [characters] position in tok_cat_text, -1 = unaligned
  piece_ends: np.ndarray  # [pieces] end of each piece in tok_cat_text
  used_table: bool

  def answer_pieces(self, start: int, end: int) -> Tuple[int, int]:
    """Characters [start, end] of the context -> (first piece, last piece), as the original."""
    start_chartok = alignment.convert_index(self.orig_to_chartok, start, is_start=True)
    end_chartok = alignment.convert_index(self.orig_to_chartok, end, is_start=False)
    return (int(np.searchsorted(self.piece_ends, start_chartok, side="right")),
            int(np.searchsorted(self.piece_ends, end_chartok, side="right")))


def prepare_paragraph(sp_model, paragraph_text: str, do_lower_case: bool
                      ) -> Optional[Paragraph]:
  """Tokenizes and aligns a context; None when the original would skip it (mismatch)."""
  pieces = paragraph_pieces(sp_model,
                            tokenization.preprocess_text(paragraph_text, lower=do_lower_case))
  tok_cat_text = "".join(pieces).replace(tokenization.SPIECE_UNDERLINE, " ")
  aligned = alignment.align(paragraph_text, tok_cat_text, do_lower_case)
  if aligned is None:
    return None
  orig_to_chartok, chartok_to_orig, used_table = aligned
  lengths = [len(p) for p in pieces]
  ends = np.cumsum(lengths, dtype=np.int64)
  starts = ends - np.asarray(lengths, dtype=np.int64)
  n = len(paragraph_text)
  return Paragraph(
      doc_ids=list(sp_model.PieceToId(pieces)),
      tok_start_to_orig=alignment.convert_indexes(chartok_to_orig, starts, n, True),
      tok_end_to_orig=alignment.convert_indexes(chartok_to_orig, ends - 1, n, False),
      orig_to_chartok=orig_to_chartok, piece_ends=ends, used_table=used_table)


def doc_spans(num_tokens: int, max_tokens_for_doc: int, doc_stride: int
              ) -> List[Tuple[int, int]]:
  """The original's sliding windows: (start, length)."""
  spans = []
  start = 0
  while start < num_tokens:
    length = min(num_tokens - start, max_tokens_for_doc)
    spans.append((start, length))
    if start + length == num_tokens:
      break
    start += min(length, doc_stride)
  return spans


def max_context(spans: Sequence[Tuple[int, int]], num_tokens: int) -> np.ndarray:
  """[pieces]: the window with the most context for each piece (the original's score).

  Score of window (s, l) for piece p: min(p - s, s + l - 1 - p) + 0.01 * l; the first window
  with the highest score wins.
  """
  if len(spans) == 1:
    return np.zeros(num_tokens, dtype=np.int64)
  starts = np.array([s for s, _ in spans])[:, None]
  lengths = np.array([l for _, l in spans])[:, None]
  ends = starts + lengths - 1
  position = np.arange(num_tokens)[None, :]
  score = np.minimum(position - starts, ends - position) + 0.01 * lengths
  score = np.where((position >= starts) & (position <= ends), score, -np.inf)
  return np.argmax(score, axis=0)


# ---------------------------------------------------------------------------------------------
# Features.


@dataclasses.dataclass
class SquadFeatures:
  """Features of a list of examples, as arrays. F features, T window pieces in all, S length.

  Per feature: `unique_id` int64, `example_index`, `doc_span_index`, `paragraph_len`,
  `doc_offset` (the position of the window's first piece, len(query) + 2) int32; per window
  piece, flattened with `span_offsets` [F + 1]: `tok_start_to_orig_index`,
  `tok_end_to_orig_index` int32 (characters of the context) and `token_is_max_context` int8
  (at sequence position doc_offset + i). Optional [F, S] model inputs: `input_ids` int32,
  `input_mask`, `segment_ids`, `p_mask` int8; training: `start_position`, `end_position` int32,
  `is_impossible` int8. `skipped`: (example index, reason) of examples without features.
  """

  unique_id: np.ndarray
  example_index: np.ndarray
  doc_span_index: np.ndarray
  paragraph_len: np.ndarray
  doc_offset: np.ndarray
  span_offsets: np.ndarray
  tok_start_to_orig_index: np.ndarray
  tok_end_to_orig_index: np.ndarray
  token_is_max_context: np.ndarray
  input_ids: Optional[np.ndarray] = None
  input_mask: Optional[np.ndarray] = None
  segment_ids: Optional[np.ndarray] = None
  p_mask: Optional[np.ndarray] = None
  start_position: Optional[np.ndarray] = None
  end_position: Optional[np.ndarray] = None
  is_impossible: Optional[np.ndarray] = None
  skipped: List[Tuple[int, str]] = dataclasses.field(default_factory=list)

  ARRAYS = ("unique_id", "example_index", "doc_span_index", "paragraph_len", "doc_offset",
            "span_offsets", "tok_start_to_orig_index", "tok_end_to_orig_index",
            "token_is_max_context", "input_ids", "input_mask", "segment_ids", "p_mask",
            "start_position", "end_position", "is_impossible")

  def __len__(self) -> int:
    return len(self.unique_id)

  def window(self, k: int) -> Dict[str, np.ndarray]:
    """Feature k's window arrays: tok_start/end_to_orig_index, token_is_max_context."""
    lo, hi = int(self.span_offsets[k]), int(self.span_offsets[k + 1])
    return {"tok_start_to_orig_index": self.tok_start_to_orig_index[lo:hi],
            "tok_end_to_orig_index": self.tok_end_to_orig_index[lo:hi],
            "token_is_max_context": self.token_is_max_context[lo:hi]}

  def arrays(self, with_inputs: bool = True) -> Dict[str, np.ndarray]:
    """The arrays that are set (the [F, S] model inputs only with `with_inputs`)."""
    out = {}
    for name in self.ARRAYS:
      value = getattr(self, name)
      if value is not None and (with_inputs or value.ndim < 2):
        out[name] = value
    return out

  @classmethod
  def from_arrays(cls, arrays: Dict[str, np.ndarray],
                  skipped: Sequence[Tuple[int, str]] = ()) -> "SquadFeatures":
    return cls(**{name: arrays.get(name) for name in cls.ARRAYS}, skipped=list(skipped))


class _Converter:
  """Converts slices of examples; lives in each worker process."""

  def __init__(self, spec: TokenizerSpec, settings: FeatureSettings, is_training: bool,
               keep_inputs: bool, with_records: bool, sp_model=None):
    self.sp = sp_model or tokenization.load_sp_model(spec.spm_model_file)
    self.lower = spec.do_lower_case
    self.settings, self.is_training = settings, is_training
    self.keep_inputs, self.with_records = keep_inputs, with_records
    self.cls_id, self.sep_id = self.sp.PieceToId("[CLS]"), self.sp.PieceToId("[SEP]")
    self._paragraphs: Dict[str, Optional[Paragraph]] = {}

  def paragraph(self, text: str) -> Optional[Paragraph]:
    if text not in self._paragraphs:
      if len(self._paragraphs) > 64:
        self._paragraphs.clear()
      self._paragraphs[text] = prepare_paragraph(self.sp, text, self.lower)
    return self._paragraphs[text]

  def convert(self, task: Tuple[int, Sequence[SquadExample]]) -> "_Chunk":
    first_index, examples = task
    chunk = _Chunk(self.is_training, self.keep_inputs)
    chunk.num_examples = len(examples)
    for offset, example in enumerate(examples):
      self._example(first_index + offset, example, chunk)
    return chunk

  def _example(self, index: int, example: SquadExample, chunk: "_Chunk") -> None:
    settings = self.settings
    paragraph = self.paragraph(example.paragraph_text)
    if paragraph is None:
      chunk.skipped.append((index, "the pieces do not align with the context (the original's "
                                   "MISMATCH DETECTED)"))
      return
    query = query_ids(self.sp, example.question_text, self.lower, settings.max_query_length)
    answer = None
    if self.is_training and not example.is_impossible:
      start = example.start_position
      end = start + len(example.orig_answer_text) - 1
      if not 0 <= start <= end < len(example.paragraph_text):
        chunk.skipped.append((index, f"answer characters {start}..{end} are outside the context"))
        return
      answer = paragraph.answer_pieces(start, end)
      if answer[0] > answer[1]:
        chunk.skipped.append((index, "the answer maps to no piece"))
        return
    doc = paragraph.doc_ids
    spans = doc_spans(len(doc), settings.max_seq_length - len(query) - 3, settings.doc_stride)
    best = max_context(spans, len(doc))
    doc_offset = len(query) + 2
    head = [self.cls_id] + query + [self.sep_id]
    for span_index, (start, length) in enumerate(spans):
      ids = head + doc[start:start + length] + [self.sep_id]
      used = len(ids)
      pad = settings.max_seq_length - used
      mask = [1] * used + [0] * pad
      segments = [0] * doc_offset + [1] * (length + 1) + [0] * pad
      p_mask = [0] + [1] * (len(query) + 1) + [0] * length + [1] * (pad + 1)
      ids += [0] * pad
      positions = None
      if self.is_training:
        if answer is not None and start <= answer[0] and answer[1] <= start + length - 1:
          positions = (answer[0] - start + doc_offset, answer[1] - start + doc_offset, 0)
        else:
          positions = (0, 0, 1)
      chunk.add(index, span_index, used, doc_offset,
                paragraph.tok_start_to_orig[start:start + length],
                paragraph.tok_end_to_orig[start:start + length],
                best[start:start + length] == span_index, ids, mask, segments, p_mask,
                positions, self.with_records)


class _Chunk:
  """The features of one slice (unique ids are given by the collector)."""

  def __init__(self, is_training: bool, keep_inputs: bool):
    self.is_training, self.keep_inputs = is_training, keep_inputs
    self.columns: Dict[str, list] = {k: [] for k in (
        "example_index", "doc_span_index", "paragraph_len", "doc_offset", "span_length",
        "tok_start_to_orig_index", "tok_end_to_orig_index", "token_is_max_context",
        "input_ids", "input_mask", "segment_ids", "p_mask", "positions")}
    self.records: List[bytes] = []  # record bodies without unique_ids
    self.skipped: List[Tuple[int, str]] = []
    self.num_examples = 0

  def add(self, example_index, span_index, used, doc_offset, tok_start, tok_end, is_max,
          ids, mask, segments, p_mask, positions, with_record) -> None:
    c = self.columns
    c["example_index"].append(example_index)
    c["doc_span_index"].append(span_index)
    c["paragraph_len"].append(used)
    c["doc_offset"].append(doc_offset)
    c["span_length"].append(len(tok_start))
    c["tok_start_to_orig_index"].append(tok_start)
    c["tok_end_to_orig_index"].append(tok_end)
    c["token_is_max_context"].append(is_max)
    if self.keep_inputs:
      c["input_ids"].append(ids)
      c["input_mask"].append(mask)
      c["segment_ids"].append(segments)
      c["p_mask"].append(p_mask)
    if positions is not None:
      c["positions"].append(positions)
    if with_record:
      int64, packed = _ENCODER.int64, _ENCODER.packed
      parts = [int64("input_ids", packed(ids)),
               int64("input_mask", bytes(mask)),  # 0/1: a varint is the byte itself
               int64("segment_ids", bytes(segments)),
               int64("p_mask", bytes(p_mask))]
      if positions is not None:
        parts += [int64(name, packed([value])) for name, value in
                  zip(("start_positions", "end_positions", "is_impossible"), positions)]
      self.records.append(b"".join(parts))  # the collector puts `unique_ids` in front

  def __len__(self) -> int:
    return len(self.columns["example_index"])


# The records' encoder: ids below 2**16 from its varint table (every released vocabulary).
_ENCODER = records_lib.ExampleEncoder(1 << 16)


_UID_PREFIX = _ENCODER.int64("unique_ids", records_lib.varint(UNIQUE_ID_BASE))[:-5]


def _unique_id_entry(unique_id: int) -> bytes:
  """`int64("unique_ids", packed([unique_id]))`, its framing kept for 5-byte varints."""
  encoded = records_lib.varint(unique_id)
  if len(encoded) != 5:
    return _ENCODER.int64("unique_ids", encoded)
  return _UID_PREFIX + encoded


# ---------------------------------------------------------------------------------------------
# The whole conversion, on `albert.data.workers` processes.


def _tasks(examples: Sequence[SquadExample], size: int) -> List[Tuple[int, list]]:
  """Contiguous slices of about `size` questions, cut where the paragraph changes."""
  tasks, start = [], 0
  while start < len(examples):
    stop = min(start + size, len(examples))
    while stop < len(examples) and (
        examples[stop].paragraph_text is examples[stop - 1].paragraph_text
        or examples[stop].paragraph_text == examples[stop - 1].paragraph_text):
      stop += 1
    tasks.append((start, list(examples[start:stop])))
    start = stop
  return tasks


def iter_chunks(examples: Sequence[SquadExample], spec: TokenizerSpec,
                settings: FeatureSettings, is_training: bool, num_workers: int = 1,
                keep_inputs: bool = True, with_records: bool = False,
                task_size: int = 192) -> Iterator["_Chunk"]:
  """Converted slices in order (workers: 0 = one per core, 1 = this process)."""
  check_spec(spec)
  tasks = _tasks(examples, task_size)
  num_workers = workers_lib.resolve_workers(num_workers, len(tasks))
  yield from workers_lib.ordered_map(_Converter.convert, tasks, num_workers, _Converter,
                                     (spec, settings, is_training, keep_inputs, with_records))


class FeatureCollector:
  """Concatenates chunks in order and assigns the final unique ids."""

  def __init__(self, is_training: bool, keep_inputs: bool, keep_windows: bool = True):
    self.is_training, self.keep_inputs, self.keep_windows = is_training, keep_inputs, keep_windows
    self.parts: Dict[str, list] = {}
    self.skipped: List[Tuple[int, str]] = []
    self.count = 0

  def add(self, chunk: "_Chunk") -> List[bytes]:
    """Takes a chunk; returns its records with their final unique ids."""
    c = chunk.columns
    size = len(chunk)
    base = UNIQUE_ID_BASE + self.count
    put = lambda name, value: self.parts.setdefault(name, []).append(value)
    put("unique_id", np.arange(base, base + size, dtype=np.int64))
    for name in ("example_index", "doc_span_index", "paragraph_len", "doc_offset",
                 "span_length"):
      put(name, np.asarray(c[name], dtype=np.int32))
    if self.keep_windows:
      for name in ("tok_start_to_orig_index", "tok_end_to_orig_index"):
        put(name, np.concatenate(c[name] or [np.zeros(0, np.int32)]).astype(np.int32))
      put("token_is_max_context", np.concatenate(
          c["token_is_max_context"] or [np.zeros(0, bool)]).astype(np.int8))
    if self.keep_inputs:
      put("input_ids", np.asarray(c["input_ids"], dtype=np.int32).reshape(size, -1))
      for name in ("input_mask", "segment_ids", "p_mask"):
        put(name, np.asarray(c[name], dtype=np.int8).reshape(size, -1))
    if self.is_training:
      positions = np.asarray(c["positions"], dtype=np.int32).reshape(size, 3)
      put("start_position", positions[:, 0])
      put("end_position", positions[:, 1])
      put("is_impossible", positions[:, 2].astype(np.int8))
    self.skipped.extend(chunk.skipped)
    example = _ENCODER.example
    records = [example((_unique_id_entry(base + k), body))
               for k, body in enumerate(chunk.records)]
    self.count += size
    return records

  def features(self) -> SquadFeatures:
    arrays = {}
    for name, parts in self.parts.items():
      arrays[name] = np.concatenate(parts) if parts else np.zeros(0)
    if not self.parts:
      arrays = {name: np.zeros(0, np.int32) for name in ("unique_id", "example_index",
                                                         "doc_span_index", "paragraph_len",
                                                         "doc_offset", "span_length")}
    lengths = arrays.pop("span_length").astype(np.int64)
    arrays["span_offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    for name in ("tok_start_to_orig_index", "tok_end_to_orig_index", "token_is_max_context"):
      arrays.setdefault(name, np.zeros(0, np.int32))
    return SquadFeatures.from_arrays(arrays, self.skipped)


def convert_examples_to_features(examples: Sequence[SquadExample], spec: TokenizerSpec,
                                 settings: FeatureSettings, is_training: bool,
                                 num_workers: int = 1, keep_inputs: bool = True,
                                 with_records: bool = False
                                 ) -> Tuple[SquadFeatures, List[bytes]]:
  """The original's conversion of `examples`: (features, serialized records or [])."""
  collector = FeatureCollector(is_training, keep_inputs)
  records: List[bytes] = []
  for chunk in iter_chunks(examples, spec, settings, is_training, num_workers, keep_inputs,
                           with_records):
    records.extend(collector.add(chunk))
  return collector.features(), records
