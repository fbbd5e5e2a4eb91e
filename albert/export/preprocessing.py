"""The in-graph text preprocessing model: strings -> ALBERT input ids, as a SavedModel.

This module owns the companion SavedModel of an exported encoder (the counterpart of the
published `albert_en_preprocess`): it turns raw strings into `input_word_ids`, `input_mask`
and `input_type_ids` with TensorFlow ops only (tensorflow_text's SentencePiece op), so that
it can run inside a `tf.data` pipeline or a served graph.

Its tokenization is the original data pipelines' (`run_classifier.py` and friends):
`preprocess_text(text, lower=do_lower_case)` then `FullTokenizer.tokenize` (SentencePiece with
the digit-comma re-split quirk) then `convert_tokens_to_ids`, reproduced step by step:

* whitespace runs -> one space, then strip (the character set of Python's `str.isspace`);
* NFKD (ICU in tensorflow_text), then drop every character whose canonical combining class is
  not 0 (the set of Python's `unicodedata.combining`, generated when the model is built);
* lower-casing with `tf.strings.lower(encoding="utf-8")` (ICU; NUL characters are kept,
  which that op alone would not do);
* SentencePiece (tensorflow_text), then the original's digit-comma re-split: a piece ending in
  `<digit>,` (Python's `str.isdigit`) is encoded again without the comma and any "▁", and the
  comma follows as its own piece (`1,000` -> `▁ ▁ 1 , 00 0`, as `FullTokenizer` does).

Known, pinned differences from the Python `FullTokenizer` (tests/export/test_hub_preprocessing.py):

* The SentencePiece compiled into tensorflow-text 2.20.1 breaks ties between equally scored
  segmentations differently from the pinned Python sentencepiece 0.2.3 (as Python 0.2.1
  does): in the golden strings only each `000` of `1,000,000` (`00 0` here, `0 00` in
  Python; the same text and total score).
* Unicode versions: Python 3.11 knows Unicode 14.0. ICU's NFKD (Unicode 16 in
  tensorflow-text) also decomposes 118 code points that are unassigned in Unicode 14, and
  TensorFlow's lower-casing (an older ICU) misses 40 lower-case mappings added in Unicode 14.
* Bytes that are not UTF-8 pass through (the Python tokenizer rejects them).

`create_preprocessing_model` builds the Keras model with the sub-objects of the published API;
`export_preprocessing` writes it as a SavedModel. Loaded back (`import tensorflow_text` first,
as for every model using its ops):

  preprocess = hub.load(path)
  preprocess(["a sentence"])                      # dict of int32 [B, default_seq_length]
  tokens = preprocess.tokenize(["a", "b"])        # RaggedTensor int32 [B, (tokens)]
  preprocess.tokenize.get_special_tokens_dict()   # vocab_size, start_of_sequence_id, ...
  preprocess.bert_pack_inputs([tok_a, tok_b], seq_length=64)
"""

from __future__ import annotations

import dataclasses
import functools
import os
import unicodedata
from typing import Callable, Dict, Optional, Sequence, Union

import tensorflow as tf
import tf_keras

from albert import files
from albert.errors import ExportError, TokenizerError

SPIECE_UNDERLINE = "\u2581"
DEFAULT_SEQ_LENGTH = 128
# The special tokens of the original pipelines, keyed by the published preprocessor's names.
SPECIAL_TOKENS = {"start_of_sequence_id": "[CLS]", "end_of_segment_id": "[SEP]",
                  "padding_id": "<pad>", "mask_id": "[MASK]"}


def _tf_text():
  """tensorflow_text, imported on use (it registers the SentencePiece ops)."""
  import tensorflow_text  # pylint: disable=g-import-not-at-top
  return tensorflow_text


