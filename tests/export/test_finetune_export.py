"""Exports of fine-tuned models: GLUE (token ids, tf.Example, raw text), SQuAD v1/v2, RACE.

Each export is reloaded and compared with the in-memory model (1e-5); the GLUE raw-text path is
compared with the Python tokenizer's features (`albert.data.glue.features`) on the real GLUE rows of
tests/testdata/glue, truncation included. Also: threshold outputs, version folders, atomic
writing, reruns, and run_classifier.py's `--export_dir` with `--threshold_to_export` on STS-B
(both crash the original).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the raw-text export uses)

from albert import checkpoint
from albert.export import preprocessing
from albert.export import serving as ce
from albert.export import versioned as fx
from albert.config import AlbertConfig
from albert.data.glue import features as glue_features
from albert.data.glue import reader as glue
from albert.errors import ExportError, FlagError
from albert.models import (SQUAD_V2_PREDICT_OUTPUTS, build_classifier_model, build_race_model,
                           build_squad_model, output_subset)
from albert.tasks.classifier import ClassifierTask, ClassifierTaskConfig
from albert.tasks.finetune import FinetuneConfig
from conftest import REPO_DIR, TESTDATA, randomize

GLUE = os.path.join(TESTDATA, "glue")
SPM = os.path.join(TESTDATA, "albert_spm", "30k-clean.model")
TINY = AlbertConfig(vocab_size=30000, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
PAIR_TASKS = ("mrpc", "rte", "sts-b", "qnli", "wnli")
SINGLE_TASKS = ("sst-2", "cola")
QUIET = lambda line: None  # noqa: E731


def real_rows(tasks):
  """(raw text_a, raw text_b or None) of the dev rows of `tasks`, as read from the TSVs."""
  rows = []
  for name in tasks:
    processor = glue.get_processor(name)
    for row in processor.raw_rows(processor.file_path(GLUE, "dev"), "dev"):
      rows.append((row.text_a, row.text_b))
  return rows


def tensors(features):
  return {k: tf.constant(v) for k, v in features.items()}


def numpy(outputs):
  return {k: v.numpy() for k, v in outputs.items()}


def assert_close(got, want, atol=1e-5):
  assert set(got) == set(want)
  for key in want:
    if want[key].dtype.kind in "OSUb" or np.issubdtype(want[key].dtype, np.integer):
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    else:
      np.testing.assert_allclose(got[key], want[key], atol=atol, rtol=0, err_msg=key)


def glue_model(num_labels, seed, regression=False):
  model = build_classifier_model(TINY, num_labels, regression=regression)
  randomize(model, seed=seed)
  return model


# ----------------------------------------------------------------------- text pipeline
@pytest.mark.parametrize("max_seq_length", [16, 40, 128])
def test_in_graph_features_equal_the_python_conversion_on_real_glue_rows(max_seq_length):
  """bert_pack_inputs + the in-graph tokenizer == albert.data.glue.features' conversion, truncation too."""
  serving = ce.ClassifierSpec.for_task("mrpc", max_seq_length, SPM, True)
  pipeline = text_pipeline(serving)
  pairs = real_rows(PAIR_TASKS)
  singles = real_rows(SINGLE_TASKS)
  want_pairs = ce.python_features(serving, pairs)
  want_singles = ce.python_features(serving, singles)
  got_pairs = numpy(pipeline.features(tf.constant([a for a, _ in pairs]),
                                      tf.constant([b for _, b in pairs])))
  got_singles = numpy(pipeline.features(tf.constant([a for a, _ in singles])))
  for got, want in ((got_pairs, want_pairs), (got_singles, want_singles)):
    for key in want:
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)
  full = ce.python_features(ce.ClassifierSpec.for_task("mrpc", 512, SPM, True), pairs)
  truncated = full["input_mask"].sum(1) > max_seq_length  # cut by _truncate_seq_pair
  assert (want_pairs["input_mask"].sum(1)[truncated] == max_seq_length).all()
  assert truncated.sum() >= {16: 95, 40: 50, 128: 2}[max_seq_length]
  # python_features is the trainer's conversion: the processor's examples through the cache's
  # FeatureConverter (checked here on MRPC's dev file)
  processor = glue.get_processor("mrpc")
  converter = glue_features.FeatureConverter(serving_tokenizer(), processor.labels,
                                             max_seq_length)
  cached = converter.features(processor.get_dev_examples(GLUE))
  np.testing.assert_array_equal(np.array([f.input_ids for f in cached]),
                                want_pairs["input_ids"][:len(cached)])


