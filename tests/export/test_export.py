"""Tests of albert/export/encoder.py and export_to_tfhub.py: the TF2 SavedModel / TF-Hub export.

One tiny model (configs/tiny, seeded random weights, the golden SentencePiece model) is
exported once per session (`tiny_export`, shared with tests/test_hub*.py) and checked against
the in-memory model: through `hub.KerasLayer` in a MirroredStrategy, `hub.load`, every serving
signature, the `.mlm` sub-object, and TFLite.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

from albert import checkpoint
from albert.export import encoder as export
from albert.export import job as export_job
from albert.config import AlbertConfig
from albert.models import build_pretraining_model
from conftest import MODEL_A, REPO_DIR, golden_arrays
from support.exports import (TINY, TinyExport, inputs, max_diff, reference_models, tiny_export,
                             write_albert_directory, write_encoder_only_directory)


@pytest.fixture
def exported(tmp_path_factory) -> TinyExport:
  return tiny_export(tmp_path_factory)


# ------------------------------------------------------------------------------------ export
def test_export_layout_and_self_check(exported):
  path = exported.export_path
  for relative in ("saved_model.pb", "variables/variables.index", "assets/albert_config.json",
                   "assets/30k-clean.model"):
    assert os.path.exists(os.path.join(path, relative)), relative
  assert AlbertConfig.from_json_file(os.path.join(path, "assets", "albert_config.json")) == TINY
  parent = os.path.dirname(path)
  assert not [n for n in os.listdir(parent) if ".tmp-" in n or ".old-" in n]
  result = exported.result
  assert len(result.load_report.skipped) > 0  # the original's LAMB slots and global_step
  assert result.signatures == ["encoder", "masked_lm", "mlm", "serving_default", "sop",
                               "tokenization_info", "tokens"]
  assert len(result.load_report.loaded) == len(export.build_export_models(TINY).all_variables())
  assert not result.load_report.missing
  assert max(result.max_abs_diff.values()) < 1e-5, result.max_abs_diff
  assert "signatures: encoder, masked_lm" in result.format()


def test_export_reproduces_the_original_release(exported):
  """The golden outputs of the original TF1 code, through the exported SavedModel."""
  g = golden_arrays("sharp")
  original = {k: tf.constant(g["input/" + k]) for k in ("input_ids", "input_mask", "segment_ids")}
  hub_names = dict(zip(export.HUB_INPUTS, original.values()))
  positions = tf.constant(g["input/masked_lm_positions"])
  loaded = hub.load(exported.export_path)
  out = loaded(hub_names, training=False)
  assert max_diff(out["sequence_output"], g["output/sequence_output"]) < 5e-5
  assert max_diff(out["pooled_output"], g["output/pooled_output"]) < 5e-5
  assert max_diff(np.stack(out["encoder_outputs"]), g["output/all_encoder_layers"]) < 5e-5
  # The original module's signatures give the original's outputs, in its formats.
  mlm = loaded.signatures["mlm"](**original, mlm_positions=positions)
  assert max_diff(mlm["mlm_logits"], g["output/mlm_logits"]) < 5e-5  # [B*P,V]
  sop = loaded.signatures["sop"](**original)
  assert max_diff(sop["sop_log_probs"], g["output/sop_log_probs"]) < 5e-5
  tokens = loaded.signatures["tokens"](**original)
  assert max_diff(tokens["pooled_output"], g["output/pooled_output"]) < 5e-5


def test_keras_layer_in_mirrored_strategy_matches_and_trains(exported):
  x = inputs(batch=4, seq=13)
  reference = reference_models(exported.checkpoint)
  want = reference.core.predict(x, verbose=0)  # graph mode, as the hub model runs
  want_names = sorted(v.name for v in reference.core.trainable_variables)
  tf_keras.backend.clear_session()

  strategy = tf.distribute.MirroredStrategy()
  with strategy.scope():
    layer = hub.KerasLayer(exported.export_path, trainable=True)
    model_inputs = {n: tf_keras.Input(shape=(None,), dtype=tf.int32, name=n)
                    for n in export.HUB_INPUTS}
    encoded = layer(model_inputs)
    logits = tf_keras.layers.Dense(2, name="classifier")(encoded["pooled_output"])
    model = tf_keras.Model(model_inputs, {"logits": logits, **{
        k: encoded[k] for k in ("sequence_output", "pooled_output", "default")},
        "encoder_outputs": tf.stack(encoded["encoder_outputs"])})
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-2),
                  loss={"logits": tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)})
  assert isinstance(layer, tf_keras.layers.Layer)
  got = model.predict(x, verbose=0)
  for key in ("sequence_output", "pooled_output"):
    assert max_diff(got[key], want[key]) <= 1e-6, key
  assert max_diff(got["default"], want["pooled_output"]) <= 1e-6
  assert max_diff(got["encoder_outputs"], np.stack(want["encoder_outputs"])) <= 1e-6
  # The hub weights are the encoder's, with the original TF1 names.
  assert sorted(v.name for v in layer.trainable_variables) == want_names

  before = [v.numpy() for v in layer.trainable_variables]
  model.fit(x, {"logits": np.array([0, 1, 1, 0])}, epochs=1, batch_size=4, verbose=0)
  unchanged = [v.name for v, value in zip(layer.trainable_variables, before)
               if np.array_equal(v.numpy(), value)]
  assert not unchanged, "every hub weight gets a gradient step"


def test_hub_load_call_and_signatures_with_other_shapes(exported):
  reference = reference_models(exported.checkpoint)
  loaded = hub.load(exported.export_path)
  assert len(loaded.trainable_variables) == len(reference.core.trainable_variables)
  assert len(loaded.variables) == len(reference.core.variables)
  assert list(loaded.regularization_losses) == []
  traced = {c.structured_input_signature[0][1] for c in loaded.__call__.concrete_functions}
  assert traced == {True, False}  # the `training` argument
  assert loaded.do_lower_case.numpy()
  assert os.path.basename(loaded.sp_model_file.asset_path.numpy().decode()) == "30k-clean.model"

  graph_core = tf.function(lambda v: reference.core(v, training=False))
  graph_mlm = tf.function(lambda v: reference.mlm(v, training=False))
  graph_sop = tf.function(lambda v: reference.sop(v, training=False))
  for batch, seq in ((1, 5), (5, 19)):
    x = {k: tf.constant(v) for k, v in inputs(batch, seq, seed=batch).items()}
    original = {"input_ids": x["input_word_ids"], "input_mask": x["input_mask"],
                "segment_ids": x["input_type_ids"]}
    positions = tf.constant(np.tile(np.arange(3, dtype=np.int32), [batch, 1]))
    want = graph_core(x)
    want_mlm = graph_mlm({**x, "masked_lm_positions": positions})
    want_sop = graph_sop(x)
    got = loaded(x, training=False)
    assert got["sequence_output"].shape == (batch, seq, TINY.hidden_size)
    assert max_diff(got["sequence_output"], want["sequence_output"]) < 1e-5

    signatures = loaded.signatures
    assert sorted(signatures) == ["encoder", "masked_lm", "mlm", "serving_default", "sop",
                                  "tokenization_info", "tokens"]
    for name in ("serving_default", "encoder"):
      out = signatures[name](**x)
      assert sorted(out) == ["default", "encoder_outputs", "pooled_output", "sequence_output"]
      assert out["encoder_outputs"].shape == (TINY.num_hidden_layers, batch, seq,
                                              TINY.hidden_size)
      assert max_diff(out["encoder_outputs"], np.stack(want["encoder_outputs"])) < 1e-5
      assert max_diff(out["default"], want["pooled_output"]) < 1e-5
    out = signatures["tokens"](**original)
    assert sorted(out) == ["pooled_output", "sequence_output"]
    assert max_diff(out["pooled_output"], want["pooled_output"]) < 1e-5
    out = signatures["masked_lm"](**x, masked_lm_positions=positions)
    assert out["mlm_logits"].shape == (batch, 3, TINY.vocab_size)
    assert max_diff(out["mlm_logits"], want_mlm["mlm_logits"]) < 1e-4
    out = signatures["mlm"](**original, mlm_positions=positions)
    assert out["mlm_logits"].shape == (batch * 3, TINY.vocab_size)  # flattened, as the original
    assert max_diff(out["mlm_logits"], tf.reshape(want_mlm["mlm_logits"], [-1, 1000])) < 1e-4
    out = signatures["sop"](**original)
    assert max_diff(out["sop_log_probs"], tf.nn.log_softmax(want_sop["sop_logits"])) < 1e-5
  info = signatures["tokenization_info"]()
  assert bool(info["do_lower_case"]) and info["vocab_file"].numpy().endswith(b"30k-clean.model")


def test_training_flag_switches_dropout(exported):
  loaded = hub.load(exported.export_path)
  x = {k: tf.constant(v) for k, v in inputs(2, 9).items()}
  eval_a = loaded(x, training=False)["sequence_output"]
  eval_b = loaded(x, training=False)["sequence_output"]
  train = loaded(x, training=True)["sequence_output"]
  assert max_diff(eval_a, eval_b) == 0.0
  assert max_diff(train, eval_a) > 1e-3  # configs/tiny has dropout 0.1


def test_mlm_subobject_matches_our_mlm_head(exported):
  model = build_pretraining_model(TINY)  # the library's own pretraining model
  model({k: tf.zeros([1, 4], tf.int32) for k in model.input})
  checkpoint.load_tf1_checkpoint(model, exported.checkpoint, require_all=True)
  x = inputs(3, 12, seed=3)
  positions = np.array([[1, 4, 7, 0], [2, 2, 9, 11], [0, 3, 5, 6]], np.int32)
  want = tf.function(lambda v: model(v, training=False))({
      "input_ids": x["input_word_ids"], "input_mask": x["input_mask"],
      "segment_ids": x["input_type_ids"], "masked_lm_positions": positions})
  loaded = hub.load(exported.export_path)
  got = loaded.mlm({**{k: tf.constant(v) for k, v in x.items()},
                    "masked_lm_positions": tf.constant(positions)}, training=False)
  assert sorted(got) == ["encoder_outputs", "mlm_logits", "pooled_output", "sequence_output"]
  assert got["mlm_logits"].shape == (3, 4, TINY.vocab_size)
  assert max_diff(got["mlm_logits"], want["mlm_logits"]) < 1e-5
  # The sub-object's weights are the encoder's plus cls/predictions, not in the root's list.
  head = sorted(v.name for v in loaded.mlm.trainable_variables
                if v.name.startswith("cls/predictions"))
  assert head == sorted(v.name for v in model.trainable_variables
                        if v.name.startswith("cls/predictions"))
  assert len(head) == 5
  assert not [v for v in loaded.trainable_variables if v.name.startswith("cls/")]


TFLITE_DEPRECATION = "ignore:.*tf.lite.Interpreter is deprecated:UserWarning"


@pytest.mark.filterwarnings(TFLITE_DEPRECATION)
def test_tflite_matches_saved_model(exported, tmp_path):
  path = export.convert_to_tflite(exported.export_path, str(tmp_path / "albert.tflite"),
                                  seq_length=16)
  diffs = export.check_tflite(path, exported.export_path, seq_length=16, batch_size=3)
  assert max(diffs.values()) < 1e-5, diffs
  interpreter = tf.lite.Interpreter(model_path=path)
  runner = interpreter.get_signature_runner()
  out = runner(**inputs(1, 16))  # another batch size
  assert out["sequence_output"].shape == (1, 16, TINY.hidden_size)
  ops = {d["op_name"] for d in interpreter._get_ops_details()}  # pylint: disable=protected-access
  assert "CUSTOM" not in ops and not [op for op in ops if op.startswith("Flex")], ops


@pytest.mark.filterwarnings(TFLITE_DEPRECATION)
def test_tflite_with_a_free_sequence_length(exported, tmp_path):
  """Any sequence length in one TFLite model (builtin ops only)."""
  path = str(tmp_path / "dynamic.tflite")
  export.convert_to_tflite(exported.export_path, path, seq_length=None)
  diffs = export.check_tflite(path, exported.export_path, seq_length=None)
  assert max(diffs.values()) < 1e-5, diffs


# --------------------------------------------------------------------------------- failures
def test_export_without_heads_in_checkpoint_says_what_to_do(tmp_path):
  directory = str(tmp_path / "encoder_only")
  write_encoder_only_directory(directory)
  config = export.ExportConfig.from_albert_directory(directory, str(tmp_path / "hub"))
  with pytest.raises(export.ExportError, match="--nowith_mlm"):
    export_job.export(config, log=lambda message: None)
  assert not os.path.exists(tmp_path / "hub")


def test_vocabulary_mismatch_is_refused(tmp_path):
  directory = str(tmp_path / "bad_vocab")
  write_albert_directory(directory, config=TINY.replace(vocab_size=1200))
  config = export.ExportConfig.from_albert_directory(directory, str(tmp_path / "hub"),
                                                     checkpoint_name="model.ckpt-0")
  with pytest.raises(export.ExportError, match="1000 pieces but the albert config says "
                                               "vocab_size 1200"):
    export_job.export(config, log=lambda message: None)


def test_config_errors(tmp_path):
  with pytest.raises(export.ExportError, match="--albert_directory"):
    export.ExportConfig.from_albert_directory(None, str(tmp_path / "x"))
  config = export.ExportConfig(albert_config_file=os.path.join(MODEL_A, "albert_config.json"),
                               checkpoint="ckpt", export_path=str(tmp_path / "x"))
  with pytest.raises(export.ExportError, match="SentencePiece model"):
    config.check()


# -------------------------------------------------------------------------------------- CLI
def run_script(*args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, os.path.join(REPO_DIR, "export_to_tfhub.py"), *args],
                        capture_output=True, text=True, env=env, cwd=REPO_DIR, timeout=600)


@pytest.mark.slow
def test_cli_exports_with_the_original_flags(exported, tmp_path):
  target = str(tmp_path / "cli_hub")
  done = run_script(f"--albert_directory={exported.albert_directory}",
                    "--checkpoint_name=model.ckpt-0", f"--export_path={target}",
                    "--do_lower_case=false", "--use_einsum=false", "--nowith_sop",
                    f"--tflite_path={tmp_path / 'cli.tflite'}", "--tflite_seq_length=8")
  assert done.returncode == 0, done.stderr[-3000:]
  assert "--use_einsum has no effect" in done.stdout
  assert "signatures: encoder, masked_lm, mlm, serving_default, tokenization_info, tokens" \
      in done.stdout
  assert "TFLite vs SavedModel" in done.stdout
  loaded = hub.load(target)
  assert not loaded.do_lower_case.numpy()
  again = run_script(f"--albert_directory={exported.albert_directory}",
                     "--checkpoint_name=model.ckpt-0", f"--export_path={target}")
  assert again.returncode == 1 and "--overwrite" in again.stderr


  done = run_script(f"--export_path={tmp_path / 'x'}")
  assert done.returncode == 1 and "--albert_directory" in done.stderr
