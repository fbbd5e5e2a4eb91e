"""Pretraining instances: the original's sentence-pair packing, SOP labels, n-gram masking (ids).

This module owns the algorithm of the original `create_pretraining_data.py`, step for step, with
every random draw in the original's order (a test drives it with the original's generators and
gets the original's instances):

* `create_instances_from_document`: sentences of one document are packed into chunks up to a
  target length (`max_seq_length - 3`, or with probability `short_seq_prob` a random length in
  [2, max_seq_length - 3], drawn once per document); a chunk is split at a random sentence into A
  and B. SOP: a chunk of one sentence (or, with `random_next_sentence`, half of the chunks) takes
  B from another document (label 1; the unused sentences are put back); otherwise B and A are
  swapped with probability 0.5 (label 1) or kept in order (label 0). The longer segment is then
  truncated one token at a time, from the front or the back at random.
* `mask_instance`: whole-word candidates from the word-start pieces; candidates visited in random
  order; an n-gram of n words (n <= `ngram`, probability proportional to 1/n with
  `favor_shorter_ngram`, reversed otherwise) shrunk until it fits `num_to_predict =
  min(max_predictions_per_seq, max(1, round(len(tokens) * masked_lm_prob)))`; spans touching a
  masked token are skipped; each token: 80% `[MASK]`, 10% kept, 10% a random vocabulary entry;
  positions sorted. `token_boundary` marks `[CLS]`, `[SEP]` and word-start pieces.

Tokens are ids throughout (the original used piece strings and converted at the end; the
vocabulary tables below make the two identical). Randomness comes from `Draws`: one seeded
`random.Random` for everything in our runs; `Draws.original(rng, np_rng)` reproduces the
original's two generators (Python's for all draws, numpy's global one for the n-gram length).
"""

from __future__ import annotations

import bisect
import dataclasses
import random
from typing import Callable, Iterator, List, Optional, Sequence

import numpy as np

# SOP kinds (the label written is 0 for IN_ORDER, 1 otherwise).
IN_ORDER, SWAPPED, OTHER_DOCUMENT = 0, 1, 2
SOP_KIND_NAMES = ("in_order", "swapped", "other_document")
# Replacement kinds of a masked token.
REPLACED_MASK, REPLACED_KEPT, REPLACED_RANDOM = 0, 1, 2

_SP_SPECIAL = set('!"#$%&"()*+,-./:;?@[\\]^_`{|}~')
_ENGLISH = set("abcdefghijklmnopqrstuvwxyz")


def is_start_piece_sp(piece: str) -> bool:
  """The original's SentencePiece word-start test.

  A piece starts a word when it begins with "▁" or "<", is a single ASCII punctuation mark, or
  contains any character that is neither an ASCII letter nor ASCII punctuation (digits and
  non-English characters count as whole pieces). The original also listed "€" and "£" as UTF-8
  bytes, which never equal a str under Python 3; so they act as non-English characters here too.
  """
  if piece.startswith("\u2581") or piece.startswith("<") or piece in _SP_SPECIAL:
    return True
  allowed = _ENGLISH | _SP_SPECIAL
  return not all(str(ch).lower() in allowed for ch in piece)


def is_start_piece_wordpiece(piece: str) -> bool:
  """WordPiece: every piece but a "##" continuation starts a word."""
  return not piece.startswith("##")


@dataclasses.dataclass(frozen=True)
class InstanceParams:
  """The algorithm's settings (the original's flags of the same names)."""
  max_seq_length: int = 512
  short_seq_prob: float = 0.1
  masked_lm_prob: float = 0.15
  max_predictions_per_seq: int = 20
  ngram: int = 3
  favor_shorter_ngram: bool = True
  do_whole_word_mask: bool = True
  random_next_sentence: bool = False

  def ngram_cdf(self) -> List[float]:
    """Cumulative n-gram probabilities, computed as numpy's `choice` does (1/n, normalised)."""
    pvals = 1.0 / np.arange(1, self.ngram + 1)
    pvals /= pvals.sum(keepdims=True)
    if not self.favor_shorter_ngram:
      pvals = pvals[::-1]
    p = pvals / pvals.sum(keepdims=True)
    cdf = p.cumsum()
    cdf /= cdf[-1]
    return [float(x) for x in cdf]