def text_pipeline(spec):
  return preprocessing.TextPipeline(spec.spm_model_file, spec.do_lower_case, spec.max_seq_length)


def serving_tokenizer():
  from albert.tokenization import FullTokenizer
  return FullTokenizer(None, True, SPM)


def test_an_empty_second_text_makes_a_single_sentence():
  serving = ce.ClassifierSpec.for_task("rte", 24, SPM, True)
  pipeline = text_pipeline(serving)
  pairs = [("A man is here.", ""), ("A man is here.", "   "), ("A man is here.", "He is.")]
  got = numpy(pipeline.features(tf.constant([a for a, _ in pairs]),
                                tf.constant([b for _, b in pairs])))
  want = ce.python_features(serving, pairs)
  for key in want:
    np.testing.assert_array_equal(got[key], want[key])
  assert got["segment_ids"][:2].sum() == 0 and got["segment_ids"][2].sum() > 0
  np.testing.assert_array_equal(got["input_ids"][0], got["input_ids"][1])


# ------------------------------------------------------------------------ GLUE exports
@pytest.fixture(scope="module")
def mrpc_export(tmp_path_factory):
  """A two-label pair task with --threshold_to_export=0.3, at max_seq_length 32."""
  model = glue_model(2, seed=11)
  serving = ce.ClassifierSpec.for_task("MRPC", 32, SPM, True, threshold=0.3)
  base = tmp_path_factory.mktemp("mrpc") / "export"
  result = ce.ClassifierServing(model, serving).export(str(base), step=42, log=QUIET)
  return model, serving, result, tf.saved_model.load(result.path)


@pytest.fixture(scope="module")
def stsb_export(tmp_path_factory):
  model = glue_model(1, seed=12, regression=True)
  serving = ce.ClassifierSpec.for_task("sts-b", 48, SPM, True, threshold=2.5)
  base = tmp_path_factory.mktemp("stsb") / "export"
  result = ce.ClassifierServing(model, serving).export(str(base), step=7, log=QUIET)
  return model, serving, result, tf.saved_model.load(result.path)


def test_classification_export_signatures_after_reload(mrpc_export):
  model, serving, result, loaded = mrpc_export
  assert result.path.endswith(os.path.join("export", "42")) and result.version == 42
  assert sorted(loaded.signatures) == ["encode_text", "raw_text", "raw_text_pair",
                                       "serving_default", "tf_example", "token_ids"]
  outputs = {"logits", "probabilities", "predictions", "label", "threshold", "above_threshold",
             "thresholded_predictions", "thresholded_label"}
  for name in ("serving_default", "tf_example", "token_ids", "raw_text", "raw_text_pair"):
    assert set(loaded.signatures[name].structured_outputs) == outputs, name
  _, token_inputs = loaded.signatures["token_ids"].structured_input_signature
  assert {k: (v.dtype, v.shape.as_list()) for k, v in token_inputs.items()} == {
      k: (tf.int32, [None, None]) for k in ("input_ids", "input_mask", "segment_ids")}
  _, example_inputs = loaded.signatures["serving_default"].structured_input_signature
  assert list(example_inputs) == ["input"] and example_inputs["input"].dtype == tf.string
  info = json.loads(open(os.path.join(result.path, fx.INFO_FILE)).read())
  assert info["labels"] == ["0", "1"] and info["threshold"] == 0.3
  assert info["max_seq_length"] == 32 and info["version"] == 42 and info["task_name"] == "mrpc"
  assert info["signature_io"]["raw_text_pair"] == {"inputs": ["sentence", "sentence2"],
                                                   "outputs": sorted(outputs)}
  assert info["signature_io"]["serving_default"]["inputs"] == ["input"]
  assert os.path.isfile(os.path.join(result.path, "assets", "30k-clean.model"))


