"""Tokenization: the original ALBERT `FullTokenizer` (SentencePiece and WordPiece) and helpers.

This module owns turning raw text into ALBERT tokens and ids, with the public API of the
original release's `tokenization.py` (google-research/albert, final 2023 commit):

* `FullTokenizer(vocab_file, do_lower_case=True, spm_model_file=None)`. With a SentencePiece
  model (all English ALBERT releases, `30k-clean.model`) the vocabulary is the model's pieces
  and `tokenize` is `encode_pieces`. With only a `vocab_file` (the released Chinese ALBERT
  models) it is BERT's WordPiece pipeline: `BasicTokenizer` + `WordpieceTokenizer`.
* Module-level helpers of the same names as the original: `preprocess_text`, `encode_pieces`,
  `encode_ids`, `convert_to_unicode`, `printable_text`, `load_vocab`, `convert_by_vocab`,
  `convert_tokens_to_ids`, `convert_ids_to_tokens`, `whitespace_tokenize`,
  `validate_case_matches_checkpoint`.
* What every data job shares: `TokenizerSpec` (how to build the tokenizer, picklable for
  worker processes), the one fast `preprocess_text` (the original's output, tested on the
  golden strings and every code point), and `text_processor`, the original's `process_text`.

Behaviour of the original that is reproduced on purpose (the golden data in
`tests/testdata/golden/tokenization_golden.json` was recorded by running it):

* With a SentencePiece model, `FullTokenizer.tokenize` ignores `do_lower_case`. Lower-casing
  happens only in `preprocess_text(text, lower=True)`, which the data pipelines call first.
  `preprocess_text` strips combining marks (NFKD) even when `lower=False`. The final release
  does not rewrite ``` `` ``` or `''` to `"` (early versions and XLNet did).
* With a SentencePiece model, an unknown piece maps to the model's unk id, not an error.
* The digit-comma re-split (a knowingly kept quirk). A SentencePiece piece that ends in
  `<digit>,` (say `1,`) is encoded again without the comma and the comma becomes its own
  piece. The original then meant to drop the word-boundary marker "▁" that the re-encoding
  adds in front when the piece had none. Its check compares one character with the marker
  stored as UTF-8 bytes, so it never matches, under Python 3 (str vs bytes) and also under
  Python 2 (one byte vs three bytes). An extra "▁" piece therefore remains:
  `"1,000"` -> `▁ ▁ 1 , 00 0`, where plain SentencePiece gives `▁ 1, 00 0`. Released ALBERT
  checkpoints were pre-trained on data made this way, so this is the default.
  `fix_digit_comma_split=True` (on `encode_pieces`, `encode_ids` and `FullTokenizer`) gives
  the intended output instead (`▁ 1 , 00 0`; the XLNet code the function came from, where
  both sides are text, behaves so).

Deliberate differences from the original, all about bad input: a missing or unreadable
vocabulary / SentencePiece file, or neither being given, raises an error naming the file;
`convert_to_unicode` rejects bytes that are not UTF-8 (the original silently dropped the
invalid bytes; `errors="ignore"` restores that); an unknown token or id in a vocabulary
lookup raises a `KeyError` that names it. `FullTokenizer.from_hub_module` is not here: TF-Hub
modules are handled by the export module.

`python -m albert.tokenization --spm_model_file 30k-clean.model "Some text"` prints the tokens
and ids of a string.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import os
import re
import sys
import unicodedata
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

import sentencepiece as spm

from albert.errors import FlagError, TokenizerError

# SentencePiece's word-boundary marker (U+2581 LOWER ONE EIGHTH BLOCK).
SPIECE_UNDERLINE = "\u2581"

TextLike = Union[str, bytes]


# ---------------------------------------------------------------------------------------------
# Files.


def _is_remote(path: str) -> bool:
  return "://" in path


def _check_file(path: Any, what: str) -> str:
  """Returns `path` as str, or raises an error naming `what` and the path."""
  if isinstance(path, bytes):
    path = path.decode("utf-8")
  path = os.fspath(path)
  if _is_remote(path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    exists = tf.io.gfile.exists(path)
  else:
    exists = os.path.isfile(path)
  if not exists:
    raise FileNotFoundError(f"{what} not found: {path!r}")
  return path


def _read_bytes(path: str) -> bytes:
  if _is_remote(path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read()
  with open(path, "rb") as f:
    return f.read()


def load_sp_model(spm_model_file: Any) -> spm.SentencePieceProcessor:
  """Loads a SentencePiece model (local path or any `tf.io.gfile` URL such as gs://)."""
  path = _check_file(spm_model_file, "SentencePiece model file (spm_model_file)")
  sp_model = spm.SentencePieceProcessor()
  try:
    sp_model.LoadFromSerializedProto(_read_bytes(path))
  except Exception as e:  # sentencepiece raises RuntimeError/OSError depending on version
    raise TokenizerError(
        f"could not load SentencePiece model file {path!r}: {e}") from e
  return sp_model


# ---------------------------------------------------------------------------------------------
# Text helpers.


def validate_case_matches_checkpoint(do_lower_case: bool,
                                     init_checkpoint: Optional[str]) -> None:
  """Raises ValueError if `do_lower_case` contradicts a known BERT checkpoint's name.

  Like the original, this only recognises paths of the form `.../<model_name>/bert_model.ckpt`
  for the released BERT models (the heuristic was inherited from BERT); any other path,
  including every ALBERT checkpoint, passes.
  """
  if not init_checkpoint:
    return
  if isinstance(init_checkpoint, bytes):
    init_checkpoint = init_checkpoint.decode("utf-8")
  match = re.match(r"^.*?([A-Za-z0-9_-]+)/bert_model.ckpt", init_checkpoint)
  if match is None:
    return
  model_name = match.group(1)
  uncased = ("uncased_L-24_H-1024_A-16", "uncased_L-12_H-768_A-12",
             "multilingual_L-12_H-768_A-12", "chinese_L-12_H-768_A-12")
  cased = ("cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16", "multi_cased_L-12_H-768_A-12")
  if model_name in uncased and not do_lower_case:
    given, kind, wanted = False, "lower-cased (uncased)", True
  elif model_name in cased and do_lower_case:
    given, kind, wanted = True, "cased", False
  else:
    return
  raise FlagError(
      f"do_lower_case={given} was given with init_checkpoint={init_checkpoint!r}, but "
      f"{model_name!r} looks like a {kind} model; use do_lower_case={wanted} so that "
      "fine-tuning sees text cased as in pre-training.")


def convert_to_unicode(text: TextLike, errors: str = "strict") -> str:
  """Returns `text` as str; bytes are decoded as UTF-8.

  Args:
    text: str (returned unchanged) or bytes.
    errors: codec error handling. The default raises a ValueError for bytes that are not
      valid UTF-8; "ignore" drops the invalid bytes, as the original did.
  """
  if isinstance(text, str):
    return text
  if isinstance(text, (bytes, bytearray)):
    try:
      return bytes(text).decode("utf-8", errors)
    except UnicodeDecodeError as e:
      bad = bytes(text)[e.start:e.end]
      raise TokenizerError(
          f"convert_to_unicode: input is not valid UTF-8 (byte(s) {bad!r} at position "
          f"{e.start}: {e.reason}); decode it with the right encoding first, or pass "
          "errors='ignore' to drop invalid bytes as the original did") from e
  raise ValueError(f"Unsupported string type: {type(text)} (expected str or bytes)")


def printable_text(text: TextLike) -> str:
  """Returns `text` as str for printing or logging (invalid UTF-8 bytes are dropped)."""
  if isinstance(text, str):
    return text
  if isinstance(text, (bytes, bytearray)):
    return bytes(text).decode("utf-8", "ignore")
  raise ValueError(f"Unsupported string type: {type(text)} (expected str or bytes)")


_MAYBE_COMBINING = re.compile("[\u0300-\U0010ffff]")  # no combining mark is below U+0300


def preprocess_text(inputs: TextLike, remove_space: bool = True, lower: bool = False) -> str:
  """Normalises text before SentencePiece, as the original's data pipelines do.

  Steps, in order: if `remove_space`, strip and collapse every whitespace run to one space;
  NFKD-normalise and drop combining characters (accents), whether or not `lower`; if `lower`,
  lower-case. Quotes such as ``` `` ``` and `''` are left as they are.

  The original's steps, faster on typical text: ASCII text skips NFKD (which leaves it
  unchanged), and the combining marks present are dropped by one `str.translate`.
  Every data job (pretraining corpus, GLUE, RACE, SQuAD) calls this one function.
  """
  outputs = convert_to_unicode(inputs)
  if remove_space:
    outputs = " ".join(outputs.strip().split())
  if not outputs.isascii():
    outputs = unicodedata.normalize("NFKD", outputs)
    marks = {ord(c): None for c in set(_MAYBE_COMBINING.findall(outputs))
             if unicodedata.combining(c)}
    if marks:
      outputs = outputs.translate(marks)
  if lower:
    outputs = outputs.lower()
  return outputs


def text_processor(do_lower_case: bool = True, use_spm: bool = True) -> Callable[[str], str]:
  """The original's `process_text` of the GLUE and RACE processors: `preprocess_text(text,
  lower=do_lower_case)` with a SentencePiece model, only `convert_to_unicode` with WordPiece."""
  if not use_spm:
    return convert_to_unicode
  return functools.partial(preprocess_text, lower=do_lower_case)


def encode_pieces(sp_model: spm.SentencePieceProcessor,
                  text: TextLike,
                  return_unicode: bool = True,
                  sample: bool = False,
                  fix_digit_comma_split: bool = False) -> List[str]:
  """Splits `text` into SentencePiece pieces, with the original's digit-comma re-split.

  Args:
    sp_model: a loaded `SentencePieceProcessor`.
    text: str, or UTF-8 bytes.
    return_unicode: kept for API compatibility; it only mattered under Python 2 (pieces are
      always returned as str).
    sample: use subword regularisation (`SampleEncodeAsPieces(text, 64, 0.1)`).
    fix_digit_comma_split: False (default) reproduces the original exactly, including the
      extra "▁" piece it leaves in front of a re-split `<digit>,` piece that had no marker
      (`"1,000"` -> `▁ ▁ 1 , 00 0`). True drops that marker as the original intended
      (`▁ 1 , 00 0`). See the module docstring.

  Returns:
    The list of pieces (str).
  """
  del return_unicode  # Python 2 only.
  text = convert_to_unicode(text)
  if sample:
    pieces = sp_model.SampleEncodeAsPieces(text, 64, 0.1)
  else:
    pieces = sp_model.EncodeAsPieces(text)
  out: List[str] = []
  for piece in pieces:
    piece = printable_text(piece)
    if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
      sub = [printable_text(p) for p in
             sp_model.EncodeAsPieces(piece[:-1].replace(SPIECE_UNDERLINE, ""))]
      if (fix_digit_comma_split and not piece.startswith(SPIECE_UNDERLINE) and sub
          and sub[0].startswith(SPIECE_UNDERLINE)):
        if sub[0] == SPIECE_UNDERLINE:
          sub = sub[1:]
        else:
          sub[0] = sub[0][len(SPIECE_UNDERLINE):]
      out.extend(sub)
      out.append(",")
    else:
      out.append(piece)
  return out


def encode_ids(sp_model: spm.SentencePieceProcessor,
               text: TextLike,
               sample: bool = False,
               fix_digit_comma_split: bool = False) -> List[int]:
  """`encode_pieces` followed by `PieceToId` (unknown pieces get the model's unk id)."""
  pieces = encode_pieces(sp_model, text, return_unicode=False, sample=sample,
                         fix_digit_comma_split=fix_digit_comma_split)
  return [sp_model.PieceToId(p) for p in pieces]


# ---------------------------------------------------------------------------------------------
# Vocabularies.


def load_vocab(vocab_file: Any) -> "collections.OrderedDict[str, int]":
  """Loads a WordPiece vocabulary file (one token a line) into token -> id.

  As in the original: a line's token is its first whitespace-separated field, a blank line
  stands for the token " ", and a repeated token keeps its first id (ids count distinct
  tokens, so later tokens shift down).
  """
  path = _check_file(vocab_file, "vocabulary file (vocab_file)")
  try:
    content = convert_to_unicode(_read_bytes(path))
  except ValueError as e:
    raise TokenizerError(f"vocabulary file {path!r}: {e}") from e
  vocab: "collections.OrderedDict[str, int]" = collections.OrderedDict()
  lines = content.split("\n")  # "\n" only, like readline (not str.splitlines)
  if lines[-1] == "":
    lines.pop()
  for line in lines:
    stripped = line.strip()
    token = stripped.split()[0] if stripped else " "
    if token not in vocab:
      vocab[token] = len(vocab)
  if not vocab:
    raise TokenizerError(f"vocabulary file {path!r} is empty")
  return vocab


def convert_by_vocab(vocab: Dict[Any, Any], items: Iterable[Any]) -> List[Any]:
  """Maps every item through `vocab`; an unknown item raises KeyError naming it."""
  output = []
  for item in items:
    try:
      output.append(vocab[item])
    except KeyError:
      raise KeyError(f"{item!r} is not in the vocabulary ({len(vocab)} entries)") from None
  return output


def convert_tokens_to_ids(vocab: Dict[str, int], tokens: Iterable[str]) -> List[int]:
  return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab: Dict[int, str], ids: Iterable[int]) -> List[str]:
  return convert_by_vocab(inv_vocab, ids)


