"""Official SQuAD v1.1 and v2.0 scores, null-score thresholds, and held-out splits.

The scoring follows the official evaluation scripts (`evaluate-v1.1.py` and
`evaluate-v2.0.py` of the SQuAD site; ALBERT's `squad_utils.py` carries copies):

* answers are normalised by lower-casing, dropping ASCII punctuation and the articles
  a / an / the, and collapsing whitespace; exact match and token F1 take the maximum over the
  gold answers; scores are percentages;
* v1.1 (`evaluate_v1` -> `exact_match`, `f1`): an unanswered question counts 0;
* v2.0 (`evaluate_v2` -> `exact`, `f1`, `total`, `HasAns_*`, `NoAns_*`; with `na_probs` also
  `best_exact`, `best_exact_thresh`, `best_f1`, `best_f1_thresh`): gold answers that normalise
  to "" are dropped, an unanswerable question's only gold is ""; a question without a
  prediction is left out of `total` (and, unlike the script, which then fails, of the
  HasAns / NoAns splits); predictions with `na_prob > na_prob_thresh` (1.0) count
  as "no answer"; the best threshold is searched over the sorted `na_probs`, each one meaning
  "no answer when na_prob > threshold".

tf-models-official ships `official.nlp.tools.squad_evaluate_v1_1` / `_v2_0` (importable
without TensorFlow). They are not used: their v1.1 `evaluate` returns fractions under other
keys (`final_f1`), their v2.0 `evaluate` drops the questions without a prediction from the
dataset before counting no-answer questions, renames `best_*` to `final_*`, has no
`na_prob_thresh`, and the per-question functions the threshold search needs are private. The
tests check that the numbers agree with theirs where their definitions agree.

Beyond the scripts: `best_threshold` / `apply_threshold` tune a null-score threshold on one
set of questions and apply it to another (the original tuned it on the dev set it reported),
and `split_held_out` cuts a seeded, article-level held-out slice from training examples.
"""

from __future__ import annotations

import collections
import random
import re
import string
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from absl import logging

from albert.data.squad.examples import SquadExample
from albert.errors import DataError

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
  """Lower case, no punctuation, no articles, single spaces (the official normalisation)."""
  text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
  return " ".join(_ARTICLES.sub(" ", text).split())


def _f1(pred_tokens: List[str], gold_tokens: List[str]) -> float:
  common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
  same = sum(common.values())
  if same == 0:
    return 0
  precision, recall = same / len(pred_tokens), same / len(gold_tokens)
  return (2 * precision * recall) / (precision + recall)


def _questions(dataset: Sequence[Mapping]) -> List[Mapping]:
  return [qa for article in dataset for paragraph in article["paragraphs"]
          for qa in paragraph["qas"]]


# ---------------------------------------------------------------------------------------------
# v1.1


def evaluate_v1(dataset: Sequence[Mapping], predictions: Mapping[str, str]) -> Dict[str, float]:
  """The official v1.1 score of `predictions` (question id -> text) on a `data` list."""
  exact = f1 = total = 0
  for qa in _questions(dataset):
    total += 1
    if qa["id"] not in predictions:
      logging.warning("Unanswered question %s will receive score 0.", qa["id"])
      continue
    pred = normalize_answer(predictions[qa["id"]])
    golds = [normalize_answer(a["text"]) for a in qa["answers"]]
    exact += max(pred == g for g in golds)
    f1 += max(_f1(pred.split(), g.split()) for g in golds)
  if total == 0:
    raise DataError("evaluate_v1: the dataset has no questions")
  return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


# ---------------------------------------------------------------------------------------------
# v2.0


def has_answer(dataset: Sequence[Mapping]) -> Dict[str, bool]:
  """Question id -> whether it has a gold answer."""
  return {qa["id"]: bool(qa["answers"]) for qa in _questions(dataset)}


def compute_exact(gold: str, pred: str) -> int:
  return int(normalize_answer(gold) == normalize_answer(pred))


def compute_f1(gold: str, pred: str) -> float:
  gold_tokens = normalize_answer(gold).split() if gold else []
  pred_tokens = normalize_answer(pred).split() if pred else []
  if not gold_tokens or not pred_tokens:
    return int(gold_tokens == pred_tokens)  # no-answer: 1 only if both are empty
  return _f1(pred_tokens, gold_tokens)


def raw_scores(dataset: Sequence[Mapping], predictions: Mapping[str, str]
               ) -> Tuple[Dict[str, int], Dict[str, float]]:
  """Per question exact and F1 (v2.0 rules); questions without a prediction are left out."""
  exact, f1 = {}, {}
  for qa in _questions(dataset):
    qid = qa["id"]
    golds = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])] or [""]
    if qid not in predictions:
      logging.warning("Missing prediction for %s", qid)
      continue
    pred = predictions[qid]
    exact[qid] = max(compute_exact(g, pred) for g in golds)
    f1[qid] = max(compute_f1(g, pred) for g in golds)
  return exact, f1


def apply_no_answer_threshold(scores: Mapping[str, float], na_probs: Mapping[str, float],
                              has_ans: Mapping[str, bool], na_prob_thresh: float = 1.0
                              ) -> Dict[str, float]:
  """Scores with `na_prob > na_prob_thresh` read as "no answer" (1 if none was expected)."""
  return {qid: float(not has_ans[qid]) if na_probs[qid] > na_prob_thresh else s
          for qid, s in scores.items()}


