"""The corpus: input text -> token ids in an on-disk store with random access to any document.

This module owns reading the original's input format and keeping it out of memory:

* Input: one sentence per line, a blank line between documents (a line that is empty after
  preprocessing counts as blank). With a SentencePiece model each line goes through
  `preprocess_text(line, lower=do_lower_case)` and `FullTokenizer.tokenize`; with a WordPiece
  vocabulary it is stripped and tokenized (the original's two paths). Lines whose tokenization is
  empty are dropped, empty documents are dropped. The end of a file ends a document (the original
  ran the last document of a file into the first one of the next file when a file did not end
  with a blank line).
* `read_line_batches`: the files as batches of raw lines with file name and line numbers; a line
  longer than `max_line_length` characters is an error naming the file and line (read with a
  bounded `readline`, so it never has to fit in memory).
* `tokenize_batch`: one batch -> ids and per-line lengths (-1 for a blank line). Bytes that are
  not UTF-8 are an error naming the file, line, column and byte (`decode_line`). Runs in worker
  processes.
* `TokenStoreWriter` / `TokenStore`: token ids (uint16 or uint32), sentence ends and document ends
  as flat binary files in a directory; `TokenStore[i]` reads document i with `os.pread`, so
  memory does not grow with the corpus and any document can be drawn as a random "B" segment;
  `remove_stale_token_stores` removes the stores of killed runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import shutil
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from albert import files as files_lib
from albert import tokenization
from albert.data import DataError
from albert.errors import OutputError, output_error


class CorpusError(DataError):
  """Bad input text; the message names the file and line (or the flag)."""


def expand_input_files(patterns: str, flag: str = "--input_file") -> List[str]:
  """Comma-separated globs -> files (in the given order, each glob sorted); clear errors."""
  files: List[str] = []
  for pattern in [p.strip() for p in (patterns or "").split(",") if p.strip()]:
    try:
      matches = files_lib.glob_paths(pattern if files_lib.is_remote(pattern)
                                     else os.path.expanduser(pattern))
    except OSError as e:  # an unreachable bucket, no permission
      raise CorpusError(f"{flag}: cannot list {pattern!r}: {e.strerror or e}") from None
    if not matches:
      raise CorpusError(f"{flag}: no file matches {pattern!r}")
    for path in matches:
      if "://" not in path:
        if os.path.isdir(path):
          raise CorpusError(f"{flag}: {path!r} is a directory, not a text file")
        if not os.access(path, os.R_OK):
          raise CorpusError(f"{flag}: {path!r} is not readable (permission denied)")
      if path not in files:
        files.append(path)
  if not files:
    raise CorpusError(f"{flag} is empty: give a text file or comma-separated globs")
  return files


def _open_binary(path: str):
  try:
    return files_lib.open_file(path, "rb")
  except OSError as e:
    raise CorpusError(f"cannot read input file {path!r}: {e.strerror or e}") from e


def file_size(path: str) -> int:
  try:
    return files_lib.size(path)
  except OSError as e:
    raise CorpusError(f"cannot read input file {path!r}: {e.strerror or e}") from e


@dataclasses.dataclass
class LineBatch:
  file_index: int
  path: str
  first_line: int  # 1-based number of lines[0]
  lines: List[bytes]
  end_of_file: bool = False


def read_line_batches(files: Sequence[str], max_line_length: int,
                      batch_bytes: int = 1 << 16) -> Iterator[LineBatch]:
  """Yields the raw lines of every file in order, in batches of about `batch_bytes`."""
  limit = 4 * max_line_length + 2  # UTF-8 needs at most 4 bytes a character, plus "\r\n"
  for file_index, path in enumerate(files):
    with _open_binary(path) as reader:
      line_no = 0
      lines: List[bytes] = []
      size = 0
      first = 1
      while True:
        try:
          line = reader.readline(limit)
        except OSError as e:
          raise CorpusError(f"{path}:{line_no + 1}: read error: {e}") from e
        if not line:
          break
        line_no += 1
        if len(line) >= limit and not line.endswith(b"\n"):
          raise CorpusError(
              f"{path}:{line_no}: line longer than {max_line_length} characters; the input "
              "must have one sentence per line (split the text into sentences, or raise "
              "--max_line_length)")
        lines.append(line)
        size += len(line)
        if size >= batch_bytes:
          yield LineBatch(file_index, path, first, lines)
          first = line_no + 1
          lines, size = [], 0
      yield LineBatch(file_index, path, first, lines, end_of_file=True)


def decode_line(raw: bytes, path: str, line_no: int) -> str:
  """A raw line as text; bytes that are not UTF-8 are a CorpusError naming file, line, byte."""
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:
    line_start = raw[:e.start].decode("utf-8", "replace")
    raise CorpusError(
        f"{path}:{line_no}: not valid UTF-8 (byte {raw[e.start]:#04x} at column "
        f"{len(line_start) + 1}, byte {e.start + 1} of the line: {e.reason}); convert the file "
        "to UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


@dataclasses.dataclass
class TokenizedBatch:
  """Result of `tokenize_batch`: `lengths[k]` is -1 for a blank line, else its number of ids."""
  file_index: int
  first_line: int
  lengths: np.ndarray  # int32 [num_lines]
  ids: np.ndarray  # int64 [sum of non-negative lengths]
  end_of_file: bool
  num_bytes: int


class SentencePieceIds:
  """Line -> ids exactly as `FullTokenizer.tokenize` + `convert_tokens_to_ids`, batched.

  Lines are encoded in one call to SentencePiece (ids directly). The original's digit-comma
  re-split (see `tokenization.encode_pieces`) only touches pieces that end in `<digit>,`; a line
  containing one of those ids is encoded again through the tokenizer's own path, so the result
  is the same as the tokenizer's for every line.
  """

  def __init__(self, tokenizer: tokenization.FullTokenizer):
    self.tokenizer = tokenizer
    sp = tokenizer.sp_model
    size = sp.GetPieceSize()
    quirk = np.zeros(size, dtype=bool)
    for i in range(size):
      piece = sp.IdToPiece(i)
      quirk[i] = len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit()
    self._quirk = quirk

  def __call__(self, texts: List[str]) -> List[List[int]]:
    if not texts:
      return []
    encoded = self.tokenizer.sp_model.encode(texts)
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    flat = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64,
                       count=int(lengths.sum()))
    hits = self._quirk[flat]
    if hits.any():
      line_of = np.repeat(np.arange(len(encoded)), lengths)
      piece_to_id = self.tokenizer.sp_model.PieceToId
      for k in np.unique(line_of[hits]).tolist():
        encoded[k] = [piece_to_id(p) for p in self.tokenizer.tokenize(texts[k])]
    return encoded


def tokenize_batch(tokenizer: tokenization.FullTokenizer, batch: LineBatch,
                   max_line_length: int,
                   sp_ids: Optional[SentencePieceIds] = None) -> TokenizedBatch:
  """Decodes, preprocesses and tokenizes every line of a batch, as the original did."""
  use_spm = tokenizer.sp_model is not None
  if use_spm and sp_ids is None:
    sp_ids = SentencePieceIds(tokenizer)
  lengths = np.full(len(batch.lines), -1, dtype=np.int32)
  texts: List[str] = []
  rows: List[int] = []
  num_bytes = 0
  for k, raw in enumerate(batch.lines):
    num_bytes += len(raw)
    text = decode_line(raw, batch.path, batch.first_line + k)
    if len(text) > max_line_length and len(text.rstrip("\r\n")) > max_line_length:
      raise CorpusError(
          f"{batch.path}:{batch.first_line + k}: line longer than {max_line_length} characters; "
          "the input must have one sentence per line (split the text into sentences, or raise "
          "--max_line_length)")
    text = (tokenization.preprocess_text(text, lower=tokenizer.do_lower_case) if use_spm
            else text.strip())
    if text:
      texts.append(text)
      rows.append(k)
  if use_spm:
    encoded = sp_ids(texts)
  else:
    encoded = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t)) for t in texts]
  lengths[rows] = np.fromiter(map(len, encoded), dtype=np.int32, count=len(encoded))
  ids = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64,
                    count=int(lengths[rows].sum()) if rows else 0)
  return TokenizedBatch(batch.file_index, batch.first_line, lengths, ids, batch.end_of_file,
                        num_bytes)


# ---------------------------------------------------------------------------------------------
# The token store.

_TOKENS, _SENTENCES, _DOCUMENTS, _META = "tokens.bin", "sentence_ends.i64", "document_ends.i64", \
    "meta.json"


@dataclasses.dataclass
class CorpusStats:
  """What reading the corpus found."""
  files: int = 0
  bytes: int = 0
  lines: int = 0
  blank_lines: int = 0
  sentences: int = 0
  documents: int = 0
  tokens: int = 0
  single_sentence_documents: int = 0
  dropped_documents: int = 0  # documents whose lines all tokenized to nothing
  warnings: List[str] = dataclasses.field(default_factory=list)


class TokenStoreWriter:
  """Builds the store from tokenized batches, in corpus order.

  A write that fails (a full disk) is an `OutputError` naming the store's directory.
  """

  MAX_WARNINGS = 20

  def __init__(self, directory: str, vocab_size: int):
    self.directory = directory
    self.dtype = np.uint16 if vocab_size <= 1 << 16 else np.uint32
    with self._naming_the_store():
      os.makedirs(directory, exist_ok=True)
      self._tokens = open(os.path.join(directory, _TOKENS), "wb")
      self._sentences = open(os.path.join(directory, _SENTENCES), "wb")
      self._documents = open(os.path.join(directory, _DOCUMENTS), "wb")
    self.stats = CorpusStats()
    self._doc_sentences = 0  # sentences in the open document
    self._doc_has_lines = False  # the open document had non-blank lines
    self._doc_first_line = ""  # file:line where the open document starts

  def _close_document(self) -> None:
    if self._doc_sentences:
      self.stats.documents += 1
      if self._doc_sentences == 1:
        self.stats.single_sentence_documents += 1
      self._documents.write(np.asarray([self.stats.sentences], dtype=np.int64).tobytes())
    elif self._doc_has_lines:
      self.stats.dropped_documents += 1
      if len(self.stats.warnings) < self.MAX_WARNINGS:
        self.stats.warnings.append(
            f"{self._doc_first_line}: document has no tokens (its lines are empty after "
            "preprocessing and tokenization); skipped")
    self._doc_sentences = 0
    self._doc_has_lines = False

  @contextlib.contextmanager
  def _naming_the_store(self) -> Iterator[None]:
    try:
      yield
    except OSError as error:
      if isinstance(error, OutputError):
        raise
      error.filename = self.directory
      wrapped = output_error(error, "cannot write the temporary token store")
      wrapped.strerror += ("; the store is temporary: it goes beside the first output, or in "
                           "--work_dir")
      raise wrapped from None

  def add(self, batch: TokenizedBatch, path: str) -> None:
    with self._naming_the_store():
      self._add(batch, path)

  def _add(self, batch: TokenizedBatch, path: str) -> None:
    stats = self.stats
    stats.bytes += batch.num_bytes
    stats.lines += len(batch.lengths)
    ends = []
    for k, length in enumerate(batch.lengths.tolist()):
      if length < 0:
        stats.blank_lines += 1
        self._close_document()
        continue
      if not self._doc_has_lines:
        self._doc_has_lines = True
        self._doc_first_line = f"{path}:{batch.first_line + k}"
      if length == 0:
        continue
      stats.tokens += length
      stats.sentences += 1
      self._doc_sentences += 1
      ends.append(stats.tokens)
    if batch.ids.size and batch.ids.max(initial=0) > np.iinfo(self.dtype).max:
      raise ValueError("token id out of range for the store")
    # file.write, not ndarray.tofile: a short write (full disk) must raise an OSError with errno.
    self._tokens.write(batch.ids.astype(self.dtype).tobytes())
    self._sentences.write(np.asarray(ends, dtype=np.int64).tobytes())
    if batch.end_of_file:
      stats.files += 1
      self._close_document()

  def close(self) -> CorpusStats:
    with self._naming_the_store():
      self._close_document()
      for f in (self._tokens, self._sentences, self._documents):
        f.close()
      meta = {"dtype": np.dtype(self.dtype).name, "documents": self.stats.documents,
              "sentences": self.stats.sentences, "tokens": self.stats.tokens}
      with open(os.path.join(self.directory, _META), "w") as f:
        json.dump(meta, f)
    return self.stats

  def abort(self) -> None:
    for f in (self._tokens, self._sentences, self._documents):
      try:
        f.close()
      except OSError:  # the buffered rest cannot be written either (full disk): dropped
        pass


class TokenStore:
  """Read-only random access to the documents of a store: `len(store)`, `store[i]`.

  `store[i]` is a list of sentences, each a list of ids. Files are read with `os.pread`; nothing
  but the open file descriptors is kept between calls.
  """

  def __init__(self, directory: str):
    self.directory = directory
    with open(os.path.join(directory, _META)) as f:
      meta = json.load(f)
    self.dtype = np.dtype(meta["dtype"])
    self.num_documents = int(meta["documents"])
    self.num_sentences = int(meta["sentences"])
    self.num_tokens = int(meta["tokens"])
    self._fds = [os.open(os.path.join(directory, name), os.O_RDONLY)
                 for name in (_TOKENS, _SENTENCES, _DOCUMENTS)]

  def __len__(self) -> int:
    return self.num_documents

  def _int64s(self, fd: int, first: int, count: int) -> np.ndarray:
    data = os.pread(fd, 8 * count, 8 * first)
    return np.frombuffer(data, dtype=np.int64)

  def _range(self, fd: int, index: int) -> Tuple[int, int]:
    """[start, end) of item `index` in a file of cumulative ends."""
    if index == 0:
      return 0, int(self._int64s(fd, 0, 1)[0])
    pair = self._int64s(fd, index - 1, 2)
    return int(pair[0]), int(pair[1])

  def __getitem__(self, index: int) -> List[List[int]]:
    if not 0 <= index < self.num_documents:
      raise IndexError(f"document {index} out of range ({self.num_documents})")
    tokens_fd, sentences_fd, documents_fd = self._fds
    first_sentence, end_sentence = self._range(documents_fd, index)
    if first_sentence == 0:
      ends = np.concatenate([[0], self._int64s(sentences_fd, 0, end_sentence)])
    else:
      ends = self._int64s(sentences_fd, first_sentence - 1, end_sentence - first_sentence + 1)
    start, stop = int(ends[0]), int(ends[-1])
    size = self.dtype.itemsize
    ids = np.frombuffer(os.pread(tokens_fd, size * (stop - start), size * start),
                        dtype=self.dtype).tolist()
    cuts = (ends - start).tolist()
    return [ids[cuts[k]:cuts[k + 1]] for k in range(len(cuts) - 1)]

  def close(self) -> None:
    for fd in self._fds:
      os.close(fd)
    self._fds = []


def remove_stale_token_stores(directory: str, prefix: str, log) -> None:
  """Removes the token stores `<directory>/<prefix><pid>-*` of killed runs (process gone)."""
  if not os.path.isdir(directory):
    return
  for name in os.listdir(directory):
    if not name.startswith(prefix):
      continue
    try:
      pid = int(name[len(prefix):].split("-")[0])
      os.kill(pid, 0)
      continue  # still running
    except (ValueError, ProcessLookupError):
      pass
    except PermissionError:
      continue
    log(f"removing a token store left by an interrupted run: {os.path.join(directory, name)}")
    shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
