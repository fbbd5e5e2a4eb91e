"""ONNX and TFLite exports of fine-tuned models (`albert.export.onnx`, `albert.export.tflite`)
and the one runner over them (`albert.export.runtime`): every artifact reloads and matches its
SavedModel (float32 within 1e-4, int8 within its stated tolerance), ONNX answers any batch and
length, the SQuAD answerer gives the same answers with both backends, and bad inputs get one
clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from albert.config import AlbertConfig
from albert.errors import ExportError, FlagError, InputError
from albert.export import onnx as onnx_export
from albert.export import runtime, tflite
from albert.export import serving as ce
from albert.models import build_classifier_model, build_race_model, build_squad_model
from conftest import REPO_DIR, TESTDATA, randomize

SPM = os.path.join(TESTDATA, "albert_spm", "30k-clean.model")
TINY = AlbertConfig(vocab_size=30000, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
QUIET = lambda line: None  # noqa: E731
PAIRS = [("Which river flows through Paris?", "The Seine flows through Paris, the capital of "
          "France. The Loire is the longest river of France."),
         ("Who wrote the novel?", "Pride and Prejudice is a novel by Jane Austen, published in "
          "1813. " * 6)]


def classifier_export(tmp_path, spm=SPM, threshold=0.5, max_seq_length=32):
  model = build_classifier_model(TINY, 2)
  randomize(model, seed=3)
  spec = ce.ClassifierSpec.for_task("sst-2", max_seq_length, spm, True, threshold)
  return ce.ClassifierServing(model, spec).export(str(tmp_path / "export"), version=7,
                                                  log=QUIET).path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
  """A tiny SST-2 export (raw text, threshold) with its onnx/ and tflite/ folders."""
  path = classifier_export(tmp_path_factory.mktemp("classifier"))
  onnx_export.export_artifacts(path, export_onnx=True, export_tflite=True, log=QUIET)
  return path


def test_onnx_and_tflite_folders_hold_checked_models_and_their_settings(classifier):
  for backend, suffix in (("onnx", "onnx"), ("tflite", "tflite")):
    folder = os.path.join(classifier, backend)
    assert sorted(os.listdir(folder)) == ["30k-clean.model", f"model.{suffix}",
                                          f"model_int8.{suffix}", "serving.json"]
    record = json.load(open(os.path.join(folder, "serving.json")))
    assert (record["labels"], record["max_seq_length"], record["do_lower_case"],
            record["threshold"], record["spm_model"]) == (["0", "1"], 32, True, 0.5,
                                                          "30k-clean.model")
    assert record["string_outputs"] == {"label": ["predictions", ["0", "1"]],
                                        "thresholded_label": ["thresholded_predictions",
                                                              ["0", "1"]]}
    assert record["max_abs_diff"][f"model.{suffix}"] <= 1e-4
    assert record["max_abs_diff"][f"model_int8.{suffix}"] <= onnx_export.INT8_TOLERANCE
    assert record["tolerance"] == {f"model.{suffix}": 1e-4,
                                   f"model_int8.{suffix}": onnx_export.INT8_TOLERANCE}
  # int8 weights: the quantized files are smaller
  sizes = {f: os.path.getsize(os.path.join(classifier, "onnx", f))
           for f in ("model.onnx", "model_int8.onnx")}
  assert sizes["model_int8.onnx"] < sizes["model.onnx"] / 2


@pytest.mark.parametrize("backend,quantized", [("onnx", False), ("onnx", True),
                                               ("tflite", False), ("tflite", True)])
def test_every_artifact_reloads_and_matches_its_saved_model(classifier, backend, quantized):
  reference = runtime.load(classifier)
  runner = runtime.load(classifier, backend, quantized=quantized)
  features = ce.sample_features("classification", TINY.vocab_size, batch_size=5,
                                seq_length=32, seed=11)
  want, got = reference.run(features), runner.run(features)
  assert sorted(got) == sorted(want) == ["above_threshold", "label", "logits", "predictions",
                                         "probabilities", "threshold", "thresholded_label",
                                         "thresholded_predictions"]
  tolerance = onnx_export.INT8_TOLERANCE if quantized else 1e-4
  np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=tolerance)
  np.testing.assert_allclose(got["logits"], want["logits"], atol=tolerance * max(
      1, np.abs(want["logits"]).max()))
  if not quantized:  # the decisions and the label names, exactly
    for key in ("predictions", "label", "thresholded_label", "above_threshold"):
      assert list(got[key]) == list(want[key]), key


def test_onnx_answers_batches_1_3_8_at_several_lengths(classifier):
  reference = runtime.load(classifier)
  runner = runtime.load(os.path.join(classifier, "onnx"), "onnx")
  for batch in (1, 3, 8):
    for length in (3, 9, 32, 77):
      features = ce.sample_features("classification", TINY.vocab_size, batch_size=batch,
                                    seq_length=length, seed=batch * length)
      got, want = runner.run(features), reference.run(features)
      assert got["logits"].shape == (batch, 2)
      np.testing.assert_allclose(got["logits"], want["logits"], atol=1e-4)


def test_length_buckets_give_the_rows_answers_in_their_order(classifier):
  runner = runtime.load(classifier, "onnx")
  rows = ce.sample_features("classification", TINY.vocab_size, batch_size=11, seq_length=32,
                            seed=4)
  bucketed = runner.predict(rows, batch_size=4)
  one_by_one = [runner.run({k: v[i:i + 1] for k, v in rows.items()}) for i in range(11)]
  np.testing.assert_allclose(bucketed["logits"],
                             np.concatenate([o["logits"] for o in one_by_one]), atol=1e-5)
  assert list(bucketed["label"]) == [o["label"][0] for o in one_by_one]


def test_a_damaged_or_missing_onnx_file_is_one_line(classifier, tmp_path):
  folder = tmp_path / "onnx"
  folder.mkdir()
  for name in ("serving.json", "model_int8.onnx"):
    (folder / name).write_bytes(open(os.path.join(classifier, "onnx", name), "rb").read())
  (folder / "model.onnx").write_bytes(b"\x08\x07garbage")
  with pytest.raises(ExportError, match=r"model\.onnx is not a loadable ONNX model \(") as e:
    runtime.load(str(folder), "onnx")
  assert "\n" not in str(e.value)
  os.remove(folder / "model.onnx")
  with pytest.raises(ExportError, match=r"model\.onnx: no such file \(the ONNX export folder"):
    runtime.load(str(folder), "onnx")
  os.remove(folder / "serving.json")
  with pytest.raises(ExportError, match=r"has no serving\.json: not an ONNX or TFLite export"):
    runtime.load(str(folder), "onnx")


def test_an_input_longer_than_the_tflite_length_is_one_line(classifier):
  runner = runtime.load(classifier, "tflite")
  features = ce.sample_features("classification", TINY.vocab_size, batch_size=2,
                                seq_length=33)
  with pytest.raises(InputError, match=r"inputs of length 33 exceed the model's fixed length "
                                       r"32 \(max_seq_length of the TFLite export\)$"):
    runner.run(features)


def test_a_rerun_keeps_the_folder_and_another_model_is_refused(classifier):
  log = []
  result = onnx_export.export_onnx_folder(classifier, log=log.append)
  assert result.reused and log == [f"{classifier}/onnx already holds this export; left as it is"]
  record = os.path.join(classifier, "onnx", "serving.json")
  saved = open(record).read()
  try:
    with open(record, "w") as f:
      json.dump({**json.loads(saved), "fingerprint": "other"}, f)
    with pytest.raises(ExportError, match=r"onnx already holds another onnx export"):
      onnx_export.export_onnx_folder(classifier, log=QUIET)
  finally:
    with open(record, "w") as f:
      f.write(saved)


def test_an_export_without_a_sentencepiece_model_serves_ids_but_the_answerer_says_so(tmp_path):
  from albert.export.answer import SquadAnswerer
  model = build_squad_model(TINY, False)
  randomize(model, seed=2)
  path = ce.SquadServing(model, False, info={"max_seq_length": 64}).export(
      str(tmp_path / "export"), version=1, log=QUIET).path
  onnx_export.export_onnx_folder(path, log=QUIET)
  assert json.load(open(os.path.join(path, "onnx", "serving.json")))["spm_model"] is None
  with pytest.raises(FlagError, match=r"export/1 carries no SentencePiece model: pass "
                                      r"spm_model_file$"):
    SquadAnswerer.from_export(path, backend="onnx")


def test_squad_answerer_gives_the_same_answers_with_both_backends(tmp_path):
  from albert.export.answer import SquadAnswerer
  model = build_squad_model(TINY, True, start_n_top=3, end_n_top=2)
  randomize(model, seed=8)
  info = {"max_seq_length": 48, "do_lower_case": True, "doc_stride": 16,
          "max_query_length": 16, "null_score_diff_threshold": None}
  path = ce.SquadServing(model, True, info=info, assets={"sp_model_file": SPM}).export(
      str(tmp_path / "export"), version=3, log=QUIET).path
  result = onnx_export.export_onnx_folder(path, log=QUIET)
  assert result.max_abs_diff["model.onnx"] <= 1e-4
  answers = {}
  for backend in ("savedmodel", "onnx"):
    answerer = SquadAnswerer.from_export(path, backend=backend, batch_size=3)
    assert (answerer.v2, answerer.settings.doc_stride, answerer.threshold) == (True, 16, None)
    answers[backend] = answerer.answer(PAIRS)
  assert len(answers["onnx"]) == 2 and all(a["answer"] for a in answers["savedmodel"])
  for got, want in zip(answers["onnx"], answers["savedmodel"]):
    assert (got["answer"], got["start"], got["no_answer"]) == (
        want["answer"], want["start"], want["no_answer"])
    assert got["null_score"] == pytest.approx(want["null_score"], abs=1e-3)
    assert got["probability"] == pytest.approx(want["probability"], abs=1e-4)


def test_race_onnx_serves_the_answer_letters(tmp_path):
  model = build_race_model(TINY, 4)
  randomize(model, seed=6)
  path = ce.RaceServing(model, info={"max_seq_length": 16}).export(
      str(tmp_path / "export"), version=2, log=QUIET).path
  onnx_export.export_onnx_folder(path, log=QUIET)
  features = ce.sample_features("race", TINY.vocab_size, batch_size=3, seq_length=16)
  got = runtime.load(path, "onnx").run(features)
  want = runtime.load(path).run(features)
  assert list(got["answer"]) == list(want["answer"])
  np.testing.assert_allclose(got["logits"], want["logits"], atol=1e-4)


def test_tflite_is_for_classifiers_and_onnx_needs_export_dir(tmp_path):
  model = build_race_model(TINY, 4)
  path = ce.RaceServing(model, info={"max_seq_length": 8}).export(
      str(tmp_path / "export"), version=2, log=QUIET).path
  with pytest.raises(ExportError, match=r"--export_tflite serves classifiers; .* is a race "
                                        r"export$"):
    tflite.export_tflite(path, log=QUIET)
  assert not os.path.exists(os.path.join(path, "tflite"))
  with pytest.raises(FlagError, match=r"^--export_onnx writes beside the SavedModel of "
                                      r"--export_dir: give --export_dir$"):
    onnx_export.check_artifact_flags(None, export_onnx=True)


def test_the_hub_encoder_to_onnx_answers_any_batch_and_length_and_a_rerun_keeps_it(
    tmp_path_factory, tmp_path):
  import onnxruntime as ort
  import tensorflow as tf
  from support.exports import inputs, tiny_export
  hub = tiny_export(tmp_path_factory).export_path
  path = str(tmp_path / "encoder.onnx")
  diffs, kept = onnx_export.export_encoder_onnx(hub, path)
  assert not kept and max(diffs.values()) <= 1e-4 and os.listdir(tmp_path) == ["encoder.onnx"]
  session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
  loaded = tf.saved_model.load(hub)
  for batch, length in ((1, 4), (3, 12), (8, 30)):
    x = inputs(batch, length, seed=length)
    got = session.run(["pooled_output", "sequence_output"], x)
    want = loaded({k: tf.constant(v) for k, v in x.items()}, training=False)
    np.testing.assert_allclose(got[0], want["pooled_output"].numpy(), atol=1e-4)
    assert got[1].shape == (batch, length, want["sequence_output"].shape[-1])
  assert onnx_export.export_encoder_onnx(hub, path)[1]  # kept
  with open(path, "wb") as f:
    f.write(b"not a model")
  with pytest.raises(ExportError, match=r"^--onnx_path=.*encoder\.onnx already exists and is "
                                        r"not this encoder \(.*is not a loadable ONNX model"):
    onnx_export.export_encoder_onnx(hub, path)


# ----------------------------------------------------------------------------- the scripts
def _env():
  return dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


@pytest.mark.slow
def test_run_classifier_writes_the_onnx_and_tflite_folders_beside_its_export(tmp_path):
  from albert import checkpoint
  config = tmp_path / "albert_config.json"
  TINY.to_json_file(str(config))
  model = build_classifier_model(TINY, 2)
  randomize(model, seed=4)
  init = checkpoint.save_tf1_checkpoint(model, str(tmp_path / "init" / "model.ckpt"),
                                        global_step=3)
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_DIR, "run_classifier.py"),
       f"--data_dir={os.path.join(TESTDATA, 'glue')}", "--task_name=SST-2",
       f"--albert_config_file={config}", f"--spm_model_file={SPM}", "--max_seq_length=32",
       f"--output_dir={tmp_path / 'run'}", f"--init_checkpoint={init}",
       f"--export_dir={tmp_path / 'export'}", "--export_onnx", "--export_tflite"],
      env=_env(), capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  path = tmp_path / "export" / "3"
  assert (f"Wrote {path / 'onnx'} (30k-clean.model, model.onnx, model_int8.onnx, serving.json)"
          in result.stdout)
  assert (f"Wrote {path / 'tflite'} (30k-clean.model, model.tflite, model_int8.tflite, "
          "serving.json)" in result.stdout)
  got = runtime.load(str(path), "onnx").run(
      ce.sample_features("classification", TINY.vocab_size, seq_length=20))
  assert got["label"].shape == (3,) and set(got["label"]) <= {b"0", b"1"}


def test_export_onnx_without_export_dir_is_refused_before_anything(tmp_path):
  config = tmp_path / "albert_config.json"
  TINY.to_json_file(str(config))
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_DIR, "run_race.py"), f"--albert_config_file={config}",
       f"--data_dir={os.path.join(TESTDATA, 'race')}", f"--output_dir={tmp_path / 'run'}",
       f"--spm_model_file={SPM}", "--do_train", "--export_onnx"],
      env=_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1] == (
      "error: --export_onnx writes beside the SavedModel of --export_dir: give --export_dir")
  assert not (tmp_path / "run").exists()
