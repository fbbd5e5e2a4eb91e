"""SQuAD answers from the model's outputs: the original's n-best decoding and writers, v1 and v2.

Inputs are what the SQuAD model's predict gives, per feature (row), with `unique_ids`:
* v1: `start_logits`, `end_logits` [F, S] (the original's predict keys `start_log_prob`,
  `end_log_prob` are accepted too; they hold raw logits);
* v2: `start_top_log_probs` [F, k], `start_top_index` [F, k], `end_top_log_probs` [F, k * k'],
  `end_top_index` [F, k * k'], `cls_logits` [F] (`k` = start_n_top, `k'` = end_n_top).
Rows whose unique id is not a feature (padding of the last batch) are ignored; a feature
without a row is an error.

Decoding, as `accumulate_predictions_v1/v2` + `write_predictions_v1/v2` of the original
(google-research/albert `squad_utils.py`), with Python floats from the float32 outputs:
* v1: per window, the `n_best_size` best starts and ends (ties: lower position first); a span
  is kept when both ends are inside the window's document part, the start has its maximum
  context in this window, end >= start and it has at most `max_answer_length` pieces; spans of
  all windows of a question sorted by start + end logit (stable); texts are
  `context[tok_start_to_orig[s] : tok_end_to_orig[e] + 1].strip()`, duplicates dropped, up to
  `n_best_size`; no span at all gives the original's nonce answer "empty"; the prediction is
  the first n-best text (which may be "");
* v2: the beam's (start, end) pairs with the same filters (and start not before the
  document); null odds = the question's minimum `cls_logits` over its windows; no span gives
  "" with log-probs -1e6; the prediction is the best text, or "" when a threshold is given and
  null odds >= threshold;
* `evaluate_v2_as_original`: what run_squad_v2 reports, two passes: decode without a
  threshold, score (official v2.0 with na_prob_thresh 1.0), take `best_f1_thresh` found on
  this same data, decode again with it, score again.

`write_prediction_files` writes `predictions.json`, `nbest_predictions.json` and (v2)
`null_odds.json` as the original: `json.dumps(..., indent=4) + "\n"`, atomically.
"""

from __future__ import annotations

import collections
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from albert import files
from albert.data.squad import metrics
from albert.data.squad.examples import SquadExample
from albert.data.squad.features import SquadFeatures
from albert.errors import DataError

OrderedDict = collections.OrderedDict
V1_KEYS = ("start_logits", "end_logits")
V2_KEYS = ("start_top_log_probs", "start_top_index", "end_top_log_probs", "end_top_index",
           "cls_logits")


def _rows(results: Mapping[str, Any], keys: Sequence[str],
          aliases: Optional[Mapping[str, str]] = None
          ) -> Tuple[Dict[int, int], Dict[str, np.ndarray]]:
  """unique id -> row (the last row wins, as the original's dict), and the arrays by key."""
  aliases = aliases or {}
  arrays = {}
  for key in keys:
    name = key if key in results else aliases.get(key)
    if name not in results:
      raise DataError(f"SQuAD results lack {key!r} (have: {sorted(results)})")
    arrays[key] = np.asarray(results[name])
  if "unique_ids" not in results:
    raise DataError(f"SQuAD results lack 'unique_ids' (have: {sorted(results)})")
  ids = np.asarray(results["unique_ids"]).reshape(-1).tolist()
  return {int(u): r for r, u in enumerate(ids)}, arrays


def _by_example(features: SquadFeatures, num_examples: int) -> List[List[int]]:
  groups: List[List[int]] = [[] for _ in range(num_examples)]
  for k, e in enumerate(features.example_index.tolist()):
    groups[e].append(k)
  return groups


def _row(rows: Mapping[int, int], features: SquadFeatures, k: int,
         examples: Sequence[SquadExample]) -> int:
  uid = int(features.unique_id[k])
  if uid not in rows:
    example = examples[int(features.example_index[k])]
    raise DataError(f"no model output for feature {uid} (question {example.qas_id}); were all "
                    "features predicted?")
  return rows[uid]


def _best_indexes(logits: np.ndarray, n_best_size: int) -> List[int]:
  """The original's `_get_best_indexes`: highest first, ties by position."""
  return np.argsort(-logits, kind="stable")[:n_best_size].tolist()


