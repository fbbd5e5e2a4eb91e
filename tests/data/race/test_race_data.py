"""Tests of albert/data/race.py: reader, features and records against the original's golden data.

Golden data (tests/testdata/race/golden, see tests/testdata/README.md) was recorded by running
the original release's `RaceProcessor` and `race_utils.file_based_convert_examples_to_features`
on the 15 real RACE files copied to tests/testdata/race/RACE, with the 30k-clean model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from albert import tokenization
from albert.data import race
from albert.errors import AlbertError, DataError, FlagError

from conftest import TESTDATA
DATA_DIR = os.path.join(TESTDATA, "race")  # holds RACE/{train,dev,test}/{middle,high}/N.txt
GOLDEN_DIR = os.path.join(DATA_DIR, "golden")
SPM_30K = os.path.join(TESTDATA, "albert_spm", "30k-clean.model")
SPM_SMALL = os.path.join(TESTDATA, "golden", "spm.model")  # vocab-1000, model_A's
SETTINGS = [(128, 32), (128, 128), (512, 128)]

with open(os.path.join(GOLDEN_DIR, "race_data_visible.json"), encoding="utf-8") as _f:
  GOLDEN = json.load(_f)


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.FullTokenizer(None, True, SPM_30K)


@pytest.fixture(scope="module")
def small_tokenizer():
  return tokenization.FullTokenizer(None, True, SPM_SMALL)


@pytest.fixture(scope="module")
def golden_features():
  with np.load(os.path.join(GOLDEN_DIR, "race_features_visible.npz")) as data:
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def all_examples():
  return {split: race.read_examples(DATA_DIR, split) for split in race.SPLITS}


def _copy_data(tmp_path):
  target = tmp_path / "data"
  shutil.copytree(os.path.join(DATA_DIR, "RACE"), target / "RACE")
  return target


def _write_json(path, value):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(value), encoding="utf-8")


def _passage(pid="middle1.txt", questions=("q _ ?",), options=(("a", "b", "c", "d"),),
             answers=("A",)):
  return {"answers": list(answers), "options": [list(o) for o in options],
          "questions": list(questions), "article": "An article.", "id": pid}


# ---------------------------------------------------------------------------------- reader
@pytest.mark.parametrize("split", race.SPLITS)
def test_counts_equal_golden(split):
  counts = GOLDEN["counts"][split]
  examples = race.read_examples(DATA_DIR, split)
  assert len(examples) == counts["total"]
  for level in race.LEVELS:
    assert sum(e.level == level for e in examples) == counts[level]
    assert len({e.example_id for e in examples if e.level == level}) == counts[f"passages_{level}"]
  assert len(race.read_examples(DATA_DIR, split, race.levels_from_flags(high_only=True))) \
      == counts["with_high_only"]
  assert len(race.read_examples(DATA_DIR, split, race.levels_from_flags(middle_only=True))) \
      == counts["with_middle_only"]


def test_dev_examples_equal_golden():
  examples = race.read_examples(DATA_DIR, "dev")
  golden = GOLDEN["examples"]["dev"]
  assert len(examples) == len(golden)
  for example, expected in zip(examples, golden):
    assert example.example_id == expected["example_id"]
    assert example.context_sentence == expected["context_sentence"]
    assert example.start_ending is expected["start_ending"] is None
    assert list(example.endings) == expected["endings"]
    assert example.label == expected["label"] == ord(expected["raw_answer"]) - ord("A")
    assert example.level == ("middle" if expected["example_id"].startswith("middle") else "high")
    processed = [tokenization.preprocess_text(o, lower=True) for o in expected["raw_options"]]
    assert list(example.options) == processed


def test_order_middle_first_then_numeric_file_order(all_examples):
  for split, examples in all_examples.items():
    names = []
    for e in examples:
      name = f"{e.level}/{os.path.basename(e.source)}"
      if name not in names:
        names.append(name)
    expected = [f"{level}/{n}" for level in race.LEVELS
                for n in GOLDEN["all_txt_order"][f"{split}/{level}"]]
    assert names == expected
    for e in examples:  # question order inside each passage
      same = [x.question_index for x in examples if x.example_id == e.example_id]
      assert same == list(range(len(same)))


def test_blank_replaced_everywhere_else_joined():
  assert race.make_ending("a _ b _ c", "X") == "a X b X c"
  assert race.make_ending("why?", "because") == "why? because"
  assert race.make_ending("(_)", "x y") == "(x y)"


def test_all_txt_layout_reads_the_same(tmp_path, all_examples):
  data = tmp_path / "data"
  for split in race.SPLITS:
    for level in race.LEVELS:
      lines = []
      for name in GOLDEN["all_txt_order"][f"{split}/{level}"]:
        with open(os.path.join(DATA_DIR, "RACE", split, level, name), encoding="utf-8") as f:
          lines.append(f.read().strip())
      target = data / "RACE" / split / level / "all.txt"
      target.parent.mkdir(parents=True)
      target.write_text("\n".join(lines) + "\n", encoding="utf-8")
  for split in race.SPLITS:
    got = race.read_examples(str(data), split)
    want = all_examples[split]
    assert [(e.example_id, e.question_index, e.level, e.context_sentence, e.endings, e.label)
            for e in got] == \
        [(e.example_id, e.question_index, e.level, e.context_sentence, e.endings, e.label)
         for e in want]
    assert all(e.source.startswith(str(data)) and ":" in os.path.basename(e.source) for e in got)


def test_all_txt_is_used_when_present(tmp_path):
  data = _copy_data(tmp_path)
  _write_json(data / "RACE" / "dev" / "middle" / "all.txt", _passage("middle999.txt"))
  examples = race.read_examples(str(data), "dev", ("middle",))
  assert [e.example_id for e in examples] == ["middle999.txt"]
  assert race.input_files(str(data), "dev", ("middle",)) == \
      [("middle", str(data / "RACE" / "dev" / "middle" / "all.txt"))]


def test_numeric_order_of_file_names(tmp_path):
  for n in (10, 2, 1):
    _write_json(tmp_path / "RACE" / "train" / "middle" / f"{n}.txt", _passage(f"middle{n}.txt"))
  examples = race.read_examples(str(tmp_path), "train", ("middle",))
  assert [e.example_id for e in examples] == ["middle1.txt", "middle2.txt", "middle10.txt"]
  assert examples[0].question_id == "middle1.txt-0"


def test_data_dir_may_be_the_race_folder():
  examples = race.read_examples(os.path.join(DATA_DIR, "RACE"), "dev")
  assert len(examples) == GOLDEN["counts"]["dev"]["total"]


# -------------------------------------------------------------------------------- features
@pytest.mark.parametrize("max_seq_length,max_qa_length", SETTINGS)
def test_features_equal_golden(tokenizer, golden_features, max_seq_length, max_qa_length):
  examples = race.read_examples(DATA_DIR, "dev")
  converter = race.RaceFeatureConverter(tokenizer, max_seq_length, max_qa_length)
  features = [converter.convert(e) for e in examples]
  key = f"dev/seq{max_seq_length}_qa{max_qa_length}"
  for name in ("input_ids", "input_mask", "segment_ids"):
    got = np.array([getattr(f, name) for f in features])
    np.testing.assert_array_equal(got, golden_features[f"{key}/{name}"], err_msg=name)
  np.testing.assert_array_equal([f.label_id for f in features], golden_features[f"{key}/label_ids"])
  assert golden_features[f"{key}/is_real_example"].tolist() == [1] * len(examples)
  stats = GOLDEN["features"][key]
  lengths = np.array([f.lengths for f in features])
  assert int((lengths == max_seq_length).sum()) == stats["num_choices_at_max_length"]
  assert lengths.tolist() == golden_features[f"{key}/input_mask"].sum(-1).tolist()
  segment1 = golden_features[f"{key}/segment_ids"].sum(-1)
  assert int(segment1.max()) == stats["max_segment1_length(ending+[SEP])"]


def test_tokens_of_first_dev_question(tokenizer):
  example = race.read_examples(DATA_DIR, "dev")[0]
  assert tokenizer.tokenize(example.context_sentence) == GOLDEN["dev0_tokens"]["context"]
  assert [tokenizer.tokenize(e) for e in example.endings] == GOLDEN["dev0_tokens"]["endings"]


def test_truncation_facts_of_the_golden(tokenizer, all_examples):
  for split, examples in all_examples.items():
    stats = GOLDEN["derived_truncation_stats"][f"race_{split}"]
    report = race.truncation_report(examples, tokenizer, 128, 32)
    assert report["choices"] == stats["choices"]
    assert report["original"]["endings_truncated"] == \
        stats["choices_with_ending_truncated_at_qa32"]
    assert max(len(tokenizer.tokenize(e)) for x in examples for e in x.endings) == \
        stats["max_ending_tokens_qa128"]
    at_512 = race.RaceFeatureConverter(tokenizer, 512, 128)
    assert sum(l == 512 for x in examples for l in at_512.convert(x).lengths) == \
        stats["choices_at_512"]


def _ending_tokens(tok, feature, choice):
  ids = feature.input_ids[choice]
  segments = feature.segment_ids[choice]
  ending = [i for i, s, m in zip(ids, segments, feature.input_mask[choice]) if s == 1 and m][:-1]
  return tok.convert_ids_to_tokens(ending)


def _occurrences(tokens, part):
  """How many times `part` occurs in `tokens` (non-overlapping)."""
  count, i = 0, 0
  while i <= len(tokens) - len(part):
    if tokens[i:i + len(part)] == part:
      count, i = count + 1, i + len(part)
    else:
      i += 1
  return count


@pytest.mark.parametrize("max_seq_length,max_qa_length", [(512, 128), (128, 32), (128, 16),
                                                          (128, 8)])
def test_option_cut_flags_and_report_on_real_data(tokenizer, all_examples, max_seq_length,
                                                  max_qa_length):
  """`option_cut` is set exactly when the kept ending holds fewer copies of the option's tokens.

  (A question with two blanks holds the option twice, as the original puts it in every `_`.)
  """
  examples = [e for split in race.SPLITS for e in all_examples[split]]
  report = race.truncation_report(examples, tokenizer, max_seq_length, max_qa_length)
  for mode in race.TRUNCATIONS:
    converter = race.RaceFeatureConverter(tokenizer, max_seq_length, max_qa_length, mode)
    cut = 0
    for example in examples:
      feature = converter.convert(example)
      for choice, option in enumerate(example.options):
        kept = _ending_tokens(tokenizer, feature, choice)
        assert len(kept) <= max_qa_length
        whole = tokenizer.tokenize(race.make_ending(example.question, option))
        part = tokenizer.tokenize(option)
        lost = _occurrences(kept, part) < _occurrences(whole, part)
        assert feature.option_cut[choice] == lost, (mode, example.question_id, choice)
        cut += lost
    assert report[mode]["option_cut"] == cut
  assert report["keep_option"]["option_cut"] <= report["original"]["option_cut"]
  assert report["keep_option"]["questions_with_identical_choices"] == 0
  if max_qa_length >= 32:  # the real questions' options survive both truncations
    assert report["original"]["option_cut"] == report["keep_option"]["option_cut"] == 0
  else:
    assert report["original"]["option_cut"] > report["keep_option"]["option_cut"]


def test_keep_option_equals_original_unless_the_original_cuts_the_option(tokenizer,
                                                                        all_examples):
  for max_seq_length, max_qa_length in [(512, 128), (128, 32), (128, 16)]:
    original = race.RaceFeatureConverter(tokenizer, max_seq_length, max_qa_length)
    keep = race.RaceFeatureConverter(tokenizer, max_seq_length, max_qa_length, "keep_option")
    for example in (e for split in race.SPLITS for e in all_examples[split]):
      a, b = original.convert(example), keep.convert(example)
      for choice in range(race.NUM_CHOICES):
        if not a.option_cut[choice]:
          assert a.input_ids[choice] == b.input_ids[choice]
          assert a.segment_ids[choice] == b.segment_ids[choice]


def test_model_A_inputs_and_the_row_that_loses_its_option(small_tokenizer):
  """The golden's 4 x 4 x 32 model inputs (vocab-1000 model, qa 16); row 3 loses its option."""
  with np.load(os.path.join(GOLDEN_DIR, "model_A_race_outputs.npz")) as data:
    golden = {k: data[k] for k in data.files if k.startswith("input/")}
  examples = race.read_examples(DATA_DIR, "dev")[:4]
  original = [race.convert_race_example(e, small_tokenizer, 32, 16) for e in examples]
  for name in ("input_ids", "input_mask", "segment_ids"):
    got = np.array([sum(getattr(f, name), []) for f in original])
    np.testing.assert_array_equal(got, golden[f"input/{name}"], err_msg=name)
  np.testing.assert_array_equal([f.label_id for f in original], golden["input/label_ids"])
  assert [f.identical_choices for f in original] == [False, False, False, True]
  assert original[3].option_cut == [True] * 4

  keep = [race.convert_race_example(e, small_tokenizer, 32, 16, "keep_option") for e in examples]
  assert not any(f.identical_choices for f in keep)
  row3 = keep[3]
  assert len({tuple(ids) for ids in row3.input_ids}) == 4
  for choice, option in enumerate(examples[3].options):
    kept = _ending_tokens(small_tokenizer, row3, choice)
    assert len(kept) <= 16 and _occurrences(kept, small_tokenizer.tokenize(option)) == 1
    assert row3.lengths[choice] == 32 and not row3.option_cut[choice]
  for row in range(3):  # their options survive the original's cut: both truncations agree
    assert keep[row].input_ids == original[row].input_ids


