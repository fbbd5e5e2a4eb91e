"""Tests of the SQuAD data path: reader, alignment, features, records, cache, decoding, scores.

Golden data (tests/testdata/golden/finetune/squad/, copied from
../shared/fixtures/golden/finetune/squad/) was recorded by running the original release's
`squad_utils.py`: examples, the first 300 features of five conversions, and the v1 / v2
writers' files and scores on fixed logits. The SentencePiece model is the released
`30k-clean.model` (tests/testdata/albert_spm/). Every golden key is compared for equality.
The slow tests read the whole dev-v1.1.json from ../shared/data/squad/.
"""

from __future__ import annotations

import copy
import dataclasses
import gzip
import json
import os
import random

import numpy as np
import pytest

from albert.data import records as records_lib
from albert.data import workers
from albert.data.squad import examples as squad
from albert.data.squad import alignment
from albert.data.squad import cache as squad_cache
from albert.data.squad import features as sf
from albert.data.squad import metrics
from albert.data.squad import postprocess as post
from albert import tokenization
from albert.errors import DataError, FlagError, TokenizerError
from conftest import REPO_DIR, TESTDATA
from support.reference_text import original_preprocess_text

GOLD = os.path.join(TESTDATA, "golden", "finetune", "squad")
SPM = os.path.join(TESTDATA, "albert_spm", "30k-clean.model")
SMALL_SPM = os.path.join(TESTDATA, "golden", "spm.model")
DEV2 = os.path.join(TESTDATA, "squad", "dev-v1.1-first2.json")  # dev articles 1-2
MINI = os.path.join(GOLD, "squad_v2_mini.json")
FULL_DEV = os.path.join(REPO_DIR, "..", "shared", "data", "squad", "dev-v1.1.json")
SPEC = sf.sentencepiece_spec(SPM, do_lower_case=True)
S384 = sf.FeatureSettings(384, 128, 64)

with open(os.path.join(GOLD, "examples.json"), encoding="utf-8") as _f:
  GOLDEN_EXAMPLES = json.load(_f)


def _first_answer_only(data, articles=None):
  data = copy.deepcopy(data)
  if articles is not None:
    data["data"] = data["data"][:articles]
  for article in data["data"]:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        qa["answers"] = qa["answers"][:1]
  return data


def _write_json(path, value):
  with open(path, "w", encoding="utf-8") as f:
    json.dump(value, f)
  return str(path)


def _restricted(data, examples):
  """The `data` list with only the questions of `examples` (what the golden scores used)."""
  ids = {e.qas_id for e in examples}
  return [{"paragraphs": [{"qas": [qa for qa in p["qas"] if qa["id"] in ids]}
                          for p in article["paragraphs"]]} for article in data["data"]]


@pytest.fixture(scope="module")
def dev2():
  return squad.load_squad_json(DEV2)


@pytest.fixture(scope="module")
def mini():
  return squad.load_squad_json(MINI)


# ---------------------------------------------------------------------------------------------
# Reader.


def test_reader_matches_the_original_examples_in_both_modes(dev2):
  evals = squad.read_squad_examples(DEV2, is_training=False, data=dev2)
  trains = squad.read_squad_examples(DEV2, is_training=True, data=_first_answer_only(dev2))
  golden_eval = [r for r in GOLDEN_EXAMPLES["is_training_false"] if r["example_index"] < 20]
  golden_train = [r for r in GOLDEN_EXAMPLES["is_training_true_first_answer_only"]
                  if r["example_index"] < 20]
  assert len(golden_eval) == len(golden_train) == 20
  for records, examples in ((golden_eval, evals), (golden_train, trains)):
    for record in records:
      expected = {k: v for k, v in record.items() if k != "example_index"}
      assert examples[record["example_index"]].original_fields() == expected
  assert evals[0].title == "Super_Bowl_50"
  assert evals[0].answers == ["Denver Broncos", "Denver Broncos", "Denver Broncos"]


def test_reader_v2_counts_and_impossible_questions(mini):
  evals = squad.read_squad_examples(MINI, False, version_2_with_negative=True, data=mini)
  report = squad.ReadReport(MINI)
  trains = squad.read_squad_examples(MINI, True, version_2_with_negative=True, data=mini,
                                     report=report)
  g = GOLDEN_EXAMPLES
  assert len(evals) == g["v2_mini_is_training_false_count"] == 2240
  assert sum(e.is_impossible for e in evals) == g["v2_mini_is_training_false_num_impossible"]
  assert len(trains) == g["v2_mini_is_training_true_count"]
  assert report.num_impossible == g["v2_mini_is_training_true_num_impossible"] == 560
  for name, examples in (("false", evals), ("true", trains)):
    for key in (f"v2_mini_is_training_{name}_first",
                f"v2_mini_is_training_{name}_impossible_samples"):
      for record in g[key]:
        expected = {k: v for k, v in record.items() if k != "example_index"}
        assert examples[record["example_index"]].original_fields() == expected


def test_training_on_several_answers_is_a_clear_error_or_uses_the_first(dev2):
  with pytest.raises(DataError) as error:
    squad.read_squad_examples(DEV2, is_training=True, data=dev2)
  message = str(error.value)
  assert DEV2 in message and "56be4db0acb8001400a502ec" in message
  assert "exactly 1 answer" in message and "multiple_answers='first'" in message
  assert isinstance(error.value, ValueError)  # the original raised ValueError
  first = squad.read_squad_examples(DEV2, True, multiple_answers="first", data=dev2)
  assert [e.original_fields() for e in first] == [
      e.original_fields() for e in squad.read_squad_examples(
          DEV2, True, data=_first_answer_only(dev2))]


