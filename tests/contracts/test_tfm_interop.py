"""Third-party readers of our saved TF1 checkpoints: tf-models-official and TF1 `Saver`s.

This file owns the interoperability checks of `albert.checkpoint.save_tf1_checkpoint`:

* tf-models-official's `official/nlp/tools/tf2_albert_encoder_checkpoint_converter.py`
  converts the checkpoint we save (called as a function, `convert_checkpoint(...)`, with the
  tf-models `AlbertConfig` read from the `albert_config.json` we write), and its `AlbertEncoder`,
  built exactly as the converter builds it, then reproduces our `sequence_output`,
  `pooled_output` and every layer's output (`encoder_outputs`) within 1e-5 on a padded batch; in
  "pretrainer" mode its `BertPretrainerV2` reproduces our MLM logits too.
* The checkpoint is readable in a TF1 graph by `tf.compat.v1.train.Saver.restore` and by
  `tf.compat.v1.train.init_from_checkpoint` (the original's fine-tuning path).

Activations: the converter passes `tf_utils.get_activation(hidden_act)`, and tf-models' "gelu"
is `tf_keras.activations.gelu(x, approximate=True)`, the same tanh approximation as the
original's (and `albert.layers.gelu`), so no activation override is needed;
`test_peer_gelu_is_the_tanh_approximation` pins that down.

Converter quirks met here (tf-models-official 2.20):
* `convert_checkpoint(bert_config, output_path, v1_checkpoint, checkpoint_model_name,
  converted_model)` writes a temporary name-mapped checkpoint to
  `<dirname(output_path)>/temp_v1/ckpt` with a TF1 `Saver`, which does not create directories:
  `<dirname(output_path)>/temp_v1` must exist beforehand, or it fails with "Parent directory of
  .../temp_v1/ckpt doesn't exist, can't save.". The V2 checkpoint is `output_path + "-1"`.
* It does not need the `cls/*` heads (an encoder-only checkpoint converts as well) and carries
  them, and `global_step`, through the name mapping harmlessly.
* It supports one group and one inner group only (`num_hidden_groups == inner_group_num == 1`):
  its name mapping strips `group_0/inner_group_0/`.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from albert import checkpoint
from albert.config import AlbertConfig
from albert.layers import gelu as our_gelu
from albert.models import build_encoder_model, build_pretraining_model
from conftest import randomize

# Importing the converter defines its absl flags (once per process); its functions are used
# directly, without flags.
from official.legacy.albert import configs as tfm_configs
from official.modeling import tf_utils
from official.nlp.modeling import networks
from official.nlp.tools import tf1_bert_checkpoint_converter_lib as tfm_lib
from official.nlp.tools import tf2_albert_encoder_checkpoint_converter as tfm_converter

ATOL = 1e-5
BATCH, SEQ = 3, 11
MASKED_POSITIONS = np.array([[1, 2, 9], [0, 5, 6], [2, 1, 0]], np.int32)


def small_config() -> AlbertConfig:
  return AlbertConfig(vocab_size=1000, embedding_size=16, hidden_size=32, num_hidden_layers=3,
                      num_hidden_groups=1, num_attention_heads=4, intermediate_size=37,
                      inner_group_num=1, hidden_act="gelu", max_position_embeddings=64,
                      type_vocab_size=2)


def padded_batch(vocab_size: int) -> dict:
  """Int32 [B,S] inputs in our names; rows 1 and 2 are padded (input_mask 0 at the end)."""
  rng = np.random.RandomState(42)
  input_mask = np.ones((BATCH, SEQ), np.int32)
  input_mask[1, 7:] = 0
  input_mask[2, 3:] = 0
  segment_ids = np.zeros((BATCH, SEQ), np.int32)
  segment_ids[:, 5:] = 1
  segment_ids *= input_mask
  input_ids = rng.randint(1, vocab_size, (BATCH, SEQ)).astype(np.int32) * input_mask
  return {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids}


def peer_inputs(batch: dict) -> dict:
  """The same batch in tf-models' input names."""
  return {"input_word_ids": batch["input_ids"], "input_mask": batch["input_mask"],
          "input_type_ids": batch["segment_ids"]}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """Our random-weight models saved as TF1 checkpoints, with their outputs on `padded_batch`.

  Returns {"pretraining": ..., "encoder": ...}, each a dict with `prefix` (the checkpoint),
  `config_file` (our albert_config.json), `values` (TF1 name -> array) and `outputs` (numpy).
  """
  root = tmp_path_factory.mktemp("ours")
  config = small_config()
  config_file = str(root / "albert_config.json")
  config.to_json_file(config_file)
  batch = padded_batch(config.vocab_size)
  result = {}
  for kind, seed in (("pretraining", 11), ("encoder", 12)):
    tf_keras.backend.clear_session()
    if kind == "pretraining":
      model = build_pretraining_model(config)
      feed = dict(batch, masked_lm_positions=MASKED_POSITIONS)
    else:
      model = build_encoder_model(config)
      feed = dict(batch)
    model(feed)
    randomize(model, seed=seed)
    outputs = tf.nest.map_structure(lambda t: t.numpy(), model(feed))
    prefix = checkpoint.save_tf1_checkpoint(model, str(root / kind / "model.ckpt"),
                                            global_step=7 if kind == "pretraining" else None)
    values = {checkpoint.variable_name(v): v.numpy() for v in model.weights}
    result[kind] = {"prefix": prefix, "config_file": config_file, "values": values,
                    "outputs": outputs, "batch": batch}
  return result