def test_token_ids_and_tf_example_reproduce_the_in_memory_model(mrpc_export):
  model, serving, _, loaded = mrpc_export
  features = ce.python_features(serving, real_rows(["mrpc", "rte"]))
  out = model(tensors(features), training=False)
  want = {"logits": out["logits"].numpy(), "probabilities": out["probabilities"].numpy(),
          "predictions": out["predictions"].numpy()}
  got = numpy(loaded.signatures["token_ids"](**tensors(features)))
  assert_close({k: got[k] for k in want}, want)
  np.testing.assert_array_equal(got["label"], np.array([b"0", b"1"])[want["predictions"]])
  examples = tf.constant(ce.example_bytes(features))
  for name in ("serving_default", "tf_example"):
    assert_close(numpy(loaded.signatures[name](input=examples)), got)
  # another sequence length: the token-id signature takes any S
  short = {k: v[:, :20] for k, v in ce.python_features(
      ce.ClassifierSpec.for_task("mrpc", 20, SPM, True), real_rows(["mrpc"])).items()}
  want = model(tensors(short), training=False)
  got = numpy(loaded.signatures["token_ids"](**tensors(short)))
  np.testing.assert_allclose(got["probabilities"], want["probabilities"].numpy(), atol=1e-5)


def test_raw_text_equals_the_python_tokenizer_path_on_real_glue_rows(mrpc_export):
  _, serving, _, loaded = mrpc_export
  pairs = real_rows(PAIR_TASKS)
  features = ce.python_features(serving, pairs)
  first, second = tf.constant([a for a, _ in pairs]), tf.constant([b for _, b in pairs])
  encoded = numpy(loaded.signatures["encode_text"](sentence=first, sentence2=second))
  for key in features:
    np.testing.assert_array_equal(encoded[key], features[key], err_msg=key)
  want = numpy(loaded.signatures["token_ids"](**tensors(features)))
  assert_close(numpy(loaded.signatures["raw_text_pair"](sentence=first, sentence2=second)), want)
  singles = real_rows(SINGLE_TASKS)
  want = numpy(loaded.signatures["token_ids"](**tensors(ce.python_features(serving, singles))))
  got = numpy(loaded.signatures["raw_text"](sentence=tf.constant([a for a, _ in singles])))
  assert_close(got, want)


def test_binary_threshold_decides_the_label(mrpc_export):
  _, serving, _, loaded = mrpc_export
  got = numpy(loaded.signatures["raw_text_pair"](
      sentence=tf.constant([a for a, _ in real_rows(["mrpc"])]),
      sentence2=tf.constant([b for _, b in real_rows(["mrpc"])])))
  p1 = got["probabilities"][:, 1]
  np.testing.assert_array_equal(got["threshold"], np.full(len(p1), 0.3, np.float32))
  np.testing.assert_array_equal(got["above_threshold"], p1 >= np.float32(0.3))
  np.testing.assert_array_equal(got["thresholded_predictions"], (p1 >= np.float32(0.3)) * 1)
  np.testing.assert_array_equal(got["thresholded_label"],
                                np.where(p1 >= np.float32(0.3), b"1", b"0"))
  np.testing.assert_array_equal(got["predictions"], got["probabilities"].argmax(1))
  # the seeded model puts these rows on both sides of 0.3, most between 0.3 and 0.5: the
  # threshold decides otherwise than the argmax there
  assert (p1 < 0.3).any() and (p1 >= 0.3).any()
  assert (got["thresholded_predictions"] != got["predictions"]).sum() >= 10


