"""Inspecting pretraining record files: statistics and a few instances decoded back to text.

This module owns `inspect_records`, the `inspect` command of `create_pretraining_data.py`. It reads
the files with TensorFlow and the original's feature spec (so it doubles as a check that
pretraining can read them), finds `max_seq_length` and `max_predictions_per_seq` from the first
record, checks each record's layout (`[CLS] A [SEP] B [SEP]` then padding, sorted positions inside
the sequence) and reports: records, tokens and masked tokens per instance, masked fraction,
replacement kinds ([MASK] / random / kept, from the input id at each position vs its label; needs
the vocabulary), SOP labels, and masked runs by number of words (adjacent masked n-grams merge into
one run here, so this undercounts short n-grams slightly compared with the run's own summary).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Dict, List, Optional

import numpy as np

from albert import tokenization
from albert.data import DataError
from albert.data.pretraining import corpus as corpus_lib
from albert.data import records as records_lib


@dataclasses.dataclass
class InspectConfig:
  input_file: str = ""  # comma-separated globs of record files
  spm_model_file: Optional[str] = None  # to decode ids (optional)
  vocab_file: Optional[str] = None
  do_lower_case: bool = True
  num_examples: int = 3  # instances to decode
  max_records: int = 0  # 0: all


class RecordError(DataError):
  """A file that is not the original's pretraining records; names the file and record."""


def describe_read_error(message: str) -> str:
  """The useful part of a tf.data error message: `truncated record at 378 (read less bytes ...)`.

  TensorFlow wraps it in `{{function_node ...}}` and ` [Op:IteratorGetNext] name: `.
  """
  text = (message or "").splitlines()[0] if message else ""
  text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
  text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text)
  match = re.match(r"(truncated record|corrupted record) at (\d+)'?(?: failed with (.*))?$", text)
  if match:
    kind, offset, detail = match.groups()
    text = f"{kind} at byte {offset}" + (f" ({detail.strip().lower()})" if detail else "")
  return text.strip() or "unreadable"


def _record_lengths(path: str) -> Dict[str, int]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    first = next(iter(tf.data.TFRecordDataset([path]).take(1)), None)
  except tf.errors.OpError as e:
    raise RecordError(f"{path}: not a TFRecord file ({describe_read_error(e.message)})"
                      ) from None
  if first is None:
    return {}
  example = tf.train.Example.FromString(first.numpy())
  lengths = {}
  for name in records_lib.FEATURE_NAMES:
    if name not in example.features.feature:
      raise RecordError(f"{path}: record 0 has no feature {name!r}; not a "
                        "create_pretraining_data record")
    feature = example.features.feature[name]
    lengths[name] = len(feature.float_list.value if name == "masked_lm_weights"
                        else feature.int64_list.value)
  return lengths


def decode_pieces(pieces: List[str], sentencepiece: bool) -> str:
  """Pieces back to readable text (SentencePiece "▁" -> space; WordPiece "##" joins)."""
  if sentencepiece:
    pieces = [f"\u2581{p}" if p in ("[MASK]", "[CLS]", "[SEP]") else p for p in pieces]
    return "".join(pieces).replace("\u2581", " ").strip()
  text = " ".join(pieces)
  return text.replace(" ##", "")