def test_answer_offsets_that_miss_their_text_are_skipped_and_reported(tmp_path, dev2):
  data = _first_answer_only(dev2)
  qas = data["data"][0]["paragraphs"][0]["qas"]
  qas[1]["answers"][0]["answer_start"] += 3
  qas[2]["answers"][0]["text"] = ""
  path = _write_json(tmp_path / "shifted.json", data)
  report = squad.ReadReport(path)
  examples = squad.read_squad_examples(path, True, report=report)
  assert len(examples) == 1057 - 2 and report.num_questions == 1055
  assert [qid for qid, _ in report.skipped] == [qas[1]["id"], qas[2]["id"]]
  assert "is not at answer_start" in report.skipped[0][1]
  assert "empty answer" in report.skipped[1][1]
  assert qas[1]["id"] in report.format()
  # The original's behaviour: the offset is used as it is.
  original = squad.read_squad_examples(path, True, check_answers=False)
  assert original[1].start_position == qas[1]["answers"][0]["answer_start"]
  # Evaluation reads no answers, so nothing is skipped.
  assert len(squad.read_squad_examples(path, False)) == 1057


@pytest.mark.parametrize("text, expected", [
    ('{"data": [{"title": "x", "paragraphs": [', "malformed JSON at line 1, column 41"),
    ('{"version": "1.1"}', 'a "data" list'),
    ('{"data": [{"title": "x", "paragraphs": [{"qas": []}]}]}',
     "article 0 ('x'), paragraph 0: missing \"context\""),
    ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "q7", "answers": []}]}]}]}',
     "question 0 (id q7): missing \"question\""),
    ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "q8", "question": "?", '
     '"answers": [{"text": "c", "answer_start": "0"}]}]}]}]}',
     '"answer_start" must be a int, got str'),
])
def test_bad_json_names_the_file_and_the_question(tmp_path, text, expected):
  path = tmp_path / "bad.json"
  path.write_text(text)
  with pytest.raises(DataError) as error:
    squad.read_squad_examples(str(path), is_training=True)
  assert str(path) in str(error.value) and expected in str(error.value)


def test_missing_file_and_version_mismatches(tmp_path):
  with pytest.raises(DataError, match="SQuAD file not found: .*nope.json"):
    squad.read_squad_examples(str(tmp_path / "nope.json"), False)
  with pytest.raises(DataError) as error:
    squad.read_squad_examples(MINI, False)
  assert "is a SQuAD 2.0 file" in str(error.value)
  assert "--version_2_with_negative" in str(error.value) and MINI in str(error.value)
  with pytest.raises(DataError) as error:
    squad.read_squad_examples(DEV2, False, version_2_with_negative=True)
  assert "looks like a SQuAD 1.1 file" in str(error.value) and "drop" in str(error.value)


@pytest.mark.parametrize("is_training", [False, True])
def test_a_question_id_used_twice_is_refused_naming_the_file_and_the_id(tmp_path, dev2,
                                                                        is_training):
  """80 questions in, 79 predictions out: the predictions are keyed by id."""
  data = _first_answer_only(dev2, articles=1)
  paragraphs = data["data"][0]["paragraphs"]
  paragraphs[3]["qas"][2]["id"] = paragraphs[0]["qas"][1]["id"]
  path = _write_json(tmp_path / "dup.json", data)
  with pytest.raises(DataError) as error:
    squad.read_squad_examples(path, is_training)
  assert str(error.value) == (f"{path}: question id {paragraphs[0]['qas'][1]['id']!r} is used "
                              "twice (ids must be unique: predictions are keyed by id)")


def test_training_on_a_question_without_answers_names_the_question_not_python_arguments(
    tmp_path, dev2):
  data = _first_answer_only(dev2, articles=1)
  qa = data["data"][0]["paragraphs"][0]["qas"][2]
  del qa["answers"]
  path = _write_json(tmp_path / "no_answers.json", data)
  with pytest.raises(DataError) as error:
    squad.read_squad_examples(path, is_training=True)
  message = str(error.value)
  assert message.startswith(f"{path}: article 0") and f"(id {qa['id']})" in message
  assert "needs its answer, found none" in message and "\n" not in message
  assert "is_training" not in message and "multiple_answers" not in message


def test_examples_from_pairs():
  examples = squad.examples_from_pairs([("Who?", "Ann went."),
                                        {"question": "Where?", "context": "Home.", "id": "x"}])
  assert [(e.qas_id, e.question_text, e.paragraph_text) for e in examples] == [
      ("q0", "Who?", "Ann went."), ("x", "Where?", "Home.")]
  assert not examples[0].is_impossible and examples[0].start_position is None
  with pytest.raises(DataError, match="pair 1: id 'q0' is used twice"):
    squad.examples_from_pairs([("a", "b"), {"question": "c", "context": "d", "id": "q0"}])
  with pytest.raises(DataError, match="pair 0: empty context"):
    squad.examples_from_pairs([("a", "  ")])


# ---------------------------------------------------------------------------------------------
# Alignment: the table, the greedy shortcut, _convert_index.