def convert_with_tfm(entry: dict, out_dir, converted_model: str = "encoder"):
  """Runs tf-models' converter on our checkpoint; returns (tf-models config, V2 checkpoint)."""
  tfm_config = tfm_configs.AlbertConfig.from_json_file(entry["config_file"])
  output_path = os.path.join(str(out_dir), "converted")
  os.makedirs(os.path.join(str(out_dir), "temp_v1"))  # The converter's Saver needs it to exist.
  tfm_converter.convert_checkpoint(tfm_config, output_path, entry["prefix"],
                                   checkpoint_model_name=converted_model,
                                   converted_model=converted_model)
  assert not os.path.exists(os.path.join(str(out_dir), "temp_v1"))  # It cleans up after itself.
  v2_checkpoint = tf.train.latest_checkpoint(str(out_dir))
  assert v2_checkpoint == output_path + "-1"
  return tfm_config, v2_checkpoint


def max_diff(a, b) -> float:
  a, b = np.asarray(a), np.asarray(b)
  assert a.shape == b.shape, (a.shape, b.shape)
  return float(np.max(np.abs(a - b)))


# ---------------------------------------------------------------------------------- tf-models
def test_peer_gelu_is_the_tanh_approximation():
  """tf-models' "gelu" (what the converter passes to AlbertEncoder) equals the original's."""
  x = tf.linspace(-8.0, 8.0, 2001)
  peer = tf_utils.get_activation("gelu")(x)
  assert max_diff(peer, our_gelu(x)) < 1e-6
  exact = tf.nn.gelu(x, approximate=False)
  assert max_diff(exact, our_gelu(x)) > 1e-4  # The check above can tell the two forms apart.