def test_keep_option_cuts_a_long_option_at_its_end(small_tokenizer):
  example = race.RaceExample("x", 0, "middle", "some context", ("",) * 4, 0, "why",
                             ("the first words of a very long option text",) * 4, "mem")
  feature = race.convert_race_example(example, small_tokenizer, 64, 4, "keep_option")
  option = small_tokenizer.tokenize(example.options[0])
  assert _ending_tokens(small_tokenizer, feature, 0) == option[:4]
  assert feature.option_cut == [True] * 4


def test_an_ending_longer_than_the_sequence_is_cut_to_fit(small_tokenizer):
  example = race.read_examples(DATA_DIR, "dev")[0]
  for mode in race.TRUNCATIONS:
    feature = race.convert_race_example(example, small_tokenizer, 8, 128, mode)
    for choice in range(race.NUM_CHOICES):
      assert len(feature.input_ids[choice]) == 8 and feature.lengths[choice] == 8
      assert feature.segment_ids[choice] == [0, 0, 1, 1, 1, 1, 1, 1]  # empty context
      assert feature.input_ids[choice][:2] == small_tokenizer.convert_tokens_to_ids(
          ["[CLS]", "[SEP]"])


# ----------------------------------------------------------------------------------- cache
def _spec(model=SPM_30K, lower=True):
  return tokenization.TokenizerSpec(spm_model_file=model, do_lower_case=lower)


