"""Tests of albert/data/glue/custom.py: your own CSV, TSV and JSON Lines files as a custom task's
rows, read into GLUE's examples and features, and every bad input as one line naming the file,
line and column.

The files in tests/testdata/custom/ are GLUE rows of tests/testdata/glue/ rewritten by its
make_files.py: MRPC as CSV (other column names, label names, quoted commas and quotes, a line
break inside a field), RTE as JSON Lines (string labels), a multi-label TSV of CoLA, SST-2 and
RTE sentences with labels by rule (short/long, negation, digits).
"""

from __future__ import annotations

import csv
import json
import os

import pytest

from albert.data.glue import cache as glue_cache
from albert.data.glue import custom
from albert.data.glue import features as glue_features
from albert.data.glue.tasks import CustomSource
from albert.errors import DataError, FlagError, InputError
from albert.tokenization import TokenizerSpec
from conftest import TESTDATA

GLUE = os.path.join(TESTDATA, "glue")
DATA = os.path.join(TESTDATA, "custom")
SPM = os.path.join(TESTDATA, "albert_spm", "30k-clean.model")


def _source(**files_and_columns):
  files = tuple((split, files_and_columns.pop(f"{split}_file")) for split in ("train", "dev",
                                                                              "test")
                if files_and_columns.get(f"{split}_file"))
  for split in ("train", "dev", "test"):
    files_and_columns.pop(f"{split}_file", None)
  return CustomSource(files, **files_and_columns)


def _examples(spec, split):
  processor = custom.processor_for(spec)
  path = processor.file_path("", split)
  processor.check_file(path, split)
  return [processor.make_example(row, split, path) for row in processor.raw_rows(path, split)]


def _tsv_rows(task, name):
  with open(os.path.join(GLUE, task, name), encoding="utf-8-sig", newline="\n") as f:
    return [line.rstrip("\n").split("\t") for line in f][1:]


def test_mrpc_as_csv_reads_quotes_commas_and_a_line_break_inside_a_field():
  source = _source(train_file=os.path.join(DATA, "mrpc_train.csv"),
                   test_file=os.path.join(DATA, "mrpc_test.csv"), text_a_column="first",
                   text_b_column="second", label_column="verdict", id_column="pair_id")
  spec = custom.custom_spec(source)
  assert spec.labels == ("different", "paraphrase") and spec.metric == "eval_accuracy"
  assert spec.scores == ("eval_accuracy", "eval_loss", "macro_f1", "f1", "matthew_corr")
  processor = custom.processor_for(spec, do_lower_case=False)
  rows = list(processor.raw_rows(source.file("train"), "train"))
  tsv = _tsv_rows("MRPC", "train.tsv")
  assert len(rows) == 20
  # Row 2 spans lines 3-4 of the file; the next row starts on line 5.
  assert [r.line for r in rows[:3]] == [2, 3, 5]
  assert rows[1].text_a == tsv[1][3].replace(" before ", " before\n", 1)
  assert rows[0].text_a == tsv[0][3] and '" the witness "' in rows[0].text_a
  assert [r.text_b for r in rows] == [t[4] for t in tsv]
  assert [r.label for r in rows] == [{"0": "different", "1": "paraphrase"}[t[0]] for t in tsv]
  assert [r.guid for r in rows] == [f"{t[1]}-{t[2]}" for t in tsv]
  # The test file has no label column: a dummy label, the ids carried.
  test = _examples(spec, "test")
  assert len(test) == 20 and {e.label for e in test} == {"different"}
  assert test[0].guid == "1089874-1089925"


def test_rte_as_json_lines_with_string_labels_and_default_columns():
  source = _source(train_file=os.path.join(DATA, "rte_train.jsonl"),
                   test_file=os.path.join(DATA, "rte_test.jsonl"))
  spec = custom.custom_spec(source)
  assert spec.labels == ("entailment", "not_entailment")
  examples = _examples(spec, "train")
  tsv = _tsv_rows("RTE", "train.tsv")
  process = custom.processor_for(spec)._text
  assert [(e.text_a, e.text_b, e.label) for e in examples] == [
      (process(t[1]), process(t[2]), t[3]) for t in tsv]
  assert [e.guid for e in examples] == [str(n) for n in range(1, 21)]  # no --id_column: lines
  assert len(_examples(spec, "test")) == 20


