"""Tests of create_pretraining_data: the original's algorithm and records, streaming, parallel runs.

Fixtures are in tests/testdata/pretraining/ (see the README there): a toy corpus, a slice of the
shared corpus, the original's instances and statistics recorded by running the original.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from albert import tokenization
from albert.data.pretraining import corpus as corpus_lib
from albert.data.pretraining import instances as inst_lib
from albert.data.pretraining import job as pretraining
from albert.data import records as records_lib
from albert.data.pretraining import sharding
from conftest import GOLDEN, REPO_DIR, TESTDATA
from support.reference_text import original_preprocess_text

DATA = os.path.join(TESTDATA, "pretraining")
SPM = os.path.join(GOLDEN, "spm.model")
TOY = os.path.join(DATA, "toy_corpus.txt")
SLICES = [os.path.join(DATA, "books_slice.txt"), os.path.join(DATA, "wiki_slice.txt")]


def _config(tmp_path, **kwargs):
  settings = dict(input_file=TOY, output_file=str(tmp_path / "out.tfrecord"), spm_model_file=SPM,
                  max_seq_length=32, max_predictions_per_seq=5, dupe_factor=2, random_seed=12345,
                  num_workers=1, progress_interval=1000.0)
  settings.update(kwargs)
  return pretraining.CreateDataConfig(**settings)


def _run(config):
  return pretraining.create_pretraining_data(config, log=lambda message: None)


def _read(paths, seq, preds):
  spec = records_lib.parse_spec(records_lib.feature_spec(seq, preds))
  out = []
  for record in tf.data.TFRecordDataset(list(paths)):
    example = tf.io.parse_single_example(record, spec)
    out.append({k: v.numpy().tolist() for k, v in example.items()})
  return out


def _unpad(record):
  length = sum(record["input_mask"])
  num = int(sum(record["masked_lm_weights"]))
  return {"input_ids": record["input_ids"][:length], "segment_ids": record["segment_ids"][:length],
          "token_boundary": record["token_boundary"][:length],
          "masked_lm_positions": record["masked_lm_positions"][:num],
          "masked_lm_ids": record["masked_lm_ids"][:num],
          "next_sentence_label": record["next_sentence_labels"][0]}


def _files(directory):
  return sorted(os.listdir(directory))


# ---------------------------------------------------------------------------------------------
# The algorithm is the original's.


def _original_order_instances(case, tokenizer):
  """Our functions, driven by the original's generators in the original's order."""
  s = case["settings"]
  docs = [[]]
  with open(TOY, encoding="utf-8") as f:
    for line in f:
      line = tokenization.preprocess_text(line, lower=True)
      if not line:
        docs.append([])
      tokens = tokenizer.tokenize(line)
      if tokens:
        docs[-1].append(tokenizer.convert_tokens_to_ids(tokens))
  docs = [d for d in docs if d]
  params = inst_lib.InstanceParams(
      max_seq_length=s["max_seq_length"], short_seq_prob=s["short_seq_prob"],
      masked_lm_prob=s["masked_lm_prob"], max_predictions_per_seq=s["max_predictions_per_seq"],
      ngram=s["ngram"], favor_shorter_ngram=s["favor_shorter_ngram"],
      do_whole_word_mask=s["do_whole_word_mask"], random_next_sentence=s["random_next_sentence"])
  tables = inst_lib.VocabTables.from_vocab(tokenizer.vocab, sentencepiece=True)
  rng = random.Random(s["random_seed"])
  draws = inst_lib.Draws.original(rng, np.random.RandomState(s["numpy_seed"]))
  rng.shuffle(docs)
  out = []
  for _ in range(s["dupe_factor"]):
    for index in range(len(docs)):
      out.extend(inst_lib.create_instances_from_document(docs, index, params, tables, draws))
  rng.shuffle(out)
  return out


@pytest.mark.parametrize("case_index", [0, 1])
def test_original_instances_reproduced_with_original_generators(case_index):
  with open(os.path.join(DATA, "original_instances.json")) as f:
    case = json.load(f)["cases"][case_index]
  tokenizer = tokenization.FullTokenizer(None, True, SPM)
  ours = _original_order_instances(case, tokenizer)
  expected = case["instances"]
  assert len(ours) == len(expected)
  for got, want in zip(ours, expected):
    assert got.input_ids == want["input_ids"]
    assert got.segment_ids == want["segment_ids"]
    assert got.token_boundary == want["token_boundary"]
    assert got.masked_lm_positions == want["masked_lm_positions"]
    assert got.masked_lm_ids == want["masked_lm_ids"]
    assert got.next_sentence_label == want["next_sentence_label"]


def test_start_piece_rule_matches_the_original():
  assert inst_lib.is_start_piece_sp("\u2581the")
  assert inst_lib.is_start_piece_sp("<unk>")
  assert inst_lib.is_start_piece_sp(",")
  assert inst_lib.is_start_piece_sp("00")  # digits are whole pieces
  assert inst_lib.is_start_piece_sp("\u00e9t\u00e9")  # non-English characters
  assert inst_lib.is_start_piece_sp("\u20ac")  # listed as bytes in the original: never matched
  assert not inst_lib.is_start_piece_sp("ing")
  assert not inst_lib.is_start_piece_sp("s.")
  assert inst_lib.is_start_piece_wordpiece("play")
  assert not inst_lib.is_start_piece_wordpiece("##ing")


def test_num_to_predict_and_sorted_positions():
  tokenizer = tokenization.FullTokenizer(None, True, SPM)
  tables = inst_lib.VocabTables.from_vocab(tokenizer.vocab, sentencepiece=True)
  params = inst_lib.InstanceParams(max_seq_length=64, max_predictions_per_seq=20)
  ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("the quick brown fox jumps over "
                                                           "the lazy dog again and again " * 3))
  tokens = [tables.cls_id] + ids[:30] + [tables.sep_id] + ids[30:58] + [tables.sep_id]
  for seed in range(20):
    draws = inst_lib.Draws(random.Random(seed))
    out, positions, labels, boundary = inst_lib.mask_instance(tokens, params, tables,
                                                              params.ngram_cdf(), draws)
    assert len(positions) == min(20, max(1, round(len(tokens) * 0.15)))  # 9
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert all(tokens[p] == label for p, label in zip(positions, labels))
    assert boundary[0] == boundary[31] == boundary[-1] == 1
    assert all(out[i] == tokens[i] for i in range(len(tokens)) if i not in positions)


def test_truncation_matches_the_original_loop():
  for seed in range(30):
    a, b = list(range(40)), list(range(100, 117))
    ref_a, ref_b = list(a), list(b)
    rng_ref = random.Random(seed)
    while len(ref_a) + len(ref_b) > 29:
      trunc = ref_a if len(ref_a) > len(ref_b) else ref_b
      if rng_ref.random() < 0.5:
        del trunc[0]
      else:
        trunc.pop()
    got = inst_lib.truncate_pair_at_random(a, b, 29, random.Random(seed))
    assert got == (ref_a, ref_b)


# ---------------------------------------------------------------------------------------------
# Our runs: exact expected instances, any number of workers.


def test_toy_corpus_exact_instances_and_worker_count_invariance(tmp_path):
  one = tmp_path / "one"
  three = tmp_path / "three"
  s1 = _run(_config(one, output_file=f"{one}/a.tfrecord,{one}/b.tfrecord", num_workers=1,
                    units_per_task=1))
  s3 = _run(_config(three, output_file=f"{three}/a.tfrecord,{three}/b.tfrecord", num_workers=3,
                    units_per_task=2))
  for name in ("a.tfrecord", "b.tfrecord"):
    with open(one / name, "rb") as f1, open(three / name, "rb") as f3:
      assert f1.read() == f3.read()
  assert s1.instance_stats == s3.instance_stats
  records = [_unpad(r) for r in _read([one / "a.tfrecord", one / "b.tfrecord"], 32, 5)]
  with open(os.path.join(DATA, "expected_instances.json")) as f:
    expected = json.load(f)
  assert records == expected["instances"]
  assert s1.records_written == len(records) == s1.instance_stats["instances"]


def test_records_schema_is_the_originals(tmp_path):
  _run(_config(tmp_path, max_seq_length=48, max_predictions_per_seq=7, dupe_factor=1))
  path = str(tmp_path / "out.tfrecord")
  for raw in tf.data.TFRecordDataset([path]).take(3):
    example = tf.train.Example.FromString(raw.numpy())
    features = example.features.feature
    assert sorted(features) == sorted(records_lib.FEATURE_NAMES)
    for name in ("input_ids", "input_mask", "segment_ids", "token_boundary"):
      assert len(features[name].int64_list.value) == 48
    for name in ("masked_lm_positions", "masked_lm_ids"):
      assert len(features[name].int64_list.value) == 7
    assert len(features["masked_lm_weights"].float_list.value) == 7
    assert len(features["next_sentence_labels"].int64_list.value) == 1
  # The original's reader: FixedLenFeature int64 / float32 of these lengths.
  name_to_features = {
      "input_ids": tf.io.FixedLenFeature([48], tf.int64),
      "input_mask": tf.io.FixedLenFeature([48], tf.int64),
      "segment_ids": tf.io.FixedLenFeature([48], tf.int64),
      "token_boundary": tf.io.FixedLenFeature([48], tf.int64),
      "masked_lm_positions": tf.io.FixedLenFeature([7], tf.int64),
      "masked_lm_ids": tf.io.FixedLenFeature([7], tf.int64),
      "masked_lm_weights": tf.io.FixedLenFeature([7], tf.float32),
      "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
  }
  count = 0
  tokenizer = tokenization.FullTokenizer(None, True, SPM)
  cls_id, sep_id = tokenizer.vocab["[CLS]"], tokenizer.vocab["[SEP]"]
  for raw in tf.data.TFRecordDataset([path]):
    ex = {k: v.numpy() for k, v in tf.io.parse_single_example(raw, name_to_features).items()}
    length = int(ex["input_mask"].sum())
    assert ex["input_mask"][:length].all() and not ex["input_mask"][length:].any()
    ids, seg = ex["input_ids"], ex["segment_ids"]
    assert ids[0] == cls_id and ids[length - 1] == sep_id
    first_sep = int(np.flatnonzero(ids == sep_id)[0])
    assert not seg[:first_sep + 1].any() and seg[first_sep + 1:length].all()
    assert not ids[length:].any() and not seg[length:].any()
    num = int(ex["masked_lm_weights"].sum())
    assert list(ex["masked_lm_weights"]) == [1.0] * num + [0.0] * (7 - num)
    assert ex["next_sentence_labels"][0] in (0, 1)
    count += 1
  assert count > 0


def test_readable_by_tf_models_bert_pretrain_dataloader(tmp_path):
  from official.nlp.data import pretrain_dataloader
  _run(_config(tmp_path, num_output_shards=2))
  params = pretrain_dataloader.BertPretrainDataConfig(
      input_path=str(tmp_path / "out.tfrecord-*"), global_batch_size=4, is_training=False,
      seq_length=32, max_predictions_per_seq=5, use_next_sentence_label=True)
  batch = next(iter(pretrain_dataloader.BertPretrainDataLoader(params).load()))
  assert batch["input_word_ids"].shape == (4, 32)
  assert batch["masked_lm_positions"].shape == (4, 5)
  assert batch["masked_lm_weights"].dtype == tf.float32
  assert batch["next_sentence_labels"].shape == (4, 1)


def test_readable_by_our_pretraining_input_pipeline(tmp_path):
  from albert.train import input_pipeline
  from albert.tasks.pretraining import PretrainingDataConfig
  _run(_config(tmp_path, num_output_shards=2))
  files = input_pipeline.expand_files(str(tmp_path / "out.tfrecord-*"))
  config = PretrainingDataConfig(input_file=str(tmp_path / "out.tfrecord-*"),
                                 max_seq_length=32, max_predictions_per_seq=5)
  input_pipeline.check_first_record(files[0], config.schema())
  batch = next(iter(input_pipeline.make_dataset(files, config.schema(), 4, "stream")))
  assert batch["input_ids"].shape == (4, 32) and batch["masked_lm_ids"].shape == (4, 5)


# ---------------------------------------------------------------------------------------------
# Statistics against the original's on the same data, and the reference figures.


def test_statistics_agree_with_the_original(tmp_path):
  with open(os.path.join(DATA, "original_stats.json")) as f:
    ref = json.load(f)
  s = _run(_config(tmp_path, input_file=",".join(SLICES), max_seq_length=64,
                   max_predictions_per_seq=10, dupe_factor=2, num_workers=2)).instance_stats

  def close(ours, theirs, n_ours, n_theirs, design=1.0, sigmas=4.0):
    # difference of two proportions; `design` widens it for samples that are not independent
    p = (ours * n_ours + theirs * n_theirs) / (n_ours + n_theirs)
    sd = (p * (1 - p) * (1 / n_ours + 1 / n_theirs)) ** 0.5 * design
    return abs(ours - theirs) <= sigmas * sd + 1e-9

  n_masked, ref_masked = s["masked"], ref["masked"]
  ref_rep = np.array(ref["replaced_mask_random_kept"]) / ref_masked
  ours_rep = s["replaced_mask_kept_random"]
  ours_rep = [ours_rep[0], ours_rep[2], ours_rep[1]]  # -> [MASK], random, kept
  for ours, theirs in zip(ours_rep, ref_rep):
    assert close(ours, theirs, n_masked, ref_masked), (ours_rep, ref_rep)
  # The reference figures (another English corpus): 80.3% / 9.8% / 9.9%.
  for ours, theirs in zip(ours_rep, [0.803, 0.098, 0.099]):
    assert close(ours, theirs, n_masked, 20000), ours_rep
  # Masked tokens per instance: the 9.97; the original here 9.96.
  assert abs(s["masked_per_instance"] - ref_masked / ref["instances"]) < 0.05
  assert abs(s["masked_per_instance"] - 9.97) < 0.06

  ngram_counts = ref["ngram_words_1_2_3"]
  ref_ngram = np.array(ngram_counts) / sum(ngram_counts)
  n_spans = sum(s["ngram_words_counts"])
  for ours, theirs in zip(s["ngram_words_fraction"], ref_ngram):
    assert close(ours, theirs, n_spans, sum(ngram_counts), design=1.5), (s, ref_ngram)

  sop_counts = ref["sop_in_order_swapped_other"]
  ref_sop = np.array(sop_counts) / sum(sop_counts)
  for ours, theirs in zip(s["sop_in_order_swapped_other"], ref_sop):
    # instances of a document share its target length: clustered, hence design 2
    assert close(ours, theirs, s["instances"], ref["instances"], design=2.0), (s, ref_sop)
  in_order, swapped, _ = s["sop_counts"]
  assert close(in_order / (in_order + swapped), 0.5, in_order + swapped, 10 ** 9)


# ---------------------------------------------------------------------------------------------
# Building blocks.


def test_records_match_tensorflow_writer_and_crc(tmp_path):
  tokenizer = tokenization.FullTokenizer(None, True, SPM)
  encoder = records_lib.ExampleEncoder(len(tokenizer.vocab))
  serialized = [encoder.encode_instance(16, 4, [2, 500, 999, 3, 40, 3], [0, 0, 0, 0, 1, 1],
                                        [1, 1, 0, 1, 1, 1], [1, 4], [500, 40], 1),
                encoder.encode_instance(16, 4, [2, 7, 3, 8, 3], [0, 0, 0, 1, 1], [1, 1, 1, 1, 1],
                                        [3], [8], 0)]
  ours = tmp_path / "ours.tfrecord"
  with open(ours, "wb") as f:
    f.write(b"".join(records_lib.frame_records(serialized)))
  theirs = str(tmp_path / "theirs.tfrecord")
  with tf.io.TFRecordWriter(theirs) as writer:
    for record in serialized:
      writer.write(record)
  with open(ours, "rb") as a, open(theirs, "rb") as b:
    assert a.read() == b.read()
  ex = tf.train.Example.FromString(serialized[0]).features.feature
  assert list(ex["input_ids"].int64_list.value) == [2, 500, 999, 3, 40, 3] + [0] * 10
  assert list(ex["masked_lm_weights"].float_list.value) == [1.0, 1.0, 0.0, 0.0]
  rng = random.Random(0)
  messages = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))) for _ in range(50)]
  assert list(records_lib.crc32c_batch(messages)) == [records_lib.crc32c_bytewise(m)
                                                      for m in messages]
  assert records_lib.crc32c_bytewise(b"123456789") == 0xE3069283
  table = records_lib.varint_table(20000)
  assert all(table[i] == records_lib.varint(i) for i in range(20000))


def test_permutation_is_a_bijection_and_shards_partition():
  for size in (1, 2, 3, 10, 97, 1000):
    perm = sharding.Permutation(size, 42)
    assert sorted(perm(i) for i in range(size)) == list(range(size))
  assert [sharding.Permutation(100, 1)(i) for i in range(5)] != list(range(5))
  ranges = sharding.shard_ranges(10, 3)
  assert ranges == [(0, 3), (3, 6), (6, 10)]
  buffer = sharding.ShuffleBuffer(4, random.Random(0))
  out = [x for x in (buffer.push(i) for i in range(10)) if x is not None] + list(buffer.drain())
  assert sorted(out) == list(range(10)) and out != list(range(10))


def test_fast_tokenization_equals_the_tokenizer():
  tokenizer = tokenization.FullTokenizer(None, True, SPM)
  lines = ["The 1,000,000 visitors paid 3,50 \u20ac each.",
           "Na\u00efve caf\u00e9 \u201cquoted\u201d.", "e\u0301te\u0301 (decomposed)",
           "  spaced\t out  ", "\u200b", "", "\u00c5NGSTR\u00d6M 12,", "x" * 50]
  with open(SLICES[0], encoding="utf-8") as f:
    lines += f.read().splitlines()[:800]
  for line in lines:
    assert tokenization.preprocess_text(line, lower=True) == original_preprocess_text(line,
                                                                                       lower=True)
    assert tokenization.preprocess_text(line) == original_preprocess_text(line)
  batch = corpus_lib.LineBatch(0, "x", 1, [(line + "\n").encode("utf-8") for line in lines])
  result = corpus_lib.tokenize_batch(tokenizer, batch, 1000)
  expected_ids, expected_lengths = [], []
  for line in lines:
    text = tokenization.preprocess_text(line, lower=True)
    if not text:
      expected_lengths.append(-1)
      continue
    ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
    expected_lengths.append(len(ids))
    expected_ids.extend(ids)
  assert result.lengths.tolist() == expected_lengths
  assert result.ids.tolist() == expected_ids


def test_token_store_random_access(tmp_path):
  tokenizer = tokenization.FullTokenizer(None, True, SPM)
  writer = corpus_lib.TokenStoreWriter(str(tmp_path / "store"), len(tokenizer.vocab))
  for batch in corpus_lib.read_line_batches([TOY], 1000, batch_bytes=100):
    writer.add(corpus_lib.tokenize_batch(tokenizer, batch, 1000), TOY)
  stats = writer.close()
  assert stats.documents == 5 and stats.single_sentence_documents == 1
  store = corpus_lib.TokenStore(str(tmp_path / "store"))
  assert len(store) == 5
  assert [len(store[i]) for i in range(5)] == [4, 1, 5, 4, 3]
  first = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(
      "the lighthouse keeper climbed the stairs every evening at dusk."))
  assert store[0][0] == first


# ---------------------------------------------------------------------------------------------
# Shards, resume, atomic writes.


def test_output_paths():
  assert sharding.output_paths("a,b") == ["a", "b"]
  assert sharding.output_paths("d/x.tfrecord", 2) == ["d/x.tfrecord-00000-of-00002",
                                                      "d/x.tfrecord-00001-of-00002"]
  assert sharding.output_paths("t-{shard:03d}-{num_shards}.rec", 2) == ["t-000-2.rec",
                                                                       "t-001-2.rec"]
  with pytest.raises(ValueError, match="more than once"):
    sharding.output_paths("a,a")
  with pytest.raises(ValueError, match="single name"):
    sharding.output_paths("a,b", 3)


def test_rerun_skips_complete_shards_and_rewrites_for_new_settings(tmp_path):
  config = _config(tmp_path, num_output_shards=4)
  first = _run(config)
  assert first.shards_written == 4
  paths = [str(tmp_path / f"out.tfrecord-0000{s}-of-00004") for s in range(4)]
  contents = [open(p, "rb").read() for p in paths]
  os.remove(paths[2])
  stale = tmp_path / ".out.tfrecord-00003-of-00004.tmp-abc"
  stale.write_bytes(b"partial")
  again = _run(config)
  assert again.shards_written == 1 and again.shards_skipped == 3
  assert [open(p, "rb").read() for p in paths] == contents
  assert not stale.exists()
  nothing = _run(config)
  assert nothing.shards_written == 0 and nothing.shards_skipped == 4
  changed = _run(_config(tmp_path, num_output_shards=4, random_seed=7))
  assert changed.shards_written == 4
  assert [open(p, "rb").read() for p in paths] != contents
  hidden = [n for n in _files(tmp_path) if n.startswith(".")]
  assert len(hidden) == 1 and ".settings-" in hidden[0]  # one marker, no temporary files


def test_interrupted_run_leaves_only_complete_files(tmp_path, monkeypatch):
  original = records_lib.AtomicRecordFile.write_framed
  calls = {"n": 0}

  def failing(self, framed):
    calls["n"] += 1
    if "00002-of" in self.path:
      raise KeyboardInterrupt("simulated interruption")
    return original(self, framed)

  monkeypatch.setattr(records_lib.AtomicRecordFile, "write_framed", failing)
  with pytest.raises(KeyboardInterrupt):
    _run(_config(tmp_path, num_output_shards=4, shuffle_buffer_size=0))
  names = _files(tmp_path)
  assert "out.tfrecord-00000-of-00004" in names and "out.tfrecord-00001-of-00004" in names
  assert "out.tfrecord-00002-of-00004" not in names
  assert not [n for n in names if ".tmp-" in n or ".tokens-" in n]
  monkeypatch.setattr(records_lib.AtomicRecordFile, "write_framed", original)
  resumed = _run(_config(tmp_path, num_output_shards=4, shuffle_buffer_size=0))
  assert resumed.shards_skipped == 2 and resumed.shards_written == 2


# ---------------------------------------------------------------------------------------------
# Bad input: a clear message naming the file and line or the flag; nothing left behind.


def _fails(tmp_path, match, **kwargs):
  out_dir = tmp_path / "out"
  with pytest.raises(pretraining.DataError, match=match):
    _run(_config(out_dir, **kwargs))
  leftovers = _files(out_dir) if out_dir.exists() else []
  assert leftovers == [], leftovers


def test_missing_or_unreadable_input(tmp_path):
  _fails(tmp_path, r"--input_file: no file matches '.*nothing\*\.txt'",
         input_file=str(tmp_path / "nothing*.txt"))
  _fails(tmp_path, r"is a directory", input_file=str(tmp_path))
  _fails(tmp_path, r"--spm_model_file: SentencePiece model file .* not found",
         spm_model_file=str(tmp_path / "missing.model"))


def test_empty_corpus(tmp_path):
  path = tmp_path / "empty.txt"
  path.write_text("\n\n   \n\n")
  _fails(tmp_path, r"the corpus is empty: no document with any token in .*empty\.txt",
         input_file=str(path))


def test_bytes_that_are_not_utf8(tmp_path):
  path = tmp_path / "latin1.txt"
  path.write_bytes(b"A fine line.\nAnother one.\n\nCaf\xe9 au lait.\n")
  _fails(tmp_path, r"latin1\.txt:4: not valid UTF-8 \(byte 0xe9 at column 4",
         input_file=str(path))


def test_bad_input_found_by_a_worker_process_stops_the_run_cleanly(tmp_path):
  path = tmp_path / "bad.txt"
  with open(TOY, "rb") as f:
    good = f.read()
  path.write_bytes(good * 40 + b"\nBad \xff byte.\n")
  line = (good * 40).count(b"\n") + 2
  _fails(tmp_path, rf"bad\.txt:{line}: not valid UTF-8", input_file=str(path), num_workers=2)


def test_progress_lines_have_rate_and_eta(tmp_path):
  lines = []
  pretraining.create_pretraining_data(_config(tmp_path, progress_interval=0.0), log=lines.append)
  tokenizing = [l for l in lines if l.startswith("tokenizing:")]
  creating = [l for l in lines if l.startswith("instances:")]
  assert tokenizing and "MB/s" in tokenizing[-1] and "ETA" in tokenizing[-1]
  assert creating and "instances (" in creating[-1] and "/s)" in creating[-1]
  assert "ETA 0:00:00" in creating[-1] and "(100.0%)" in creating[-1]
  summary = lines[-1]
  for part in ("documents", "instances", "tokens", "masked", "[MASK]", "SOP labels",
               "n-grams", "time:"):
    assert part in summary


def test_a_line_of_a_million_characters(tmp_path):
  path = tmp_path / "long.txt"
  path.write_text("Short line.\n" + "a" * 1_000_000 + "\nAnother.\n")
  _fails(tmp_path, r"long\.txt:2: line longer than 100000 characters", input_file=str(path))


def test_document_shorter_than_one_sentence(tmp_path):
  path = tmp_path / "docs.txt"
  path.write_text("One real sentence here.\nAnd a second one.\n\n\u200b\n\u200b\n\n"
                  "Third document, one sentence.\n", encoding="utf-8")
  summary = _run(_config(tmp_path / "out", input_file=str(path)))
  assert summary.documents == 2 and summary.dropped_documents == 1
  assert summary.single_sentence_documents == 1
  assert any(f"{path}:4: document has no tokens" in w for w in summary.warnings)


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_seq_length=4), r"--max_seq_length=4 is too small: an instance is \[CLS\] A \[SEP\] "
                             r"B \[SEP\]"),
    (dict(masked_lm_prob=1.5), r"--masked_lm_prob=1.5 is not a probability"),
    (dict(short_seq_prob=-0.1), r"--short_seq_prob=-0.1 is not a probability"),
    (dict(masked_lm_prob=float("nan")), r"--masked_lm_prob=nan is not a probability"),
    (dict(dupe_factor=0), r"--dupe_factor=0 must be >= 1"),
    (dict(ngram=0), r"--ngram=0 must be >= 1"),
    (dict(do_permutation=True), r"--do_permutation is not supported"),
    (dict(spm_model_file=None), r"give --spm_model_file .* or --vocab_file"),
    (dict(input_file_mode="rt"), r"--input_file_mode='rt'"),
    (dict(output_file=""), r"--output_file is required"),
])
def test_bad_flags(tmp_path, kwargs, match):
  _fails(tmp_path, match, **kwargs)


def test_vocabulary_without_special_tokens(tmp_path):
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n##s\n")
  _fails(tmp_path, r"--vocab_file '.*vocab\.txt': the vocabulary has no \[MASK\]",
         spm_model_file=None, vocab_file=str(vocab))
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  spm.SentencePieceTrainer.train(input=SLICES[1], model_prefix=str(tmp_path / "plain"),
                                 vocab_size=200, minloglevel=2, input_sentence_size=2000)
  _fails(tmp_path, r"--spm_model_file '.*plain\.model': the vocabulary has no \[CLS\], \[SEP\], "
                   r"\[MASK\]; train a model", spm_model_file=str(tmp_path / "plain.model"))


def test_wordpiece_vocabulary_without_spm(tmp_path):
  vocab = tmp_path / "vocab.txt"
  words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","]
  with open(TOY, encoding="utf-8") as f:
    for word in f.read().lower().replace(".", " ").replace(",", " ").split():
      if word not in words:
        words.append(word)
  vocab.write_text("\n".join(words) + "\n")
  summary = _run(_config(tmp_path, spm_model_file=None, vocab_file=str(vocab)))
  assert summary.records_written > 0


# ---------------------------------------------------------------------------------------------
# Commands.


def _cli(*args, cwd=REPO_DIR):
  env = dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, os.path.join(REPO_DIR, "create_pretraining_data.py"),
                         *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_command_line_create_inspect_and_errors(tmp_path):
  out = tmp_path / "cli.tfrecord"
  result = _cli(f"--input_file={TOY}", f"--output_file={out}", f"--spm_model_file={SPM}",
                "--max_seq_length=32", "--max_predictions_per_seq=5", "--dupe_factor=2",
                "--num_workers=2", f"--summary_file={tmp_path / 'summary.json'}")
  assert result.returncode == 0, result.stderr
  assert "create_pretraining_data summary" in result.stderr
  with open(tmp_path / "summary.json") as f:
    summary = json.load(f)
  assert summary["records_written"] > 0 and summary["documents"] == 5

  # The command line forks its workers (no TensorFlow loaded there); same bytes as one process.
  in_process = tmp_path / "in_process"
  _run(_config(in_process, output_file=str(in_process / "cli.tfrecord"), num_workers=1))
  with open(out, "rb") as a, open(in_process / "cli.tfrecord", "rb") as b:
    assert a.read() == b.read()

  result = _cli("inspect", f"--input_file={out}", f"--spm_model_file={SPM}", "--num_examples=2")
  assert result.returncode == 0, result.stderr
  stats = json.loads(result.stdout.strip().splitlines()[-1])
  assert stats["records"] == summary["records_written"] and stats["bad_layout"] == 0
  assert "--- instance 1:" in result.stdout and "  A: " in result.stdout

  result = _cli(f"--input_file={TOY}", f"--output_file={out}", f"--spm_model_file={SPM}",
                "--max_seq_length=3")
  assert result.returncode == 1
  assert "error: --max_seq_length=3 is too small" in result.stderr
  assert "Traceback" not in result.stderr


def test_train_vocab_with_the_original_recipe(tmp_path):
  from albert.data.pretraining import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
  prefix = str(tmp_path / "new")
  path = vocab_lib.train_vocab(vocab_lib.VocabConfig(input_file=",".join(SLICES),
                                                     model_prefix=prefix, vocab_size=400,
                                                     num_threads=1), log=lambda m: None)
  model = tokenization.load_sp_model(path)
  assert [model.IdToPiece(i) for i in range(13)] == [
      "<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]", "(", ")", "\"", "-", ".", "\u2013", "\u00a3",
      "\u20ac"]
  assert model.GetPieceSize() == 400
  summary = _run(_config(tmp_path, spm_model_file=path, dupe_factor=1))
  assert summary.records_written > 0
  with pytest.raises(pretraining.DataError, match="--vocab_size=10 must be larger"):
    vocab_lib.train_vocab(vocab_lib.VocabConfig(input_file=TOY, model_prefix=prefix,
                                                vocab_size=10))


@pytest.mark.slow
def test_peak_memory_flat_when_the_corpus_grows_tenfold(tmp_path):
  """The benchmark's check on the test slices: peak RSS of the process tree, 1x vs 10x corpus."""
  sys.path.insert(0, REPO_DIR)
  from benchmarks import create_data_benchmark as bench  # pylint: disable=g-import-not-at-top
  corpus = tmp_path / "slices.txt"
  with open(corpus, "wb") as f:
    for _ in range(5):  # ~1 MB, so that the small run lasts long enough to be sampled
      for path in SLICES:
        with open(path, "rb") as g:
          f.write(g.read().rstrip(b"\n") + b"\n\n")
  # A shuffle buffer both runs fill, so that the comparison shows what does not grow.
  extra = ["--shuffle_buffer_size=300"]
  small = bench.run_case(str(corpus), SPM, 1, 2, 2, str(tmp_path), extra)
  large = bench.run_case(str(corpus), SPM, 10, 2, 2, str(tmp_path), extra)
  assert large["instances"] > 9 * small["instances"]
  assert large["peak_rss_tree_mb"] <= 1.2 * small["peak_rss_tree_mb"], (small, large)