def _reference_lcs(forms, tok_cat, max_dist):
  """The original's `_lcs_match` + backtrace, transcribed literally (full table, dict of moves)."""
  n, m = len(forms), len(tok_cat)
  f = np.zeros((n, m), dtype=np.float32)
  g = {}
  for i in range(n):
    for j in range(i - max_dist, i + max_dist):
      if j >= m or j < 0:
        continue
      if i > 0:
        g[(i, j)] = 0
        f[i, j] = f[i - 1, j]
      if j > 0 and f[i, j - 1] > f[i, j]:
        g[(i, j)] = 1
        f[i, j] = f[i, j - 1]
      f_prev = f[i - 1, j - 1] if i > 0 and j > 0 else 0
      if forms[i] == tok_cat[j] and f_prev + 1 > f[i, j]:
        g[(i, j)] = 2
        f[i, j] = f_prev + 1
  o2c, c2o = [-1] * n, [-1] * m
  i, j = n - 1, m - 1
  while i >= 0 and j >= 0:
    if (i, j) not in g:
      break
    if g[(i, j)] == 2:
      o2c[i], c2o[j] = j, i
      i, j = i - 1, j - 1
    elif g[(i, j)] == 1:
      j -= 1
    else:
      i -= 1
  return int(f[n - 1, m - 1]), o2c, c2o


def _random_case(rng):
  """A context with the troubles of real ones, and its tok_cat_text (sometimes perturbed)."""
  alphabet = ["the ", "cat ", "Sat ", "on ", "a ", "mat, ", "1,000 ", "(1966) ", "é", ". "]
  if rng.random() < 0.5:
    alphabet = list("abcde AB,.-1") + ["  ", "\n", "é", "ﬁ", "½", "1,0", "\u0301", "İ", "Σ"]
  text = "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 60))).strip() or "a"
  pieces = sf.paragraph_pieces(_SP, tokenization.preprocess_text(text, lower=True))
  tok_cat = "".join(pieces).replace(tokenization.SPIECE_UNDERLINE, " ")
  if rng.random() < 0.3 and tok_cat:
    k = rng.randrange(len(tok_cat))
    tok_cat = tok_cat[:k] + rng.choice([" ", "x", ""]) + tok_cat[k + 1:]
  return text, tok_cat


_SP = tokenization.load_sp_model(SPM)


def test_table_is_the_original_program_and_greedy_agrees_with_it():
  rng = random.Random(7)
  greedy_used = 0
  for _ in range(400):
    text, tok_cat = _random_case(rng)
    forms = alignment.char_forms(text, True)
    assert forms == [tokenization.preprocess_text(c, remove_space=False, lower=True)
                     for c in text]
    max_dist = abs(len(text) - len(tok_cat)) + 5
    if not tok_cat:
      continue
    score, o2c, c2o = alignment.lcs_alignment(forms, tok_cat, max_dist)
    assert (score, o2c.tolist(), c2o.tolist()) == _reference_lcs(forms, tok_cat, max_dist)
    fast = alignment.greedy_alignment(text, tok_cat, True, max_dist)
    if fast is not None:
      greedy_used += 1
      assert fast[0] == score
      assert fast[1].tolist() == o2c.tolist() and fast[2].tolist() == c2o.tolist()
  assert 100 < greedy_used < 400  # both paths are exercised


def test_convert_indexes_is_the_original_convert_index():
  rng = np.random.RandomState(3)
  for _ in range(300):
    n = rng.randint(1, 30)
    index = np.where(rng.rand(n) < 0.4, -1, np.sort(rng.choice(60, n, replace=False)))
    if not np.any(index >= 0):
      continue
    listed = [None if v < 0 else int(v) for v in index]
    for m in (None, 61):
      for is_start in (True, False):
        expected = [alignment.convert_index(listed, p, m, is_start) for p in range(n)]
        assert alignment.convert_indexes(index, np.arange(n), m, is_start).tolist() == expected


def test_tokenizer_fast_paths_equal_albert_tokenization(dev2):
  texts = [p["context"] for a in dev2["data"] for p in a["paragraphs"]]
  texts += [qa["question"] for a in dev2["data"] for p in a["paragraphs"] for qa in p["qas"]]
  texts += ["1,000,000 and 3,5 ,", "  Crème  brûlée\n\tİstanbul ΣΑΣ ½ ﬁne  ", "x" * 3, ""]
  for text in texts:
    for lower in (True, False):
      processed = tokenization.preprocess_text(text, lower=lower)
      assert processed == original_preprocess_text(text, lower=lower)
      assert sf.paragraph_pieces(_SP, processed) == tokenization.encode_pieces(_SP, processed)
      assert sf.query_ids(_SP, text, lower, 10 ** 6) == tokenization.encode_ids(_SP, processed)


# ---------------------------------------------------------------------------------------------
# Features against the golden conversions.


def _golden_runs(dev2, mini):
  return {
      "dev_v1_eval_384_first300": (dev2, False, False, S384),
      "dev_v1_first2_train_384_first300": (_first_answer_only(dev2, 2), True, False, S384),
      "v2_mini_train_384_first300": (mini, True, True, S384),
      "v2_mini_eval_384_first300": (mini, False, True, S384),
      "dev_v1_first1_eval_128_s32_first300": (_first_answer_only(dev2, 1), False, False,
                                              sf.FeatureSettings(128, 32, 64)),
  }