def test_multi_label_rows_become_one_zero_or_one_per_label(tmp_path):
  source = _source(train_file=os.path.join(DATA, "topics_train.tsv"), label_column="tags")
  spec = custom.custom_spec(source, "multi_label")
  assert spec.labels == ("digits", "long", "negation", "short") and spec.metric == "micro_f1"
  examples = _examples(spec, "train")
  assert examples[0].label == ("long", "negation")  # "Our friends won't buy this analysis..."
  converter = glue_features.FeatureConverter(TokenizerSpec(SPM).build(), spec.labels, 32,
                                             multi_label=True)
  features = converter.features(examples[:2])
  assert [f.label_id for f in features] == [[0, 1, 1, 0], [0, 0, 0, 1]]
  path, meta = glue_cache.build_glue_cache(spec, "", "train", TokenizerSpec(SPM), 32,
                                           str(tmp_path))
  assert meta["feature_schema"]["label_ids"] == ["int64", 4] and meta["num_examples"] == 60
  # JSON Lines: a list of labels; --labels fixes the list and its order.
  jsonl = tmp_path / "rows.jsonl"
  jsonl.write_text('{"text": "No cats here.", "label": ["negation", "short"]}\n')
  spec = custom.custom_spec(_source(train_file=str(jsonl)), "multi_label",
                            labels=("short", "negation", "long"))
  assert _examples(spec, "train")[0].label == ("negation", "short")


def test_sst2_through_the_custom_reader_gives_the_glue_records_byte_for_byte(tmp_path):
  spec = custom.custom_spec(_source(train_file=os.path.join(GLUE, "SST-2", "train.tsv"),
                                    dev_file=os.path.join(GLUE, "SST-2", "dev.tsv")))
  assert spec.labels == ("0", "1")
  for split in ("train", "dev"):
    glue_path, glue_meta = glue_cache.build_glue_cache("sst-2", GLUE, split, TokenizerSpec(SPM),
                                                       64, str(tmp_path / "glue"))
    path, meta = glue_cache.build_glue_cache(spec, "", split, TokenizerSpec(SPM), 64,
                                             str(tmp_path / "custom"))
    with open(glue_path, "rb") as a, open(path, "rb") as b:
      assert a.read() == b.read()
    assert meta["lengths"] == glue_meta["lengths"] and meta["num_examples"] == 20
  # The columns and the labels are part of the custom cache's fingerprint.
  other = custom.custom_spec(_source(train_file=os.path.join(GLUE, "SST-2", "train.tsv")),
                             labels=("1", "0"))
  path2, _ = glue_cache.build_glue_cache(other, "", "train", TokenizerSpec(SPM), 64,
                                         str(tmp_path / "custom"))
  assert os.path.basename(path2) != os.path.basename(
      glue_cache.build_glue_cache(spec, "", "train", TokenizerSpec(SPM), 64,
                                  str(tmp_path / "custom"))[0])


def test_sts_b_scores_as_a_regression_task():
  source = _source(train_file=os.path.join(GLUE, "STS-B", "train.tsv"),
                   text_a_column="sentence1", text_b_column="sentence2", label_column="score")
  spec = custom.custom_spec(source, "regression")
  assert spec.labels == (None,) and spec.metric == "pearson" and spec.is_regression
  assert [e.label for e in _examples(spec, "train")] == [
      float(t[9]) for t in _tsv_rows("STS-B", "train.tsv")]


# ------------------------------------------------------------------------------ bad input
def _write(path, text, encoding="utf-8"):
  data = text.encode(encoding) if isinstance(text, str) else text
  path.write_bytes(data)
  return str(path)


