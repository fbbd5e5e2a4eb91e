"""The Hugging Face bridge (albert/hf/): HF folders made by transformers 4.57.6 (tests/testdata/hf,
see make_fixtures.py) load as checkpoints and give HF's recorded outputs; conversions both ways
are exact; bad folders are one line."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file, save_file

from albert import checkpoint, models
from albert.errors import CheckpointError, FlagError
from albert.hf import convert, folder as hf_folder, names

HF = os.path.join(os.path.dirname(__file__), "..", "testdata", "hf")
GOLDEN = os.path.join(os.path.dirname(__file__), "..", "testdata", "golden", "model_A")
FIXTURES = ("pretraining", "sequence_classification", "question_answering", "multiple_choice")
TOLERANCE = 1e-5


def _fixture(name):
  return os.path.join(HF, name)


def _outputs(name):
  return dict(np.load(os.path.join(_fixture(name), "outputs.npz")))


def _model(name, config):
  if name == "pretraining":
    return models.build_pretraining_model(config)
  if name == "sequence_classification":
    return models.build_classifier_model(config, num_labels=3)
  if name == "question_answering":
    return models.build_squad_model(config, version_2_with_negative=False)
  return models.build_race_model(config, num_choices=3, max_seq_length=12)


def _run(name, model, record):
  ids, mask, types = (record[k].astype(np.int32) for k in
                      ("input_ids", "attention_mask", "token_type_ids"))
  batch = ids.shape[0]
  features = {"input_ids": ids.reshape(batch, -1), "input_mask": mask.reshape(batch, -1),
              "segment_ids": types.reshape(batch, -1)}
  if name == "pretraining":
    features["masked_lm_positions"] = np.tile(np.arange(ids.shape[1], dtype=np.int32), [batch, 1])
  if name == "question_answering":
    features["p_mask"] = np.zeros_like(ids)
  out = {k: np.asarray(v) for k, v in model(features, training=False).items()}
  got = {"pretraining": {"prediction_logits": out.get("mlm_logits"),
                         "sop_logits": out.get("sop_logits"),
                         "sequence_output": out.get("sequence_output"),
                         "pooled_output": out.get("pooled_output")},
         "sequence_classification": {"logits": out.get("logits"),
                                     "pooled_output": out.get("pooled_output")},
         "question_answering": {"start_logits": out.get("start_logits"),
                                "end_logits": out.get("end_logits")},
         "multiple_choice": {"logits": out.get("logits"),
                             "pooled_output": out.get("pooled_output")}}[name]
  return {k: v for k, v in got.items() if v is not None}


def _max_diffs(name, source):
  config = checkpoint.config_for_checkpoint(None, _fixture(name))
  model = _model(name, config)
  report = checkpoint.load_tf1_checkpoint(model, source)
  record = _outputs(name)
  got = _run(name, model, record)
  diffs = {k: float(np.max(np.abs(v - record[k].reshape(v.shape)))) for k, v in got.items()}
  return report, diffs


@pytest.mark.parametrize("name", FIXTURES)
def test_hf_folder_as_init_checkpoint_gives_hf_outputs(name):
  report, diffs = _max_diffs(name, _fixture(name))
  assert len(diffs) >= 2, diffs
  assert max(diffs.values()) < TOLERANCE, diffs
  print(name, "max |ours - HF|", diffs)
  missing = report.missing
  if name == "question_answering":  # AlbertForQuestionAnswering has no pooler
    assert missing == ["bert/pooler/dense/bias", "bert/pooler/dense/kernel"]
  else:
    assert missing == []
  assert report.unused == []


@pytest.mark.parametrize("name", FIXTURES)
def test_converted_hf_folder_gives_hf_outputs(name, tmp_path):
  result = convert.hf_to_tf1(_fixture(name), str(tmp_path / "tf1"), log=lambda _: None)
  assert sorted(os.listdir(tmp_path / "tf1"))[:2] == ["albert_config.json", "checkpoint"]
  _, diffs = _max_diffs(name, str(tmp_path / "tf1" / "model.ckpt-0"))
  assert max(diffs.values()) < TOLERANCE, diffs
  if name == "sequence_classification":
    assert (tmp_path / "tf1" / "labels.txt").read_text() == "contradiction\nentailment\nneutral\n"
  assert result.left_out == []


@pytest.mark.parametrize("name", FIXTURES)
def test_hf_to_tf1_to_hf_gives_the_same_safetensors_tensors(name, tmp_path):
  convert.hf_to_tf1(_fixture(name), str(tmp_path / "tf1"), log=lambda _: None)
  config = checkpoint.config_for_checkpoint(None, _fixture(name))
  head = {"sequence_classification": "classifier", "question_answering": "squad",
          "multiple_choice": "race", "pretraining": "auto"}[name]
  labels = ["contradiction", "entailment", "neutral"] if head == "classifier" else None
  convert.tf1_to_hf(str(tmp_path / "tf1"), config, str(tmp_path / "hf"), head=head,
                    labels=labels, log=lambda _: None)
  original = load_file(os.path.join(_fixture(name), "model.safetensors"))
  again = load_file(str(tmp_path / "hf" / "model.safetensors"))
  assert sorted(original) == sorted(again)
  for key in original:
    np.testing.assert_array_equal(original[key], again[key], err_msg=key)
  written = json.loads((tmp_path / "hf" / "config.json").read_text())
  source = json.loads(open(os.path.join(_fixture(name), "config.json")).read())
  for key in ("architectures", "hidden_act", "embedding_size", "num_hidden_groups",
              "inner_group_num", "id2label"):
    assert written.get(key) == source.get(key), key


def test_tf1_to_hf_to_tf1_is_bit_exact_on_the_golden_checkpoint(tmp_path):
  config = checkpoint.AlbertConfig.from_json_file(os.path.join(GOLDEN, "albert_config.json"))
  convert.tf1_to_hf(GOLDEN, config, str(tmp_path / "hf"), log=lambda _: None)
  assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == [
      "AlbertForPreTraining"]
  convert.hf_to_tf1(str(tmp_path / "hf"), str(tmp_path / "tf1"), log=lambda _: None)
  _, before = checkpoint.read_checkpoint(GOLDEN)
  _, after = checkpoint.read_checkpoint(str(tmp_path / "tf1"))
  assert sorted(before) == sorted(after)
  for name in before:
    assert before[name].dtype == after[name].dtype
    assert before[name].tobytes() == after[name].tobytes(), name
  again = checkpoint.AlbertConfig.from_json_file(str(tmp_path / "tf1" / "albert_config.json"))
  assert again == config


def test_golden_checkpoint_in_hf_names_matches_the_committed_hf_folder_names(tmp_path):
  config = checkpoint.AlbertConfig.from_json_file(os.path.join(GOLDEN, "albert_config.json"))
  convert.tf1_to_hf(GOLDEN, config, str(tmp_path / "hf"), log=lambda _: None)
  ours = load_file(str(tmp_path / "hf" / "model.safetensors"))
  theirs = load_file(os.path.join(_fixture("pretraining"), "model.safetensors"))
  def pattern(key):  # group / layer indices aside (the golden model has 1 group, 1 layer)
    return ".".join("N" if part.isdigit() else part for part in key.split("."))
  assert {pattern(k) for k in ours} == {pattern(k) for k in theirs}
  # Same sizes but the FFN's (golden intermediate_size 37, the fixture's 48), same layout.
  for key in ours:
    if key in theirs:
      assert [48 if d == 37 else d for d in ours[key].shape] == list(theirs[key].shape), key
  assert len([k for k in ours if k in theirs]) > 20


# ----------------------------------------------------------------------------- bad folders
def _copy(name, tmp_path):
  target = tmp_path / name
  shutil.copytree(_fixture(name), target)
  return target


def _one_line(error):
  assert "\n" not in str(error.value), str(error.value)
  return str(error.value)


def test_folder_without_config_is_refused(tmp_path):
  folder = _copy("question_answering", tmp_path)
  os.remove(folder / "config.json")
  with pytest.raises(CheckpointError) as error:
    checkpoint.resolve_checkpoint(str(folder)) and checkpoint.open_reader(str(folder))
  assert "has no config.json" in _one_line(error)


def test_folder_of_another_model_type_is_refused(tmp_path):
  folder = _copy("question_answering", tmp_path)
  values = json.loads((folder / "config.json").read_text())
  values["model_type"] = "bert"
  (folder / "config.json").write_text(json.dumps(values))
  with pytest.raises(CheckpointError) as error:
    checkpoint.open_reader(str(folder))
  assert "model_type is 'bert', not 'albert'" in _one_line(error)


def test_folder_missing_a_tensor_is_refused(tmp_path):
  folder = _copy("question_answering", tmp_path)
  tensors = load_file(str(folder / "model.safetensors"))
  del tensors["albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight"]
  save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
  with pytest.raises(CheckpointError) as error:
    checkpoint.verify_complete(checkpoint.resolve_checkpoint(str(folder)))
  assert "lacks the tensor albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight" in (
      _one_line(error))


def test_folder_whose_shapes_disagree_with_its_config_is_refused(tmp_path):
  folder = _copy("question_answering", tmp_path)
  values = json.loads((folder / "config.json").read_text())
  values["intermediate_size"] = 64
  (folder / "config.json").write_text(json.dumps(values))
  with pytest.raises(CheckpointError) as error:
    checkpoint.open_reader(str(folder))
  assert "ffn.bias has shape [48], but config.json implies [64]" in _one_line(error)


@pytest.mark.parametrize("pickle", ["pytorch_model.bin", "tf_model.h5"])
def test_folder_with_pickled_weights_only_is_refused(tmp_path, pickle):
  folder = _copy("question_answering", tmp_path)
  os.remove(folder / "model.safetensors")
  (folder / pickle).write_bytes(b"\x80\x02")
  with pytest.raises(CheckpointError) as error:
    checkpoint.open_reader(checkpoint.resolve_checkpoint(str(folder)))
  message = _one_line(error)
  assert f"only {pickle}, no model.safetensors" in message and "safe_serialization" in message


def test_truncated_safetensors_is_refused(tmp_path):
  folder = _copy("question_answering", tmp_path)
  data = (folder / "model.safetensors").read_bytes()
  (folder / "model.safetensors").write_bytes(data[:-100])
  with pytest.raises(CheckpointError) as error:
    checkpoint.verify_complete(str(folder))
  assert "is truncated" in _one_line(error)


def test_unsupported_hf_settings_are_refused_by_name(tmp_path):
  folder = _copy("question_answering", tmp_path)
  for key, value, expected in (("hidden_act", "silu", "hidden_act 'silu' is not supported"),
                               ("layer_norm_eps", 1e-5, "layer_norm_eps 1e-05 is not supported"),
                               ("position_embedding_type", "relative_key",
                                "position_embedding_type 'relative_key' is not supported")):
    values = json.loads(open(os.path.join(_fixture("question_answering"), "config.json")).read())
    values[key] = value
    (folder / "config.json").write_text(json.dumps(values))
    with pytest.raises(CheckpointError) as error:
      checkpoint.open_reader(str(folder))
    assert expected in _one_line(error)


def test_sharded_safetensors_load_as_one_folder(tmp_path):
  folder = _copy("pretraining", tmp_path)
  tensors = load_file(str(folder / "model.safetensors"))
  os.remove(folder / "model.safetensors")
  keys = sorted(tensors)
  shards = {"model-00001-of-00002.safetensors": keys[::2],
            "model-00002-of-00002.safetensors": keys[1::2]}
  for shard, shard_keys in shards.items():
    save_file({k: tensors[k] for k in shard_keys}, str(folder / shard), metadata={"format": "pt"})
  (folder / "model.safetensors.index.json").write_text(json.dumps(
      {"metadata": {}, "weight_map": {k: s for s, ks in shards.items() for k in ks}}))
  report, diffs = _max_diffs("pretraining", str(folder))
  assert max(diffs.values()) < TOLERANCE and report.missing == []
  assert len(report.loaded) == 80


def test_e_equal_h_writes_an_identity_mapping_and_reads_it_back(tmp_path):
  config = checkpoint.AlbertConfig(vocab_size=30, embedding_size=8, hidden_size=8,
                                   num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=16, max_position_embeddings=16)
  model = models.build_encoder_model(config)
  checkpoint.save_tf1_checkpoint(model, str(tmp_path / "ckpt" / "model.ckpt"), global_step=1)
  convert.tf1_to_hf(str(tmp_path / "ckpt"), config, str(tmp_path / "hf"), log=lambda _: None)
  tensors = load_file(str(tmp_path / "hf" / "model.safetensors"))
  np.testing.assert_array_equal(tensors["encoder.embedding_hidden_mapping_in.weight"], np.eye(8))
  tensors["encoder.embedding_hidden_mapping_in.weight"][0, 1] = 0.5
  save_file(tensors, str(tmp_path / "hf" / "model.safetensors"), metadata={"format": "pt"})
  with pytest.raises(CheckpointError) as error:
    checkpoint.open_reader(str(tmp_path / "hf"))
  assert "embedding_hidden_mapping_in is not the identity" in _one_line(error)


def test_squad_v2_head_is_refused_but_the_encoder_can_be_written(tmp_path):
  v2 = os.path.join(os.path.dirname(__file__), "..", "testdata", "golden", "finetune", "squad",
                    "heads", "model_A", "v2")
  config = checkpoint.AlbertConfig.from_json_file(os.path.join(GOLDEN, "albert_config.json"))
  with pytest.raises(CheckpointError) as error:
    convert.tf1_to_hf(v2, config, str(tmp_path / "hf"), log=lambda _: None)
  assert "SQuAD v2 head" in _one_line(error) and "--head=none" in str(error.value)
  assert not (tmp_path / "hf").exists()
  result = convert.tf1_to_hf(v2, config, str(tmp_path / "hf"), head="none", log=lambda _: None)
  assert any(n.startswith("answer_class/") for n in result.left_out)
  assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == [
      "AlbertModel"]


def test_one_row_head_needs_race_or_regression(tmp_path):
  race = os.path.join(os.path.dirname(__file__), "..", "testdata", "golden", "finetune", "race",
                      "model_A_race", "init")
  config = checkpoint.AlbertConfig.from_json_file(os.path.join(GOLDEN, "albert_config.json"))
  with pytest.raises(FlagError) as error:
    convert.tf1_to_hf(race, config, str(tmp_path / "hf"), log=lambda _: None)
  assert "--head=race or --head=regression" in _one_line(error)


def test_hf_activations_map_to_the_original_names():
  assert names.ACTIVATION_FROM_HF["gelu_new"] == "gelu"
  assert names.ACTIVATION_FROM_HF["gelu"] == "gelu_exact"
  for ours, theirs in names.ACTIVATION_TO_HF.items():
    assert names.ACTIVATION_FROM_HF[theirs] == ours


# ------------------------------------------------------------------------------ tokenizer
def test_our_tokenizer_gives_hf_albert_tokenizer_ids():
  """The folder's spiece.model and tokenizer_config.json (do_lower_case) give the ids that
  transformers' AlbertTokenizer gave (recorded by make_fixtures.py), with one known difference:
  HF's tokenizer has the original's `<digit>,` re-split without its stray "▁" piece (our
  `fix_digit_comma_split=True`); our default keeps the original's (docs/huggingface.md)."""
  from albert.tokenization import FullTokenizer, preprocess_text
  folder = hf_folder.HFFolder(_fixture("pretraining"))
  recorded = json.loads(open(os.path.join(_fixture("pretraining"), "tokenizer_ids.json"),
                             encoding="utf-8").read())
  assert folder.do_lower_case is True

  def encoder(fix):
    tokenizer = FullTokenizer(vocab_file=None, do_lower_case=folder.do_lower_case,
                              spm_model_file=folder.spm_model_file, fix_digit_comma_split=fix)
    return lambda text: tokenizer.convert_tokens_to_ids(tokenizer.tokenize(
        preprocess_text(text, lower=folder.do_lower_case)))

  hf_like, original = encoder(True), encoder(False)
  for text, expected in zip(recorded["texts"], recorded["ids"]):
    assert [2] + hf_like(text) + [3] == expected, text
    if "1," in text:  # the original's stray "▁" before the re-split "1,"
      ours = original(text)
      assert len(ours) == len(expected) - 1 and ours.count(13) == expected.count(13) + 1, text
    else:
      assert [2] + original(text) + [3] == expected, text
  a, b = recorded["texts"][:2]
  assert [2] + hf_like(a) + [3] + hf_like(b) + [3] == recorded["pairs"][0]