@pytest.mark.parametrize("kind", ["pretraining", "encoder"])
def test_tfm_converter_albert_encoder_matches_ours(saved, tmp_path, kind):
  """tf-models converts our checkpoint (with or without `cls/*`) and its AlbertEncoder agrees.

  The encoder is built by the converter's own `_create_albert_model` (list outputs) and, for
  `encoder_outputs`, from its config with `dict_outputs=True`; both restore the converted V2
  checkpoint, and match our outputs within 1e-5 on a batch with padding.
  """
  entry = saved[kind]
  ours = entry["outputs"]
  tfm_config, v2_checkpoint = convert_with_tfm(entry, tmp_path)

  encoder = tfm_converter._create_albert_model(tfm_config)  # pylint: disable=protected-access
  inputs = peer_inputs(entry["batch"])
  before = encoder([inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"]])
  assert max_diff(before[0], ours["sequence_output"]) > 1e-2  # Not equal by accident.
  tf.train.Checkpoint(encoder=encoder).restore(v2_checkpoint).assert_existing_objects_matched()
  sequence_output, pooled_output = encoder(
      [inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"]])
  assert max_diff(sequence_output, ours["sequence_output"]) < ATOL
  assert max_diff(pooled_output, ours["pooled_output"]) < ATOL

  dict_encoder = networks.AlbertEncoder.from_config(
      dict(encoder.get_config(), dict_outputs=True))
  tf.train.Checkpoint(encoder=dict_encoder).restore(
      v2_checkpoint).assert_existing_objects_matched()
  peer = dict_encoder(inputs)
  assert max_diff(peer["sequence_output"], ours["sequence_output"]) < ATOL
  assert max_diff(peer["pooled_output"], ours["pooled_output"]) < ATOL
  assert len(peer["encoder_outputs"]) == len(ours["encoder_outputs"]) == 3
  for layer, (theirs, mine) in enumerate(zip(peer["encoder_outputs"], ours["encoder_outputs"])):
    assert max_diff(theirs, mine) < ATOL, f"layer {layer}"


@pytest.mark.filterwarnings("ignore:Input dict contained keys:UserWarning")  # The encoder
def test_tfm_converter_pretrainer_mlm_matches_ours(saved, tmp_path):  # ignores masked_lm_positions.
  """In "pretrainer" mode the converted BertPretrainerV2 gives our MLM logits (1e-5).

  (BertPretrainerV2 has no sentence-order head, so `cls/seq_relationship` is not restored
  there; its name mapping is checked in `test_tfm_name_mapping_covers_the_peer`.)
  """
  entry = saved["pretraining"]
  ours = entry["outputs"]
  tfm_config, v2_checkpoint = convert_with_tfm(entry, tmp_path, converted_model="pretrainer")
  pretrainer = tfm_converter._create_pretrainer_model(tfm_config)  # pylint: disable=protected-access
  tf.train.Checkpoint(pretrainer=pretrainer).restore(
      v2_checkpoint).assert_existing_objects_matched()
  peer = pretrainer(dict(peer_inputs(entry["batch"]), masked_lm_positions=MASKED_POSITIONS))
  assert max_diff(peer["mlm_logits"], ours["mlm_logits"]) < ATOL
  assert max_diff(peer["sequence_output"], ours["sequence_output"]) < ATOL
  assert max_diff(peer["pooled_output"], ours["pooled_output"]) < ATOL


def test_tfm_name_mapping_covers_the_peer(saved, tmp_path):
  """The converter's first stage maps every one of our names; the peer's names are all there.

  Values survive up to the documented reshapes ([H,H] -> [H,N,D] for q/k/v, [N,D] biases,
  [N,D,H] attention output) and the SOP transpose ([2,H] -> [H,2]).
  """
  entry = saved["pretraining"]
  config = small_config()
  mapped_prefix = str(tmp_path / "mapped" / "ckpt")
  os.makedirs(os.path.dirname(mapped_prefix))
  tfm_lib.convert(checkpoint_from_path=entry["prefix"], checkpoint_to_path=mapped_prefix,
                  num_heads=config.num_attention_heads,
                  name_replacements=tfm_converter.ALBERT_NAME_REPLACEMENTS,
                  permutations=tfm_lib.BERT_V2_PERMUTATIONS, exclude_patterns=["adam", "Adam"])
  reader = tf.train.load_checkpoint(mapped_prefix)
  mapped = reader.get_variable_to_shape_map()
  assert len(mapped) == len(entry["values"]) + 1  # Every variable, plus global_step.

  tfm_config = tfm_configs.AlbertConfig.from_json_file(entry["config_file"])
  encoder = tfm_converter._create_albert_model(tfm_config)  # pylint: disable=protected-access
  peer_names = {checkpoint.variable_name(v) for v in encoder.weights}
  assert peer_names <= set(mapped), sorted(peer_names - set(mapped))

  ours = entry["values"]
  heads, head_size, hidden = config.num_attention_heads, config.head_size, config.hidden_size
  attention = "bert/encoder/transformer/group_0/inner_group_0/attention_1"
  np.testing.assert_array_equal(
      reader.get_tensor("transformer/self_attention/query/kernel"),
      ours[f"{attention}/self/query/kernel"].reshape(hidden, heads, head_size))
  np.testing.assert_array_equal(
      reader.get_tensor("transformer/self_attention/attention_output/kernel"),
      ours[f"{attention}/output/dense/kernel"].reshape(heads, head_size, hidden))
  np.testing.assert_array_equal(
      reader.get_tensor("word_embeddings/embeddings"), ours["bert/embeddings/word_embeddings"])
  np.testing.assert_array_equal(
      reader.get_tensor("predictions/transform/logits/kernel"),
      ours["cls/seq_relationship/output_weights"].T)
  np.testing.assert_array_equal(
      reader.get_tensor("bert/cls/predictions/output_bias/bias"),
      ours["cls/predictions/output_bias"])


# ---------------------------------------------------------------------------------- TF1 graph
def test_tf1_saver_and_init_from_checkpoint_read_our_checkpoint(saved):
  """A TF1 graph with variables of our names and shapes restores our checkpoint exactly.

  Two TF1 readers: `tf.compat.v1.train.Saver.restore` (with the prefix found through the
  `checkpoint` state file by `latest_checkpoint`) and `tf.compat.v1.train.init_from_checkpoint`
  (how the original's run_classifier/run_squad load `init_checkpoint`).
  """
  entry = saved["pretraining"]
  ours = entry["values"]
  directory = os.path.dirname(entry["prefix"])
  v1 = tf.compat.v1
  assert v1.train.latest_checkpoint(directory) == entry["prefix"]
  assert entry["prefix"].endswith("model.ckpt-7")

  with tf.Graph().as_default():
    variables = {name: v1.get_variable(name, shape=value.shape, dtype=tf.float32,
                                       initializer=v1.zeros_initializer())
                 for name, value in sorted(ours.items())}
    global_step = v1.train.get_or_create_global_step()
    saver = v1.train.Saver(var_list=dict(variables, global_step=global_step))
    with v1.Session() as sess:
      saver.restore(sess, v1.train.latest_checkpoint(directory))
      restored, step = sess.run([variables, global_step])
  assert step == 7
  assert set(restored) == set(ours)
  for name, value in ours.items():
    np.testing.assert_array_equal(restored[name], value, err_msg=name)

  with tf.Graph().as_default():
    with v1.variable_scope("", reuse=False):
      variables = {name: v1.get_variable(name, shape=value.shape, dtype=tf.float32,
                                         initializer=v1.zeros_initializer())
                   for name, value in sorted(ours.items())}
    v1.train.init_from_checkpoint(entry["prefix"], {name: name for name in ours})
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      restored = sess.run(variables)
  for name, value in ours.items():
    np.testing.assert_array_equal(restored[name], value, err_msg=name)