def test_regression_export_serves_the_score_and_the_threshold(stsb_export):
  model, serving, result, loaded = stsb_export
  assert result.version == 7
  pairs = real_rows(["sts-b"])
  features = ce.python_features(serving, pairs)
  got = numpy(loaded.signatures["raw_text_pair"](sentence=tf.constant([a for a, _ in pairs]),
                                                 sentence2=tf.constant([b for _, b in pairs])))
  assert set(got) == {"logits", "probabilities", "predictions", "threshold", "above_threshold"}
  out = model(tensors(features), training=False)
  np.testing.assert_allclose(got["logits"], out["logits"].numpy(), atol=1e-5)
  assert got["probabilities"].shape == (len(pairs), 1)
  np.testing.assert_array_equal(got["predictions"], got["logits"])
  np.testing.assert_array_equal(got["above_threshold"], got["predictions"] >= np.float32(2.5))
  examples = tf.constant(ce.example_bytes(features))
  assert_close(numpy(loaded.signatures["serving_default"](input=examples)), got)
  assert_close(numpy(loaded.signatures["token_ids"](**tensors(features))), got)


def test_threshold_is_checked_and_nan_means_none():
  with pytest.raises(FlagError, match=r"--threshold_to_export=1.5: for sst-2 .* in \[0, 1\]"):
    ce.ClassifierSpec.for_task("SST-2", 32, SPM, True, threshold=1.5)
  with pytest.raises(FlagError, match="finite"):
    ce.ClassifierSpec.for_task("SST-2", 32, SPM, True, threshold=math.inf)
  nan = ce.ClassifierSpec.for_task("SST-2", 32, SPM, True, threshold=float("nan"))
  assert nan.threshold is None
  assert ce.ClassifierSpec.for_task("sts-b", 32, SPM, True, threshold=4.2).threshold == 4.2


# ------------------------------------------------- from a task and a checkpoint
def make_task(output_dir, task_name):
  finetune = FinetuneConfig(albert_config=TINY, output_dir=str(output_dir), spm_model_file=SPM,
                            max_seq_length=32, num_workers=1, seed=3)
  return ClassifierTask(ClassifierTaskConfig(finetune=finetune, task_name=task_name,
                                             data_dir=GLUE), log=QUIET)


def test_classifier_export_task_picks_the_best_checkpoint_and_versions_by_its_step(tmp_path):
  """MNLI (three labels): model.ckpt-best over the latest; the threshold is only attached."""
  run = tmp_path / "run"
  run.mkdir()
  best, latest = glue_model(3, seed=1), glue_model(3, seed=2)
  checkpoint.save_tf1_checkpoint(latest, str(run / "model.ckpt"), global_step=9)
  scratch = checkpoint.save_tf1_checkpoint(best, str(tmp_path / "model.ckpt"), global_step=4)
  for suffix in (".data-00000-of-00001", ".index"):
    shutil.copyfile(scratch + suffix, str(run / "model.ckpt-best") + suffix)
  lines = []
  result = ce.ClassifierServing.export_task(
      make_task(run, "MNLI"), fx.checkpoint_to_export(str(run)), ce.ExportSettings(
          export_dir=str(tmp_path / "export"), threshold=0.5, raw_text=False), log=lines.append)
  assert result.path == str(tmp_path / "export" / "4") and result.source.endswith("model.ckpt-best")
  assert any("3 labels" in line and "decides nothing" in line for line in lines)
  loaded = tf.saved_model.load(result.path)
  assert sorted(loaded.signatures) == ["serving_default", "tf_example", "token_ids"]
  features = ce.sample_features("classification", TINY.vocab_size, seq_length=32)
  got = numpy(loaded.signatures["token_ids"](**tensors(features)))
  want = best(tensors(features), training=False)
  np.testing.assert_allclose(got["logits"], want["logits"].numpy(), atol=1e-5)
  assert set(got) == {"logits", "probabilities", "predictions", "label", "threshold"}
  np.testing.assert_array_equal(got["label"], np.array(
      [b"contradiction", b"entailment", b"neutral"])[got["predictions"]])
  assert not os.path.exists(tmp_path / "export" / "9")


