"""The TF1 checkpoint contract: names and shapes, load report, errors, round trip, init_from_group0."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from albert import checkpoint
from albert.checkpoint import CheckpointError
from albert.config import AlbertConfig
from albert.models import build_encoder_model, build_pretraining_model
from conftest import CONFIGS, MODEL_A, TESTDATA, golden_arrays, randomize

CONFIG_A = os.path.join(MODEL_A, "albert_config.json")


def shapes_of(model):
  return {checkpoint.variable_name(v): list(v.shape) for v in model.weights}


def test_released_base_v2_name_contract():
  """Our pretraining model has exactly the variables of the released albert_base v2 checkpoint."""
  released = {}
  with open(os.path.join(TESTDATA, "albert_base_v2_variables.tsv")) as f:
    for line in f:
      name, dtype, shape = line.rstrip("\n").split("\t")
      released[name] = (dtype, [int(d) for d in shape.strip("[]").split(",") if d.strip()])
  assert released.pop("global_step") == ("int64", [])
  config = AlbertConfig.from_json_file(os.path.join(CONFIGS, "v2", "base", "albert_config.json"))
  model = build_pretraining_model(config)
  assert shapes_of(model) == {n: s for n, (_, s) in released.items()}
  assert {v.dtype for v in model.weights} == {tf.float32}
  assert sum(int(np.prod(s)) for s in shapes_of(model).values()) == 11_813_810


def test_golden_name_contract_with_optimizer_slots_skipped():
  config = AlbertConfig.from_json_file(CONFIG_A)
  report = checkpoint.load_tf1_checkpoint(build_pretraining_model(config), MODEL_A)
  assert len(report.loaded) == 32 and report.missing == [] and report.unused == []
  assert len(report.skipped) == 65 and "global_step" in report.skipped
  assert all(n == "global_step" or n.endswith(("/adam_m", "/adam_v")) for n in report.skipped)
  assert report.checkpoint.endswith("model.ckpt-0")


def test_report_lists_unused_and_missing():
  config = AlbertConfig.from_json_file(CONFIG_A)
  encoder = build_encoder_model(config)
  report = checkpoint.load_tf1_checkpoint(encoder, os.path.join(MODEL_A, "model.ckpt-0"))
  assert sorted(report.unused) == sorted([
      "cls/predictions/output_bias", "cls/predictions/transform/LayerNorm/beta",
      "cls/predictions/transform/LayerNorm/gamma", "cls/predictions/transform/dense/bias",
      "cls/predictions/transform/dense/kernel", "cls/seq_relationship/output_bias",
      "cls/seq_relationship/output_weights"])
  text = report.format()
  assert "Loaded 25 variables" in text and "in the checkpoint but unused: 7" in text
  # A model with one more layer group than the checkpoint: group_1 is reported missing.
  two = build_encoder_model(config.replace(num_hidden_groups=2))
  report = checkpoint.load_tf1_checkpoint(two, MODEL_A)
  assert len(report.missing) == 16 and all("/group_1/" in n for n in report.missing)
  with pytest.raises(CheckpointError, match="lacks 16 variables"):
    checkpoint.load_tf1_checkpoint(two, MODEL_A, require_all=True)


def test_init_from_group0_fills_every_group():
  config = AlbertConfig.from_json_file(CONFIG_A).replace(num_hidden_groups=4, inner_group_num=1)
  model = build_pretraining_model(config)
  report = checkpoint.load_tf1_checkpoint(model, MODEL_A, init_from_group0=True, require_all=True)
  remapped = {k: v for k, v in report.loaded.items() if k != v}
  assert len(remapped) == 3 * 16 and all("/group_0/" in v for v in remapped.values())
  values = {checkpoint.variable_name(v): v.numpy() for v in model.weights}
  _, ckpt = checkpoint.read_checkpoint(MODEL_A)
  for name, value in values.items():
    np.testing.assert_array_equal(value, ckpt[name.replace("/group_3/", "/group_0/")
                                              .replace("/group_2/", "/group_0/")
                                              .replace("/group_1/", "/group_0/")])
  # With every group equal to group_0, the 4-group model computes what the 1-group model does.
  one = build_encoder_model(AlbertConfig.from_json_file(CONFIG_A))
  checkpoint.load_tf1_checkpoint(one, MODEL_A)
  g = golden_arrays()
  feats = {k: g["input/" + k] for k in ("input_ids", "input_mask", "segment_ids")}
  four = model.get_layer("bert")(feats)["sequence_output"].numpy()
  np.testing.assert_array_equal(four, one(feats)["sequence_output"].numpy())


def test_round_trip_is_bit_exact(tmp_path):
  config = AlbertConfig.from_json_file(CONFIG_A).replace(num_hidden_groups=2, inner_group_num=2)
  model = build_pretraining_model(config)
  randomize(model, seed=7)
  prefix = checkpoint.save_tf1_checkpoint(model, str(tmp_path / "model.ckpt"), global_step=42)
  assert prefix.endswith("model.ckpt-42")
  assert tf.train.latest_checkpoint(str(tmp_path)) == prefix
  assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model.ckpt-42.data-00000-of-00001",
                                          "model.ckpt-42.index"]
  reader = tf.train.load_checkpoint(prefix)
  assert reader.get_tensor("global_step") == 42
  assert reader.get_variable_to_dtype_map()["global_step"] == tf.int64
  assert set(reader.get_variable_to_shape_map()) == set(shapes_of(model)) | {"global_step"}

  tf.keras.utils.set_random_seed(99)
  other = build_pretraining_model(config)
  report = checkpoint.load_tf1_checkpoint(other, str(tmp_path), require_all=True)
  assert report.skipped == ["global_step"] and not report.unused
  for a, b in zip(sorted(model.weights, key=lambda v: v.name),
                  sorted(other.weights, key=lambda v: v.name)):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  g = golden_arrays()
  feats = {k: g["input/" + k] for k in ("input_ids", "input_mask", "segment_ids")}
  feats["masked_lm_positions"] = g["input/masked_lm_positions"]
  np.testing.assert_array_equal(model(feats)["mlm_logits"].numpy(),
                                other(feats)["mlm_logits"].numpy())


def test_checkpoint_state_file_lists_existing_checkpoints(tmp_path):
  model = build_encoder_model(AlbertConfig.from_json_file(CONFIG_A))
  for step in (1, 2, 3):
    checkpoint.save_tf1_checkpoint(model, str(tmp_path / "model.ckpt"), global_step=step)
  for suffix in (".index", ".data-00000-of-00001"):
    os.remove(str(tmp_path / "model.ckpt-2") + suffix)
  checkpoint.save_tf1_checkpoint(model, str(tmp_path / "model.ckpt"), global_step=4)
  state = tf.train.get_checkpoint_state(str(tmp_path))
  assert os.path.basename(state.model_checkpoint_path) == "model.ckpt-4"
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      "model.ckpt-1", "model.ckpt-3", "model.ckpt-4"]


def test_save_without_step_and_reread(tmp_path):
  model = build_encoder_model(AlbertConfig.from_json_file(CONFIG_A))
  prefix = checkpoint.save_tf1_checkpoint(model, str(tmp_path / "sub" / "weights"),
                                          update_checkpoint_state=False)
  assert prefix == str(tmp_path / "sub" / "weights")
  assert "checkpoint" not in os.listdir(tmp_path / "sub")
  _, values = checkpoint.read_checkpoint(prefix)
  assert len(values) == 25


def test_shape_mismatch_lists_every_variable():
  config = AlbertConfig.from_json_file(CONFIG_A).replace(intermediate_size=40)
  with pytest.raises(CheckpointError) as error:
    checkpoint.load_tf1_checkpoint(build_encoder_model(config), MODEL_A)
  message = str(error.value)
  assert "model.ckpt-0" in message and "shape mismatches" in message
  assert "ffn_1/intermediate/dense/kernel: model [32, 40], checkpoint [32, 37]" in message
  assert "ffn_1/intermediate/output/dense/kernel: model [40, 32], checkpoint [37, 32]" in message


def test_checkpoint_that_restores_nothing(tmp_path):
  v = tf.Variable(tf.zeros([3]), name="something/else")
  prefix = checkpoint.save_tf1_checkpoint([v], str(tmp_path / "other"))
  model = build_encoder_model(AlbertConfig.from_json_file(CONFIG_A))
  with pytest.raises(CheckpointError, match="restores nothing.*something/else"):
    checkpoint.load_tf1_checkpoint(model, prefix)


def test_bad_paths(tmp_path):
  model = build_encoder_model(AlbertConfig.from_json_file(CONFIG_A))
  with pytest.raises(CheckpointError, match="not found"):
    checkpoint.load_tf1_checkpoint(model, str(tmp_path / "model.ckpt-5"))
  with pytest.raises(CheckpointError, match="contains no checkpoint"):
    checkpoint.load_tf1_checkpoint(model, str(tmp_path))
  for step in (1, 2):
    checkpoint.save_tf1_checkpoint(model, str(tmp_path / "m"), global_step=step,
                                   update_checkpoint_state=False)
  assert not os.path.exists(tmp_path / "checkpoint")
  with pytest.raises(CheckpointError, match="several checkpoints"):
    checkpoint.load_tf1_checkpoint(model, str(tmp_path))
  assert checkpoint.resolve_checkpoint(str(tmp_path / "m-2.index")) == str(tmp_path / "m-2")


def test_duplicate_names_are_refused():
  a = tf.Variable(1.0, name="x")
  b = tf.Variable(2.0, name="x")
  with pytest.raises(CheckpointError, match="both named 'x'"):
    checkpoint.variables_by_name([a, b])