def test_written_tokenizer_settings_read_back(tmp_path):
  config = checkpoint.AlbertConfig.from_json_file(os.path.join(GOLDEN, "albert_config.json"))
  spm = os.path.join(GOLDEN, "..", "spm.model")
  convert.tf1_to_hf(GOLDEN, config, str(tmp_path / "hf"), spm_model_file=spm,
                    do_lower_case=False, log=lambda _: None)
  settings = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
  assert (settings["do_lower_case"], settings["keep_accents"], settings["remove_space"],
          settings["tokenizer_class"]) == (False, False, True, "AlbertTokenizer")
  folder = hf_folder.HFFolder(str(tmp_path / "hf"))
  assert folder.do_lower_case is False
  assert open(folder.spm_model_file, "rb").read() == open(spm, "rb").read()


def test_keep_accents_is_refused_by_name(tmp_path):
  folder = _copy("pretraining", tmp_path)
  values = json.loads((folder / "tokenizer_config.json").read_text())
  values["keep_accents"] = True
  (folder / "tokenizer_config.json").write_text(json.dumps(values))
  with pytest.raises(CheckpointError) as error:
    checkpoint.open_reader(str(folder))
  assert "keep_accents is true" in _one_line(error)


def test_export_says_to_convert_an_hf_folder_first():
  from albert.errors import ExportError
  from albert.export.encoder import ExportConfig
  with pytest.raises(ExportError) as error:
    ExportConfig.from_albert_directory(_fixture("pretraining"), "/tmp/never")
  assert "is a Hugging Face folder: convert it first (python convert_checkpoint.py" in (
      _one_line(error))


def test_bf16_and_f16_tensors_are_read_as_float32(tmp_path):
  """bfloat16 (numpy has none: written here as raw bits) and float16 folders read as the float32
  values those formats hold."""
  import struct
  folder = _copy("question_answering", tmp_path)
  tensors = load_file(str(folder / "model.safetensors"))
  header, offset, blobs = {}, 0, []
  for i, key in enumerate(sorted(tensors)):
    value = tensors[key]
    if i % 2:  # bfloat16: the top 16 bits of each float32
      data = (value.view(np.uint32) >> 16).astype("<u2").tobytes()
      dtype = "BF16"
    else:
      data, dtype = value.astype("<f2").tobytes(), "F16"
    header[key] = {"dtype": dtype, "shape": list(value.shape),
                   "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
  text = json.dumps(header).encode()
  (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
  read = hf_folder.HFFolder(str(folder))
  for i, key in enumerate(sorted(tensors)):
    name, transposed = names.tf1_name(key)
    value = tensors[key]
    expected = ((value.view(np.uint32) >> 16) << 16).view(np.float32) if i % 2 else (
        value.astype(np.float16).astype(np.float32))
    got = read.get_tensor(name)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected.T if transposed else expected, err_msg=key)