def test_export_without_a_checkpoint_is_an_error(tmp_path):
  task = make_task(tmp_path / "run", "SST-2")
  with pytest.raises(ExportError, match=r"--export_dir needs a checkpoint: none in --output_dir "
                                        r"\(.*run\) and no --init_checkpoint"):
    ce.ClassifierServing.export_task(task, fx.checkpoint_to_export(str(tmp_path / "run")),
                                     ce.ExportSettings(export_dir=str(tmp_path / "export")))
  assert not (tmp_path / "export").exists()


# ------------------------------------------------------------------- SQuAD and RACE
@pytest.mark.parametrize("version_2", [False, True])
def test_squad_export_signatures_after_reload(tmp_path, version_2):
  model = build_squad_model(TINY, version_2, start_n_top=3, end_n_top=2)
  randomize(model, seed=5)
  kind = "squad_v2" if version_2 else "squad_v1"
  result = ce.SquadServing(model, version_2).export(str(tmp_path), step=12, log=QUIET)
  loaded = tf.saved_model.load(result.path)
  assert result.version == 12 and sorted(loaded.signatures) == ["serving_default", "token_ids"]
  _, inputs = loaded.signatures["token_ids"].structured_input_signature
  assert sorted(inputs) == ["input_ids", "input_mask", "p_mask", "segment_ids"]
  features = ce.sample_features(kind, TINY.vocab_size, batch_size=4, seq_length=24, seed=3)
  got = numpy(loaded.signatures["token_ids"](**tensors(features)))
  if version_2:
    reference = output_subset(model, ("start_log_probs",) + SQUAD_V2_PREDICT_OUTPUTS)
    want = numpy(reference({k: tf.constant(v) for k, v in features.items()}, training=False))
    assert got["start_top_index"].shape == (4, 3) and got["end_top_index"].shape == (4, 6)
    assert got["cls_logits"].shape == (4,)
    assert (got["start_log_probs"][features["p_mask"] == 1] == -1e30).all()
  else:
    inputs = {k: tf.constant(v) for k, v in features.items()}
    want = numpy(model(inputs, training=False))
    assert sorted(got) == ["end_logits", "start_logits"]
  assert_close(got, want)


def test_squad_export_from_its_task_records_what_the_answerer_reads_back(tmp_path):
  """run_squad.py's call: the latest model.ckpt-N until there is a best; the tokenizer, its
  settings and the held-out null threshold stored for the exported checkpoint go with it."""
  from albert.export.answer import SquadAnswerer
  from albert.tasks.squad import SquadTask, SquadTaskConfig
  from albert.train.run_dir import RunDir
  run = RunDir(str(tmp_path / "run"))
  model = build_squad_model(TINY, True, start_n_top=3, end_n_top=2)
  for step, seed in ((5, 1), (9, 2)):
    randomize(model, seed=seed)
    checkpoint.save_tf1_checkpoint(model, os.path.join(run.path, "model.ckpt"), global_step=step)
  assert fx.checkpoint_to_export(run.path) == run.prefix(9)
  run.append_results({"global_step": 5, "heldout_f1": 50.0, "heldout_threshold": 0.25})
  run.update_best(5, "heldout_f1", 50.0)
  task = SquadTask(SquadTaskConfig(
      FinetuneConfig(albert_config=TINY, output_dir=run.path, spm_model_file=SPM,
                     max_seq_length=32), version_2_with_negative=True, start_n_top=3,
      end_n_top=2, doc_stride=8, max_query_length=16))
  result = ce.SquadServing.export_task(task, fx.checkpoint_to_export(run.path),
                                       ce.ExportSettings(str(tmp_path / "export")), log=QUIET)
  assert result.path == str(tmp_path / "export" / "5") and result.source == run.best_prefix
  info = fx.read_info(result.path)
  assert {k: info[k] for k in ("task_kind", "max_seq_length", "do_lower_case", "doc_stride",
                               "max_query_length", "null_score_diff_threshold")} == {
      "task_kind": "squad_v2", "max_seq_length": 32, "do_lower_case": True, "doc_stride": 8,
      "max_query_length": 16, "null_score_diff_threshold": 0.25}
  assert os.path.isfile(os.path.join(result.path, "assets", "30k-clean.model"))
  answerer = SquadAnswerer.from_export(result.path)
  assert (answerer.threshold, answerer.v2, answerer.settings.doc_stride) == (0.25, True, 8)
  assert answerer.spec.spm_model_file == os.path.join(result.path, "assets", "30k-clean.model")