def _assert_equal_to_golden(feats, examples, golden, is_training):
  count = len(golden["unique_id"])
  assert np.array_equal(feats.unique_id[:count], golden["unique_id"])
  derived = golden["example_index_derived"] if "example_index_derived" in golden.files else \
      golden["example_index"]
  assert np.array_equal(feats.example_index[:count], derived)
  if not is_training:
    assert np.array_equal(feats.example_index[:count], golden["example_index"])
  for key in ("doc_span_index", "paragraph_len", "input_ids", "input_mask", "segment_ids",
              "p_mask"):
    assert np.array_equal(getattr(feats, key)[:count], golden[key]), key
  offsets = feats.span_offsets[:count + 1]
  assert np.array_equal(offsets, golden["span_offsets"])
  pieces = int(offsets[-1])
  for key in ("tok_start_to_orig_index", "tok_end_to_orig_index", "token_is_max_context"):
    assert np.array_equal(getattr(feats, key)[:pieces], golden[key]), key
  positions = np.concatenate([feats.doc_offset[k] + np.arange(offsets[k + 1] - offsets[k])
                              for k in range(count)])
  assert np.array_equal(positions, golden["token_is_max_context_pos"])
  covered = sorted(set(feats.example_index[:count].tolist()))
  assert [examples[i].qas_id for i in covered] == golden["example_qas_id"].tolist()
  if is_training:
    for key in ("start_position", "end_position", "is_impossible"):
      assert np.array_equal(getattr(feats, key)[:count], golden[key]), key
  # pieces of the padded sequence: `PieceToId(tokens) == input_ids`, <pad> = 0
  assert _SP.IdToPiece(0) == "<pad>"


@pytest.mark.parametrize("name", ["dev_v1_eval_384_first300", "dev_v1_first2_train_384_first300",
                                  "v2_mini_train_384_first300", "v2_mini_eval_384_first300",
                                  "dev_v1_first1_eval_128_s32_first300"])
def test_features_equal_the_original(name, dev2, mini):
  data, is_training, v2, settings = _golden_runs(dev2, mini)[name]
  examples = squad.read_squad_examples("golden", is_training, v2, data=data)
  with np.load(os.path.join(GOLD, "features", f"{name}.npz")) as golden:
    needed = int(golden["example_index_derived" if "example_index_derived" in golden.files
                        else "example_index"][-1]) + 1
    feats, _ = sf.convert_examples_to_features(examples[:needed], SPEC, settings, is_training)
    _assert_equal_to_golden(feats, examples, golden, is_training)
  assert feats.skipped == []


def test_records_are_the_original_feature_writer_examples(mini):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  examples = squad.read_squad_examples(MINI, True, True, data=mini)[:60]
  for is_training in (True, False):
    feats, records = sf.convert_examples_to_features(examples, SPEC, S384, is_training,
                                                     with_records=True)
    names = sf.TRAIN_RECORD_FEATURES if is_training else sf.EVAL_RECORD_FEATURES
    for k, record in enumerate(records):
      expected = {"unique_ids": ("int64", [int(feats.unique_id[k])])}
      for name, attr in (("input_ids", "input_ids"), ("input_mask", "input_mask"),
                         ("segment_ids", "segment_ids"), ("p_mask", "p_mask")):
        expected[name] = ("int64", getattr(feats, attr)[k].tolist())
      if is_training:
        for name, attr in (("start_positions", "start_position"),
                           ("end_positions", "end_position"), ("is_impossible", "is_impossible")):
          expected[name] = ("int64", [int(getattr(feats, attr)[k])])
      assert list(expected) == list(names)
      assert record == records_lib.encode_example(expected)
    sequences = ("input_ids", "input_mask", "segment_ids", "p_mask")
    spec = {n: tf.io.FixedLenFeature([384 if n in sequences else 1], tf.int64) for n in names}
    parsed = tf.io.parse_single_example(records[3], spec)
    assert parsed["input_ids"].numpy().tolist() == feats.input_ids[3].tolist()
    assert parsed["unique_ids"].numpy().tolist() == [1000000003]


def test_parallel_conversion_equals_serial(mini):
  examples = squad.read_squad_examples(MINI, False, True, data=mini)
  serial, serial_records = sf.convert_examples_to_features(examples, SPEC, S384, False,
                                                           with_records=True)
  parallel, parallel_records = sf.convert_examples_to_features(examples, SPEC, S384, False,
                                                               num_workers=2, with_records=True)
  assert parallel_records == serial_records and len(serial_records) == len(serial) > 2240
  for name, value in serial.arrays().items():
    assert np.array_equal(getattr(parallel, name), value), name


def test_spawned_workers_do_not_import_the_main_script(tmp_path, monkeypatch):
  """A script that imports TensorFlow (run_squad.py) must not be re-run by every worker."""
  import sys  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top
  assert "tensorflow" in sys.modules and not workers.can_fork()  # the test process: spawn
  marker = tmp_path / "imported"
  script = tmp_path / "script.py"
  script.write_text(f"open({str(marker)!r}, 'w').close()\nimport tensorflow\n")
  main = types.ModuleType("__main__")
  main.__file__ = str(script)
  monkeypatch.setitem(sys.modules, "__main__", main)
  with workers.OrderedPool(2, sf._Converter, (SPEC, S384, False, False, True)) as pool:
    statuses = list(pool.map(workers.worker_status, [0, 1]))
  assert all(not tf_loaded and peak_mb < 300 for tf_loaded, peak_mb in statuses)
  assert not marker.exists()