def make_eval(exact: Mapping[str, float], f1: Mapping[str, float],
              qids: Optional[Sequence[str]] = None) -> "collections.OrderedDict":
  qids = list(exact) if not qids else list(qids)
  total = len(qids)
  if total == 0:
    raise DataError("no scored questions (is every prediction missing?)")
  return collections.OrderedDict([("exact", 100.0 * sum(exact[k] for k in qids) / total),
                                  ("f1", 100.0 * sum(f1[k] for k in qids) / total),
                                  ("total", total)])


def find_best_threshold(predictions: Mapping[str, str], scores: Mapping[str, float],
                        na_probs: Mapping[str, float], has_ans: Mapping[str, bool]
                        ) -> Tuple[float, float]:
  """The official search: (best score in %, its threshold); "no answer" when na_prob > it."""
  score = best = sum(1 for k in has_ans if not has_ans[k])
  threshold = 0.0
  for qid in sorted(na_probs, key=lambda k: na_probs[k]):
    if qid not in scores:
      continue
    if has_ans[qid]:
      score += scores[qid]
    elif predictions[qid]:
      score -= 1
    if score > best:
      best, threshold = score, na_probs[qid]
  return 100.0 * best / len(scores), threshold


def evaluate_v2(dataset: Sequence[Mapping], predictions: Mapping[str, str],
                na_probs: Optional[Mapping[str, float]] = None,
                na_prob_thresh: float = 1.0) -> "collections.OrderedDict":
  """`evaluate-v2.0.py data.json pred.json [--na-prob-file]`: the official dict."""
  probs = na_probs if na_probs is not None else {k: 0.0 for k in predictions}
  has_ans = has_answer(dataset)
  exact_raw, f1_raw = raw_scores(dataset, predictions)
  exact = apply_no_answer_threshold(exact_raw, probs, has_ans, na_prob_thresh)
  f1 = apply_no_answer_threshold(f1_raw, probs, has_ans, na_prob_thresh)
  out = make_eval(exact, f1)
  for prefix, qids in (("HasAns", [k for k, v in has_ans.items() if v and k in exact]),
                       ("NoAns", [k for k, v in has_ans.items() if not v and k in exact])):
    if qids:
      for key, value in make_eval(exact, f1, qids).items():
        out[f"{prefix}_{key}"] = value
  if na_probs is not None:
    out["best_exact"], out["best_exact_thresh"] = find_best_threshold(
        predictions, exact_raw, probs, has_ans)
    out["best_f1"], out["best_f1_thresh"] = find_best_threshold(
        predictions, f1_raw, probs, has_ans)
  return out


# ---------------------------------------------------------------------------------------------
# Thresholds tuned on one set, applied to another.


def best_threshold(na_probs: Mapping[str, float], predictions: Mapping[str, str],
                   dataset: Sequence[Mapping], metric: str = "f1") -> Tuple[float, float]:
  """(best score in %, threshold) on `dataset`: predict "" when na_prob > threshold.

  `predictions` are the best non-null answers (the first pass of the original's v2 decoding).
  """
  if metric not in ("f1", "exact"):
    raise DataError(f"best_threshold: metric must be 'f1' or 'exact', got {metric!r}")
  exact_raw, f1_raw = raw_scores(dataset, predictions)
  return find_best_threshold(predictions, f1_raw if metric == "f1" else exact_raw, na_probs,
                             has_answer(dataset))


def apply_threshold(predictions: Mapping[str, str], na_probs: Mapping[str, float],
                    threshold: float, inclusive: bool = False) -> "collections.OrderedDict":
  """Predictions with "" where na_prob > threshold (the search's rule).

  `inclusive=True` predicts "" where na_prob >= threshold: the original's second pass
  (`score_diff < threshold` keeps the answer), which disagrees with its own search at the
  threshold itself.
  """
  out = collections.OrderedDict()
  for qid, text in predictions.items():
    null = na_probs[qid] >= threshold if inclusive else na_probs[qid] > threshold
    out[qid] = "" if null else text
  return out


def split_held_out(examples: Sequence[SquadExample], fraction: float, seed: int
                   ) -> Tuple[List[SquadExample], List[SquadExample]]:
  """(kept, held_out): a seeded share of the articles, whole, held out.

  Articles are grouped by title; titles whose questions share a context are merged, so no
  held-out question has a paragraph that a kept question has. round(fraction x groups) groups
  (at least one, and one fewer than all) are drawn with `random.Random(seed)`; both lists
  keep the input order.
  """
  if not 0.0 < fraction < 1.0:
    raise DataError(f"split_held_out: fraction must be in (0, 1), got {fraction}")
  parent: Dict[str, str] = {}

  def find(key: str) -> str:
    while parent.setdefault(key, key) != key:
      parent[key] = parent[parent[key]]
      key = parent[key]
    return key

  for example in examples:
    a, b = find("t:" + example.title), find("c:" + example.paragraph_text)
    if a != b:
      parent[b] = a
  group_of = [find("t:" + e.title) for e in examples]
  groups = list(dict.fromkeys(group_of))  # in order of first appearance
  if len(groups) < 2:
    raise DataError("split_held_out: the examples come from one article; nothing to hold out")
  count = min(max(1, round(fraction * len(groups))), len(groups) - 1)
  held = set(random.Random(seed).sample(groups, count))
  kept = [e for e, g in zip(examples, group_of) if g not in held]
  held_out = [e for e, g in zip(examples, group_of) if g in held]
  return kept, held_out