def whitespace_tokenize(text: str) -> List[str]:
  """Strips `text` and splits it on whitespace."""
  return text.split()


# ---------------------------------------------------------------------------------------------
# Tokenizers.


class FullTokenizer:
  """End-to-end tokenizer of the original release: SentencePiece, or WordPiece.

  With `spm_model_file`, `vocab` maps every SentencePiece piece to its id, `vocab_file` is not
  read and `do_lower_case` has no effect (lower-case beforehand with
  `preprocess_text(text, lower=True)`, as the original pipelines do). `tokenize` is
  `encode_pieces`, which by default keeps the original's digit-comma quirk
  (`"1,000"` -> `▁ ▁ 1 , 00 0`, an extra "▁" that plain SentencePiece does not produce);
  `fix_digit_comma_split=True` removes it. `convert_tokens_to_ids` maps an unknown piece to
  the unk id.

  Without `spm_model_file`, `vocab` is read from `vocab_file` and `tokenize` runs
  `BasicTokenizer(do_lower_case)` then `WordpieceTokenizer`; an unknown token in
  `convert_tokens_to_ids` is a KeyError.

  Attributes:
    vocab: token -> id.
    inv_vocab: id -> token.
    sp_model: the `SentencePieceProcessor`, or None on the WordPiece path.
    basic_tokenizer, wordpiece_tokenizer: the WordPiece stages (None with SentencePiece).

  `from_hub_module` of the original (reading the vocabulary from a TF-Hub module) is left to
  the export module.
  """

  def __init__(self,
               vocab_file: Optional[Any] = None,
               do_lower_case: bool = True,
               spm_model_file: Optional[Any] = None,
               fix_digit_comma_split: bool = False):
    self.do_lower_case = do_lower_case
    self.fix_digit_comma_split = fix_digit_comma_split
    self.sp_model: Optional[spm.SentencePieceProcessor] = None
    self.basic_tokenizer: Optional[BasicTokenizer] = None
    self.wordpiece_tokenizer: Optional[WordpieceTokenizer] = None
    if spm_model_file:
      self.sp_model = load_sp_model(spm_model_file)
      self.vocab: Dict[str, int] = {
          self.sp_model.IdToPiece(i): i for i in range(self.sp_model.GetPieceSize())}
    elif vocab_file:
      self.vocab = load_vocab(vocab_file)
      self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
      self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
    else:
      raise FlagError(
          "FullTokenizer needs a SentencePiece model (spm_model_file) or a WordPiece "
          "vocabulary (vocab_file); neither was given")
    self.inv_vocab: Dict[int, str] = {v: k for k, v in self.vocab.items()}

  @classmethod
  def from_scratch(cls, vocab_file: Optional[Any], do_lower_case: bool,
                   spm_model_file: Optional[Any],
                   fix_digit_comma_split: bool = False) -> "FullTokenizer":
    return cls(vocab_file, do_lower_case, spm_model_file,
               fix_digit_comma_split=fix_digit_comma_split)

  def tokenize(self, text: TextLike) -> List[str]:
    if self.sp_model is not None:
      return encode_pieces(self.sp_model, text, return_unicode=False,
                           fix_digit_comma_split=self.fix_digit_comma_split)
    tokens = []
    for token in self.basic_tokenizer.tokenize(text):
      tokens.extend(self.wordpiece_tokenizer.tokenize(token))
    return tokens

  def convert_tokens_to_ids(self, tokens: Iterable[TextLike]) -> List[int]:
    if self.sp_model is not None:
      return [self.sp_model.PieceToId(printable_text(t)) for t in tokens]
    return convert_by_vocab(self.vocab, tokens)

  def convert_ids_to_tokens(self, ids: Iterable[int]) -> List[str]:
    if self.sp_model is not None:
      size = self.sp_model.GetPieceSize()
      out = []
      for i in ids:
        if not 0 <= int(i) < size:
          raise KeyError(f"id {i!r} is out of range for the SentencePiece model "
                         f"({size} pieces)")
        out.append(self.sp_model.IdToPiece(int(i)))
      return out
    return convert_by_vocab(self.inv_vocab, ids)