def _softmax(scores: Sequence[float]) -> List[float]:
  """The original's `_compute_softmax` (same operations, same floats)."""
  if not scores:
    return []
  top = max(scores)
  exps = [math.exp(s - top) for s in scores]
  total = 0.0
  for x in exps:
    total += x
  return [x / total for x in exps]


def _nbest(example: SquadExample, features: SquadFeatures, feature_rows: Sequence[int],
           spans: Sequence[Dict[Tuple[int, int], list]], n_best_size: int,
           nonce: Tuple[str, float, float]) -> List["OrderedDict"]:
  """Averaged spans of all windows, sorted, deduplicated by text -> the n-best JSON list."""
  prelim = []
  for feature_index, per_span in enumerate(spans):
    for (start, end), pairs in per_span.items():
      start_sum = end_sum = 0
      for pair in pairs:
        start_sum += pair[0]
        end_sum += pair[1]
      prelim.append((feature_index, start, end, start_sum / len(pairs), end_sum / len(pairs)))
  prelim.sort(key=lambda p: p[3] + p[4], reverse=True)
  seen, nbest = set(), []
  for feature_index, start, end, start_lp, end_lp in prelim:
    if len(nbest) >= n_best_size:
      break
    window = features.window(feature_rows[feature_index])
    first = int(window["tok_start_to_orig_index"][start])
    last = int(window["tok_end_to_orig_index"][end])
    text = example.paragraph_text[first:last + 1].strip()
    if text in seen:
      continue
    seen.add(text)
    nbest.append((text, start_lp, end_lp))
  if not nbest:
    nbest.append(nonce)
  probs = _softmax([s + e for _, s, e in nbest])
  return [OrderedDict([("text", t), ("probability", p), ("start_log_prob", s),
                       ("end_log_prob", e)]) for (t, s, e), p in zip(nbest, probs)]


def _window_filter(features: SquadFeatures, k: int):
  doc_offset = int(features.doc_offset[k])
  window = features.window(k)
  length = len(window["tok_start_to_orig_index"])
  max_context = {doc_offset + i for i, flag in enumerate(window["token_is_max_context"]) if flag}
  return doc_offset, length, max_context


def decode_v1(examples: Sequence[SquadExample], features: SquadFeatures,
              results: Mapping[str, Any], n_best_size: int = 20, max_answer_length: int = 30
              ) -> Tuple["OrderedDict", "OrderedDict"]:
  """(predictions, nbest) of the original's v1 decoding (question id -> text / n-best list)."""
  rows, arrays = _rows(results, V1_KEYS, {"start_logits": "start_log_prob",
                                          "end_logits": "end_log_prob"})
  predictions, all_nbest = OrderedDict(), OrderedDict()
  for example_index, feature_rows in enumerate(_by_example(features, len(examples))):
    example = examples[example_index]
    spans = []
    for k in feature_rows:
      r = _row(rows, features, k, examples)
      start_logits, end_logits = arrays["start_logits"][r], arrays["end_logits"][r]
      starts, ends = start_logits.tolist(), end_logits.tolist()
      doc_offset, length, max_context = _window_filter(features, k)
      per_span: Dict[Tuple[int, int], list] = {}
      for s in _best_indexes(start_logits, n_best_size):
        for e in _best_indexes(end_logits, n_best_size):
          if (s - doc_offset >= length or e - doc_offset >= length or s not in max_context
              or e < s or e - s + 1 > max_answer_length):
            continue
          per_span.setdefault((s - doc_offset, e - doc_offset), []).append((starts[s], ends[e]))
      spans.append(per_span)
    nbest = _nbest(example, features, feature_rows, spans, n_best_size, ("empty", 0.0, 0.0))
    predictions[example.qas_id] = nbest[0]["text"]
    all_nbest[example.qas_id] = nbest
  return predictions, all_nbest


