"""The original release's text preprocessing, step by step: the oracle of the fast one.

`albert.tokenization.preprocess_text` takes shortcuts (ASCII skips NFKD, combining marks are
dropped only when present); the tests compare it, and every data job's use of it, with these
plain steps of google-research/albert's `tokenization.preprocess_text`.
"""

from __future__ import annotations

import unicodedata


def original_preprocess_text(text: str, remove_space: bool = True, lower: bool = False) -> str:
  """The original's steps: collapse whitespace, NFKD, drop every combining character, lower."""
  if remove_space:
    text = " ".join(text.strip().split())
  text = unicodedata.normalize("NFKD", text)
  text = "".join(c for c in text if not unicodedata.combining(c))
  if lower:
    text = text.lower()
  return text
