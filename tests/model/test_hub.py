"""Tests of albert/hub.py: loading our exports, original TF1 hub modules, and bad handles.

The original hub modules (tfhub.dev/google/albert_*/1-3, and the original export_to_tfhub.py)
are TF1 SavedModels whose variables keep the TF1 names and whose assets hold
`albert_config.json` and `30k-clean.model`. `write_tf1_hub_module` writes such a module from the
golden model_A checkpoint with a TF1 graph, `Saver` and `SavedModelBuilder` (meta graphs tagged
`{}` and `{"train"}`, the `tokenization_info` signature and assets, as the original exporter).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from albert import checkpoint, hub
from albert.config import AlbertConfig
from albert.errors import FlagError
from albert.tokenization import FullTokenizer
from conftest import GOLDEN, MODEL_A, TESTDATA, golden_arrays
from support.exports import TINY, inputs, max_diff, reference_models, tiny_export
from support.hub_modules import write_tf1_hub_module

GOLDEN_FEATURES = ("input_ids", "input_mask", "segment_ids")


@pytest.fixture(scope="module")
def tf1_module(tmp_path_factory) -> str:
  return write_tf1_hub_module(str(tmp_path_factory.mktemp("tf1") / "albert_tf1_hub"))


@pytest.fixture
def exported(tmp_path_factory):
  return tiny_export(tmp_path_factory)


# -------------------------------------------------------------------------------- TF1 modules
def test_tf1_hub_module_loads_and_matches_golden(tf1_module):
  info = hub.inspect_handle(tf1_module)
  assert info.format == hub.TF1 and info.do_lower_case is False
  assert info.sp_model_file.endswith("30k-clean.model")
  assert info.albert_config.hidden_size == 32

  encoder = hub.load_encoder(tf1_module, trainable=True)
  g = golden_arrays("init")
  features = {k: g["input/" + k] for k in GOLDEN_FEATURES}
  out = encoder(features, training=False)
  assert max_diff(out["sequence_output"], g["output/sequence_output"]) < 1e-5
  assert max_diff(out["pooled_output"], g["output/pooled_output"]) < 1e-5
  assert max_diff(out["default"], g["output/pooled_output"]) < 1e-5
  assert max_diff(np.stack(out["encoder_outputs"]), g["output/all_encoder_layers"]) < 1e-5
  # The same with the TF-Hub input names.
  hub_names = {"input_word_ids": features["input_ids"], "input_mask": features["input_mask"],
               "input_type_ids": features["segment_ids"]}
  assert max_diff(encoder(hub_names)["pooled_output"], g["output/pooled_output"]) < 1e-5

  # Fine-tunable, with the original names (so fine-tuned models still save TF1 checkpoints).
  names = sorted(checkpoint.variable_name(v) for v in encoder.trainable_variables)
  assert names == sorted(n for n in checkpoint.read_checkpoint(MODEL_A)[1]
                         if n.startswith("bert/"))
  before = [v.numpy() for v in encoder.trainable_variables]
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(encoder(features, training=True)["pooled_output"] ** 2)
  grads = tape.gradient(loss, encoder.trainable_variables)
  tf_keras.optimizers.SGD(0.1).apply_gradients(zip(grads, encoder.trainable_variables))
  assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, encoder.trainable_variables))

  tokenizer = hub.load_tokenizer(tf1_module)
  assert isinstance(tokenizer, FullTokenizer) and not tokenizer.do_lower_case
  reference = FullTokenizer(None, False, os.path.join(GOLDEN, "spm.model"))
  assert tokenizer.tokenize("Hello world, 1,000!") == reference.tokenize("Hello world, 1,000!")


def test_tf1_hub_module_in_a_functional_model_under_mirrored_strategy(tf1_module):
  g = golden_arrays("init")
  features = {k: g["input/" + k] for k in GOLDEN_FEATURES}
  with tf.distribute.MirroredStrategy().scope():
    encoder = hub.load_encoder(tf1_module)
    model_inputs = {k: tf_keras.Input(shape=(None,), dtype=tf.int32, name=k)
                    for k in GOLDEN_FEATURES}
    model = tf_keras.Model(model_inputs, encoder(model_inputs)["pooled_output"])
  assert max_diff(model.predict(features, verbose=0), g["output/pooled_output"]) < 1e-5
  assert {checkpoint.variable_name(v) for v in model.weights} >= {"bert/pooler/dense/kernel"}


def test_tf1_hub_module_without_config(tmp_path):
  path = write_tf1_hub_module(str(tmp_path / "no_config"), with_config=False)
  with pytest.raises(hub.HubHandleError, match="--albert_config_file"):
    hub.load_encoder(path)
  encoder = hub.load_encoder(path, albert_config_file=os.path.join(MODEL_A,
                                                                   "albert_config.json"))
  g = golden_arrays("init")
  out = encoder({k: g["input/" + k] for k in GOLDEN_FEATURES})
  assert max_diff(out["pooled_output"], g["output/pooled_output"]) < 1e-5


# -------------------------------------------------------------------------------- TF2 exports
def test_load_encoder_on_our_export(exported):
  info = hub.inspect_handle(exported.export_path)
  assert info.format == hub.TF2 and info.do_lower_case is True and info.albert_config == TINY
  encoder = hub.load_encoder(exported.export_path, trainable=True)
  assert isinstance(encoder.encoder, tf_keras.layers.Layer)
  x = inputs(2, 10)
  original = {"input_ids": x["input_word_ids"], "input_mask": x["input_mask"],
              "segment_ids": x["input_type_ids"]}
  reference = reference_models(exported.checkpoint)
  want = tf.function(lambda v: reference.core(v, training=False))(x)
  for features in (x, original):
    out = encoder(features, training=False)
    assert sorted(out) == ["default", "encoder_outputs", "pooled_output", "sequence_output"]
    assert max_diff(out["sequence_output"], want["sequence_output"]) < 1e-5
  assert len(encoder.trainable_variables) == len(reference.core.trainable_variables)
  frozen = hub.load_encoder(exported.export_path, trainable=False)
  assert not frozen.trainable_variables
  tokenizer = hub.load_tokenizer(exported.export_path)
  assert tokenizer.do_lower_case and tokenizer.sp_model is not None


# ---------------------------------------------------------------------------- bad handles
def _copy_export(exported, tmp_path) -> str:
  target = str(tmp_path / "copy")
  shutil.copytree(exported.export_path, target)
  return target


def _break(kind: str, exported, tmp_path) -> str:
  if kind == "missing":
    return str(tmp_path / "does_not_exist")
  if kind == "interrupted":
    os.makedirs(tmp_path / "hub.tmp-abc123")
    return str(tmp_path / "hub")
  if kind == "a_file":
    (tmp_path / "file.txt").write_text("x")
    return str(tmp_path / "file.txt")
  if kind == "empty":
    os.makedirs(tmp_path / "empty")
    return str(tmp_path / "empty")
  if kind == "checkpoint_directory":
    return MODEL_A
  if kind == "preprocessing_model":
    return exported.preprocessing_path
  path = _copy_export(exported, tmp_path)
  variables = os.path.join(path, "variables")
  data = [os.path.join(variables, n) for n in os.listdir(variables) if ".data-" in n]
  if kind == "no_saved_model_pb":
    os.remove(os.path.join(path, "saved_model.pb"))
  elif kind == "garbage_saved_model_pb":
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
      f.write(b"\x0a\xff\xff\xff not a protocol buffer")
  elif kind == "no_variables_index":
    os.remove(os.path.join(variables, "variables.index"))
  elif kind == "no_variables_data":
    for name in data:
      os.remove(name)
  elif kind == "truncated_variables_data":
    with open(data[0], "r+b") as f:
      f.truncate(os.path.getsize(data[0]) // 2)
  elif kind == "garbage_variables_index":
    with open(os.path.join(variables, "variables.index"), "wb") as f:
      f.write(os.urandom(64))
  return path


BAD_HANDLES = {
    "missing": "not found",
    "interrupted": "export that was interrupted",
    "a_file": "is a file",
    "empty": "no saved_model.pb",
    "checkpoint_directory": "looks like a checkpoint directory",
    "preprocessing_model": r"is a preprocessing model \(text -> the encoder's inputs\), not an "
                           "encoder",
    "no_saved_model_pb": "saved_model.pb is missing",
    "garbage_saved_model_pb": "is corrupted",
    "no_variables_index": "variables/variables.index is missing",
    "no_variables_data": "no variables/variables.data",
    "truncated_variables_data": "could not load",
    "garbage_variables_index": "corrupted",
}


@pytest.mark.parametrize("kind", sorted(BAD_HANDLES))
def test_bad_handles_get_a_clear_message(kind, exported, tmp_path):
  handle = _break(kind, exported, tmp_path)
  with pytest.raises(hub.HubHandleError, match=BAD_HANDLES[kind]):
    hub.load_encoder(handle)


def test_neither_kind_of_module(tmp_path):
  module = tf.Module()
  module.weights = tf.Variable([1.0, 2.0])
  tf.saved_model.save(module, str(tmp_path / "tf2_module"))
  with pytest.raises(hub.HubHandleError, match="without __call__, not an encoder"):
    hub.load_encoder(str(tmp_path / "tf2_module"))

  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.get_variable("dense/kernel", initializer=tf.ones([2, 2]), use_resource=False)
    builder = tf.compat.v1.saved_model.Builder(str(tmp_path / "tf1_other"))
    with tf.compat.v1.Session(graph=graph) as session:
      session.run(tf.compat.v1.global_variables_initializer())
      builder.add_meta_graph_and_variables(session, tags=["serve"])
    builder.save()
  with pytest.raises(hub.HubHandleError, match="neither a TF2 encoder nor an original ALBERT"):
    hub.load_encoder(str(tmp_path / "tf1_other"))


def test_a_task_export_given_as_a_hub_handle_is_named_as_such(tmp_path):
  """A fine-tuned export for serving is not called a preprocessing model: the message says
  what it is and which checkpoint to fine-tune from instead."""
  from albert.export import serving
  from albert.models import build_classifier_model
  from support.exports import TINY
  model = build_classifier_model(TINY, 2)
  spec = serving.ClassifierSpec.for_task("SST-2", 16, None, True)
  result = serving.ClassifierServing(model, spec).export(
      str(tmp_path / "served"), step=3, source="run/model.ckpt-3", log=lambda l: None)
  with pytest.raises(hub.HubHandleError) as error:
    hub.load_encoder(result.path)
  message = str(error.value)
  assert message.startswith(f"{result.path} is a fine-tuned sst-2 export for serving "
                            "(version 3), not an encoder")
  assert "(run/model.ckpt-3) as --init_checkpoint" in message
  assert "preprocessing" not in message


# ------------------------------------------------------- a hub module and explicit files
SPM_30K = os.path.join(TESTDATA, "albert_spm", "30k-clean.model")


@pytest.fixture(scope="module")
def module_30k(tmp_path_factory) -> str:
  """A TF1 module of a 30,000-piece encoder (model_A's body, vocab_size 30000) and tokenizer."""
  from albert.modeling import build_backbone
  body = tmp_path_factory.mktemp("body_30k")
  config = AlbertConfig.from_json_file(os.path.join(MODEL_A, "albert_config.json")).replace(
      vocab_size=30000)
  config.to_json_file(str(body / "albert_config.json"))
  checkpoint.save_tf1_checkpoint(build_backbone(config), str(body / "model.ckpt"))
  return write_tf1_hub_module(str(tmp_path_factory.mktemp("tf1_30k") / "hub"), str(body),
                              spm_model=SPM_30K)


def _glue_task(tmp_path, handle, **files):
  from albert.tasks.classifier import ClassifierTask, ClassifierTaskConfig
  from albert.tasks.finetune import FinetuneConfig
  finetune = FinetuneConfig(output_dir=str(tmp_path), max_seq_length=32, hub_module_handle=handle,
                            num_workers=1, **{"albert_config": None, **files})
  return ClassifierTask(ClassifierTaskConfig(finetune=finetune, task_name="SST-2",
                                             data_dir=os.path.join(TESTDATA, "glue")))


def test_a_foreign_tokenizer_beside_a_hub_module_is_refused(tmp_path, module_30k):
  """Issue 18: a 30,000-piece module with --spm_model_file of 1,000 pieces embedded the ids of
  one vocabulary as those of the other (and the run's albert_config.json said 1000)."""
  task = _glue_task(tmp_path, module_30k, spm_model_file=os.path.join(GOLDEN, "spm.model"))
  with pytest.raises(FlagError) as error:
    task.prepare("train", check_only=True)
  assert str(error.value).startswith(
      f"--spm_model_file={os.path.join(GOLDEN, 'spm.model')} (1000 pieces) is not the vocabulary "
      f"of the hub module {module_30k} (30000 pieces, 30k-clean.model)")
  assert task.albert_config.vocab_size == 30000  # the module's config
  # The module's own tokenizer given explicitly (a copy: same pieces), or none, is fine.
  shutil.copyfile(SPM_30K, tmp_path / "copy.model")
  _glue_task(tmp_path, module_30k, spm_model_file=str(tmp_path / "copy.model")).prepare(
      "train", check_only=True)
  plain = _glue_task(tmp_path, module_30k)
  plain.prepare("train", check_only=True)
  assert plain.tokenizer_spec().spm_model_file.endswith("30k-clean.model")
  # Same size, other ids: still another vocabulary (the golden pieces, two of them swapped).
  small = write_tf1_hub_module(str(tmp_path / "hub_1k"))
  lines = (open(os.path.join(GOLDEN, "spm.vocab"), encoding="utf-8").read().splitlines())
  lines[10], lines[11] = lines[11], lines[10]
  (tmp_path / "swapped.vocab").write_text("\n".join(lines) + "\n", encoding="utf-8")
  piece = lines[10].split()[0]
  with pytest.raises(FlagError) as error:
    _glue_task(tmp_path, small, vocab_file=str(tmp_path / "swapped.vocab")).prepare(
        "train", check_only=True)
  assert str(error.value).startswith(
      f"--vocab_file={tmp_path / 'swapped.vocab'} (1000 pieces) is not the vocabulary of the hub "
      f"module {small} (1000 pieces, 30k-clean.model; other pieces: e.g. id 10 is {piece!r} in "
      "--vocab_file)")


def test_an_explicit_config_that_disagrees_with_the_hub_module_is_refused(tmp_path, module_30k):
  model_a = AlbertConfig.from_json_file(os.path.join(MODEL_A, "albert_config.json"))
  with pytest.raises(FlagError) as error:
    _glue_task(tmp_path, module_30k, albert_config=model_a.replace(hidden_dropout_prob=0.1))
  assert str(error.value) == (
      f"--albert_config_file disagrees with the albert config of the hub module {module_30k} "
      "(hidden_dropout_prob: 0.1 in the file, 0.0 in the module; vocab_size: 1000 in the file, "
      "30000 in the module): the module's encoder is what runs. Leave out --albert_config_file (a hub "
      "module's config comes from the module)")
  same = _glue_task(tmp_path, module_30k, albert_config=model_a.replace(vocab_size=30000))
  assert same.albert_config.vocab_size == 30000


def test_a_module_without_config_takes_the_explicit_one_in_a_task(tmp_path):
  """A TF1 module without assets/albert_config.json fine-tunes with --albert_config_file (it
  was refused with "pass --albert_config_file" even when given)."""
  path = write_tf1_hub_module(str(tmp_path / "no_config"), with_config=False)
  model_a = AlbertConfig.from_json_file(os.path.join(MODEL_A, "albert_config.json"))
  task = _glue_task(tmp_path, path, albert_config=model_a)
  task.prepare("train", check_only=True)
  model = task.build_model()
  g = golden_arrays("init")
  features = {k: g["input/" + k] for k in GOLDEN_FEATURES}
  encoder = [l for l in model.layers if isinstance(l, hub.HubEncoder)][0]
  assert max_diff(encoder(features)["pooled_output"], g["output/pooled_output"]) < 1e-5