def _read_records(path, max_seq_length):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  spec = {name: tf.io.FixedLenFeature([length], tf.int64)
          for name, (_, length) in race.record_schema(max_seq_length).items()}
  rows = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(path)]
  return {name: np.stack([row[name].numpy() for row in rows]) for name in spec}


@pytest.mark.parametrize("max_seq_length,max_qa_length", [(128, 32), (512, 128)])
def test_cache_records_equal_golden(tmp_path, golden_features, max_seq_length, max_qa_length):
  path, meta = race.build_race_cache(DATA_DIR, "dev", _spec(), max_seq_length, max_qa_length,
                                     cache_dir=str(tmp_path))
  records = _read_records(path, max_seq_length)
  key = f"dev/seq{max_seq_length}_qa{max_qa_length}"
  questions = GOLDEN["counts"]["dev"]["total"]
  for name in ("input_ids", "input_mask", "segment_ids"):
    assert records[name].shape == (questions, race.NUM_CHOICES * max_seq_length)
    np.testing.assert_array_equal(records[name].reshape(questions, race.NUM_CHOICES, -1),
                                  golden_features[f"{key}/{name}"], err_msg=name)
  np.testing.assert_array_equal(records["label_ids"][:, 0], golden_features[f"{key}/label_ids"])
  np.testing.assert_array_equal(records["is_real_example"][:, 0], 1)
  examples = race.read_examples(DATA_DIR, "dev")
  assert meta["num_questions"] == meta["num_records"] == questions
  assert meta["question_ids"] == [f"{e.example_id}-{e.question_index}" for e in examples]
  assert meta["question_ids"][:6] == [f"middle13.txt-{i}" for i in range(5)] + ["middle34.txt-0"]
  assert meta["levels"] == [e.level for e in examples]
  assert meta["level_counts"] == {"middle": 11, "high": 6}
  assert meta["label_ids"] == golden_features[f"{key}/label_ids"].tolist()
  assert meta["lengths"] == golden_features[f"{key}/input_mask"].sum(-1).tolist()
  assert meta["label_list"] == ["A", "B", "C", "D"] and meta["num_choices"] == 4
  assert meta["settings"]["max_seq_length"] == max_seq_length
  assert meta["truncation_stats"]["option_cut"] == 0
  name = os.path.basename(path)
  assert sorted(os.listdir(tmp_path)) == [name, name + ".json"]  # nothing else left behind