@dataclasses.dataclass(frozen=True)
class PreprocessingConfig:
  """What the preprocessing model does.

  Attributes:
    sp_model_file: the SentencePiece model (`30k-clean.model`); its bytes are embedded.
    do_lower_case: lower-case in `preprocess_text` (the original's flag of that name).
    preprocess_text: run the original's `preprocess_text` (whitespace, accents, case) before
      SentencePiece, as its data pipelines do. False tokenizes the text as given, like a bare
      `FullTokenizer.tokenize` (which ignores `do_lower_case` with SentencePiece).
    fix_digit_comma_split: drop the extra "▁" of the original's digit-comma re-split, as
      `FullTokenizer(fix_digit_comma_split=True)` does (default: reproduce the original).
    default_seq_length: the sequence length of the default call and of `bert_pack_inputs`
      when none is given.
  """

  sp_model_file: str
  do_lower_case: bool = True
  preprocess_text: bool = True
  fix_digit_comma_split: bool = False
  default_seq_length: int = DEFAULT_SEQ_LENGTH

  def __post_init__(self):
    if self.default_seq_length < 3:
      raise ExportError(f"default_seq_length must be at least 3 ([CLS] x [SEP]), got "
                       f"{self.default_seq_length}")


# ----------------------------------------------------------------------- character classes
def _char_class(predicate: Callable[[str], bool]) -> str:
  """An RE2 character class of every code point (no surrogates) for which `predicate` holds."""
  ranges = []
  start = None
  for cp in range(0x110001):
    inside = cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF and predicate(chr(cp))
    if inside and start is None:
      start = cp
    elif not inside and start is not None:
      ranges.append((start, cp - 1))
      start = None
  parts = [f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges]
  return "[" + "".join(parts) + "]"


@functools.lru_cache(maxsize=None)
def whitespace_class() -> str:
  """Python's `str.isspace` characters (what `str.split()` and `str.strip()` use)."""
  return _char_class(str.isspace)


@functools.lru_cache(maxsize=None)
def combining_class() -> str:
  """Characters with a nonzero canonical combining class (Python's `unicodedata.combining`)."""
  return _char_class(lambda c: unicodedata.combining(c) != 0)


@functools.lru_cache(maxsize=None)
def digit_class() -> str:
  """Python's `str.isdigit` characters (the digit test of the digit-comma re-split)."""
  return _char_class(str.isdigit)


# ------------------------------------------------------------------------ text normalization
def lower_utf8(text: tf.Tensor) -> tf.Tensor:
  """`tf.strings.lower(encoding="utf-8")` on a string tensor [B], keeping NUL characters.

  The op stops at the first NUL; so the text is split at NULs, each part lower-cased and the
  parts joined again with NUL.
  """
  parts = tf.strings.split(text, "\x00")  # [B, (parts)], at least one part per string
  lowered = tf.strings.lower(parts.flat_values, encoding="utf-8")
  nul = tf.fill(tf.shape(lowered), "\x00")
  with_nul = tf.reshape(tf.stack([lowered, nul], axis=1), [-1])  # part, NUL, part, NUL, ...
  joined = tf.strings.reduce_join(
      tf.RaggedTensor.from_row_lengths(with_nul, parts.row_lengths() * 2), axis=-1)
  length = tf.strings.length(joined) - 1  # drop the trailing NUL
  return tf.strings.substr(joined, tf.zeros_like(length), length)


def preprocess_text_graph(text: tf.Tensor, remove_space: bool = True,
                          lower: bool = False) -> tf.Tensor:
  """In-graph `albert.tokenization.preprocess_text` on a string tensor [B].

  Steps, as the original: if `remove_space`, collapse whitespace runs to one space and strip;
  NFKD and drop combining characters; if `lower`, lower-case.
  """
  text = tf.convert_to_tensor(text, tf.string)
  if remove_space:
    text = tf.strings.regex_replace(text, whitespace_class() + "+", " ")
    text = tf.strings.regex_replace(text, "^ | $", "")
  text = _tf_text().normalize_utf8(text, "NFKD")
  text = tf.strings.regex_replace(text, combining_class(), "")
  if lower:
    text = lower_utf8(text)
  return text