def test_race_export_from_its_task_takes_choice_major_ids(tmp_path):
  """run_race.py's call: checkpoint_to_export picks --init_checkpoint here (no run yet)."""
  from albert.tasks.race import RaceTask, RaceTaskConfig
  model = build_race_model(TINY, 4)
  randomize(model, seed=6)
  init = checkpoint.save_tf1_checkpoint(model, str(tmp_path / "init" / "model.ckpt"),
                                        global_step=3)
  finetune = FinetuneConfig(albert_config=TINY, output_dir=str(tmp_path / "run"),
                            spm_model_file=SPM, max_seq_length=16)
  task = RaceTask(RaceTaskConfig(finetune=finetune, data_dir=os.path.join(TESTDATA, "race")))
  result = ce.RaceServing.export_task(task, fx.checkpoint_to_export(str(tmp_path / "run"), init),
                                      ce.ExportSettings(str(tmp_path / "export")), log=QUIET)
  assert result.path == str(tmp_path / "export" / "3") and result.source == init
  assert fx.served(fx.read_info(result.path)) == {"task_kind": "race", "max_seq_length": 16}
  loaded = tf.saved_model.load(result.path)
  features = ce.sample_features("race", TINY.vocab_size, batch_size=2, seq_length=16)
  assert features["input_ids"].shape == (2, 64)
  got = numpy(loaded.signatures["serving_default"](**tensors(features)))
  want = model(tensors(features), training=False)
  assert sorted(got) == ["answer", "logits", "predictions", "probabilities"]
  np.testing.assert_allclose(got["logits"], want["logits"].numpy(), atol=1e-5)
  np.testing.assert_allclose(got["probabilities"], want["probabilities"].numpy(), atol=1e-5)
  np.testing.assert_array_equal(got["answer"], np.array([b"A", b"B", b"C", b"D"])[
      want["predictions"].numpy()])


def test_a_model_of_another_kind_is_refused(tmp_path):
  model = build_race_model(TINY, 4)
  with pytest.raises(ExportError, match=r"not a squad_v1 model: it has no output start_logits"):
    ce.SquadServing(model, False).export(str(tmp_path), step=1)
  # the serving class names the kind (no string to get wrong); SQuAD v1 is not v2
  with pytest.raises(ExportError, match=r"not a squad_v2 model: it has no output "
                                        r"start_log_probs, start_top_log_probs"):
    ce.SquadServing(build_squad_model(TINY, False), True).export(str(tmp_path), step=1)
  assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- versions, atomicity
def test_a_failed_export_leaves_nothing(tmp_path, monkeypatch):
  model = build_race_model(TINY, 4)
  real_save = tf.saved_model.save

  def save_then_fail(obj, directory, signatures=None):
    real_save(obj, directory, signatures=signatures)  # a complete SavedModel in the temp folder
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(fx.tf.saved_model, "save", save_then_fail)
  with pytest.raises(Exception, match="No space left"):
    ce.RaceServing(model).export(str(tmp_path / "export"), step=5, log=QUIET)
  assert os.listdir(tmp_path / "export") == []
  monkeypatch.undo()

  def wrong(loaded):  # the reloaded export does not reproduce the model
    return fx.compare_outputs("token_ids", {"logits": np.ones(2)}, {"logits": np.zeros(2)})

  variables = model.weights
  race = ce.RaceServing(model)  # (a bound tf.function holds its instance weakly)
  with pytest.raises(ExportError, match=r"does not reproduce the model: max \|diff\| "
                                        r"token_ids/logits 1"):
    fx.write_export(str(tmp_path / "export"), 5, variables, {"token_ids": race.serve},
                    check=wrong, log=QUIET)
  assert os.listdir(tmp_path / "export") == []


