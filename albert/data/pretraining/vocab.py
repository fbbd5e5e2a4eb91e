"""Training a SentencePiece vocabulary with the original ALBERT recipe.

This module owns `train_vocab`, so that a new language can be pretrained end to end. The recipe is
the one of the ALBERT README (the released `30k-clean.model`): unigram model, `pad` id 0, `unk`
id 1, no bos/eos, control symbols `[CLS] [SEP] [MASK]` (ids 2-4), user-defined symbols
`( ) " - . – £ €` (ids 5-12), `character_coverage=0.99995`, `shuffle_input_sentence`,
`input_sentence_size=10,000,000` (SentencePiece samples that many lines, so memory stays bounded).

The user-defined symbols are passed as a list: given as the README's single string
`(,),",-,.,–,£,€`, sentencepiece's CSV parsing treats `"` as a quote and merges the last six into
one symbol. The text is fed line by line through `preprocess_text(line, lower=do_lower_case)`,
the normalisation `create_pretraining_data` applies before tokenizing, so the vocabulary sees the
text as pretraining will; blank lines (document separators) are skipped. Input must be UTF-8;
an invalid line is an error naming the file and line.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Iterator, List, Sequence

from albert import files
from albert import tokenization
from albert.data import DataError
from albert.data.pretraining import corpus as corpus_lib
from albert.errors import FlagError

CONTROL_SYMBOLS = ("[CLS]", "[SEP]", "[MASK]")
USER_DEFINED_SYMBOLS = ("(", ")", "\"", "-", ".", "\u2013", "\u00a3", "\u20ac")


@dataclasses.dataclass
class VocabConfig:
  """Settings of `train_vocab` (SentencePiece option names where they exist)."""
  input_file: str = ""  # comma-separated globs, the pretraining text format
  model_prefix: str = ""  # writes <model_prefix>.model and <model_prefix>.vocab
  vocab_size: int = 30000
  do_lower_case: bool = True
  character_coverage: float = 0.99995
  input_sentence_size: int = 10_000_000
  user_defined_symbols: Sequence[str] = USER_DEFINED_SYMBOLS
  control_symbols: Sequence[str] = CONTROL_SYMBOLS
  model_type: str = "unigram"
  num_threads: int = 0  # 0: one per CPU core
  max_line_length: int = 100_000
  seed_sentencepiece_size: int = 1_000_000

  def validate(self) -> None:
    if not self.input_file:
      raise DataError("--input_file is required: the text to train the vocabulary on")
    if not self.model_prefix:
      raise DataError("--model_prefix is required: writes <prefix>.model and <prefix>.vocab")
    reserved = 2 + len(self.control_symbols) + len(self.user_defined_symbols)
    if self.vocab_size <= reserved:
      raise DataError(f"--vocab_size={self.vocab_size} must be larger than the {reserved} "
                       "reserved pieces (pad, unk, control and user-defined symbols)")
    if not 0.0 < self.character_coverage <= 1.0:
      raise DataError(f"--character_coverage={self.character_coverage} must be in (0, 1]")
    if self.input_sentence_size < 0:
      raise DataError(f"--input_sentence_size={self.input_sentence_size} must be >= 0")
    if self.model_type not in ("unigram", "bpe", "char", "word"):
      raise DataError(f"--model_type={self.model_type!r}: unigram (the recipe), bpe, char "
                       "or word")


def _sentences(paths: Sequence[str], lower: bool, max_line_length: int,
               counter: List[int], failures: List[BaseException]) -> Iterator[str]:
  """The preprocessed non-blank lines; an error is kept in `failures` (SentencePiece's trainer
  would turn it into a RuntimeError with the Python traceback in its message)."""
  try:
    for batch in corpus_lib.read_line_batches(paths, max_line_length):
      for k, raw in enumerate(batch.lines):
        text = corpus_lib.decode_line(raw, batch.path, batch.first_line + k)
        text = tokenization.preprocess_text(text, lower=lower)
        if text:
          counter[0] += 1
          yield text
  except GeneratorExit:  # closed early by the trainer: not a failure
    raise
  except BaseException as error:  # pylint: disable=broad-except
    failures.append(error)
    raise


def check_output_location(model_prefix: str) -> None:
  """`<model_prefix>.model` can be written (its folder exists or can be made); creates nothing."""
  try:
    files.check_output_file(model_prefix + ".model", "--model_prefix")
  except FlagError as error:
    raise DataError(str(error).replace(".model: ", ": ", 1)) from None


def train_vocab(config: VocabConfig, log=print) -> str:
  """Trains the model; returns the path of `<model_prefix>.model` (checked by loading it).

  The settings, the input files and the output location are checked first. SentencePiece
  writes into a temporary folder; `<model_prefix>.vocab`, then `<model_prefix>.model`, are
  moved into place only when training succeeded, so a failed run leaves nothing behind and a
  `.model` file is always complete.
  """
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  config.validate()
  inputs = corpus_lib.expand_input_files(config.input_file)
  check_output_location(config.model_prefix)
  counter = [0]
  failures: List[BaseException] = []
  threads = config.num_threads or max(1, os.cpu_count() or 1)
  log(f"training a {config.model_type} SentencePiece model of {config.vocab_size} pieces on "
      f"{len(inputs)} file(s)")
  with tempfile.TemporaryDirectory(prefix="albert-vocab-") as tmp:
    tmp_prefix = os.path.join(tmp, "spm")
    try:
      spm.SentencePieceTrainer.train(
          sentence_iterator=_sentences(inputs, config.do_lower_case, config.max_line_length,
                                       counter, failures),
          model_prefix=tmp_prefix,
          vocab_size=config.vocab_size,
          pad_id=0, unk_id=1, eos_id=-1, bos_id=-1,
          control_symbols=list(config.control_symbols),
          user_defined_symbols=list(config.user_defined_symbols),
          shuffle_input_sentence=True,
          input_sentence_size=config.input_sentence_size,
          character_coverage=config.character_coverage,
          model_type=config.model_type,
          num_threads=threads,
          seed_sentencepiece_size=config.seed_sentencepiece_size,
          minloglevel=2)
    except RuntimeError as e:
      if failures:  # our own error (bad input, Ctrl-C) from inside the trainer
        raise failures[0] from None
      if counter[0] == 0:
        raise corpus_lib.CorpusError(f"--input_file: no text in {', '.join(inputs)}") from None
      message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      if "vocab_size" in message or "Vocabulary size" in message:
        raise DataError(f"--vocab_size={config.vocab_size}: SentencePiece cannot train that "
                        f"many pieces on {counter[0]:,} lines: {message}") from None
      raise DataError(f"SentencePiece training failed: {message}") from None
    if failures:
      raise failures[0]
    model = tokenization.load_sp_model(tmp_prefix + ".model")
    expected = ["<pad>", "<unk>", *config.control_symbols, *config.user_defined_symbols]
    got = [model.IdToPiece(i) for i in range(len(expected))]
    if got != expected:
      raise DataError(f"--model_prefix: SentencePiece produced unexpected special pieces {got} "
                      f"(expected {expected})")
    files.copy_file(tmp_prefix + ".vocab", config.model_prefix + ".vocab")
    path = files.copy_file(tmp_prefix + ".model", config.model_prefix + ".model")
  log(f"wrote {path} and {config.model_prefix}.vocab ({model.GetPieceSize()} pieces, "
      f"{counter[0]:,} lines read)")
  return path