# -------------------------------------------------------------------------------- tokenizer
def _keep_rows(values: tf.Tensor, keep: tf.Tensor) -> tf.RaggedTensor:
  """[N] values -> [N, (0 or 1)]: row i holds values[i] where keep[i], else nothing."""
  return tf.RaggedTensor.from_row_lengths(tf.boolean_mask(values, keep),
                                          tf.cast(keep, tf.int64))


class AlbertTokenizer(tf_keras.layers.Layer):
  """Strings [B] -> ids RaggedTensor int32 [B, (tokens)], the original pipeline in-graph.

  `tokenize_to_pieces` gives the pieces (strings) instead of ids; `get_special_tokens_dict()`
  the ids of [CLS], [SEP], <pad>, [MASK] and the vocabulary size (Python ints).
  """

  def __init__(self, sp_model_proto: bytes, do_lower_case: bool = True,
               preprocess: bool = True, fix_digit_comma_split: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.do_lower_case = do_lower_case
    self.preprocess = preprocess
    self.fix_digit_comma_split = fix_digit_comma_split
    self._sp = _tf_text().SentencepieceTokenizer(model=sp_model_proto, out_type=tf.string)
    self._special_tokens = self._make_special_tokens_dict()

  def _make_special_tokens_dict(self) -> Dict[str, int]:
    with tf.init_scope():
      tokens = list(SPECIAL_TOKENS.values())
      ids = self._sp.string_to_id(tf.constant(tokens)).numpy()
      back = self._sp.id_to_string(tf.constant(ids)).numpy()
      result = {"vocab_size": int(self._sp.vocab_size().numpy())}
    for (key, token), token_id, piece in zip(SPECIAL_TOKENS.items(), ids, back):
      if piece.decode("utf-8") == token:
        result[key] = int(token_id)
    # The original pads input_ids with 0 (`<pad>` in every released ALBERT model).
    result.setdefault("padding_id", 0)
    return result

  def get_special_tokens_dict(self) -> Dict[str, int]:
    return dict(self._special_tokens)

  def tokenize_to_pieces(self, text: tf.Tensor) -> tf.RaggedTensor:
    """Strings [B] -> pieces RaggedTensor string [B, (pieces)]."""
    text = tf.convert_to_tensor(text, tf.string)
    if self.preprocess:
      text = preprocess_text_graph(text, remove_space=True, lower=self.do_lower_case)
    pieces = self._sp.tokenize(text)
    pieces = tf.RaggedTensor.from_row_splits(  # static row count for shape inference
        pieces.values, tf.reshape(pieces.row_splits, [tf.shape(text)[0] + 1]))
    return self._resplit_digit_comma(pieces)

  def _resplit_digit_comma(self, pieces: tf.RaggedTensor) -> tf.RaggedTensor:
    """The original's re-split of every piece ending in `<digit>,` (see the module docstring)."""
    flat = pieces.values  # [N]
    match = tf.strings.regex_full_match(flat, "(?s).*" + digit_class() + ",")
    length = tf.strings.length(flat)
    without_comma = tf.strings.substr(flat, tf.zeros_like(length), tf.maximum(length - 1, 0))
    stripped = tf.strings.regex_replace(without_comma, SPIECE_UNDERLINE, "")
    sub = self._sp.tokenize(tf.where(match, stripped, ""))  # [N, (k)], empty where no match
    if self.fix_digit_comma_split:
      sub = self._drop_added_marker(sub, flat, match)
    comma = tf.fill(tf.shape(flat), ",")
    rows = tf.concat([_keep_rows(flat, ~match), sub, _keep_rows(comma, match)], axis=1)
    return pieces.with_values(rows).merge_dims(1, 2)

  @staticmethod
  def _drop_added_marker(sub: tf.RaggedTensor, flat: tf.Tensor,
                         match: tf.Tensor) -> tf.RaggedTensor:
    """`fix_digit_comma_split`: no "▁" in front of a re-split piece that had none."""
    has_first = sub.row_lengths() > 0
    starts = tf.boolean_mask(sub.row_starts(), has_first)
    first = tf.gather(sub.values, starts)
    fix = (tf.boolean_mask(match, has_first)
           & ~tf.strings.regex_full_match(tf.boolean_mask(flat, has_first),
                                          SPIECE_UNDERLINE + "(?s).*")
           & tf.strings.regex_full_match(first, SPIECE_UNDERLINE + "(?s).*"))
    fixed = tf.where(fix, tf.strings.regex_replace(first, "^" + SPIECE_UNDERLINE, ""), first)
    values = tf.tensor_scatter_nd_update(sub.values, starts[:, None], fixed)
    keep = tf.strings.length(values) > 0  # a lone "▁" became "": drop it
    row_ids = sub.value_rowids()
    return tf.RaggedTensor.from_value_rowids(tf.boolean_mask(values, keep),
                                             tf.boolean_mask(row_ids, keep), nrows=sub.nrows())

  def call(self, text):
    pieces = self.tokenize_to_pieces(text)
    return pieces.with_values(self._sp.string_to_id(pieces.values))

  def get_config(self):
    # The SentencePiece model proto is not JSON; the layer is saved as a SavedModel only.
    raise NotImplementedError("AlbertTokenizer is saved as a SavedModel, not from its config")


# ---------------------------------------------------------------------------------- packing
def bert_pack_inputs(segments: Union[tf.RaggedTensor, Sequence[tf.RaggedTensor]],
                     seq_length: Union[int, tf.Tensor], start_of_sequence_id: int,
                     end_of_segment_id: int, padding_id: int) -> Dict[str, tf.Tensor]:
  """One or two ragged segments [B, (tokens)] (or [B, (words), (tokens)]) -> encoder inputs.

  `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, type ids 0 up to the first [SEP] and 1 after it,
  padded to `seq_length`. Too long inputs are truncated as the original's `_truncate_seq_pair`
  does (tokens are taken from the end of the longer segment, from b on a tie), which is
  tensorflow_text's round-robin allocation; one segment keeps its first `seq_length - 2`.
  """
  text = _tf_text()
  if isinstance(segments, (tf.RaggedTensor, tf.Tensor)):
    segments = [segments]
  segments = list(segments)
  if not 1 <= len(segments) <= 2:
    raise ValueError(f"bert_pack_inputs takes one or two segments, got {len(segments)}")
  segments = [s.merge_dims(1, -1) if s.shape.rank > 2 else s for s in segments]
  segments = [tf.cast(s, tf.int32) for s in segments]
  seq_length = tf.cast(seq_length, tf.int32)
  trimmed = text.RoundRobinTrimmer(seq_length - len(segments) - 1).trim(segments)
  combined, type_ids = text.combine_segments(trimmed, start_of_sequence_id=start_of_sequence_id,
                                             end_of_segment_id=end_of_segment_id)
  word_ids, _ = text.pad_model_inputs(combined, seq_length, pad_value=padding_id)
  type_ids, mask = text.pad_model_inputs(type_ids, seq_length, pad_value=0)
  shape = tf.stack([segments[0].nrows(out_type=tf.int32), seq_length])
  return {"input_word_ids": tf.reshape(tf.cast(word_ids, tf.int32), shape),
          "input_mask": tf.reshape(tf.cast(mask, tf.int32), shape),
          "input_type_ids": tf.reshape(tf.cast(type_ids, tf.int32), shape)}


class BertPackInputs(tf.Module):
  """The `bert_pack_inputs` sub-object: `__call__(segments, seq_length=default)`.

  Traced for one and two segments of ragged rank 1 and 2 (int32) and a scalar seq_length, so
  that the loaded SavedModel accepts all of them (a Keras layer would fix one structure).
  """

  def __init__(self, special_tokens: Dict[str, int], default_seq_length: int):
    super().__init__(name="bert_pack_inputs")
    ids = dict(start_of_sequence_id=special_tokens["start_of_sequence_id"],
               end_of_segment_id=special_tokens["end_of_segment_id"],
               padding_id=special_tokens["padding_id"])

    @tf.function(autograph=False)
    def call(inputs, seq_length=default_seq_length):
      return bert_pack_inputs(inputs, seq_length, **ids)

    self.__call__ = call
    for ragged_rank in (1, 2):
      for num_segments in (1, 2):
        call.get_concrete_function(
            [tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.int32)] * num_segments,
            seq_length=tf.TensorSpec([], tf.int32))