@dataclasses.dataclass
class VocabTables:
  """What the algorithm needs of the vocabulary, by id.

  Attributes:
    cls_id, sep_id, mask_id: ids of `[CLS]`, `[SEP]`, `[MASK]`.
    is_start: per id, 1 if the piece starts a word (SentencePiece or WordPiece rule).
    random_ids: the ids of `list(vocab.keys())`, from which a random replacement is drawn by index
      (as the original drew `vocab_words[randint(0, len - 1)]`).
    vocab_size: number of ids.
  """
  cls_id: int
  sep_id: int
  mask_id: int
  is_start: np.ndarray  # bool [vocab_size]
  random_ids: List[int]
  vocab_size: int

  @classmethod
  def from_vocab(cls, vocab: "dict[str, int]", sentencepiece: bool) -> "VocabTables":
    """Tables of a token -> id vocabulary; raises ValueError if a special token is missing."""
    missing = [t for t in ("[CLS]", "[SEP]", "[MASK]") if t not in vocab]
    if missing:
      raise ValueError(f"the vocabulary has no {', '.join(missing)}")
    size = max(vocab.values()) + 1
    start = np.zeros(size, dtype=bool)
    rule = is_start_piece_sp if sentencepiece else is_start_piece_wordpiece
    for piece, index in vocab.items():
      start[index] = rule(piece)
    return cls(cls_id=vocab["[CLS]"], sep_id=vocab["[SEP]"], mask_id=vocab["[MASK]"],
               is_start=start, random_ids=[vocab[w] for w in vocab], vocab_size=size)


class Draws:
  """The random draws of the algorithm.

  `rng` (a `random.Random`) gives every draw; `ngram_uniform` gives the uniform number that picks
  an n-gram length (the original used numpy's global generator, never seeded; by default here it
  is `rng` too).

  Two draws of the original are replaced in our runs by cheaper ones with the same distribution;
  `original()` keeps the original's exact stream:
  * the order in which masking candidates are visited: the original shuffled all of them
    (`rng.shuffle`), though masking stops after a few; our runs draw the order lazily (a
    Fisher-Yates shuffle stopped where masking stops), which gives the same uniformly random
    order for the candidates visited;
  * the original's second shuffle of the candidates, whose result is only used with
    `--do_permutation`: it changes nothing but the generator's state, so our runs skip it.
  """

  def __init__(self, rng: random.Random, ngram_uniform: Optional[Callable[[], float]] = None,
               exact_original_stream: bool = False):
    self.rng = rng
    self.ngram_uniform = ngram_uniform or rng.random
    self.exact_original_stream = exact_original_stream

  @classmethod
  def original(cls, rng: random.Random, np_rng: np.random.RandomState) -> "Draws":
    """The original's generators: Python's for all draws, numpy's for the n-gram length."""
    return cls(rng, np_rng.random_sample, exact_original_stream=True)

  def candidate_order(self, count: int) -> Iterator[int]:
    """The candidates 0..count-1 in uniformly random order."""
    order = list(range(count))
    if self.exact_original_stream:
      self.rng.shuffle(order)
      yield from order
      return
    uniform = self.rng.random
    for k in range(count):
      j = k + int(uniform() * (count - k))
      order[k], order[j] = order[j], order[k]
      yield order[k]

  def after_masking(self, count: int) -> None:
    """The original's unused second shuffle (only in the exact original stream)."""
    if self.exact_original_stream:
      self.rng.shuffle(list(range(count)))


@dataclasses.dataclass
class Instance:
  """One training instance, unpadded."""
  input_ids: List[int]
  segment_ids: List[int]
  token_boundary: List[int]
  masked_lm_positions: List[int]
  masked_lm_ids: List[int]
  sop_kind: int

  @property
  def next_sentence_label(self) -> int:
    return 0 if self.sop_kind == IN_ORDER else 1