def decode_v2(examples: Sequence[SquadExample], features: SquadFeatures,
              results: Mapping[str, Any], n_best_size: int = 20, max_answer_length: int = 30,
              null_score_diff_threshold: Optional[float] = None
              ) -> Tuple["OrderedDict", "OrderedDict", "OrderedDict"]:
  """(predictions, nbest, null_odds) of the original's v2 decoding."""
  rows, arrays = _rows(results, V2_KEYS)
  start_n_top = arrays["start_top_index"].shape[-1]
  end_n_top = arrays["end_top_index"].shape[-1] // max(start_n_top, 1)
  predictions, all_nbest, null_odds = OrderedDict(), OrderedDict(), OrderedDict()
  for example_index, feature_rows in enumerate(_by_example(features, len(examples))):
    example = examples[example_index]
    score_null = 1000000  # the original's start value (kept by a question without windows)
    spans = []
    for k in feature_rows:
      r = _row(rows, features, k, examples)
      score_null = min(score_null, float(arrays["cls_logits"][r].reshape(-1)[0]))
      start_lps = arrays["start_top_log_probs"][r].tolist()
      start_idx = arrays["start_top_index"][r].tolist()
      end_lps = arrays["end_top_log_probs"][r].tolist()
      end_idx = arrays["end_top_index"][r].tolist()
      doc_offset, length, max_context = _window_filter(features, k)
      per_span: Dict[Tuple[int, int], list] = {}
      for i in range(start_n_top):
        s = start_idx[i]
        for j in range(end_n_top):
          e = end_idx[i * end_n_top + j]
          if (s - doc_offset >= length or s - doc_offset < 0 or e - doc_offset >= length
              or s not in max_context or e < s or e - s + 1 > max_answer_length):
            continue
          per_span.setdefault((s - doc_offset, e - doc_offset), []).append(
              (start_lps[i], end_lps[i * end_n_top + j]))
      spans.append(per_span)
    nbest = _nbest(example, features, feature_rows, spans, n_best_size, ("", -1e6, -1e6))
    score_diff = sum([score_null]) / 1
    null_odds[example.qas_id] = score_diff
    if null_score_diff_threshold is None or score_diff < null_score_diff_threshold:
      predictions[example.qas_id] = nbest[0]["text"]
    else:
      predictions[example.qas_id] = ""
    all_nbest[example.qas_id] = nbest
  return predictions, all_nbest, null_odds


def evaluate_v2_as_original(dataset: Sequence[Mapping], examples: Sequence[SquadExample],
                            features: SquadFeatures, results: Mapping[str, Any],
                            n_best_size: int = 20, max_answer_length: int = 30
                            ) -> Dict[str, Any]:
  """run_squad_v2's evaluation: the threshold is tuned on `dataset` itself (two passes).

  Returns {"scores": {exact, f1, total, null_score_diff_threshold} (the original's figure),
  "pass1_scores": the first pass's official dict with best_*, "predictions" (final),
  "pass1_predictions", "nbest", "null_odds"}.
  """
  first, nbest, null_odds = decode_v2(examples, features, results, n_best_size,
                                      max_answer_length)
  pass1 = metrics.evaluate_v2(dataset, first, null_odds)
  threshold = pass1["best_f1_thresh"]
  final = metrics.apply_threshold(first, null_odds, threshold, inclusive=True)
  has_ans = metrics.has_answer(dataset)
  exact_raw, f1_raw = metrics.raw_scores(dataset, final)
  scores = metrics.make_eval(
      metrics.apply_no_answer_threshold(exact_raw, null_odds, has_ans, 1.0),
      metrics.apply_no_answer_threshold(f1_raw, null_odds, has_ans, 1.0))
  scores["null_score_diff_threshold"] = threshold
  return {"scores": scores, "pass1_scores": pass1, "predictions": final,
          "pass1_predictions": first, "nbest": nbest, "null_odds": null_odds}


def prediction_json(value: Mapping) -> str:
  """The original's file text: `json.dumps(value, indent=4) + "\\n"`."""
  import json  # pylint: disable=g-import-not-at-top
  return json.dumps(value, indent=4) + "\n"


def write_prediction_files(output_dir: str, predictions: Mapping, nbest: Mapping,
                           null_odds: Optional[Mapping] = None, prefix: str = ""
                           ) -> Dict[str, str]:
  """predictions.json, nbest_predictions.json and (v2) null_odds.json; name -> path."""
  paths = {"predictions": os.path.join(output_dir, f"{prefix}predictions.json"),
           "nbest": os.path.join(output_dir, f"{prefix}nbest_predictions.json")}
  if null_odds is not None:
    paths["null_odds"] = os.path.join(output_dir, f"{prefix}null_odds.json")
  values = {"predictions": predictions, "nbest": nbest, "null_odds": null_odds}
  for name, path in paths.items():
    files.write_text(path, prediction_json(values[name]))
  return paths