class _PackLayer(tf_keras.layers.Layer):
  """`bert_pack_inputs` at the default sequence length, as a layer of the root model."""

  def __init__(self, special_tokens: Dict[str, int], seq_length: int, **kwargs):
    super().__init__(**kwargs)
    self.special_tokens = dict(special_tokens)
    self.seq_length = seq_length

  def call(self, tokens):
    s = self.special_tokens
    return bert_pack_inputs(tokens, self.seq_length, s["start_of_sequence_id"],
                            s["end_of_segment_id"], s["padding_id"])

  def get_config(self):
    return {**super().get_config(), "special_tokens": self.special_tokens,
            "seq_length": self.seq_length}


# ------------------------------------------------------------------------------------ model
def _special_tokens_fn(special_tokens: Dict[str, int]) -> tf.Module:
  holder = tf.Module(name="get_special_tokens_dict")
  holder.__call__ = tf.function(
      lambda: {k: tf.constant(v, tf.int32) for k, v in special_tokens.items()},
      input_signature=[])
  return holder


def check_special_tokens(special_tokens: Dict[str, int], source: str) -> None:
  missing = [SPECIAL_TOKENS[k] for k in ("start_of_sequence_id", "end_of_segment_id")
             if k not in special_tokens]
  if missing:
    raise TokenizerError(f"SentencePiece model {source} has no {' / '.join(missing)} piece; "
                     "ALBERT inputs need [CLS] and [SEP]")