def test_long_question_is_cut_and_settings_that_leave_no_room_are_refused():
  example = squad.examples_from_pairs([(" ".join(["why"] * 500), "The sky is blue.")])
  feats, _ = sf.convert_examples_to_features(example, SPEC, sf.FeatureSettings(80, 16, 64),
                                             False)
  assert len(feats) == 1 and feats.doc_offset[0] == 66 and feats.paragraph_len[0] == 66 + 6
  assert feats.input_ids[0, 65] == _SP.PieceToId("[SEP]")
  with pytest.raises(FlagError, match="max_seq_length=64 leaves no room"):
    sf.FeatureSettings(64, 16, 64)
  with pytest.raises(FlagError, match="--doc_stride must be at least 1"):
    sf.FeatureSettings(384, 0, 64)
  with pytest.raises(TokenizerError, match="SentencePiece model"):
    sf.sentencepiece_spec("")
  with pytest.raises(TokenizerError, match="SentencePiece model"):  # a WordPiece spec
    sf.convert_examples_to_features(example, tokenization.TokenizerSpec(vocab_file="v.txt"),
                                    S384, False)


def test_unalignable_paragraph_is_skipped_and_counted():
  examples = squad.examples_from_pairs([("q?", "\u0301\u0301\u0301\u0301 ab"), ("q?", "fine")])
  feats, _ = sf.convert_examples_to_features(examples, SPEC, S384, False)
  assert feats.example_index.tolist() == [1]
  assert feats.skipped[0][0] == 0 and "MISMATCH" in feats.skipped[0][1]
  assert feats.unique_id.tolist() == [1000000000]  # ids count only written features


def test_round_trip_on_a_dev_slice(dev2):
  """Gold answer -> window span -> text: every miss is an answer inside a longer piece."""
  examples = squad.read_squad_examples(DEV2, True, multiple_answers="first", data=dev2)
  hits, misses = _round_trip(examples)
  assert len(hits) + len(misses) == len(examples) == 1057
  assert len(hits) >= 0.98 * len(examples)  # 1040 of 1057 (Super Bowl 50: "50" in "50th")
  for example, text in misses:
    assert example.orig_answer_text in text and len(text) > len(example.orig_answer_text)


def _round_trip(examples):
  feats, _ = sf.convert_examples_to_features(examples, SPEC, S384, True, keep_inputs=False,
                                             num_workers=2)
  hits, misses, done = set(), [], set()
  for k in range(len(feats)):
    e = int(feats.example_index[k])
    if feats.is_impossible[k] or e in done:
      continue
    done.add(e)
    window, offset = feats.window(k), int(feats.doc_offset[k])
    first = int(window["tok_start_to_orig_index"][feats.start_position[k] - offset])
    last = int(window["tok_end_to_orig_index"][feats.end_position[k] - offset])
    text = examples[e].paragraph_text[first:last + 1].strip()
    if metrics.normalize_answer(text) == metrics.normalize_answer(examples[e].orig_answer_text):
      hits.add(e)
    else:
      misses.append((examples[e], text))
  return hits, misses


# ---------------------------------------------------------------------------------------------
# Cache.


def test_cache_is_reused_and_rebuilt_on_any_change(tmp_path, dev2):
  data = copy.deepcopy(dev2)
  data["data"] = data["data"][1:]  # Warsaw: 247 questions
  source = _write_json(tmp_path / "small.json", data)
  cache_dir = str(tmp_path / "cache")
  build = lambda **kw: squad_cache.build_squad_cache(
      kw.pop("path", source), False, False, kw.pop("spec", SPEC), kw.pop("settings", S384),
      cache_dir, num_workers=1, log=lambda line: None, **kw)
  path, first = build()
  assert not first.reused and first.num_features == len(first.features) >= 247
  assert os.path.exists(path + ".json") and os.path.exists(path + ".meta.npz")
  again_path, again = build()
  assert again.reused and again_path == path
  for name, value in first.features.arrays().items():
    assert np.array_equal(getattr(again.features, name), value), name
  assert [e.original_fields() for e in again.examples] == [
      e.original_fields() for e in first.examples]
  assert again.examples[5].answers == first.examples[5].answers
  paths = {path}
  data["data"][0]["paragraphs"][0]["qas"][0]["question"] += " now"
  _write_json(tmp_path / "small.json", data)
  for kw in ({}, {"spec": sf.sentencepiece_spec(SMALL_SPM)},
             {"spec": sf.sentencepiece_spec(SPM, do_lower_case=False)},
             {"settings": sf.FeatureSettings(384, 64, 64)},
             {"settings": sf.FeatureSettings(256, 128, 64)},
             {"settings": sf.FeatureSettings(384, 128, 32)}):
    new_path, built = build(**kw)
    assert not built.reused and new_path not in paths
    paths.add(new_path)
  _, train = squad_cache.build_squad_cache(source, True, False, SPEC, S384, cache_dir,
                                           num_workers=1, multiple_answers="first",
                                           log=lambda line: None)
  assert train.record_path not in paths and train.examples == []
  assert train.info["num_impossible_features"] == int(train.features.is_impossible.sum())