@dataclasses.dataclass(frozen=True)
class TokenizerSpec:
  """How to build a `FullTokenizer` (picklable: what a data job sends its worker processes).

  `spm_model_file` wins over `vocab_file` (as in `FullTokenizer`); `do_lower_case` is the
  original's flag (with SentencePiece it applies in `preprocess_text`).
  """
  spm_model_file: Optional[str] = None
  vocab_file: Optional[str] = None
  do_lower_case: bool = True

  def build(self) -> FullTokenizer:
    return FullTokenizer(vocab_file=None if self.spm_model_file else self.vocab_file,
                         do_lower_case=self.do_lower_case, spm_model_file=self.spm_model_file)

  def localized(self, directory: str) -> "TokenizerSpec":
    """This spec with its remote files (gs://...) copied into the local `directory`: what
    worker processes get, so that they read local files and need no TensorFlow."""
    changes = {}
    for name in ("spm_model_file", "vocab_file"):
      path = getattr(self, name)
      if path and _is_remote(path):
        changes[name] = os.path.join(directory, f"{name}-{os.path.basename(path)}")
        with open(changes[name], "wb") as f:
          f.write(_read_bytes(path))
    return dataclasses.replace(self, **changes) if changes else self

  def text_processor(self) -> Callable[[str], str]:
    """The original's `process_text` for this tokenizer (see `text_processor`)."""
    return text_processor(self.do_lower_case, use_spm=bool(self.spm_model_file))