def inspect_records(config: InspectConfig, log: Callable[[str], None] = print) -> Dict:
  """Prints statistics and `num_examples` decoded instances; returns the statistics."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  files = corpus_lib.expand_input_files(config.input_file)
  tokenizer = None
  if config.spm_model_file or config.vocab_file:
    tokenizer = tokenization.TokenizerSpec(config.spm_model_file, config.vocab_file,
                                           config.do_lower_case).build()
  lengths = {}
  for path in files:
    lengths = _record_lengths(path)
    if lengths:
      break
  if not lengths:
    raise RecordError(f"no records in {', '.join(files)}")
  seq, preds = lengths["input_ids"], lengths["masked_lm_positions"]
  spec = records_lib.parse_spec(records_lib.feature_spec(seq, preds))
  mask_id = tokenizer.vocab.get("[MASK]") if tokenizer else None

  def batches():
    """Each file in turn, so that a read error names its file."""
    left = config.max_records or None
    for path in files:
      if left is not None and left <= 0:
        return
      dataset = tf.data.TFRecordDataset([path])
      if left is not None:
        dataset = dataset.take(left)
      dataset = dataset.map(lambda r: tf.io.parse_single_example(r, spec)).batch(512)
      try:
        for batch in dataset:
          if left is not None:
            left -= int(batch["input_mask"].shape[0])
          yield batch
      except tf.errors.OpError as e:
        detail = describe_read_error(e.message)
        if detail.startswith(("truncated record", "corrupted record")):
          detail += ": the file is damaged (was it copied completely?)"
        else:
          detail += (f" (records of max_seq_length={seq}, max_predictions_per_seq={preds} "
                     "expected from the first record)")
        raise RecordError(f"{path}: {detail}") from None

  totals = {"records": 0, "tokens": 0, "masked": 0, "sop_0": 0, "sop_1": 0, "bad_layout": 0}
  replaced = np.zeros(3, dtype=np.int64)  # [MASK], random, kept
  runs: Dict[int, int] = {}
  shown = 0
  for batch in batches():
    b = {k: v.numpy() for k, v in batch.items()}
    mask, weights = b["input_mask"], b["masked_lm_weights"]
    n = mask.shape[0]
    totals["records"] += n
    totals["tokens"] += int(mask.sum())
    totals["masked"] += int(weights.sum())
    labels = b["next_sentence_labels"][:, 0]
    totals["sop_0"] += int((labels == 0).sum())
    totals["sop_1"] += int((labels == 1).sum())
    for row in range(n):
      length = int(mask[row].sum())
      num = int(weights[row].sum())
      pos = b["masked_lm_positions"][row, :num]
      ids = b["input_ids"][row]
      if (not np.all(mask[row, :length] == 1) or (num and (pos.max() >= length or
                                                           np.any(np.diff(pos) <= 0)))):
        totals["bad_layout"] += 1
        continue
      shown_ids = ids[pos]
      wanted = b["masked_lm_ids"][row, :num]
      if mask_id is not None:
        replaced[0] += int((shown_ids == mask_id).sum())
        replaced[2] += int(((shown_ids != mask_id) & (shown_ids == wanted)).sum())
        replaced[1] += int(((shown_ids != mask_id) & (shown_ids != wanted)).sum())
      boundary = b["token_boundary"][row]
      run_words = 0
      for k, p in enumerate(pos):
        if k == 0 or p != pos[k - 1] + 1:
          if run_words:
            runs[run_words] = runs.get(run_words, 0) + 1
          run_words = 0
        run_words += int(boundary[p]) or (1 if run_words == 0 else 0)
      if run_words:
        runs[run_words] = runs.get(run_words, 0) + 1
      if shown < config.num_examples:
        _show(log, shown, ids[:length], b["segment_ids"][row, :length], pos, wanted,
              int(labels[row]), tokenizer)
        shown += 1

  records = max(totals["records"], 1)
  run_total = max(sum(runs.values()), 1)
  stats = {
      "files": len(files),
      "max_seq_length": seq,
      "max_predictions_per_seq": preds,
      **totals,
      "tokens_per_instance": round(totals["tokens"] / records, 2),
      "masked_per_instance": round(totals["masked"] / records, 3),
      "masked_fraction": round(totals["masked"] / max(totals["tokens"], 1), 4),
      "sop_label_1_fraction": round(totals["sop_1"] / records, 4),
      "masked_runs_by_words": {k: round(v / run_total, 4) for k, v in sorted(runs.items())},
  }
  if mask_id is not None:
    total = max(int(replaced.sum()), 1)
    stats["replaced_mask_random_kept"] = [round(int(x) / total, 4) for x in replaced]
  log(f"{stats['records']:,} records in {len(files)} file(s) (max_seq_length {seq}, "
      f"max_predictions_per_seq {preds}); {stats['tokens_per_instance']} tokens and "
      f"{stats['masked_per_instance']} masked per instance ({100 * stats['masked_fraction']:.2f}%)")
  log(f"SOP labels: {totals['sop_0']:,} in order (0), {totals['sop_1']:,} swapped or from "
      f"another document (1); records with a bad layout: {totals['bad_layout']}")
  if "replaced_mask_random_kept" in stats:
    r = stats["replaced_mask_random_kept"]
    log(f"replacements: {100 * r[0]:.1f}% [MASK], {100 * r[1]:.1f}% random, "
        f"{100 * r[2]:.1f}% kept")
  log("masked runs by words: " + ", ".join(f"{k}: {100 * v:.1f}%" for k, v in
                                           stats["masked_runs_by_words"].items()))
  return stats


def _show(log, index, ids, segments, positions, labels, sop_label, tokenizer) -> None:
  """Logs one instance: segments A and B as text, and each masked position with its label."""
  log(f"--- instance {index}: {len(ids)} tokens, {len(positions)} masked, SOP label {sop_label}")
  if tokenizer is None:
    log(f"  input_ids: {' '.join(str(int(i)) for i in ids)}")
    log(f"  masked: {', '.join(f'{int(p)}:{int(l)}' for p, l in zip(positions, labels))}")
    return
  sentencepiece = tokenizer.sp_model is not None
  pieces = tokenizer.convert_ids_to_tokens([int(i) for i in ids])
  first_sep = next((k for k, p in enumerate(pieces) if p == "[SEP]"), len(pieces))
  for name, part in (("A", pieces[1:first_sep]), ("B", pieces[first_sep + 1:-1])):
    log(f"  {name}: {decode_pieces(part, sentencepiece)}")
  label_pieces = tokenizer.convert_ids_to_tokens([int(i) for i in labels])
  shown = [f"{int(p)}:{label}->{pieces[int(p)]}" for p, label in zip(positions, label_pieces)]
  log(f"  masked (position:label->input): {', '.join(shown)}")
  del segments