class InstanceStats:
  """Counters of what the algorithm did (summed over workers, so independent of their number)."""

  def __init__(self, ngram: int = 3):
    self.instances = 0
    self.tokens = 0
    self.masked = 0
    self.replaced = [0, 0, 0]  # [MASK], kept, random
    self.sop = [0, 0, 0]  # in order, swapped, other document
    self.ngram_words = [0] * (ngram + 1)  # accepted spans by number of words (index 0 unused)
    self.documents = 0  # document passes (dupe_factor x documents)

  def merge(self, other: "InstanceStats") -> None:
    self.instances += other.instances
    self.tokens += other.tokens
    self.masked += other.masked
    self.documents += other.documents
    for name in ("replaced", "sop", "ngram_words"):
      mine, theirs = getattr(self, name), getattr(other, name)
      if len(theirs) > len(mine):
        mine.extend([0] * (len(theirs) - len(mine)))
      for k, v in enumerate(theirs):
        mine[k] += v

  def as_dict(self) -> dict:
    """Counts and fractions, for the summary and JSON."""
    def frac(values):
      total = sum(values)
      return [round(v / total, 4) if total else 0.0 for v in values]
    return {
        "instances": self.instances,
        "tokens": self.tokens,
        "masked": self.masked,
        "masked_fraction": round(self.masked / self.tokens, 4) if self.tokens else 0.0,
        "masked_per_instance": round(self.masked / self.instances, 3) if self.instances else 0.0,
        "tokens_per_instance": round(self.tokens / self.instances, 1) if self.instances else 0.0,
        "replaced_mask_kept_random": frac(self.replaced),
        "sop_in_order_swapped_other": frac(self.sop),
        "sop_counts": list(self.sop),
        "ngram_words_fraction": frac(self.ngram_words[1:]),
        "ngram_words_counts": list(self.ngram_words[1:]),
    }


def _flatten(segments: Sequence[Sequence[int]]) -> List[int]:
  out: List[int] = []
  for segment in segments:
    out.extend(segment)
  return out


def truncate_pair_at_random(tokens_a: List[int], tokens_b: List[int], max_num_tokens: int,
                      rng: random.Random):
  """The original's truncation: drop from the longer segment, front or back at random.

  Same draws as the original's loop; the cut is applied once at the end (lists are not shifted
  one token at a time). Returns the truncated (tokens_a, tokens_b).
  """
  len_a, len_b = len(tokens_a), len(tokens_b)
  front_a = front_b = 0
  while len_a + len_b > max_num_tokens:
    front = rng.random() < 0.5
    if len_a > len_b:
      len_a -= 1
      front_a += front
    else:
      len_b -= 1
      front_b += front
  return (tokens_a[front_a:front_a + len_a], tokens_b[front_b:front_b + len_b])


def word_candidates(tokens: Sequence[int], tables: VocabTables, whole_word: bool):
  """The original's masking candidates and `token_boundary`, computed with numpy.

  Candidates are the positions of all tokens but `[CLS]`/`[SEP]`, grouped into words: a group
  starts at a word-start piece (and at the first such position), or at every token without
  `whole_word`. As in the original, a continuation piece right after a `[SEP]` joins the last
  word before it. Returns (positions, starts, boundary): candidate k covers
  `positions[starts[k]:starts[k + 1]]` (`starts` ends with len(positions)).
  """
  ids = np.asarray(tokens)
  start = tables.is_start[ids]
  special = (ids == tables.cls_id) | (ids == tables.sep_id)
  boundary = (start | special).astype(np.int64).tolist()
  positions = np.flatnonzero(~special)
  if whole_word:
    flags = start[positions]
    if flags.size:
      flags[0] = True
    starts = np.flatnonzero(flags).tolist()
  else:
    starts = list(range(positions.size))
  starts.append(int(positions.size))
  return positions.tolist(), starts, boundary