def test_cache_path_override_and_damaged_files(tmp_path, dev2):
  data = copy.deepcopy(dev2)
  data["data"] = data["data"][1:]
  source = _write_json(tmp_path / "small.json", data)
  target = str(tmp_path / "out" / "predict.tf_record")
  build = lambda: squad_cache.build_squad_cache(source, False, False, SPEC, S384,
                                                str(tmp_path / "unused"), num_workers=1,
                                                path_override=target, log=lambda line: None)
  path, built = build()
  assert path == target and not built.reused and not os.path.exists(tmp_path / "unused")
  assert build()[1].reused
  with open(target, "ab") as f:
    f.write(b"x")
  assert not build()[1].reused  # a changed record file is rebuilt
  with open(target + ".meta.npz", "ab") as f:
    f.write(b"x")
  assert not build()[1].reused  # so is a damaged metadata file
  assert build()[1].reused


def test_bad_input_writes_nothing(tmp_path, dev2, monkeypatch):
  cache_dir = tmp_path / "cache"
  bad = tmp_path / "bad.json"
  bad.write_text('{"data": [}')
  with pytest.raises(DataError, match="malformed JSON"):
    squad_cache.build_squad_cache(str(bad), False, False, SPEC, S384, str(cache_dir))
  with pytest.raises(DataError, match="is a SQuAD 2.0 file"):
    squad_cache.build_squad_cache(MINI, False, False, SPEC, S384, str(cache_dir))
  with pytest.raises(TokenizerError, match="not found"):
    squad_cache.build_squad_cache(DEV2, False, False,
                                  sf.sentencepiece_spec(str(tmp_path / "x")), S384,
                                  str(cache_dir))
  assert not cache_dir.exists()
  calls = []
  original = sf.iter_chunks

  def failing(*args, **kwargs):
    for chunk in original(*args, **kwargs):
      calls.append(1)
      yield chunk
      raise RuntimeError("killed")
  monkeypatch.setattr(sf, "iter_chunks", failing)
  data = copy.deepcopy(dev2)
  data["data"] = data["data"][1:]
  with pytest.raises(RuntimeError, match="killed"):
    squad_cache.build_squad_cache(_write_json(tmp_path / "s.json", data), False, False, SPEC,
                                  S384, str(cache_dir), num_workers=1)
  assert calls and os.listdir(cache_dir) == []


# ---------------------------------------------------------------------------------------------
# Post-processing and scores.


def _golden_text(*parts):
  path = os.path.join(GOLD, "postproc", *parts)
  if os.path.exists(path + ".gz"):
    with gzip.open(path + ".gz", "rt", encoding="utf-8") as f:
      return f.read()
  with open(path, encoding="utf-8") as f:
    return f.read()


def _raw_results(version):
  folder = "v1/first150" if version == 1 else "v2/first300"
  with np.load(os.path.join(GOLD, "postproc", folder, "raw_results.npz")) as data:
    results = {k: data[k] for k in data.files}
  results["unique_ids"] = results.pop("unique_id")
  return results


def test_v1_decoding_writes_the_original_files_and_scores(tmp_path, dev2):
  examples = squad.read_squad_examples(DEV2, False, data=dev2)[:150]
  feats, _ = sf.convert_examples_to_features(examples, SPEC, S384, False)
  results = _raw_results(1)
  # padding rows of the last batch (unknown ids) are ignored; rows can come in any order
  order = np.random.RandomState(0).permutation(150)
  shuffled = {k: np.concatenate([v[order], v[:2] * 0]) for k, v in results.items()}
  predictions, nbest = post.decode_v1(examples, feats, shuffled)
  paths = post.write_prediction_files(str(tmp_path), predictions, nbest)
  for name, path in (("predictions.json", paths["predictions"]),
                     ("nbest_predictions.json", paths["nbest"])):
    with open(path, encoding="utf-8") as f:
      assert f.read() == _golden_text("v1", "first150", name)
  golden = json.loads(_golden_text("v1", "first150", "scores.json"))["first150"]
  dataset = _restricted(dev2, examples)
  assert metrics.evaluate_v1(dataset, predictions) == golden["evaluate_v1"]
  assert golden["evaluate_v1"] == {"exact_match": 54.0, "f1": 56.270509694647615}
  assert dict(metrics.evaluate_v2(dataset, predictions)) == {
      **golden["v2_logic_make_eval_dict_no_na_probs"], "HasAns_exact": 54.0,
      "HasAns_f1": 56.270509694647615, "HasAns_total": 150}
  # the original's quirks: the nonce answer "empty", and an empty text can be predicted
  nothing = {k: v.copy() for k, v in results.items()}
  nothing["start_logits"] = nothing.pop("start_log_prob")
  nothing["end_logits"] = nothing.pop("end_log_prob")
  first, _ = sf.convert_examples_to_features(examples[:1], SPEC, S384, False)
  nothing["start_logits"][0, first.doc_offset[0]:] = -50.0  # the best starts: in the question
  assert post.decode_v1(examples[:1], first, nothing, n_best_size=5)[0] == {
      examples[0].qas_id: "empty"}
  del nothing["unique_ids"]
  with pytest.raises(DataError, match="lack 'unique_ids'"):
    post.decode_v1(examples, feats, nothing)