class BasicTokenizer:
  """BERT's basic tokenization: clean-up, CJK splitting, optional lower-casing, punctuation.

  Steps: drop NUL, U+FFFD and control characters, turn whitespace into spaces; put spaces
  around CJK ideographs; split on whitespace; if `do_lower_case`, lower-case and strip accents
  (NFD, drop "Mn"); split off every punctuation character as its own token.
  """

  def __init__(self, do_lower_case: bool = True):
    self.do_lower_case = do_lower_case

  def tokenize(self, text: TextLike) -> List[str]:
    text = convert_to_unicode(text)
    text = self._clean_text(text)
    text = self._tokenize_chinese_chars(text)
    pieces: List[str] = []
    for token in whitespace_tokenize(text):
      if self.do_lower_case:
        token = self._run_strip_accents(token.lower())
      pieces.extend(self._run_split_on_punc(token))
    return whitespace_tokenize(" ".join(pieces))

  @staticmethod
  def _run_strip_accents(text: str) -> str:
    text = unicodedata.normalize("NFD", text)
    return "".join(c for c in text if unicodedata.category(c) != "Mn")

  @staticmethod
  def _run_split_on_punc(text: str) -> List[str]:
    words: List[List[str]] = []
    new_word = True
    for char in text:
      if _is_punctuation(char):
        words.append([char])
        new_word = True
      else:
        if new_word:
          words.append([])
          new_word = False
        words[-1].append(char)
    return ["".join(w) for w in words]

  def _tokenize_chinese_chars(self, text: str) -> str:
    return "".join(f" {c} " if self._is_chinese_char(ord(c)) else c for c in text)

  @staticmethod
  def _is_chinese_char(cp: int) -> bool:
    """True for code points in the CJK Unified Ideographs blocks (not Hangul or kana)."""
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)

  @staticmethod
  def _clean_text(text: str) -> str:
    out = []
    for char in text:
      cp = ord(char)
      if cp == 0 or cp == 0xFFFD or _is_control(char):
        continue
      out.append(" " if _is_whitespace(char) else char)
    return "".join(out)


