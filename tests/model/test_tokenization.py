"""Tests of albert/tokenization.py: golden outputs of the original FullTokenizer, WordPiece, errors.

The golden file was recorded by running the original release's `tokenization.py` with
SentencePiece 0.2.3 on `tests/testdata/golden/spm.model` (see tests/testdata/README.md).
Every key of every case is compared for exact equality. SentencePiece releases break ties
between equally scored segmentations differently (0.2.1 splits "000" of "1,000,000" as
`00 0`, 0.2.3 as `0 00`), which is why requirements.txt pins the golden's 0.2.3; a different
installed version fails here with a message saying so.
`test_golden_replayed_on_recorded_segmentation` also checks our post-processing alone, by
feeding it the recorded plain pieces.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List

import pytest
import sentencepiece as spm

from albert import tokenization
from conftest import GOLDEN
from support.reference_text import original_preprocess_text

GOLDEN_DIR = GOLDEN
SPM_MODEL = os.path.join(GOLDEN_DIR, "spm.model")
GOLDEN_JSON = os.path.join(GOLDEN_DIR, "tokenization_golden.json")

with open(GOLDEN_JSON, encoding="utf-8") as _f:
  GOLDEN = json.load(_f)
CASES = GOLDEN["cases"]
CASE_IDS = [f"case{c['index']:02d}" for c in CASES]
LOWER = (True, False)


@pytest.fixture(scope="module")
def sp_model() -> spm.SentencePieceProcessor:
  sp = spm.SentencePieceProcessor()
  sp.Load(SPM_MODEL)
  return sp


@pytest.fixture(scope="module")
def tokenizers() -> Dict[bool, tokenization.FullTokenizer]:
  return {lc: tokenization.FullTokenizer(vocab_file=None, do_lower_case=lc,
                                         spm_model_file=SPM_MODEL) for lc in LOWER}


def _assert_same_segmentation(sp, text: str, recorded: List[str]) -> None:
  pieces = sp.EncodeAsPieces(text)
  assert pieces == recorded, (
      f"sentencepiece {spm.__version__} segments {text!r} as {pieces}, the golden's "
      f"sentencepiece {GOLDEN['sentencepiece_version']} as {recorded} (a tie in piece "
      "scores); requirements.txt pins the golden's version")


def test_golden_file_is_what_we_expect():
  assert len(CASES) == 40
  for case in CASES:
    for lc in LOWER:
      assert f"FullTokenizer.tokenize[do_lower_case_{lc}]" in case
      assert f"preprocess_text(lower={lc})+tokenize" in case
      # The original returned str tokens for every case (no `token_python_types` key).
      assert "token_python_types" not in case[f"FullTokenizer.tokenize[do_lower_case_{lc}]"]
  assert GOLDEN["observations"]["FullTokenizer_tokens_identical_for_do_lower_case_True_and_False"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_plain_sentencepiece_matches_golden(case, sp_model):
  _assert_same_segmentation(sp_model, case["text"], case["sp.EncodeAsPieces(text)"])
  assert sp_model.EncodeAsIds(case["text"]) == case["sp.EncodeAsIds(text)"]


@pytest.mark.parametrize("lower", LOWER, ids=["lower_True", "lower_False"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_full_tokenizer_matches_golden(case, lower, tokenizers, sp_model):
  _assert_same_segmentation(sp_model, case["text"], case["sp.EncodeAsPieces(text)"])
  want = case[f"FullTokenizer.tokenize[do_lower_case_{lower}]"]
  tok = tokenizers[lower]
  tokens = tok.tokenize(case["text"])
  ids = tok.convert_tokens_to_ids(tokens)
  assert tokens == want["tokens"]
  assert all(isinstance(t, str) for t in tokens)
  assert ids == want["ids"]
  assert tok.convert_ids_to_tokens(ids) == want["ids_to_tokens"]
  assert tokenization.encode_ids(tok.sp_model, case["text"]) == want["ids"]


@pytest.mark.parametrize("lower", LOWER, ids=["lower_True", "lower_False"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_preprocess_then_tokenize_matches_golden(case, lower, tokenizers, sp_model):
  want = case[f"preprocess_text(lower={lower})+tokenize"]
  text = tokenization.preprocess_text(case["text"], remove_space=True, lower=lower)
  assert text == want["preprocessed_text"]
  # The golden records no plain segmentation of the preprocessed text: use the raw text's.
  _assert_same_segmentation(sp_model, case["text"], case["sp.EncodeAsPieces(text)"])
  tok = tokenizers[not lower]  # do_lower_case has no effect with SentencePiece
  tokens = tok.tokenize(text)
  assert tokens == want["tokens"]
  assert tok.convert_tokens_to_ids(tokens) == want["ids"]


class _ReplaySP:
  """A SentencePiece model that returns recorded pieces for recorded texts."""

  def __init__(self, sp, recorded: Dict[str, List[str]]):
    self._sp = sp
    self._recorded = recorded

  def EncodeAsPieces(self, text):  # pylint: disable=invalid-name
    if text in self._recorded:
      return list(self._recorded[text])
    return self._sp.EncodeAsPieces(text)

  def PieceToId(self, piece):  # pylint: disable=invalid-name
    return self._sp.PieceToId(piece)


@pytest.mark.parametrize("lower", LOWER, ids=["lower_True", "lower_False"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_golden_replayed_on_recorded_segmentation(case, lower, sp_model):
  replay = _ReplaySP(sp_model, {case["text"]: case["sp.EncodeAsPieces(text)"]})
  want = case[f"FullTokenizer.tokenize[do_lower_case_{lower}]"]
  assert tokenization.encode_pieces(replay, case["text"]) == want["tokens"]
  assert tokenization.encode_ids(replay, case["text"]) == want["ids"]


def test_do_lower_case_is_ignored_with_sentencepiece(tokenizers):
  text = "Naïve CAFÉ, The Price"
  assert tokenizers[True].tokenize(text) == tokenizers[False].tokenize(text)
  assert tokenizers[True].tokenize(text)[0] == "▁"  # "N" is not lower-cased


def test_observed_differences_from_plain_sentencepiece(sp_model):
  differing = []
  for case in CASES:
    replay = _ReplaySP(sp_model, {case["text"]: case["sp.EncodeAsPieces(text)"]})
    if tokenization.encode_pieces(replay, case["text"]) != case["sp.EncodeAsPieces(text)"]:
      differing.append(case["index"])
  recorded = GOLDEN["observations"][
      "indices_where_FullTokenizer_differs_from_plain_sp_EncodeAsPieces"]
  assert differing == recorded == [3, 5, 6]


# ---------------------------------------------------------------------------------------------
# The digit-comma re-split.


def test_digit_comma_quirk_default(tokenizers, sp_model):
  assert sp_model.EncodeAsPieces("1,000") == ["▁", "1,", "00", "0"]
  assert tokenizers[True].tokenize("1,000") == ["▁", "▁", "1", ",", "00", "0"]
  assert tokenization.encode_pieces(sp_model, "1,000") == ["▁", "▁", "1", ",", "00", "0"]
  assert tokenization.encode_ids(sp_model, "1,000") == [13, 13, 88, 16, 270, 79]


def test_digit_comma_fixed(sp_model):
  tok = tokenization.FullTokenizer(None, True, SPM_MODEL, fix_digit_comma_split=True)
  assert tok.fix_digit_comma_split
  assert tok.tokenize("1,000") == ["▁", "1", ",", "00", "0"]
  assert tokenization.encode_pieces(sp_model, "1,000", fix_digit_comma_split=True) == [
      "▁", "1", ",", "00", "0"]
  assert tokenization.encode_ids(sp_model, "1,000", fix_digit_comma_split=True) == [
      13, 88, 16, 270, 79]
  # "$1,234.56": the re-split piece "1," follows "$", so the fix drops the added "▁" too.
  fixed = tok.tokenize("He paid $1,234.56 for it.")
  quirky = tokenization.FullTokenizer(None, True, SPM_MODEL).tokenize("He paid $1,234.56 for it.")
  assert quirky[quirky.index("$") + 1:quirky.index("$") + 4] == ["▁", "1", ","]
  assert fixed[fixed.index("$") + 1:fixed.index("$") + 3] == ["1", ","]
  assert len(quirky) == len(fixed) + 1


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_digit_comma_fix_only_removes_the_extra_marker(case, sp_model):
  text = case["text"]
  quirky = tokenization.encode_pieces(sp_model, text)
  fixed = tokenization.encode_pieces(sp_model, text, fix_digit_comma_split=True)
  if case["index"] in (3, 5, 6):
    assert len(quirky) == len(fixed) + 1
    i = next(i for i, (q, f) in enumerate(zip(quirky, fixed)) if q != f)
    assert quirky[i:i + 3] == ["▁", "1", ","]
    assert quirky[:i] + quirky[i + 1:] == fixed
  else:
    assert quirky == fixed


def test_marker_kept_when_piece_starts_with_marker():
  class FakeSP:
    def EncodeAsPieces(self, text):  # pylint: disable=invalid-name
      return {"x 12,": ["▁x", "▁12,"], "12": ["▁12"]}[text]

  for fix in (False, True):
    assert tokenization.encode_pieces(FakeSP(), "x 12,", fix_digit_comma_split=fix) == [
        "▁x", "▁12", ","]
  # A piece without a marker whose re-encoding starts with "▁12": the fix strips the marker.
  class FakeSP2:
    def EncodeAsPieces(self, text):  # pylint: disable=invalid-name
      return {"x12,": ["▁x", "12,"], "12": ["▁12"]}[text]

  assert tokenization.encode_pieces(FakeSP2(), "x12,") == ["▁x", "▁12", ","]
  assert tokenization.encode_pieces(FakeSP2(), "x12,", fix_digit_comma_split=True) == [
      "▁x", "12", ","]


# ---------------------------------------------------------------------------------------------
# SentencePiece path: API details.


def test_spm_attributes(tokenizers, sp_model):
  tok = tokenizers[True]
  assert tok.sp_model is not None
  assert tok.basic_tokenizer is None and tok.wordpiece_tokenizer is None
  assert len(tok.vocab) == sp_model.GetPieceSize() == 1000
  assert tok.vocab["<pad>"] == 0 and tok.vocab["<unk>"] == 1 and tok.vocab["[MASK]"] == 4
  assert tok.inv_vocab[13] == "▁"
  assert all(tok.inv_vocab[i] == p for p, i in tok.vocab.items())


def test_spm_unknown_piece_maps_to_unk_and_bytes_are_accepted(tokenizers):
  tok = tokenizers[True]
  assert tok.convert_tokens_to_ids(["no-such-piece", "▁the", "▁the".encode("utf-8")]) == [
      1, 15, 15]
  assert tok.tokenize("Hello world!".encode("utf-8")) == tok.tokenize("Hello world!")


def test_spm_id_out_of_range(tokenizers):
  with pytest.raises(KeyError, match="1000"):
    tokenizers[True].convert_ids_to_tokens([5, 1000])


def test_from_scratch():
  tok = tokenization.FullTokenizer.from_scratch(None, False, SPM_MODEL)
  assert tok.sp_model is not None and not tok.fix_digit_comma_split
  assert tok.tokenize("1,000") == ["▁", "▁", "1", ",", "00", "0"]
  tok = tokenization.FullTokenizer.from_scratch(None, False, SPM_MODEL, fix_digit_comma_split=True)
  assert tok.tokenize("1,000") == ["▁", "1", ",", "00", "0"]


def test_spm_model_takes_precedence_over_vocab_file(tmp_path):
  missing_vocab = str(tmp_path / "not-read.txt")
  tok = tokenization.FullTokenizer(missing_vocab, True, SPM_MODEL)
  assert len(tok.vocab) == 1000


def test_sampling_reconstructs_text(sp_model):
  text = "the quick brown fox jumps over the lazy dog"
  pieces = tokenization.encode_pieces(sp_model, text, sample=True)
  assert "".join(pieces).replace("▁", " ").strip() == text
  ids = tokenization.encode_ids(sp_model, text, sample=True)
  assert sp_model.DecodeIds(ids) == text


def test_preprocess_text():
  pre = tokenization.preprocess_text
  assert pre("  a \t b\n\nc  ") == "a b c"
  assert pre("  a \t b  ", remove_space=False) == "  a \t b  "
  assert pre("Naïve Café") == "Naive Cafe"  # accents go even without lower
  assert pre("Naïve Café", lower=True) == "naive cafe"
  assert pre("``quoted''") == "``quoted''"  # the final release does not rewrite these
  assert pre("ﬁ ＡＢＣ") == "fi ABC"  # NFKD compatibility decomposition
  assert pre("Ünï".encode("utf-8"), lower=True) == "uni"


def test_fast_preprocess_text_equals_the_originals_steps_on_every_code_point():
  """The shortcuts (ASCII skips NFKD; marks dropped only when present) change no output."""
  characters = [chr(c) for c in range(0x110000)]
  mixed = ["e\u0301te\u0301", "Ａ\u0308 b\u0327", " \u00c5ngstr\u00f6m\t", "\u1100\u1161\u11a8",
           "x\u0301" * 40, "a\u3099\u309a", "\U0001d400\u0338"]
  for remove_space, lower in ((True, True), (False, False)):
    got = [tokenization.preprocess_text(c, remove_space, lower) for c in characters + mixed]
    want = [original_preprocess_text(c, remove_space, lower) for c in characters + mixed]
    assert got == want


def test_text_processor_is_the_originals_process_text():
  assert tokenization.text_processor(True, use_spm=True)("  Café  ") == "cafe"
  assert tokenization.text_processor(False, use_spm=True)("  Café  ") == "Cafe"
  assert tokenization.text_processor(True, use_spm=False)("  Café  ") == "  Café  "
  assert tokenization.TokenizerSpec(vocab_file="v.txt").text_processor()(" É ") == " É "
  assert tokenization.TokenizerSpec(spm_model_file=SPM_MODEL).text_processor()(" É ") == "e"


def test_printable_and_unicode_helpers():
  assert tokenization.convert_to_unicode("é") == "é"
  assert tokenization.convert_to_unicode("é".encode("utf-8")) == "é"
  assert tokenization.convert_to_unicode(b"a\xffb", errors="ignore") == "ab"
  assert tokenization.printable_text(b"a\xffb") == "ab"
  assert tokenization.printable_text("x") == "x"
  with pytest.raises(ValueError, match="Unsupported string type"):
    tokenization.convert_to_unicode(3)
  with pytest.raises(ValueError, match="Unsupported string type"):
    tokenization.printable_text(None)


def test_whitespace_tokenize():
  assert tokenization.whitespace_tokenize("  a\tb \n c ") == ["a", "b", "c"]
  assert tokenization.whitespace_tokenize("   ") == []


# ---------------------------------------------------------------------------------------------
# WordPiece path (the Chinese ALBERT releases).

WORDPIECE_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##want", "##ed", "want", "wa",
    "runn", "##ing", ",", ".", "!", "我", "爱", "中", "文", "hello", "cafe", "naive", "ab",
    "##ab", "Hello", "##é",
]


@pytest.fixture
def vocab_file(tmp_path) -> str:
  path = tmp_path / "vocab.txt"
  path.write_text("\n".join(WORDPIECE_VOCAB) + "\n", encoding="utf-8")
  return str(path)


def test_wordpiece_full_tokenizer(vocab_file):
  tok = tokenization.FullTokenizer(vocab_file=vocab_file, do_lower_case=True)
  assert tok.sp_model is None
  assert tok.vocab == {t: i for i, t in enumerate(WORDPIECE_VOCAB)}
  assert tok.inv_vocab[5] == "un"
  tokens = tok.tokenize("UNwant\u00e9d,running")
  assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
  ids = tok.convert_tokens_to_ids(tokens)
  assert ids == [5, 6, 7, 12, 10, 11]
  assert tok.convert_ids_to_tokens(ids) == tokens


def test_wordpiece_chinese_chars_split_and_unk(vocab_file):
  tok = tokenization.FullTokenizer(vocab_file=vocab_file, do_lower_case=True)
  # The full-width "！" is punctuation: split off, and not in the vocabulary.
  assert tok.tokenize("我爱中文！") == ["我", "爱", "中", "文", "[UNK]"]
  assert tok.tokenize("我爱中文!") == ["我", "爱", "中", "文", "!"]
  assert tok.tokenize("我爱北京") == ["我", "爱", "[UNK]", "[UNK]"]
  # Hangul and kana are not split per character.
  assert tok.tokenize("한국어") == ["[UNK]"]
  # A word with an uncovered tail is one [UNK], not a partial split.
  assert tok.tokenize("unwantxyz") == ["[UNK]"]


def test_wordpiece_lower_case_and_accents(vocab_file):
  lower = tokenization.FullTokenizer(vocab_file=vocab_file, do_lower_case=True)
  cased = tokenization.FullTokenizer(vocab_file=vocab_file, do_lower_case=False)
  assert lower.tokenize("Hello NAÏVE Café.") == ["hello", "naive", "cafe", "."]
  assert cased.tokenize("Hello NAÏVE Café.") == ["Hello", "[UNK]", "[UNK]", "."]
  assert cased.tokenize("abé") == ["ab", "##é"]


def test_wordpiece_max_chars(vocab_file):
  tok = tokenization.FullTokenizer(vocab_file=vocab_file, do_lower_case=True)
  assert tok.tokenize("ab" * 100) == ["ab"] + ["##ab"] * 99  # 200 characters
  assert tok.tokenize("ab" * 100 + "a") == ["[UNK]"]  # 201 characters
  wp = tokenization.WordpieceTokenizer(vocab=tok.vocab, max_input_chars_per_word=4)
  assert wp.tokenize("abab ababab") == ["ab", "##ab", "[UNK]"]


def test_basic_tokenizer_cleaning():
  basic = tokenization.BasicTokenizer(do_lower_case=False)
  assert basic.tokenize("a\x00b\ufffdc\u200bd e\u00a0f\tg\r\nh") == [
      "abcd", "e", "f", "g", "h"]
  assert basic.tokenize("  HeLLo!How  are you?  ") == ["HeLLo", "!", "How", "are", "you", "?"]
  assert basic.tokenize("$5^`~") == ["$", "5", "^", "`", "~"]
  lower = tokenization.BasicTokenizer(do_lower_case=True)
  assert lower.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["hello", "!", "how", "are", "you", "?"]
  assert basic.tokenize("") == []


def test_load_vocab_blank_and_duplicate_lines(tmp_path):
  path = tmp_path / "v.txt"
  path.write_text("a\nb extra fields\n\na\nc\r\n\u2028d\ne\u2028f\n", encoding="utf-8")
  vocab = tokenization.load_vocab(str(path))
  # Blank line -> " "; the duplicate "a" keeps id 0 and later ids count distinct tokens; lines
  # end at "\n" only (U+2028 inside a line is whitespace, not a line break).
  assert list(vocab.items()) == [("a", 0), ("b", 1), (" ", 2), ("c", 3), ("d", 4), ("e", 5)]


def test_convert_by_vocab_unknown_token(vocab_file):
  tok = tokenization.FullTokenizer(vocab_file=vocab_file)
  with pytest.raises(KeyError, match="no-such-token"):
    tok.convert_tokens_to_ids(["un", "no-such-token"])
  with pytest.raises(KeyError, match="999"):
    tok.convert_ids_to_tokens([999])
  with pytest.raises(KeyError, match="zzz"):
    tokenization.convert_tokens_to_ids({"a": 0}, ["zzz"])
  assert tokenization.convert_ids_to_tokens({0: "a"}, [0, 0]) == ["a", "a"]


# ---------------------------------------------------------------------------------------------
# Bad input.


def test_missing_files_are_named(tmp_path):
  missing = str(tmp_path / "missing-vocab.txt")
  with pytest.raises(FileNotFoundError, match="missing-vocab.txt"):
    tokenization.FullTokenizer(vocab_file=missing)
  missing_spm = str(tmp_path / "missing.model")
  with pytest.raises(FileNotFoundError, match="missing.model"):
    tokenization.FullTokenizer(vocab_file=None, spm_model_file=missing_spm)
  with pytest.raises(FileNotFoundError, match="missing-vocab.txt"):
    tokenization.load_vocab(missing)


def test_neither_file_given():
  with pytest.raises(ValueError, match="spm_model_file.*vocab_file"):
    tokenization.FullTokenizer(vocab_file=None, spm_model_file=None)


def test_corrupt_or_empty_files_are_named(tmp_path):
  bad_model = tmp_path / "garbage.model"
  bad_model.write_bytes(b"this is not a sentencepiece model")
  with pytest.raises(ValueError, match="garbage.model"):
    tokenization.FullTokenizer(vocab_file=None, spm_model_file=str(bad_model))
  empty = tmp_path / "empty-vocab.txt"
  empty.write_text("", encoding="utf-8")
  with pytest.raises(ValueError, match="empty-vocab.txt.*empty"):
    tokenization.FullTokenizer(vocab_file=str(empty))
  latin1 = tmp_path / "latin1-vocab.txt"
  latin1.write_bytes("caf\u00e9\n".encode("latin-1"))
  with pytest.raises(ValueError, match="latin1-vocab.txt.*UTF-8"):
    tokenization.load_vocab(str(latin1))


def test_non_utf8_bytes_rejected(vocab_file):
  with pytest.raises(ValueError, match=r"not valid UTF-8.*b'\\xff'.*position 1"):
    tokenization.convert_to_unicode(b"a\xffb")
  tok = tokenization.FullTokenizer(vocab_file=vocab_file)
  with pytest.raises(ValueError, match="not valid UTF-8"):
    tok.tokenize(b"caf\xe9")


def test_validate_case_matches_checkpoint():
  check = tokenization.validate_case_matches_checkpoint
  check(True, None)
  check(False, "")
  check(True, "/x/albert_base/model.ckpt-best")  # not a BERT path: never checked
  check(True, "/x/uncased_L-12_H-768_A-12/bert_model.ckpt")
  check(False, "/x/cased_L-12_H-768_A-12/bert_model.ckpt")
  with pytest.raises(ValueError, match="do_lower_case=True"):
    check(False, "/x/uncased_L-12_H-768_A-12/bert_model.ckpt")
  with pytest.raises(ValueError, match="do_lower_case=False"):
    check(True, "gs://b/multi_cased_L-12_H-768_A-12/bert_model.ckpt")


# ---------------------------------------------------------------------------------------------
# Command line.


def test_cli(capsys):
  assert tokenization.main(["--spm_model_file", SPM_MODEL, "1,000"]) == 0
  out = capsys.readouterr().out.splitlines()
  assert out == ["tokens: ▁ ▁ 1 , 00 0", "ids:    13 13 88 16 270 79"]
  assert tokenization.main(["--spm_model_file", SPM_MODEL, "--preprocess", "--do_lower_case",
                            "--fix_digit_comma_split", "Naïve 1,000"]) == 0
  out = capsys.readouterr().out.splitlines()
  assert out[0] == "text:   naive 1,000"
  assert out[1].startswith("tokens: ") and "▁ 1 , " in out[1] and "▁ ▁" not in out[1]
  assert out[2].startswith("ids: ")


def test_cli_missing_file(capsys, tmp_path):
  with pytest.raises(SystemExit):
    tokenization.main(["--spm_model_file", str(tmp_path / "nope.model"), "x"])
  assert "nope.model" in capsys.readouterr().err
