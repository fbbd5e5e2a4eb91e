"""Tests of albert/data/glue/ (tasks, reader, features, cache): the original's GLUE examples and
features.

Golden data (tests/testdata/golden/finetune/classifier/, see its README in
../shared/fixtures/golden/finetune/classifier/) was recorded by running the original release's
processors and `file_based_convert_examples_to_features` on the official GLUE files.
tests/testdata/glue/ holds the first 20 rows of every visible official file (same layout, so
guids and line numbers are those of the full files) and small MNLI / QQP files written here in
the official layout. The full-file check (counts, last rows, seeded-random rows of every split)
reads the shared GLUE copy ($ALBERT_GLUE_DIR or ../shared/data/glue, beside the clone in CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from albert import metrics, tokenization
from albert.data.glue import reader as glue
from albert.data.glue import tasks as glue_tasks
from albert.data.glue import cache as glue_cache
from albert.data.glue import features as glue_features
from albert.data import records as records_lib
from albert.tokenization import TokenizerSpec
from albert.errors import DataError, FlagError, InputError
from conftest import GOLDEN, REPO_DIR, TESTDATA
from support.reference_text import original_preprocess_text

GLUE_SLICES = os.path.join(TESTDATA, "glue")
CLASSIFIER = os.path.join(GOLDEN, "finetune", "classifier")
SPM_30K = os.path.join(TESTDATA, "albert_spm", "30k-clean.model")
SPM_SMALL = os.path.join(GOLDEN, "spm.model")
GLUE_FULL = os.environ.get("ALBERT_GLUE_DIR",
                           os.path.join(REPO_DIR, "..", "shared", "data", "glue"))
SLICE_ROWS = 20

with open(os.path.join(CLASSIFIER, "glue_processors_visible.json"), encoding="utf-8") as _f:
  PROCESSORS = json.load(_f)
with open(os.path.join(CLASSIFIER, "glue_features.json"), encoding="utf-8") as _f:
  FEATURES = json.load(_f)

VISIBLE = [(task, split) for task, value in PROCESSORS["tasks"].items()
           for split, info in value["splits"].items() if "absent" not in info]


def _as_dicts(examples, start=0):
  return [dict(index=start + i, guid=e.guid, text_a=e.text_a, text_b=e.text_b, label=e.label)
          for i, e in enumerate(examples)]


@pytest.fixture(scope="module")
def tokenizer_30k():
  return tokenization.FullTokenizer(None, do_lower_case=True, spm_model_file=SPM_30K)


# ------------------------------------------------------------------------------ processors
def test_task_names_and_labels_are_the_originals():
  assert set(PROCESSORS["tasks"]) == set(glue_tasks.TASKS)
  for task, info in PROCESSORS["tasks"].items():
    processor = glue.get_processor(task.upper())
    assert processor.name == task
    assert processor.labels == info["labels"]
    assert glue_tasks.TASKS[task].processor == info["processor"]
  assert glue.get_processor("sts-b").is_regression and glue.get_processor("sts-b").num_labels == 1
  assert glue.get_processor("MNLI-MM").name == "mismnli"
  assert glue.get_processor("mnli-mm").file_path(GLUE_SLICES, "dev").endswith(
      os.path.join("MNLI", "dev_mismatched.tsv"))


def test_a_task_row_carries_its_metrics_submission_file_and_extra_splits():
  """metrics.py, submission.py and the classifier task read these fields, never the task name."""
  files = [spec.submission_file for spec in glue_tasks.TASKS.values()]
  assert len(set(files)) == len(files) and all(f.endswith(".tsv") for f in files)
  for name, spec in glue_tasks.TASKS.items():
    assert spec.test_rows > 0 and spec.delimiter == "\t"
    if not spec.scores:  # the diagnostic set: no labels
      assert name == "ax"
      continue
    assert spec.metric in spec.scores and "eval_loss" in spec.scores
    predictions, labels = ([0.5, 2.5, 4.0], [1.0, 2.0, 5.0]) if spec.is_regression else \
        ([0, 1, 1], [0, 1, 0])
    assert list(metrics.glue_metrics(name, predictions, labels, [0.1, 0.2, 0.3])) == \
        list(spec.scores)
    for extra in spec.extra_splits:
      assert extra.split in glue_tasks.TASKS[extra.task].layouts
      assert extra.name.startswith("eval_" if extra.split == "dev" else "predict_")
  assert [(e.name, e.task, e.split) for e in glue_tasks.TASKS["mnli"].extra_splits] == [
      ("predict_mismatched", "mismnli", "test"), ("predict_ax", "ax", "test"),
      ("eval_mismatched", "mismnli", "dev")]


@pytest.mark.parametrize("task,split", VISIBLE)
def test_golden_processor_rows_on_slices(task, split):
  golden = PROCESSORS["tasks"][task]["splits"][split]
  processor = glue.get_processor(task)
  examples = processor.get_examples(GLUE_SLICES, split)
  assert len(examples) == SLICE_ROWS
  rows = _as_dicts(examples)
  assert rows[:3] == golden["first3"]
  in_slice = [i for i in golden["random_indices"] if i < SLICE_ROWS]
  expected = [r for r in golden["random20"] if r["index"] in in_slice]
  assert [rows[i] for i in in_slice] == expected
  assert sorted({type(e.label).__name__ for e in examples}) == golden["label_types"]
  assert sum(e.text_b is None for e in examples) == (SLICE_ROWS if golden["text_b_is_None"] else 0)


def test_use_spm_false_keeps_text_as_is():
  for task, golden in PROCESSORS["use_spm_false_dev_first3"].items():
    split = "test" if task == "ax" else "dev"
    processor = glue.get_processor(task, use_spm=False)
    assert _as_dicts(processor.get_examples(GLUE_SLICES, split)[:3]) == golden


@pytest.mark.parametrize("task,split", VISIBLE)
def test_golden_processors_on_full_files(task, split):
  """Counts, first/last/seeded-random rows and label counts of every visible official split."""
  assert os.path.isdir(GLUE_FULL), (
      f"the official GLUE files are expected in {GLUE_FULL} (or set ALBERT_GLUE_DIR)")
  golden = PROCESSORS["tasks"][task]["splits"][split]
  processor = glue.get_processor(task)
  path = processor.file_path(GLUE_FULL, split)
  raw = list(processor.raw_rows(path, split))
  header = 1 if glue_tasks.TASKS[task].layouts[split].has_header else 0
  assert len(raw) + header == golden["csv_rows_read"]
  examples = processor.get_examples(GLUE_FULL, split)
  rows = _as_dicts(examples)
  assert len(rows) == golden["num_examples"]
  assert rows[:3] == golden["first3"] and rows[-3:] == golden["last3"]
  assert [rows[i] for i in golden["random_indices"]] == golden["random20"]
  assert sorted({type(e.label).__name__ for e in examples}) == golden["label_types"]
  assert sum(e.text_b is None for e in examples) == golden["text_b_is_None"]
  if processor.is_regression and split != "test":
    labels = [e.label for e in examples]
    assert (min(labels), max(labels)) == (golden["label_counts"]["min"],
                                          golden["label_counts"]["max"])
    assert np.mean(labels) == pytest.approx(golden["label_counts"]["mean"], abs=1e-12)
  else:
    counts = {}
    for e in examples:
      counts[str(e.label)] = counts.get(str(e.label), 0) + 1
    assert counts == golden["label_counts"]


def test_mnli_readers_in_the_official_layout():
  mnli, mm = glue.get_processor("mnli"), glue.get_processor("mismnli")
  train = mnli.get_examples(GLUE_SLICES, "train")
  assert [(e.guid, e.label) for e in train] == [
      ("0", "entailment"), ("1", "contradiction"), ("2", "neutral"), ("3", "entailment"),
      ("4", "contradiction")]
  # Columns 8/9 are the sentences; text is preprocess_text(lower=True)-ed (NFKD: full-width T,
  # the fi ligature, accents), whitespace collapsed, quotes kept literally.
  assert train[1].text_a == 'she said "maybe later" and left the cafe.'
  assert train[3].text_a == "the final train leaves at nine."
  assert train[2].text_b == "the report covers several years."
  assert mm.get_examples(GLUE_SLICES, "train") == train
  dev = mnli.get_examples(GLUE_SLICES, "dev")
  assert [(e.guid, e.label) for e in dev] == [("100", "entailment"), ("101", "contradiction"),
                                              ("102", "neutral")]  # gold_label, the last column
  mm_dev = mm.get_examples(GLUE_SLICES, "dev")
  assert [e.guid for e in mm_dev] == ["200", "201", "202"]
  assert mm_dev[0].text_a == "the museum opens its new wing in may."
  test = mnli.get_examples(GLUE_SLICES, "test")
  assert [(e.guid, e.label) for e in test] == [("300", "contradiction"), ("301", "contradiction")]
  assert [e.guid for e in mm.get_examples(GLUE_SLICES, "test")] == ["400", "401"]


def test_qqp_ragged_rows_are_skipped_counted_and_reported(tmp_path):
  qqp = glue.get_processor("qqp")
  train = qqp.get_examples(GLUE_SLICES, "train")
  assert [(e.guid, e.label) for e in train] == [("133273", "1"), ("402555", "1"),
                                                ("360472", "0")]
  assert train[1].text_a == 'how do i cook rice without a "rice cooker"?'
  assert train[2].text_a == "what is the capital of peru?"
  assert (qqp.skipped, qqp.skipped_lines) == (2, [3, 4])
  assert [e.guid for e in qqp.get_examples(GLUE_SLICES, "dev")] == ["201359", "263843"]
  assert qqp.skipped == 0
  test = qqp.get_examples(GLUE_SLICES, "test")
  assert [(e.guid, e.text_b, e.label) for e in test] == [
      ("0", "which books are good for a summer holiday?", "0"),
      ("1", "does tea help you sleep?", "0")]
  lines = []
  _, meta = glue_cache.build_glue_cache("qqp", GLUE_SLICES, "train", _spec(SPM_SMALL), 32,
                                           str(tmp_path), log=lines.append)
  assert (meta["skipped_rows"], meta["skipped_lines"], meta["num_examples"]) == (2, [3, 4], 3)
  assert "2 ragged rows skipped (lines 3, 4)" in lines[-1]


def test_ax_reads_the_diagnostic_file():
  ax = glue.get_processor("ax")
  rows = _as_dicts(ax.get_examples(GLUE_SLICES, "test"))
  assert rows[:3] == PROCESSORS["tasks"]["ax"]["splits"]["test"]["first3"]
  assert ax.labels == glue.get_processor("mnli").labels
  with pytest.raises(InputError, match="has no train split"):
    ax.get_examples(GLUE_SLICES, "train")


def test_unknown_task_lists_the_known_ones():
  with pytest.raises(FlagError) as error:
    glue.get_processor("sst")
  message = str(error.value)
  assert "'sst'" in message and "--task_name" in message
  for name in list(glue_tasks.TASKS) + list(glue_tasks.ALIASES):
    assert name in message
  with pytest.raises(FlagError, match="expected one of train, dev, test"):
    glue.get_processor("rte").get_examples(GLUE_SLICES, "eval")


def test_missing_file_names_it_and_the_expected_layout(tmp_path):
  with pytest.raises(InputError) as error:
    glue.get_processor("qnli").get_examples(GLUE_SLICES, "train")
  message = str(error.value)
  assert os.path.join(GLUE_SLICES, "QNLI", "train.tsv") in message
  assert "GLUE root" in message and "QNLI/train.tsv" in message.replace(os.sep, "/")
  # The task folder given instead of the root: the message says so.
  with pytest.raises(InputError, match="not the SST-2 folder"):
    glue.get_processor("sst-2").get_examples(os.path.join(GLUE_SLICES, "SST-2"), "dev")


def _edited_copy(tmp_path, task_dir, name, edit):
  """A GLUE root in tmp_path whose <task_dir>/<name> is edited by `edit(lines) -> lines`."""
  root = tmp_path / "glue"
  shutil.copytree(os.path.join(GLUE_SLICES, task_dir), root / task_dir)
  path = root / task_dir / name
  lines = path.read_bytes().split(b"\n")
  path.write_bytes(b"\n".join(edit(lines)))
  return str(root), str(path)


def _replace_line(number, new):
  def edit(lines):
    lines = list(lines)
    lines[number - 1] = new(lines[number - 1])
    return lines
  return edit


@pytest.mark.parametrize("task,task_dir,name,split,line,new,pattern", [
    ("rte", "RTE", "dev.tsv", "dev", 5, lambda l: l + b"\textra", r"5 tab-separated columns, "
     r"expected 4 \(the official GLUE RTE/dev.tsv layout"),
    ("cola", "CoLA", "train.tsv", "train", 7, lambda l: l.split(b"\t", 1)[1], "line 7: 3 tab"),
    ("sst-2", "SST-2", "dev.tsv", "dev", 1, lambda l: l + b"\tid", r"line 1 \(header\)"),
    ("mrpc", "MRPC", "train.tsv", "train", 4, lambda l: b"2" + l[1:],
     r"line 4: label '2' is not one of the mrpc labels \(0, 1\)"),
    ("rte", "RTE", "train.tsv", "train", 9, lambda l: l.replace(b"not_entailment", b"maybe")
     .replace(b"\tentailment", b"\tmaybe"), "line 9: label 'maybe' is not one of"),
    ("sts-b", "STS-B", "train.tsv", "train", 3, lambda l: l.rsplit(b"\t", 1)[0] + b"\tn/a",
     "line 3: STS-B score 'n/a' is not a number"),
    ("sts-b", "STS-B", "dev.tsv", "dev", 6, lambda l: l.rsplit(b"\t", 1)[0] + b"\tnan",
     "line 6: STS-B score 'nan' is not a number"),
    ("wnli", "WNLI", "train.tsv", "train", 12, lambda l: l.replace(b" ", b"\xff ", 1),
     "line 12: not valid UTF-8"),
    ("qnli", "QNLI", "dev.tsv", "dev", 8, lambda l: l.replace(b" ", b"\r", 1),
     "line 8: new-line character seen in unquoted field"),
])
def test_malformed_lines_name_the_file_and_line(tmp_path, task, task_dir, name, split, line, new,
                                                pattern):
  root, path = _edited_copy(tmp_path, task_dir, name, _replace_line(line, new))
  with pytest.raises(DataError, match=pattern) as error:
    glue.get_processor(task).get_examples(root, split)
  assert str(error.value).startswith(f"{path}, line {line}")


def test_short_rows_outside_qqp_train_dev_are_errors(tmp_path):
  root, path = _edited_copy(tmp_path, "QQP", "test.tsv", lambda lines: lines[:2] + [b"7\tonly"]
                            + lines[2:])
  with pytest.raises(DataError, match="line 3: 2 tab-separated columns, expected 3"):
    glue.get_processor("qqp").get_examples(root, "test")
  root, path = _edited_copy(tmp_path / "b", "RTE", "dev.tsv", lambda lines: lines[:3] + [b""] +
                            lines[3:])
  with pytest.raises(DataError, match="line 4: 0 tab-separated columns"):
    glue.get_processor("rte").get_examples(root, "dev")


def test_text_shortcut_equals_preprocess_text():
  rng = np.random.RandomState(3)
  alphabet = list("abcXYZ019 ,.'\"-") + ["\t", "\n", "\x0b", "\x1c", "  "]
  strings = ["".join(rng.choice(alphabet, size=rng.randint(0, 30))) for _ in range(300)]
  strings += ["Café  NAÏVE", "Ｔhe ﬁnal", " x\u00a0y ", "\u3000a", "Ǆ"]
  for lower in (True, False):
    process = tokenization.text_processor(do_lower_case=lower)
    for text in strings:
      assert process(text) == original_preprocess_text(text, lower=lower)


# -------------------------------------------------------------------------------- features
FEATURE_KEYS = sorted(FEATURES["tasks"])


def _golden_arrays(key):
  with np.load(os.path.join(CLASSIFIER, "glue_features_visible.npz")) as data:
    return {name: data[f"{key}/{name}"] for name in glue_features.FEATURE_NAMES}


@pytest.mark.parametrize("key", FEATURE_KEYS)
def test_golden_features(key, tokenizer_30k):
  info = FEATURES["tasks"][key]
  task, split, seq = key.split("/")
  max_seq_length = int(seq[len("seq"):])
  golden = _golden_arrays(key)
  processor = glue.get_processor(task)
  examples = processor.get_examples(GLUE_SLICES, split)[:golden["input_ids"].shape[0]]
  assert [e.guid for e in examples[:5]] == info["guids_first5"]
  assert processor.labels == info["label_list"]
  assert [{"guid": e.guid, "tokens_a": tokenizer_30k.tokenize(e.text_a),
           "tokens_b": tokenizer_30k.tokenize(e.text_b) if e.text_b else None}
          for e in examples[:5]] == info["tokens_first5"]
  converter = glue_features.FeatureConverter(tokenizer_30k, processor.labels, max_seq_length,
                                    processor.is_regression)
  fast = converter.features(examples)
  reference = [glue_features.convert_example(e, processor.labels, max_seq_length, tokenizer_30k,
                                    processor.is_regression) for e in examples]
  assert fast == reference
  for name, attribute in [("input_ids", "input_ids"), ("input_mask", "input_mask"),
                          ("segment_ids", "segment_ids"), ("label_ids", "label_id"),
                          ("is_real_example", "is_real_example")]:
    values = np.array([getattr(f, attribute) for f in fast], dtype=golden[name].dtype)
    np.testing.assert_array_equal(values, golden[name], err_msg=f"{key} {name}")
  assert [f.length for f in fast] == golden["input_mask"].sum(axis=1).tolist()
  records, lengths = converter.records(examples)
  assert lengths == [f.length for f in fast]
  assert records == [records_lib.encode_example(f.as_record_features(processor.is_regression))
                     for f in fast]


def test_records_parse_back_to_the_golden_features(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for key in ("sts-b/dev/seq128", "mrpc/dev/seq24"):
    task, split, seq = key.split("/")
    max_seq_length = int(seq[len("seq"):])
    path, meta = glue_cache.build_glue_cache(task, GLUE_SLICES, split, _spec(SPM_30K),
                                                max_seq_length, str(tmp_path))
    golden = _golden_arrays(key)
    schema = glue_features.feature_schema(max_seq_length, meta["is_regression"])
    spec = {name: tf.io.FixedLenFeature([length], {"int64": tf.int64, "float32": tf.float32}[kind])
            for name, (kind, length) in schema.items()}
    count = golden["input_ids"].shape[0]
    parsed = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(path)]
    assert len(parsed) == SLICE_ROWS
    for name in glue_features.FEATURE_NAMES:
      values = np.stack([p[name].numpy() for p in parsed[:count]])
      np.testing.assert_array_equal(values.reshape(golden[name].shape).astype(golden[name].dtype),
                                    golden[name])
    kinds = {k: tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(path))).numpy())
             .features.feature[k].WhichOneof("kind") for k in glue_features.FEATURE_NAMES}
    assert kinds == FEATURES["tasks"][key]["tfrecord_feature_kinds"]


def test_truncation_and_single_sentences(tokenizer_30k):
  a, b = list(range(10)), list(range(100, 106))
  glue_features.truncate_seq_pair(a, b, 12)
  assert (a, b) == (list(range(6)), list(range(100, 106)))  # the longer list loses first
  a, b = list(range(5)), list(range(100, 105))
  glue_features.truncate_seq_pair(a, b, 7)
  assert (a, b) == ([0, 1, 2, 3], [100, 101, 102])  # equal length: B loses first
  long_text = " ".join(["word"] * 40)
  pair = glue.InputExample("p", long_text, "short text", "1")
  single = glue.InputExample("s", long_text, "", "0")  # empty text_b: one sentence
  converter = glue_features.FeatureConverter(tokenizer_30k, ["0", "1"], 16)
  f_pair, f_single = converter.features([pair, single])
  cls_id, sep_id = tokenizer_30k.convert_tokens_to_ids(["[CLS]", "[SEP]"])
  word, short, text = tokenizer_30k.convert_tokens_to_ids(
      tokenizer_30k.tokenize("word short text"))
  # 40 + 2 pieces for 16 - 3 places: A keeps 11.
  assert f_pair.input_ids == [cls_id] + [word] * 11 + [sep_id, short, text, sep_id]
  assert f_pair.segment_ids == [0] * 13 + [1] * 3
  assert f_pair.input_mask == [1] * 16 and f_pair.length == 16
  padded = converter.features([glue.InputExample("q", "word word", "short", "0")])[0]
  assert padded.input_ids == [cls_id, word, word, sep_id, short, sep_id] + [0] * 10
  assert padded.segment_ids == [0] * 4 + [1] * 2 + [0] * 10
  assert padded.input_mask == [1] * 6 + [0] * 10 and padded.label_id == 0
  assert f_single.input_ids == [cls_id] + [word] * 14 + [sep_id]
  assert f_single.segment_ids == [0] * 16 and f_single.length == 16
  assert [f_pair, f_single] == [glue_features.convert_example(e, ["0", "1"], 16, tokenizer_30k)
                                for e in (pair, single)]


def test_digit_comma_quirk_and_unknown_pieces_match_the_reference(tokenizer_30k):
  texts = ["prices rose 1,200 dollars, then 3,4 more", "i was born in 92000, and", "ΩΩΩ ☃ 7,",
           "plain text"]
  converter = glue_features.FeatureConverter(tokenizer_30k, ["0", "1"], 64)
  assert converter.encode_texts(texts) == [
      tokenizer_30k.convert_tokens_to_ids(tokenizer_30k.tokenize(t)) for t in texts]
  # The first text has `<digit>,` pieces that the original re-splits: the quirk path is taken.
  sp = tokenizer_30k.sp_model
  assert tokenization.encode_pieces(sp, texts[0]) != sp.EncodeAsPieces(texts[0])


# ----------------------------------------------------------------------------------- cache
def _spec(model=SPM_30K, lower=True):
  return TokenizerSpec(spm_model_file=model, vocab_file=None, do_lower_case=lower)


def _build(root, cache_dir, task="rte", split="dev", model=SPM_30K, seq=64, **kwargs):
  lines = []
  path, meta = glue_cache.build_glue_cache(task, root, split, _spec(model), seq,
                                              str(cache_dir), log=lines.append, **kwargs)
  return path, meta, lines


def test_cache_metadata(tmp_path, tokenizer_30k):
  path, meta, lines = _build(GLUE_SLICES, tmp_path, seq=64)
  examples = glue.get_processor("rte").get_examples(GLUE_SLICES, "dev")
  features = glue_features.FeatureConverter(tokenizer_30k, ["entailment", "not_entailment"],
                                   64).features(examples)
  assert os.path.dirname(path) == str(tmp_path) and os.path.basename(path).startswith("rte_dev-")
  assert meta["num_examples"] == meta["num_records"] == SLICE_ROWS
  assert meta["guids"] == [e.guid for e in examples]
  assert meta["lengths"] == [f.length for f in features]
  assert meta["num_at_max_length"] == sum(f.length == 64 for f in features)
  assert meta["label_list"] == ["entailment", "not_entailment"] and not meta["is_regression"]
  assert meta["feature_schema"]["label_ids"] == ["int64", 1]
  assert meta["input_file"] == os.path.abspath(os.path.join(GLUE_SLICES, "RTE", "dev.tsv"))
  with open(path + ".json", encoding="utf-8") as f:
    assert json.load(f) == json.loads(json.dumps(meta))
  assert lines[-1].startswith("GLUE rte dev: 20 examples -> ")
  _, stsb, _ = _build(GLUE_SLICES, tmp_path, task="sts-b", seq=32)
  assert stsb["is_regression"] and stsb["feature_schema"]["label_ids"] == ["float32", 1]
  assert stsb["label_list"] == [None]


def test_cache_reused_when_unchanged_and_rebuilt_on_any_change(tmp_path):
  root, data_file = _edited_copy(tmp_path, "RTE", "dev.tsv", list)
  cache_dir = tmp_path / "cache"
  path, meta, _ = _build(root, cache_dir)
  mtime = os.stat(path).st_mtime_ns
  again, meta2, lines = _build(root, cache_dir)
  assert again == path and meta2 == meta and os.stat(path).st_mtime_ns == mtime
  assert lines == [f"GLUE rte dev: reusing 20 examples in {path}"]
  # Another max_seq_length, another model, lower-casing off: other files.
  assert _build(root, cache_dir, seq=32)[0] != path
  assert _build(root, cache_dir, model=SPM_SMALL)[0] != path
  lower_off = glue_cache.build_glue_cache("rte", root, "dev", _spec(lower=False), 64,
                                             str(cache_dir))[0]
  assert lower_off != path
  # One changed line of the input: rebuilt under another name, with the new text.
  with open(data_file, "rb") as f:
    lines_ = f.read().split(b"\n")
  lines_[2] = lines_[2].replace(b" ", b"  and ", 1)
  with open(data_file, "wb") as f:
    f.write(b"\n".join(lines_))
  changed, changed_meta, _ = _build(root, cache_dir)
  assert changed != path and changed_meta["lengths"] != meta["lengths"]
  assert len(os.listdir(cache_dir)) == 2 * 5  # five caches, each records + metadata


@pytest.mark.parametrize("damage,why", [
    ("truncate", "incomplete or truncated"),
    ("flip", "changed after they were written"),
    ("metadata", "incomplete or truncated"),
    ("guids", "does not describe the records"),
])
def test_damaged_cache_is_rebuilt_and_reported(tmp_path, damage, why):
  path, meta, _ = _build(GLUE_SLICES, tmp_path)
  with open(path, "rb") as f:
    original = f.read()
  if damage == "truncate":
    with open(path, "wb") as f:
      f.write(original[:len(original) // 2])
  elif damage == "flip":
    with open(path, "wb") as f:
      f.write(original[:100] + bytes([original[100] ^ 1]) + original[101:])
  elif damage == "metadata":
    os.remove(path + ".json")
  else:
    broken = dict(meta, guids=meta["guids"][:-1])
    with open(path + ".json", "w", encoding="utf-8") as f:
      json.dump(broken, f)
  rebuilt, meta2, lines = _build(GLUE_SLICES, tmp_path)
  assert rebuilt == path and meta2["guids"] == meta["guids"]
  assert why in lines[0] and "rebuilding" in lines[0]
  with open(path, "rb") as f:
    assert f.read() == original


def test_parallel_conversion_writes_the_serial_bytes(tmp_path, monkeypatch):
  monkeypatch.setattr(glue_cache, "CHUNK_ROWS", 3)  # 7 chunks over 2 workers
  serial, meta1, _ = _build(GLUE_SLICES, tmp_path / "one", task="mrpc", split="train",
                            num_workers=1)
  parallel, meta2, lines = _build(GLUE_SLICES, tmp_path / "two", task="mrpc", split="train",
                                  num_workers=2, parallel_min_bytes=0)
  assert "(2 workers)" in lines[0] and meta2["num_workers"] == 2
  with open(serial, "rb") as a, open(parallel, "rb") as b:
    assert a.read() == b.read()
  assert meta1["guids"] == meta2["guids"] and meta1["lengths"] == meta2["lengths"]


def test_a_bad_line_in_a_worker_is_reported_with_its_line(tmp_path, monkeypatch):
  monkeypatch.setattr(glue_cache, "CHUNK_ROWS", 4)
  root, path = _edited_copy(tmp_path, "MRPC", "dev.tsv", _replace_line(15, lambda l: b"7" + l[1:]))
  with pytest.raises(DataError, match=r"dev.tsv, line 15: label '7'"):
    _build(root, tmp_path / "cache", task="mrpc", num_workers=2, parallel_min_bytes=0)
  assert not [n for n in os.listdir(tmp_path / "cache") if n.endswith(".tf_record")]


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_workers_import_no_tensorflow_and_do_not_rerun_main(tmp_path, start):
  """A script without TensorFlow forks its workers; with another thread running it spawns them,
  and they do not run the script again."""
  marker = tmp_path / "main_runs.txt"
  script = tmp_path / "job.py"
  script.write_text(textwrap.dedent(f"""
      import os, sys, threading
      with open({str(marker)!r}, "a") as f:
        f.write(f"{{os.getpid()}}\\n")
      from albert.data import workers
      from albert.data.glue import cache as glue_cache
      from albert.tokenization import TokenizerSpec
      glue_cache.CHUNK_ROWS = 5
      if __name__ == "__main__":
        assert "tensorflow" not in sys.modules
        if {start == "spawn"!r}:
          threading.Thread(target=threading.Event().wait, args=(60,), daemon=True).start()
        assert workers.can_fork() == {start == "fork"!r}
        path, meta = glue_cache.build_glue_cache(
            "wnli", {GLUE_SLICES!r}, "train", TokenizerSpec({SPM_SMALL!r}), 32,
            {str(tmp_path / "cache")!r}, num_workers=2, parallel_min_bytes=0)
        assert meta["num_workers"] == 2 and meta["num_examples"] == 20
        print("ok", "tensorflow" in sys.modules)
  """))
  env = dict(os.environ, PYTHONPATH=REPO_DIR)
  done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                        timeout=120, check=False)
  assert done.returncode == 0, done.stderr
  assert done.stdout.split() == ["ok", "False"]
  assert len(marker.read_text().split()) == 1  # workers did not run job.py again


def test_bad_settings_are_flag_errors(tmp_path):
  with pytest.raises(FlagError, match="max_seq_length=2"):
    _build(GLUE_SLICES, tmp_path, seq=2)
  with pytest.raises(FlagError, match="spm_model_file"):
    glue_cache.build_glue_cache("rte", GLUE_SLICES, "dev", TokenizerSpec(None, None), 64,
                                   str(tmp_path))
  with pytest.raises(InputError, match="tokenizer model not found"):
    _build(GLUE_SLICES, tmp_path, model=str(tmp_path / "missing.model"))


# ------------------------------------------------------------------------------ submission
from albert.data.glue import submission as glue_submission  # noqa: E402  (kept beside its tests)

SERVER_FILES = {"cola": "CoLA.tsv", "sst-2": "SST-2.tsv", "mrpc": "MRPC.tsv",
                "sts-b": "STS-B.tsv", "qqp": "QQP.tsv", "mnli": "MNLI-m.tsv",
                "mismnli": "MNLI-mm.tsv", "qnli": "QNLI.tsv", "rte": "RTE.tsv",
                "wnli": "WNLI.tsv", "ax": "AX.tsv"}
SERVER_LABELS = {"cola": ["0", "1"], "sst-2": ["0", "1"], "mrpc": ["0", "1"],
                 "qqp": ["0", "1"], "wnli": ["0", "1"],
                 "qnli": ["entailment", "not_entailment"], "rte": ["entailment", "not_entailment"],
                 "mnli": ["contradiction", "entailment", "neutral"],
                 "mismnli": ["contradiction", "entailment", "neutral"],
                 "ax": ["contradiction", "entailment", "neutral"]}


@pytest.mark.parametrize("task", sorted(SERVER_FILES))
def test_submission_file_for_every_task(tmp_path, task):
  processor = glue.get_processor(task)
  examples = processor.get_examples(GLUE_SLICES, "test")
  guids = [e.guid for e in examples]
  rng = np.random.RandomState(len(task))
  if processor.is_regression:
    predictions = rng.uniform(-1.0, 6.0, len(guids)).astype(np.float32)
    predictions[:2] = [-0.5, 5.25]
  else:
    predictions = rng.randint(0, processor.num_labels, len(guids))
  path = glue_submission.write_submission_file(str(tmp_path), task, guids, predictions)
  assert os.path.basename(path) == SERVER_FILES[task]
  with open(path, encoding="utf-8") as f:
    lines = f.read().split("\n")
  assert lines[0] == "index\tprediction" and lines[-1] == ""
  rows = [line.split("\t") for line in lines[1:-1]]
  assert [r[0] for r in rows] == guids  # the test file's index column
  if processor.is_regression:
    values = [float(r[1]) for r in rows]
    np.testing.assert_allclose(values, np.clip(predictions, 0.0, 5.0), rtol=0, atol=1e-6)
    assert values[:2] == [0.0, 5.0]
  else:
    assert [r[1] for r in rows] == [SERVER_LABELS[task][p] for p in predictions]
  assert os.listdir(tmp_path) == [SERVER_FILES[task]]  # nothing else (no temporary file)
  problems = glue_submission.check_submission(str(tmp_path), [task])
  expected_rows = glue_submission.TEST_ROWS[task]
  assert problems == [f"{SERVER_FILES[task]}: {len(guids)} predictions, the GLUE test set has "
                      f"{expected_rows}"]


def test_test_split_guids_are_the_index_column():
  """The submission's index column: every test split's guid is its file's first column."""
  for task in SERVER_FILES:
    processor = glue.get_processor(task)
    with open(processor.file_path(GLUE_SLICES, "test"), encoding="utf-8") as f:
      first_column = [line.split("\t")[0] for line in f.read().splitlines()[1:]]
    assert [e.guid for e in processor.get_examples(GLUE_SLICES, "test")] == first_column