def mask_instance(tokens: List[int], params: InstanceParams, tables: VocabTables,
                  cdf: List[float], draws: Draws, stats: Optional[InstanceStats] = None):
  """The original's `create_masked_lm_predictions` on ids.

  Returns (output_ids, masked_lm_positions, masked_lm_ids, token_boundary).
  """
  rng = draws.rng
  positions, starts, boundary = word_candidates(tokens, tables, params.do_whole_word_mask)
  num_candidates = len(starts) - 1
  output = list(tokens)
  if params.masked_lm_prob == 0:
    return output, [], [], boundary

  num_to_predict = min(params.max_predictions_per_seq,
                       max(1, int(round(len(tokens) * params.masked_lm_prob))))
  masked: List[tuple] = []
  covered = set()
  random_ids = tables.random_ids
  last_random = len(random_ids) - 1
  for idx in draws.candidate_order(num_candidates):
    if len(masked) >= num_to_predict:
      break
    n = bisect.bisect_right(cdf, draws.ngram_uniform()) + 1
    words = min(idx + n, num_candidates) - idx
    index_set = positions[starts[idx]:starts[idx + words]]
    n -= 1
    while len(masked) + len(index_set) > num_to_predict:
      if n == 0:
        break
      words = min(idx + n, num_candidates) - idx
      index_set = positions[starts[idx]:starts[idx + words]]
      n -= 1
    if len(masked) + len(index_set) > num_to_predict:
      continue
    if any(index in covered for index in index_set):
      continue
    for index in index_set:
      covered.add(index)
      if rng.random() < 0.8:
        replacement, kind = tables.mask_id, REPLACED_MASK
      elif rng.random() < 0.5:
        replacement, kind = tokens[index], REPLACED_KEPT
      else:
        replacement, kind = random_ids[rng.randint(0, last_random)], REPLACED_RANDOM
      output[index] = replacement
      masked.append((index, tokens[index]))
      if stats is not None:
        stats.replaced[kind] += 1
    if stats is not None:
      stats.ngram_words[words] += 1
  draws.after_masking(num_candidates)

  masked.sort(key=lambda item: item[0])
  return output, [p for p, _ in masked], [label for _, label in masked], boundary


def create_instances_from_document(documents, document_index: int, params: InstanceParams,
                                   tables: VocabTables, draws: Draws,
                                   cdf: Optional[List[float]] = None,
                                   stats: Optional[InstanceStats] = None) -> List[Instance]:
  """The original's `create_instances_from_document`.

  Args:
    documents: any sequence of documents (`len()` and indexing), each a list of sentences, each a
      list of token ids; random "B" segments are drawn from all of them.
    document_index: the document to cut into instances.
    params, tables: settings and vocabulary tables.
    draws: the random draws (see `Draws`).
    cdf: `params.ngram_cdf()` (pass it to avoid recomputing).
    stats: counters to update.
  """
  rng = draws.rng
  cdf = cdf if cdf is not None else params.ngram_cdf()
  document = documents[document_index]
  num_documents = len(documents)
  max_num_tokens = params.max_seq_length - 3
  target_seq_length = max_num_tokens
  if rng.random() < params.short_seq_prob:
    target_seq_length = rng.randint(2, max_num_tokens)

  instances: List[Instance] = []
  chunk: List[List[int]] = []
  chunk_length = 0
  i = 0
  while i < len(document):
    chunk.append(document[i])
    chunk_length += len(document[i])
    if i == len(document) - 1 or chunk_length >= target_seq_length:
      a_end = 1
      if len(chunk) >= 2:
        a_end = rng.randint(1, len(chunk) - 1)
      tokens_a = _flatten(chunk[:a_end])
      if len(chunk) == 1 or (params.random_next_sentence and rng.random() < 0.5):
        kind = OTHER_DOCUMENT
        target_b_length = target_seq_length - len(tokens_a)
        for _ in range(10):
          random_index = rng.randint(0, num_documents - 1)
          if random_index != document_index:
            break
        random_document = documents[random_index]
        tokens_b: List[int] = []
        for j in range(rng.randint(0, len(random_document) - 1), len(random_document)):
          tokens_b.extend(random_document[j])
          if len(tokens_b) >= target_b_length:
            break
        i -= len(chunk) - a_end  # put the unused sentences back
      elif not params.random_next_sentence and rng.random() < 0.5:
        kind = SWAPPED
        tokens_a, tokens_b = _flatten(chunk[a_end:]), tokens_a
      else:
        kind = IN_ORDER
        tokens_b = _flatten(chunk[a_end:])
      tokens_a, tokens_b = truncate_pair_at_random(tokens_a, tokens_b, max_num_tokens, rng)

      tokens = [tables.cls_id] + tokens_a + [tables.sep_id] + tokens_b + [tables.sep_id]
      segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
      output, positions, labels, boundary = mask_instance(tokens, params, tables, cdf, draws,
                                                          stats)
      instances.append(Instance(output, segment_ids, boundary, positions, labels, kind))
      if stats is not None:
        stats.instances += 1
        stats.tokens += len(tokens)
        stats.masked += len(positions)
        stats.sop[kind] += 1
      chunk = []
      chunk_length = 0
    i += 1
  if stats is not None:
    stats.documents += 1
  return instances