def test_cache_fingerprint(tmp_path):
  data = _copy_data(tmp_path)
  cache_dir = str(tmp_path / "cache")

  def build(**overrides):
    kwargs = dict(data_dir=str(data), split="dev", tokenizer_spec=_spec(), max_seq_length=64,
                  max_qa_length=16, levels=race.LEVELS, truncation="original",
                  cache_dir=cache_dir)
    kwargs.update(overrides)
    return race.build_race_cache(**kwargs)

  path, meta = build()
  stamp = os.stat(path).st_mtime_ns
  again, meta_again = build()
  assert again == path and meta_again == meta and os.stat(path).st_mtime_ns == stamp  # reused
  paths = {path}
  for change in [dict(max_seq_length=128), dict(max_qa_length=8), dict(truncation="keep_option"),
                 dict(levels=("high",)), dict(tokenizer_spec=_spec(lower=False)),
                 dict(tokenizer_spec=_spec(SPM_SMALL))]:
    other, other_meta = build(**change)
    assert other not in paths, change
    paths.add(other)
  assert build(levels=("high",))[1]["num_questions"] == 6

  passage = data / "RACE" / "dev" / "middle" / "34.txt"
  content = json.loads(passage.read_text(encoding="utf-8"))
  content["answers"][0] = "C"
  passage.write_text(json.dumps(content), encoding="utf-8")
  changed, changed_meta = build()
  assert changed not in paths and changed_meta["label_ids"][5] == 2 != meta["label_ids"][5]

  with open(changed, "r+b") as f:  # a damaged cache is rebuilt under the same name
    f.truncate(100)
  rebuilt, rebuilt_meta = build()
  assert rebuilt == changed and rebuilt_meta["num_bytes"] == os.path.getsize(rebuilt)