# CJK Unified Ideographs, Extension A-E, and the two Compatibility Ideographs blocks.
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


class WordpieceTokenizer:
  """Greedy longest-match-first WordPiece ("un", "##aff", "##able" for "unaffable").

  A word longer than `max_input_chars_per_word` characters, or one that cannot be covered
  completely by vocabulary pieces, becomes `unk_token`.
  """

  def __init__(self, vocab: Dict[str, int], unk_token: str = "[UNK]",
               max_input_chars_per_word: int = 200):
    self.vocab = vocab
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word

  def tokenize(self, text: TextLike) -> List[str]:
    """Tokenizes whitespace-separated, already basic-tokenized text into word pieces."""
    text = convert_to_unicode(text)
    output: List[str] = []
    for word in whitespace_tokenize(text):
      if len(word) > self.max_input_chars_per_word:
        output.append(self.unk_token)
        continue
      pieces = self._split_word(word)
      if pieces is None:
        output.append(self.unk_token)
      else:
        output.extend(pieces)
    return output

  def _split_word(self, word: str) -> Optional[List[str]]:
    pieces = []
    start = 0
    while start < len(word):
      for end in range(len(word), start, -1):
        candidate = word[start:end] if start == 0 else "##" + word[start:end]
        if candidate in self.vocab:
          pieces.append(candidate)
          start = end
          break
      else:
        return None
    return pieces