BAD = [
    # (file name, content, task type, extra source settings, split, error, message)
    ("a.csv", "text,tag\nfine,pos\n", "classification", {}, "train", InputError,
     r"a.csv: no column 'label' \(--label_column\); the columns found: text, tag$"),
    ("b.csv", "body,label\nfine,pos\n", "classification", {}, "train", InputError,
     r"b.csv: no text column: expected one of sentence, text, sentence1, question or "
     r"--text_a_column; the columns found: body, label$"),
    ("c.csv", "text,label\nfine,pos\n  ,neg\n", "classification", {}, "train", DataError,
     r"c.csv, line 3, column 'text': empty text$"),
    ("d.csv", "text,label\nfine,pos\nbad,maybe\n", "classification",
     {"labels": ("neg", "pos")}, "train", DataError,
     r"d.csv, line 3, column 'label': label 'maybe' is not one of the task's labels \(neg, "
     r"pos: --labels, else the training file's\)$"),
    ("e.tsv", "text\tscore\nfine\t3.5\nbad\thigh\n", "regression",
     {"label_column": "score"}, "train", DataError,
     r"e.tsv, line 3, column 'score': regression label 'high' is not a finite number$"),
    ("f.tsv", "text\tscore\nfine\tnan\n", "regression", {"label_column": "score"}, "train",
     DataError, r"f.tsv, line 2, column 'score': regression label 'nan' is not a finite"),
    ("g.csv", "text,label\nfine,a|b\nnone here,\n", "multi_label", {}, "train", DataError,
     r"g.csv, line 3, column 'label': no label \(a multi-label row needs at least one; "
     r"separated by '\|'\)$"),
    ("h.csv", 'text,label\nfine,pos\n"bad"quote,neg\n', "classification", {}, "train",
     DataError, r"h.csv, line 3: malformed CSV \(',' expected after '\"'\); a field that"),
    ("i.csv", 'text,label\nfine,pos\n"never closed,neg\n', "classification", {}, "train",
     DataError, r"i.csv, line 3: malformed CSV \(unexpected end of data\)"),
    ("j.jsonl", '{"text": "fine", "label": "pos"}\n{"text": "bad", "label": pos}\n',
     "classification", {}, "train", DataError,
     r"j.jsonl, line 2, column 26: invalid JSON \(Expecting value\)"),
    ("k.jsonl", '{"text": "fine", "label": "pos"}\n["a list"]\n', "classification", {},
     "train", DataError, r"k.jsonl, line 2: a JSON list, expected an object"),
    ("l.jsonl", '{"text": "fine", "label": "pos"}\n{"text": "no label"}\n', "classification",
     {}, "train", DataError, r"l.jsonl, line 2, column 'label': missing \(the row's columns: "
     r"text\)$"),
    ("m.csv", b"text,label\nfine,pos\ncaf\xe9,neg\n", "classification", {}, "train",
     DataError, r"m.csv, line 3: not valid UTF-8 \(invalid continuation byte\)"),
    ("n.csv", "text,label\n", "classification", {"labels": ("a", "b")}, "train", InputError,
     r"n.csv: no rows \(no row after the header; --train_file\)$"),
    ("o.jsonl", "", "classification", {"labels": ("a", "b")}, "dev", InputError,
     r"o.jsonl: no rows \(the file is empty; --dev_file\)$"),
    ("p.csv", "text,label\nfine,pos,extra\n", "classification", {}, "train", DataError,
     r"p.csv, line 2: 3 comma-separated fields, expected 2 as in the header \(text, label\)$"),
    ("q.txt", "text,label\nfine,pos\n", "classification", {}, "train", FlagError,
     r"q.txt: cannot tell the format from the extension '.txt'; name the file .csv, .tsv or "
     r".jsonl, or give --input_format$"),
    ("r.jsonl", '{"text": 7, "label": "pos"}\n', "classification", {}, "train", DataError,
     r"r.jsonl, line 1, column 'text': expected a text, got 7$"),
]


