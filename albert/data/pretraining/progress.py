"""Progress lines and the summary of a `create_pretraining_data` run (TF-free).

* `Progress`: logs done / total, the rate and the ETA at most every `interval` seconds;
* `Summary`: what a run did (input, output, masking and SOP statistics, time), as a dict for
  `--summary_file` and as the text block the run logs at its end.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Dict, List, Optional


class Progress:
  """Logs done/total, rate and ETA at most every `interval` seconds."""

  def __init__(self, what: str, total: float, unit: str, interval: float,
               log: Callable[[str], None], scale: float = 1.0, extra: Optional[Callable] = None):
    self.what, self.total, self.unit, self.interval = what, total, unit, interval
    self.log, self.scale, self.extra = log, scale, extra
    self.start = self._last = time.monotonic()

  def update(self, done: float, force: bool = False) -> None:
    now = time.monotonic()
    if not force and now - self._last < self.interval:
      return
    self._last = now
    elapsed = max(now - self.start, 1e-9)
    rate = done / elapsed
    frac = done / self.total if self.total else 1.0
    eta = (self.total - done) / rate if rate > 0 else float("inf")
    eta_text = _clock(eta) if math.isfinite(eta) else "?"
    extra = f", {self.extra(elapsed)}" if self.extra else ""
    self.log(f"{self.what}: {done / self.scale:,.1f} of {self.total / self.scale:,.1f} "
             f"{self.unit} ({100 * frac:.1f}%), {rate / self.scale:,.2f} {self.unit}/s"
             f"{extra}, elapsed {_clock(elapsed)}, ETA {eta_text}")


def _clock(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclasses.dataclass
class Summary:
  """What a run did (also returned when every shard was already complete)."""
  input_files: int = 0
  input_bytes: int = 0
  documents: int = 0
  sentences: int = 0
  corpus_tokens: int = 0
  single_sentence_documents: int = 0
  dropped_documents: int = 0
  output_files: List[str] = dataclasses.field(default_factory=list)
  shards_written: int = 0
  shards_skipped: int = 0
  records_written: int = 0
  instance_stats: Dict = dataclasses.field(default_factory=dict)
  seconds_tokenize: float = 0.0
  seconds_instances: float = 0.0
  seconds_total: float = 0.0
  num_workers: int = 1
  warnings: List[str] = dataclasses.field(default_factory=list)

  @property
  def instances_per_second(self) -> float:
    return self.records_written / self.seconds_total if self.seconds_total else 0.0

  def as_dict(self) -> Dict:
    out = dataclasses.asdict(self)
    out["instances_per_second"] = round(self.instances_per_second, 1)
    return out

  def format(self) -> str:
    s = self.instance_stats or {}
    lines = [
        "*** create_pretraining_data summary ***",
        f"input: {self.input_files} file(s), {self.input_bytes / 1e6:,.1f} MB, "
        f"{self.documents:,} documents ({self.single_sentence_documents:,} of one sentence, "
        f"{self.dropped_documents:,} without tokens dropped), {self.sentences:,} sentences, "
        f"{self.corpus_tokens:,} tokens",
        f"output: {self.records_written:,} instances in {self.shards_written} shard(s) written"
        f"{f', {self.shards_skipped} complete shard(s) skipped' if self.shards_skipped else ''}",
    ]
    if s:
      replaced = s["replaced_mask_kept_random"]
      sop = s["sop_in_order_swapped_other"]
      ngram = ", ".join(f"{k + 1}: {100 * f:.1f}%" for k, f in
                        enumerate(s["ngram_words_fraction"]))
      lines += [
          f"tokens: {s['tokens']:,} ({s['tokens_per_instance']} per instance); masked "
          f"{s['masked']:,} = {100 * s['masked_fraction']:.2f}% ({s['masked_per_instance']} per "
          "instance)",
          f"replacements: {100 * replaced[0]:.1f}% [MASK], {100 * replaced[2]:.1f}% random, "
          f"{100 * replaced[1]:.1f}% kept",
          f"SOP labels: {100 * sop[0]:.1f}% in order (0), {100 * sop[1]:.1f}% swapped (1), "
          f"{100 * sop[2]:.1f}% B from another document (1)",
          f"masked n-grams by words: {ngram}",
      ]
    lines.append(f"time: {self.seconds_total:.1f} s (tokenize {self.seconds_tokenize:.1f} s, "
                 f"instances {self.seconds_instances:.1f} s), {self.num_workers} worker(s), "
                 f"{self.instances_per_second:,.0f} instances/s")
    return "\n".join(lines)