def test_cache_with_a_fixed_path(tmp_path):
  fixed = str(tmp_path / "eval.tf_record")
  path, meta = race.build_race_cache(DATA_DIR, "dev", _spec(), 64, 16, path_override=fixed)
  assert path == fixed and os.path.exists(fixed + ".json")
  path2, meta2 = race.build_race_cache(DATA_DIR, "dev", _spec(), 64, 32, path_override=fixed)
  assert path2 == fixed and meta2["fingerprint"] != meta["fingerprint"]


def test_bad_input_writes_no_cache(tmp_path):
  data = _copy_data(tmp_path)
  (data / "RACE" / "dev" / "high" / "80.txt").write_text("not json", encoding="utf-8")
  cache_dir = tmp_path / "cache"
  with pytest.raises(DataError, match="80.txt: not RACE JSON"):
    race.build_race_cache(str(data), "dev", _spec(), 64, 16, cache_dir=str(cache_dir))
  assert not cache_dir.exists() or not os.listdir(cache_dir)


# ------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("content,message", [
    ("not json", r"34\.txt: not RACE JSON \(Expecting value"),
    ("[1, 2]", r"34\.txt: not RACE JSON \(a list"),
    (json.dumps({"article": "a", "id": "x"}), r"34\.txt: not RACE JSON \(no key 'questions'"),
    (json.dumps(_passage(answers=("E",))), r"34\.txt: answers\[0\] is 'E', expected one of A"),
    (json.dumps(_passage(questions=("a", "b"), options=(("1", "2", "3", "4"), ("1", "2", "3")),
                         answers=("A", "B"))),
     r"34\.txt: questions\[1\] has 3 options, expected 4"),
    (json.dumps(_passage(answers=("A", "B"))), r"34\.txt: 1 questions, 1 option lists and 2 "),
    (b"\xff\xfe{}", r"34\.txt: not RACE JSON \(not UTF-8"),
    ("", r"34\.txt: not RACE JSON \(Expecting value"),
])
def test_bad_passage_names_the_file(tmp_path, content, message):
  data = _copy_data(tmp_path)
  target = data / "RACE" / "dev" / "middle" / "34.txt"
  target.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
  with pytest.raises(DataError, match=message):
    race.read_examples(str(data), "dev")


def test_bad_line_of_all_txt_names_the_line(tmp_path):
  target = tmp_path / "RACE" / "test" / "high" / "all.txt"
  target.parent.mkdir(parents=True)
  target.write_text(json.dumps(_passage("high1.txt")) + "\n{broken\n", encoding="utf-8")
  with pytest.raises(DataError, match=r"all\.txt:2: not RACE JSON"):
    race.read_examples(str(tmp_path), "test", ("high",))