def test_rerun_keeps_the_same_export_and_refuses_another(tmp_path):
  model = build_race_model(TINY, 4)
  randomize(model, seed=7)
  first = ce.RaceServing(model).export(str(tmp_path), step=8, log=QUIET)
  stamp = os.stat(os.path.join(first.path, "saved_model.pb")).st_mtime_ns
  again = ce.RaceServing(model).export(str(tmp_path), step=8, log=QUIET)
  assert again.reused and again.path == first.path
  assert os.stat(os.path.join(first.path, "saved_model.pb")).st_mtime_ns == stamp
  randomize(model, seed=8)  # other weights, same version
  with pytest.raises(ExportError, match=r"version folder .*8 already holds another export "
                                        r"\(other weights or settings\)"):
    ce.RaceServing(model).export(str(tmp_path), step=8, log=QUIET)
  replaced = ce.RaceServing(model).export(str(tmp_path), step=8, overwrite=True, log=QUIET)
  assert not replaced.reused and sorted(os.listdir(tmp_path)) == ["8"]
  with pytest.raises(FlagError, match="non-negative integer"):
    ce.RaceServing(model).export(str(tmp_path), version=-1, log=QUIET)


def _listing(directory):
  return sorted(os.path.relpath(os.path.join(root, name), directory)
                for root, dirs, names in os.walk(directory) for name in dirs + names)


def test_an_export_base_serving_one_model_refuses_another(tmp_path):
  """Issue 18: TF Serving serves the highest version of a base path; a version of another task
  (or label set, or sequence length) in the same --export_dir would answer the first model's
  clients. Refused before the training (from the flags) and before writing, naming both."""
  base = str(tmp_path / "export")
  mrpc = ce.ClassifierSpec.for_task("MRPC", 32, None, True)
  ce.ClassifierServing(glue_model(2, seed=1), mrpc).export(base, step=5, log=QUIET)
  before = _listing(base)
  mnli = ce.ClassifierSpec.for_task("MNLI", 32, None, True)
  with pytest.raises(ExportError) as error:
    ce.ClassifierServing(glue_model(3, seed=2), mnli).export(base, step=9, log=QUIET)
  assert str(error.value) == (
      f"--export_dir={base} already serves another model: version 5 is mrpc (labels 0, 1), this "
      "run exports mnli (labels contradiction, entailment, neutral) (task_name 'mrpc' there, "
      "'mnli' now; labels ['0', '1'] there, ['contradiction', 'entailment', 'neutral'] now). "
      "TF Serving serves the highest version of a base path, so the first model's clients would "
      "get this one: export to another --export_dir (one base path per model)")
  # Before the training: run_classifier.py's check from the flags (the task and settings).
  with pytest.raises(ExportError, match=r"version 5 is mrpc \(labels 0, 1\), this run exports "
                                        r"mnli"):
    ce.ClassifierServing.check_export_dir(make_task(tmp_path / "run", "MNLI"),
                                          ce.ExportSettings(export_dir=base, raw_text=False))
  # Another max_seq_length of the same task, or another kind of model: refused too.
  with pytest.raises(ExportError, match=r"max_seq_length 32 there, 64 now"):
    ce.ClassifierServing(glue_model(2, seed=3), ce.ClassifierSpec.for_task(
        "MRPC", 64, None, True)).export(base, step=7, log=QUIET)
  with pytest.raises(ExportError, match=r"version 5 is mrpc \(labels 0, 1\), this run exports "
                                        r"squad_v1 \(task_kind 'classification' there, "
                                        r"'squad_v1' now\)"):
    fx.check_export_base(base, {"task_kind": "squad_v1", "max_seq_length": 32})
  assert _listing(base) == before
  # The same model, a new version: what a base path is for.
  ce.ClassifierServing(glue_model(2, seed=4), mrpc).export(base, step=8, log=QUIET)
  ce.ClassifierServing.check_export_dir(make_task(tmp_path / "run2", "MRPC"),
                                        ce.ExportSettings(export_dir=base, raw_text=False))
  assert sorted(os.listdir(base)) == ["5", "8"]
  # Another kind of model in a base (RACE, as RaceServing.export_task records it).
  race_base = str(tmp_path / "race")
  ce.RaceServing(build_race_model(TINY, 4), info={"max_seq_length": 16}).export(
      race_base, step=2, log=QUIET)
  with pytest.raises(ExportError, match=r"version 2 is race, this run exports mrpc \(labels 0, "
                                        r"1\) \(task_kind 'race' there, 'classification' now; "
                                        r"max_seq_length 16 there, 32 now\)"):
    ce.ClassifierServing.check_export_dir(make_task(tmp_path / "run3", "MRPC"),
                                          ce.ExportSettings(export_dir=race_base, raw_text=False))


