"""Aligning SentencePiece pieces to the characters of a SQuAD context, exactly as the original.

The original (`squad_utils.convert_examples_to_features`, google-research/albert) joins a
paragraph's pieces into `tok_cat_text` ("▁" -> " ") and aligns it to the context with a banded
longest common subsequence: row i (character i of the context) visits the columns
`i - max_dist <= j < i + max_dist`, `max_dist = |n - m| + 5` (doubled for a second pass when
the score is at most 0.8 n); character i matches column j when
`preprocess_text(context[i], lower, remove_space=False) == tok_cat_text[j]`; ties prefer up,
then left, then the match; the backtrace from (n-1, m-1) gives `orig_to_chartok` and
`chartok_to_orig` (None where unmatched), and `_convert_index` picks a neighbour for unmatched
positions. A paragraph whose score stays below 0.8 n, or that matches nothing, is skipped.

`lcs_alignment` is that program. `greedy_alignment` gets the same result without the table
when it provably is the same (see its docstring), which is the case for 98-99 % of the
paragraphs of SQuAD; `align` tries it first. `convert_indexes` is `_convert_index` for many
positions at once; `convert_index` is the original's scalar version.

SentencePiece's own piece offsets (`encode(..., out_type="proto")`, begin/end per piece) were
checked and are not used: they are UTF-8 byte offsets into the preprocessed text, not character
offsets into the context, and where the two texts differ (collapsed whitespace, NFKD
expansions such as "½" -> "1⁄2", the extra "▁" of the digit-comma re-split) the original's
alignment picks characters that the offsets do not give.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from albert import tokenization

_UNSET = 255
_FORMS: Dict[Tuple[str, bool], str] = {}


def char_form(char: str, do_lower_case: bool) -> str:
  """`preprocess_text(char, lower, remove_space=False)`, remembered (the table's match test)."""
  key = (char, do_lower_case)
  form = _FORMS.get(key)
  if form is None:
    if len(_FORMS) > 100000:
      _FORMS.clear()
    form = tokenization.preprocess_text(char, remove_space=False, lower=do_lower_case)
    _FORMS[key] = form
  return form


def char_forms(paragraph_text: str, do_lower_case: bool) -> List[str]:
  """`char_form` of every character of the context."""
  forms = {c: char_form(c, do_lower_case) for c in set(paragraph_text)}
  return [forms[c] for c in paragraph_text]


def lcs_alignment(forms: Sequence[str], tok_cat_text: str, max_dist: int
                  ) -> Tuple[int, np.ndarray, np.ndarray]:
  """The original's banded table and backtrace: (f[n-1, m-1], orig->chartok, chartok->orig).

  Unmatched positions are -1. Cells outside the band count as 0; moves: 0 up, 1 left (when
  strictly better), 2 match (when strictly better); the backtrace stops at a cell never set.
  """
  n, m = len(forms), len(tok_cat_text)
  orig_to_chartok = np.full(n, -1, dtype=np.int64)
  chartok_to_orig = np.full(m, -1, dtype=np.int64)
  if n == 0 or m == 0:
    return 0, orig_to_chartok, chartok_to_orig
  width = 2 * max_dist
  prev, cur = [0] * m, [0] * m  # rows i - 1 and i (cells outside the band are never read)
  moves = []
  for i in range(n):
    lo = i - max_dist
    row = bytearray([_UNSET]) * width
    form = forms[i]
    for j in range(max(lo, 0), min(i + max_dist, m)):
      if i > 0:
        move, value = 0, (prev[j] if j < i - 1 + max_dist else 0)
      else:
        move, value = _UNSET, 0
      if j > 0:
        left = cur[j - 1] if j - 1 >= lo else 0
        if left > value:
          move, value = 1, left
      diag = prev[j - 1] if i > 0 and j > 0 else 0
      if form == tok_cat_text[j] and diag + 1 > value:
        move, value = 2, diag + 1
      cur[j] = value
      row[j - lo] = move
    moves.append(row)
    prev, cur = cur, prev
  in_band = n - 1 - max_dist <= m - 1 < n - 1 + max_dist
  score = prev[m - 1] if in_band else 0
  i, j = n - 1, m - 1
  while i >= 0 and j >= 0:
    k = j - (i - max_dist)
    if not 0 <= k < width or moves[i][k] == _UNSET:
      break
    move = moves[i][k]
    if move == 2:
      orig_to_chartok[i], chartok_to_orig[j] = j, i
      i, j = i - 1, j - 1
    elif move == 1:
      j -= 1
    else:
      i -= 1
  return score, orig_to_chartok, chartok_to_orig


def greedy_alignment(paragraph_text: str, tok_cat_text: str, do_lower_case: bool,
                     max_dist: int) -> Optional[Tuple[int, np.ndarray, np.ndarray]]:
  """`lcs_alignment`'s result without the table when provably equal to it, else None.

  Call a character *matchable* when its form is one character that occurs in
  `tok_cat_text` (any other row of the table has no match cell). Suppose the matchable
  characters all embed, in order, into `tok_cat_text`, and let L(i) be the greedy leftmost
  position of matchable character i. By induction over the rows, the table's value at (i, j)
  is then c(i), the number of matchable characters up to i, for every j >= L(i), and less for
  j < L(i); at (i, L(i)) the match is strictly better than up (at most c(i) - 1) and left (less
  than c(i)); to the right of it in row i, left is strictly better than up; in a row that
  cannot match, up is never worse than left. So the backtrace from (n-1, m-1) moves left to
  L(i) in each matchable row, matches, and goes up through the others: the alignment is the
  greedy embedding. The induction reads cells one column left of and one row above the
  rectangle between consecutive matched cells (and between the last one and (n-1, m-1)); all
  must lie inside the band, which is checked. The score c(n-1) must pass the original's
  first-pass test (> 0.8 n), so that no second pass runs.
  """
  n, m = len(paragraph_text), len(tok_cat_text)
  if n < 2 or m == 0:
    return None
  present = set(tok_cat_text)
  blank = "\x00" if "\x00" not in present else "\x01"
  if blank in present:
    return None
  table = {}
  for char in set(paragraph_text):
    form = char_form(char, do_lower_case)
    table[ord(char)] = form if len(form) == 1 and form in present else blank
  mapped = paragraph_text.translate(table)
  codes = np.frombuffer(mapped.encode("utf-32-le"), dtype=np.uint32)
  rows = np.flatnonzero(codes != ord(blank))
  if len(rows) <= 0.8 * n:
    return None
  text = mapped.replace(blank, "")
  source = codes[rows]
  target = np.frombuffer(tok_cat_text.encode("utf-32-le"), dtype=np.uint32)
  cols = np.empty(len(rows), dtype=np.int64)
  s, j = 0, 0
  while s < len(rows):  # a run of equal characters, then the next occurrence
    j = tok_cat_text.find(text[s], j)
    if j < 0 or j - rows[s] > max_dist:
      return None
    length = min(len(rows) - s, m - j)
    unequal = np.flatnonzero(source[s:s + length] != target[j:j + length])
    run = int(unequal[0]) if len(unequal) else length
    cols[s:s + run] = np.arange(j, j + run)
    s, j = s + run, j + run
  if not (np.all(cols[:-1] >= rows[1:] - max_dist + 1)
          and np.all(cols[1:] <= rows[:-1] + max_dist - 2)
          and cols[-1] >= n - max_dist and m - 1 <= rows[-1] + max_dist - 2):
    return None
  orig_to_chartok = np.full(n, -1, dtype=np.int64)
  chartok_to_orig = np.full(m, -1, dtype=np.int64)
  orig_to_chartok[rows] = cols
  chartok_to_orig[cols] = rows
  return len(rows), orig_to_chartok, chartok_to_orig


def align(paragraph_text: str, tok_cat_text: str, do_lower_case: bool
          ) -> Optional[Tuple[np.ndarray, np.ndarray, bool]]:
  """(orig->chartok, chartok->orig, whether the table ran) as the original; None = skipped."""
  n, m = len(paragraph_text), len(tok_cat_text)
  max_dist = abs(n - m) + 5
  fast = greedy_alignment(paragraph_text, tok_cat_text, do_lower_case, max_dist)
  if fast is not None:
    return fast[1], fast[2], False
  forms = char_forms(paragraph_text, do_lower_case)
  for _ in range(2):
    score, orig_to_chartok, chartok_to_orig = lcs_alignment(forms, tok_cat_text, max_dist)
    if score > 0.8 * n:
      break
    max_dist *= 2
  if not np.any(orig_to_chartok >= 0) or score < 0.8 * n:
    return None
  return orig_to_chartok, chartok_to_orig, True


def convert_index(index: Sequence[Optional[int]], pos: int, m: Optional[int] = None,
                  is_start: bool = True) -> int:
  """The original's `_convert_index` (None or a negative value = unaligned)."""
  def get(k):
    value = index[k]
    return None if value is None or value < 0 else int(value)
  if get(pos) is not None:
    return get(pos)
  n = len(index)
  rear = pos
  while rear < n - 1 and get(rear) is None:
    rear += 1
  front = pos
  while front > 0 and get(front) is None:
    front -= 1
  front_value, rear_value = get(front), get(rear)
  if front_value is None:
    if rear_value >= 1:
      return 0 if is_start else rear_value - 1
    return rear_value
  if rear_value is None:
    if m is not None and front_value < m - 1:
      return front_value + 1 if is_start else m - 1
    return front_value
  if is_start:
    return front_value + 1 if rear_value > front_value + 1 else rear_value
  return rear_value - 1 if rear_value > front_value + 1 else front_value


def convert_indexes(index: np.ndarray, positions: np.ndarray, m: Optional[int],
                    is_start: bool) -> np.ndarray:
  """`convert_index` at many positions (int32); `index` holds -1 where unaligned."""
  index = np.asarray(index, dtype=np.int64)
  positions = np.asarray(positions, dtype=np.int64)
  if len(positions) == 0:
    return np.zeros(0, dtype=np.int32)
  aligned = index >= 0
  where = np.arange(len(index))
  front = np.maximum.accumulate(np.where(aligned, where, -1))[positions]  # last aligned <= pos
  rear = np.minimum.accumulate(np.where(aligned, where, len(index))[::-1])[::-1][positions]
  if np.any((front < 0) & (rear >= len(index))):
    raise ValueError("convert_indexes: nothing is aligned")
  front_value = index[np.maximum(front, 0)]
  rear_value = index[np.minimum(rear, len(index) - 1)]
  gap = rear_value > front_value + 1
  if is_start:
    both = np.where(gap, front_value + 1, rear_value)
    no_front = np.where(rear_value >= 1, 0, rear_value)
    no_rear = (np.where(front_value < m - 1, front_value + 1, front_value) if m is not None
               else front_value)
  else:
    both = np.where(gap, rear_value - 1, front_value)
    no_front = np.where(rear_value >= 1, rear_value - 1, rear_value)
    no_rear = (np.where(front_value < m - 1, m - 1, front_value) if m is not None
               else front_value)
  out = np.where(rear >= len(index), no_rear, both)
  out = np.where(front < 0, no_front, out)
  out = np.where(aligned[positions], index[positions], out)
  return out.astype(np.int32)