def test_v2_decoding_both_passes_as_the_original(tmp_path, mini):
  examples = squad.read_squad_examples(MINI, False, True, data=mini)[:300]
  feats, _ = sf.convert_examples_to_features(examples, SPEC, S384, False)
  dataset = _restricted(mini, examples)
  out = post.evaluate_v2_as_original(dataset, examples, feats, _raw_results(2))
  paths = post.write_prediction_files(str(tmp_path), out["predictions"], out["nbest"],
                                      out["null_odds"])
  for name, path in (("predictions.json", paths["predictions"]),
                     ("nbest_predictions.json", paths["nbest"]),
                     ("null_odds.json", paths["null_odds"])):
    with open(path, encoding="utf-8") as f:
      assert f.read() == _golden_text("v2", "first300", name), name
  assert post.prediction_json(out["pass1_predictions"]) == _golden_text(
      "v2", "first300", "pass1_threshold_none", "predictions.json")
  golden = json.loads(_golden_text("v2", "first300", "scores.json"))["first300"]
  final = golden["evaluate_v2_return (what run_squad_v2 logs/writes)"]
  assert dict(out["scores"]) == final
  assert final == {"exact": 62.666666666666664, "f1": 63.761795308234944, "total": 300,
                   "null_score_diff_threshold": 0.5}
  pass1 = golden["pass1_threshold_none_eval_with_best_thresh"]
  for key in ("exact", "f1", "total", "best_exact", "best_exact_thresh", "best_f1",
              "best_f1_thresh"):
    assert out["pass1_scores"][key] == pass1[key], key
  # the golden splits of pass 1 are on the predictions themselves (no na-prob threshold)
  raw_pass1 = metrics.evaluate_v2(dataset, out["pass1_predictions"])
  breakdown = golden["final_predictions_HasAns_NoAns_breakdown (not computed by run_squad_v2)"]
  raw_final = metrics.evaluate_v2(dataset, out["predictions"])
  for prefix in ("HasAns", "NoAns"):
    for key in ("exact", "f1", "total"):
      assert raw_pass1[f"{prefix}_{key}"] == pass1[f"{prefix}_{key}"]
      assert raw_final[f"{prefix}_{key}"] == breakdown[f"{prefix}_{key}"]
  assert sum(not t for t in out["predictions"].values()) == golden["num_empty_final_predictions"]
  assert sum(not t for t in out["pass1_predictions"].values()) == 0


def test_honest_threshold_tuning(mini):
  examples = squad.read_squad_examples(MINI, False, True, data=mini)[:300]
  feats, _ = sf.convert_examples_to_features(examples, SPEC, S384, False)
  first, _, null_odds = post.decode_v2(examples, feats, _raw_results(2))
  dataset = _restricted(mini, examples)
  best_f1, threshold = metrics.best_threshold(null_odds, first, dataset)
  assert (best_f1, threshold) == (64.46179530823494, 0.5)
  assert metrics.best_threshold(null_odds, first, dataset, "exact") == (63.333333333333336, 0.5)
  # Applying it with the search's own rule (">") reproduces the best F1; the original's second
  # pass (">=") predicts null at the threshold itself and scores lower.
  searched = metrics.evaluate_v2(dataset, metrics.apply_threshold(first, null_odds, threshold))
  assert searched["f1"] == pytest.approx(best_f1, abs=1e-9)  # (summed in another order)
  original = metrics.apply_threshold(first, null_odds, threshold, inclusive=True)
  assert metrics.evaluate_v2(dataset, original)["f1"] == 63.761795308234944
  # Tuned on held-out paragraphs (here: as if each were an article), applied to the others.
  contexts = {}
  as_articles = [dataclasses.replace(e, title=str(contexts.setdefault(e.paragraph_text,
                                                                      len(contexts))))
                 for e in examples]
  kept, held = metrics.split_held_out(as_articles, 0.5, seed=1)
  assert {e.title for e in kept}.isdisjoint({e.title for e in held})
  tune = {e.qas_id for e in held}
  _, tuned = metrics.best_threshold({q: null_odds[q] for q in tune},
                                    {q: first[q] for q in tune}, _restricted(mini, held))
  honest = metrics.evaluate_v2(_restricted(mini, kept), metrics.apply_threshold(
      {e.qas_id: first[e.qas_id] for e in kept}, null_odds, tuned))
  assert honest["total"] == len(kept)


def test_split_held_out_is_seeded_and_shares_no_paragraph(mini):
  examples = squad.read_squad_examples(MINI, True, True, data=mini)
  kept, held = metrics.split_held_out(examples, 0.25, seed=3)
  assert len(kept) + len(held) == len(examples) and kept and held
  kept_ids = {e.qas_id for e in kept}
  assert [e.qas_id for e in kept] == [e.qas_id for e in examples if e.qas_id in kept_ids]
  assert {e.paragraph_text for e in kept}.isdisjoint({e.paragraph_text for e in held})
  assert len({e.title for e in held}) == 1  # round(0.25 x 4 articles)
  again = metrics.split_held_out(examples, 0.25, seed=3)
  assert [e.qas_id for e in again[1]] == [e.qas_id for e in held]
  titles = {tuple(sorted({e.title for e in metrics.split_held_out(examples, 0.25, s)[1]}))
            for s in range(8)}
  assert len(titles) > 1
  with pytest.raises(DataError, match="fraction"):
    metrics.split_held_out(examples, 1.0, seed=0)
  held_dataset = squad.dataset_from_examples(held)
  assert sum(len(p["qas"]) for a in held_dataset for p in a["paragraphs"]) == len(held)