@pytest.mark.parametrize("name, content, task_type, settings, split, error, message", BAD,
                         ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_naming_file_line_and_column(tmp_path, name, content, task_type,
                                                           settings, split, error, message):
  path = _write(tmp_path / name, content)
  settings = dict(settings)
  labels = settings.pop("labels", None)
  source = _source(**{f"{split}_file": path}, **settings)
  with pytest.raises(error, match=message) as raised:
    spec = custom.custom_spec(source, task_type, labels)
    processor = custom.processor_for(spec)
    processor.check_file(processor.file_path("", split), split)
  assert "\n" not in str(raised.value)


def test_a_dev_label_outside_the_training_labels_is_named(tmp_path):
  train = _write(tmp_path / "train.csv", "text,label\ngood,pos\nbad,neg\n")
  dev = _write(tmp_path / "dev.csv", "text,label\ngood,pos\nso so,neutral\n")
  spec = custom.custom_spec(_source(train_file=train, dev_file=dev))
  processor = custom.processor_for(spec)
  with pytest.raises(DataError, match=r"dev.csv, line 3, column 'label': label 'neutral' is "
                     r"not one of the task's labels \(neg, pos: --labels, else"):
    processor.check_file(dev, "dev")


def test_flags_that_cannot_work_are_refused(tmp_path):
  train = _write(tmp_path / "train.csv", "text,label\ngood,pos\nbad,pos\n")
  with pytest.raises(InputError, match=r"a classification task needs at least two labels, "
                     r"found pos \(.*train.csv\)"):
    custom.custom_spec(_source(train_file=train))
  with pytest.raises(FlagError, match=r"--task_type=ranking: expected one of classification, "
                     r"regression, multi_label"):
    custom.custom_spec(_source(train_file=train), "ranking")
  with pytest.raises(FlagError, match=r"--best_metric=pearson: a classification task reports "
                     r"eval_accuracy, eval_loss, macro_f1, f1, matthew_corr"):
    custom.custom_spec(_source(train_file=train), labels=("neg", "pos"), best_metric="pearson")
  with pytest.raises(FlagError, match=r"--labels is for classification and multi_label"):
    custom.custom_spec(_source(train_file=train), "regression", labels=("a", "b"))
  with pytest.raises(FlagError, match=r"--labels=a,a: label 'a' is empty, padded or repeated"):
    custom.custom_spec(_source(train_file=train), labels=("a", "a"))
  with pytest.raises(FlagError, match=r"needs its label list: --labels, or --train_file"):
    custom.custom_spec(_source(test_file=train))
  spec = custom.custom_spec(_source(test_file=train), labels=("neg", "pos"))
  with pytest.raises(FlagError, match=r"--dev_file is required with --task_name=custom for "
                     r"the evaluation"):
    custom.processor_for(spec).file_path("", "dev")


def test_crlf_tsv_and_a_bom_are_read_as_plain_rows(tmp_path):
  path = _write(tmp_path / "w.tsv", "\ufefftext\tlabel\r\nwindows line\tpos\r\nnext\tneg\r\n")
  spec = custom.custom_spec(_source(train_file=path))
  assert spec.labels == ("neg", "pos")
  rows = list(custom.processor_for(spec).raw_rows(path, "train"))
  assert [(r.text_a, r.label) for r in rows] == [("windows line", "pos"), ("next", "neg")]
  # A CSV written by Python's csv module (quotes doubled) reads back field for field.
  fields = [["text", "label"], ['He said "hi", then\nleft.', "pos"], ["x", "neg"]]
  with open(tmp_path / "v.csv", "w", encoding="utf-8", newline="") as f:
    csv.writer(f).writerows(fields)
  spec = custom.custom_spec(_source(train_file=str(tmp_path / "v.csv")))
  rows = list(custom.processor_for(spec).raw_rows(str(tmp_path / "v.csv"), "train"))
  assert [[r.text_a, r.label] for r in rows] == fields[1:]
  assert json.dumps([r.line for r in rows]) == "[2, 4]"