def _is_whitespace(char: str) -> bool:
  """Space, tab, newline, carriage return, and Unicode space separators (Zs)."""
  return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
  """Unicode Cc/Cf characters, except tab, newline and carriage return (whitespace)."""
  if char in "\t\n\r":
    return False
  return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char: str) -> bool:
  """Unicode P* characters plus every non-alphanumeric printable ASCII character."""
  cp = ord(char)
  if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
    return True
  return unicodedata.category(char).startswith("P")


# ---------------------------------------------------------------------------------------------
# Command line.


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m albert.tokenization",
      description="Print the ALBERT tokens and ids of a text.")
  parser.add_argument("text", help="the text to tokenize")
  parser.add_argument("--spm_model_file", help="SentencePiece model (e.g. 30k-clean.model)")
  parser.add_argument("--vocab_file", help="WordPiece vocabulary (when there is no SPM model)")
  parser.add_argument("--do_lower_case", action="store_true",
                      help="lower-case (WordPiece: in BasicTokenizer; SentencePiece: only "
                           "together with --preprocess, as the original)")
  parser.add_argument("--preprocess", action="store_true",
                      help="run preprocess_text(text, lower=do_lower_case) first, as the "
                           "original data pipelines do with SentencePiece")
  parser.add_argument("--fix_digit_comma_split", action="store_true",
                      help="drop the extra '▁' of the original's digit-comma re-split")
  args = parser.parse_args(argv)
  try:
    tokenizer = FullTokenizer(vocab_file=args.vocab_file, do_lower_case=args.do_lower_case,
                              spm_model_file=args.spm_model_file,
                              fix_digit_comma_split=args.fix_digit_comma_split)
  except (OSError, ValueError) as e:
    parser.error(str(e))
  text = args.text
  if args.preprocess:
    text = preprocess_text(text, lower=args.do_lower_case)
    print("text:  ", text)
  tokens = tokenizer.tokenize(text)
  print("tokens:", " ".join(tokens))
  print("ids:   ", " ".join(str(i) for i in tokenizer.convert_tokens_to_ids(tokens)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