def test_scores_agree_with_tf_models_official(dev2, mini):
  # pylint: disable=g-import-not-at-top
  from official.nlp.tools import squad_evaluate_v1_1, squad_evaluate_v2_0
  rng = random.Random(5)
  examples = squad.read_squad_examples(DEV2, False, data=dev2)
  predictions = {}
  for e in examples:
    words = e.paragraph_text.split()
    k = rng.randrange(len(words))
    predictions[e.qas_id] = rng.choice([e.answers[0], " ".join(words[k:k + 3]), "", "The " +
                                        e.answers[-1] + "!"])
  ours, theirs = metrics.evaluate_v1(dev2["data"], predictions), squad_evaluate_v1_1.evaluate(
      dev2["data"], predictions)
  assert ours["exact_match"] == pytest.approx(100 * theirs["exact_match"], abs=1e-12)
  assert ours["f1"] == pytest.approx(100 * theirs["final_f1"], abs=1e-12)
  assert 0 < ours["exact_match"] < 100
  v2 = squad.read_squad_examples(MINI, False, True, data=mini)
  predictions = {e.qas_id: rng.choice(["", e.paragraph_text[:12], e.answers[0] if e.answers
                                       else "x"]) for e in v2}
  na_probs = {e.qas_id: round(rng.uniform(-3, 3), 2) for e in v2}
  ours = metrics.evaluate_v2(mini["data"], predictions, na_probs)
  theirs = squad_evaluate_v2_0.evaluate(mini["data"], predictions, na_probs)
  for key in ("exact", "f1", "total", "HasAns_exact", "HasAns_f1", "NoAns_exact"):
    assert ours[key] == theirs[key], key
  assert (ours["best_f1"], ours["best_f1_thresh"]) == (theirs["final_f1"],
                                                       theirs["final_f1_thresh"])


def test_answers_for_question_context_pairs():
  examples = squad.examples_from_pairs([("Who won?", "The Denver Broncos won the game."),
                                        ("When?", "It was played in 2016.")])
  feats, _ = sf.convert_examples_to_features(examples, SPEC, sf.FeatureSettings(64, 16, 16),
                                             False)
  logits = np.full((len(feats), 64), -5.0, dtype=np.float32)
  ends = logits.copy()
  for k in range(len(feats)):  # the window's first two document pieces
    logits[k, feats.doc_offset[k]] = 5.0
    ends[k, feats.doc_offset[k] + 1] = 5.0
  predictions, nbest = post.decode_v1(examples, feats, {
      "unique_ids": feats.unique_id, "start_logits": logits, "end_logits": ends})
  assert predictions == {"q0": "The Denver", "q1": "It was"}
  assert nbest["q0"][0]["probability"] > 0.99


# ---------------------------------------------------------------------------------------------
# The whole dev set (../shared/data/squad/dev-v1.1.json).


@pytest.mark.slow
def test_full_dev_examples_features_parallel_and_round_trip():
  assert os.path.exists(FULL_DEV), f"the full dev set is needed: {FULL_DEV}"
  data = squad.load_squad_json(FULL_DEV)
  examples = squad.read_squad_examples(FULL_DEV, False, data=data)
  assert len(examples) == GOLDEN_EXAMPLES["dev_v1_is_training_false_count"] == 10570
  for record in GOLDEN_EXAMPLES["is_training_false"]:
    assert examples[record["example_index"]].original_fields() == {
        k: v for k, v in record.items() if k != "example_index"}
  trains = squad.read_squad_examples(FULL_DEV, True, data=data, multiple_answers="first")
  for record in GOLDEN_EXAMPLES["is_training_true_first_answer_only"]:
    assert trains[record["example_index"]].original_fields() == {
        k: v for k, v in record.items() if k != "example_index"}
  with pytest.raises(DataError, match="exactly 1 answer"):
    squad.read_squad_examples(FULL_DEV, True, data=data)
  serial, serial_records = sf.convert_examples_to_features(examples, SPEC, S384, False,
                                                           keep_inputs=False, with_records=True)
  parallel, parallel_records = sf.convert_examples_to_features(
      examples, SPEC, S384, False, num_workers=2, keep_inputs=False, with_records=True)
  assert len(serial) == 10866 and parallel_records == serial_records
  for name, value in serial.arrays().items():
    assert np.array_equal(getattr(parallel, name), value), name
  hits, misses = _round_trip(trains)
  assert len(hits) == 10540 and len(misses) == 30  # the original: 10,540 of 10,570
  for example, text in misses:
    assert example.orig_answer_text in text


@pytest.mark.slow
def test_full_dev_alignment_equals_the_original_table():
  data = squad.load_squad_json(FULL_DEV)
  contexts = [p["context"] for a in data["data"] for p in a["paragraphs"]]
  table_used = 0
  for lower in (True, False):
    for text in contexts:
      pieces = sf.paragraph_pieces(_SP, tokenization.preprocess_text(text, lower=lower))
      tok_cat = "".join(pieces).replace(tokenization.SPIECE_UNDERLINE, " ")
      forms = alignment.char_forms(text, lower)
      max_dist = abs(len(text) - len(tok_cat)) + 5
      for _ in range(2):
        score, o2c, c2o = alignment.lcs_alignment(forms, tok_cat, max_dist)
        if score > 0.8 * len(text):
          break
        max_dist *= 2
      got = alignment.align(text, tok_cat, lower)
      assert got is not None and score >= 0.8 * len(text)
      assert np.array_equal(got[0], o2c) and np.array_equal(got[1], c2o)
      table_used += got[2]
  assert table_used == 2 * 19  # paragraphs where the shortcut does not apply (of 2 x 2067)