def create_preprocessing_model(config: PreprocessingConfig) -> tf_keras.Model:
  """The preprocessing Keras model with its `tokenize` and `bert_pack_inputs` sub-objects.

  Root call: strings [B] -> `input_word_ids`, `input_mask`, `input_type_ids` int32
  [B, default_seq_length] (one segment per string).
  """
  with tf.io.gfile.GFile(config.sp_model_file, "rb") as f:
    proto = f.read()
  tokenizer = AlbertTokenizer(proto, do_lower_case=config.do_lower_case,
                              preprocess=config.preprocess_text,
                              fix_digit_comma_split=config.fix_digit_comma_split,
                              name="albert_tokenizer")
  special = tokenizer.get_special_tokens_dict()
  check_special_tokens(special, config.sp_model_file)
  sentences = tf_keras.Input(shape=(), dtype=tf.string, name="sentences")
  tokens = tokenizer(sentences)
  pack = BertPackInputs(special, config.default_seq_length)
  packed = _PackLayer(special, config.default_seq_length, name="pack")(tokens)
  model = tf_keras.Model(sentences, packed, name="albert_preprocess")
  model.tokenize = tf_keras.Model(sentences, tokens, name="tokenize")
  model.tokenize.get_special_tokens_dict = _special_tokens_fn(special)
  model.bert_pack_inputs = pack
  model.sp_model_file = tf.saved_model.Asset(config.sp_model_file)
  return model


def export_preprocessing(config: PreprocessingConfig, export_path: str,
                         overwrite: bool = False,
                         before_rename: Optional[Callable[[str], None]] = None) -> str:
  """Writes the preprocessing SavedModel to `export_path` (atomically); returns the path.

  `before_rename(directory)` may add files (the export's record) before it is moved into place.
  """
  def write(directory: str) -> None:
    with files.staged_files({os.path.basename(config.sp_model_file): config.sp_model_file}
                              ) as staged:
      staged_config = dataclasses.replace(
          config, sp_model_file=staged[os.path.basename(config.sp_model_file)])
      model = create_preprocessing_model(staged_config)
      model.save(directory, include_optimizer=False, save_format="tf")
    if before_rename is not None:
      before_rename(directory)

  return files.write_directory(export_path, write, overwrite=overwrite)