# ------------------------------------------------------------------ run_classifier.py
def _env():
  env = dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  return env


@pytest.mark.slow
def test_run_classifier_exports_stsb_with_a_threshold(tmp_path):
  """Both crash the original: --threshold_to_export, and exporting STS-B."""
  config = tmp_path / "albert_config.json"
  TINY.to_json_file(str(config))
  model = glue_model(1, seed=4, regression=True)
  init = checkpoint.save_tf1_checkpoint(model, str(tmp_path / "init" / "model.ckpt"),
                                        global_step=3)
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_DIR, "run_classifier.py"), f"--data_dir={GLUE}",
       "--task_name=STS-B", f"--albert_config_file={config}", f"--spm_model_file={SPM}",
       "--max_seq_length=32", f"--output_dir={tmp_path / 'run'}", f"--init_checkpoint={init}",
       f"--export_dir={tmp_path / 'export'}", "--threshold_to_export=3.0"],
      env=_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  path = tmp_path / "export" / "3"
  assert f"Exported {path} (version 3" in result.stdout
  loaded = tf.saved_model.load(str(path))
  got = numpy(loaded.signatures["raw_text_pair"](sentence=tf.constant(["A man plays."]),
                                                 sentence2=tf.constant(["A man is playing."])))
  serving = ce.ClassifierSpec.for_task("sts-b", 32, SPM, True)
  want = model(tensors(ce.python_features(serving, [("A man plays.", "A man is playing.")])),
               training=False)
  np.testing.assert_allclose(got["predictions"], want["predictions"].numpy(), atol=1e-5)
  assert got["above_threshold"][0] == (got["predictions"][0] >= 3.0)


def test_run_classifier_refuses_an_export_dir_of_another_model_before_training(tmp_path):
  config = tmp_path / "albert_config.json"
  TINY.to_json_file(str(config))
  base = tmp_path / "export"
  ce.ClassifierServing(glue_model(2, seed=1), ce.ClassifierSpec.for_task(
      "MRPC", 32, None, True)).export(str(base), step=5, log=QUIET)
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_DIR, "run_classifier.py"), f"--data_dir={GLUE}",
       "--task_name=MNLI", f"--albert_config_file={config}", f"--spm_model_file={SPM}",
       "--max_seq_length=32", f"--output_dir={tmp_path / 'run'}", "--do_train",
       "--train_step=2", f"--export_dir={base}"],
      env=_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 1, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: --export_dir={base} already serves another model: version 5 "
                         "is mrpc (labels 0, 1), this run exports mnli"), last
  assert not (tmp_path / "run").exists()  # refused before the training
  assert sorted(os.listdir(base)) == ["5"]