@pytest.mark.parametrize("kwargs", [
    dict(random_next_sentence=True, do_whole_word_mask=False, favor_shorter_ngram=False, ngram=4),
    dict(masked_lm_prob=0.0, short_seq_prob=1.0, do_lower_case=False),
])
def test_flag_variants(tmp_path, kwargs):
  summary = _run(_config(tmp_path, **kwargs))
  records = _read([tmp_path / "out.tfrecord"], 32, 5)
  assert len(records) == summary.records_written > 0
  sop = summary.instance_stats["sop_counts"]
  if kwargs.get("random_next_sentence"):
    assert sop[1] == 0 and sop[0] > 0 and sop[2] > 0  # never swapped
  if kwargs.get("masked_lm_prob") == 0.0:
    assert all(sum(r["masked_lm_weights"]) == 0 for r in records)
    assert all(r["input_ids"].count(4) == 0 for r in records)  # no [MASK] anywhere


def test_generic_example_encoder_equals_tensorflows():
  """records.encode_example (the fine-tuning caches' TF-free encoder) gives the bytes of
  tf.train.Example for small, id-sized, large and negative ints, floats and empty lists."""
  values = {"small": ("int64", [0, 1, 127]), "ids": ("int64", [128, 300, 29999, 131071]),
            "large": ("int64", [131072, 2**40, -1, -(2**63)]), "empty": ("int64", []),
            "score": ("float32", [3.25, -0.5])}
  ours = records_lib.encode_example(values)
  feature = {name: (tf.train.Feature(float_list=tf.train.FloatList(value=v)) if kind == "float32"
                    else tf.train.Feature(int64_list=tf.train.Int64List(value=v)))
             for name, (kind, v) in values.items()}
  theirs = tf.train.Example(features=tf.train.Features(feature=feature))
  assert tf.train.Example.FromString(ours) == theirs