def test_complete_submission_folder_and_zip(tmp_path):
  import zipfile  # pylint: disable=g-import-not-at-top
  folder = tmp_path / "submission"
  for task, rows in glue_submission.TEST_ROWS.items():
    guids = [str(i) for i in range(rows)]
    predictions = (np.full(rows, 2.5) if task == "sts-b" else np.zeros(rows, dtype=int))
    glue_submission.write_submission_file(str(folder), task, guids, predictions)
  assert glue_submission.check_submission(str(folder)) == []
  os.remove(folder / "WNLI.tsv")
  assert glue_submission.check_submission(str(folder)) == ["WNLI.tsv is missing"]
  zipped = glue_submission.zip_submission(str(folder), str(tmp_path / "glue.zip"))
  with zipfile.ZipFile(zipped) as archive:
    assert sorted(archive.namelist()) == sorted(set(SERVER_FILES.values()) - {"WNLI.tsv"})
    assert archive.read("RTE.tsv").decode().split("\n")[:2] == ["index\tprediction",
                                                                 "0\tentailment"]


def test_original_prediction_files(tmp_path):
  probabilities = np.array([[0.25, 0.75], [0.1, 0.9]], dtype=np.float32)
  path = glue_submission.write_test_results(str(tmp_path / "test_results.tsv"), probabilities)
  with open(path, encoding="utf-8") as f:
    assert f.read() == "0.25\t0.75\n0.1\t0.9\n"  # str() of each float32, as the original
  glue_submission.write_test_results(str(tmp_path / "stsb.tsv"), np.float32([[3.2], [-0.1]]))
  assert (tmp_path / "stsb.tsv").read_text() == "3.2\n-0.1\n"
  path = glue_submission.write_submit_results(str(tmp_path / "submit_results.tsv"), "rte",
                                              ["0", "1"], [1, 0])
  assert (tmp_path / "submit_results.tsv").read_text() == (
      "index\tprediction\n0\tnot_entailment\n1\tentailment\n")
  glue_submission.write_submit_results(str(tmp_path / "s.tsv"), "sts-b", ["7"], [5.5])
  assert (tmp_path / "s.tsv").read_text() == "index\tprediction\n7\t5.5\n"  # unclipped


def test_bad_predictions_are_errors_and_write_nothing(tmp_path):
  with pytest.raises(InputError, match="2 predictions for 3 examples"):
    glue_submission.write_submission_file(str(tmp_path), "rte", ["0", "1", "2"], [0, 1])
  with pytest.raises(InputError, match=r"class ids must be integers in \[0, 3\)"):
    glue_submission.write_submission_file(str(tmp_path), "mnli", ["0"], [3])
  with pytest.raises(InputError, match="not finite"):
    glue_submission.write_submission_file(str(tmp_path), "sts-b", ["0"], [float("nan")])
  with pytest.raises(InputError, match="index column"):
    glue_submission.write_submission_file(str(tmp_path), "cola", ["a\tb"], [0])
  assert os.listdir(tmp_path) == []