def test_repeated_passage_id(tmp_path):
  for n in (1, 2):
    _write_json(tmp_path / "RACE" / "dev" / "high" / f"{n}.txt", _passage("high1.txt"))
  with pytest.raises(DataError,
                     match=r"2\.txt: passage id 'high1.txt' was already used by .*1\.txt"):
    race.read_examples(str(tmp_path), "dev", ("high",))


def test_missing_directories_say_which_layout(tmp_path):
  with pytest.raises(DataError, match=r"RACE dev split not found: .*RACE/dev is not a directory; "
                     r"expected .*<N>\.txt .*all\.txt"):
    race.read_examples(str(tmp_path), "dev")
  (tmp_path / "RACE" / "dev" / "middle").mkdir(parents=True)
  with pytest.raises(DataError, match=r"middle holds no \.txt file; expected"):
    race.read_examples(str(tmp_path), "dev", ("middle",))
  _write_json(tmp_path / "RACE" / "dev" / "middle" / "1.txt", _passage())
  with pytest.raises(DataError, match=r"RACE dev/high not found: .*high is not a directory; "
                     r"expected"):
    race.read_examples(str(tmp_path), "dev")
  assert len(race.read_examples(str(tmp_path), "dev", ("middle",))) == 1


def test_bad_settings():
  with pytest.raises(FlagError, match="--high_only and --middle_only"):
    race.levels_from_flags(high_only=True, middle_only=True)
  with pytest.raises(FlagError, match="split must be one of"):
    race.read_examples(DATA_DIR, "validation")
  with pytest.raises(FlagError, match="levels"):
    race.read_examples(DATA_DIR, "dev", ("college",))
  tok = tokenization.FullTokenizer(None, True, SPM_SMALL)
  with pytest.raises(FlagError, match="--max_qa_length=0"):
    race.RaceFeatureConverter(tok, 128, 0)
  with pytest.raises(FlagError, match="--max_seq_length=3"):
    race.RaceFeatureConverter(tok, 3, 1)
  with pytest.raises(FlagError, match="truncation must be one of"):
    race.RaceFeatureConverter(tok, 128, 32, "keep_question")
  assert issubclass(DataError, AlbertError) and issubclass(FlagError, AlbertError)


# ---------------------------------------------------------------------------------- scores
def test_race_accuracy_per_level():
  labels = [0, 1, 2, 3, 0, 1, 2]
  levels = ["middle", "middle", "middle", "high", "high", "high", "high"]
  predictions = [0, 1, 0, 3, 1, 1, 0]  # middle 2/3, high 2/4, all 4/7
  metrics = race.race_accuracy(predictions, labels, levels)
  assert metrics == {"eval_accuracy": 4 / 7, "middle_accuracy": 2 / 3, "high_accuracy": 0.5}
  scores = np.eye(4)[predictions] * 0.7 + 0.1  # argmax of [Q, C] scores
  assert race.race_accuracy(scores, labels, levels) == metrics
  assert race.race_accuracy([1, 1], [1, 0], ["high", "high"]) == {"eval_accuracy": 0.5,
                                                                 "high_accuracy": 0.5}
  with pytest.raises(DataError, match="one entry per question"):
    race.race_accuracy([0, 1], [0], ["high"])
  with pytest.raises(DataError, match="unknown levels"):
    race.race_accuracy([0], [0], ["college"])


def test_write_predictions(tmp_path):
  path = str(tmp_path / "out" / "predictions.json")
  probabilities = [[0.1, 0.2, 0.6, 0.1], [0.7, 0.1, 0.1, 0.1]]
  assert race.write_predictions(path, ["middle13.txt-0", "high80.txt-4"], probabilities) == path
  with open(path, encoding="utf-8") as f:
    written = json.load(f)
  assert list(written) == ["middle13.txt-0", "high80.txt-4"]
  assert written["middle13.txt-0"] == {"prediction": "C", "probabilities": probabilities[0]}
  assert written["high80.txt-4"]["prediction"] == "A"
  assert os.listdir(tmp_path / "out") == ["predictions.json"]
  with pytest.raises(DataError, match=r"probabilities \(2, 4\), expected \(1, 4\)"):
    race.write_predictions(path, ["a"], probabilities)


def test_module_is_tf_free():
  code = ("import sys; import albert.data.race; "
          "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
  from conftest import REPO_DIR as repo
  subprocess.run([sys.executable, "-c", code], check=True, cwd=repo,
                 env=dict(os.environ, PYTHONPATH=repo))
