"""AlbertConfig: the released files, round trips, and clear errors for bad configurations."""

from __future__ import annotations

import glob
import json
import os

import pytest

from albert.config import AlbertConfig, ConfigError
from conftest import CONFIGS, MODEL_A

RELEASED = sorted(glob.glob(os.path.join(CONFIGS, "v*", "*", "albert_config.json")))
BASE_V2 = os.path.join(CONFIGS, "v2", "base", "albert_config.json")


def test_all_released_sizes_are_shipped():
  names = {os.path.relpath(os.path.dirname(p), CONFIGS) for p in RELEASED}
  assert names == {f"{v}/{s}" for v in ("v1", "v2") for s in ("base", "large", "xlarge", "xxlarge")}


@pytest.mark.parametrize("path", RELEASED + [os.path.join(CONFIGS, "tiny", "albert_config.json"),
                                             os.path.join(MODEL_A, "albert_config.json")])
def test_config_file_round_trips(path, tmp_path):
  with open(path) as f:
    raw = json.load(f)
  config = AlbertConfig.from_json_file(path)
  assert config.to_dict() == raw  # every key kept, nothing added
  out = tmp_path / "albert_config.json"
  config.to_json_file(str(out))
  assert AlbertConfig.from_json_file(str(out)) == config
  assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_released_base_v2_values():
  c = AlbertConfig.from_json_file(BASE_V2)
  assert (c.vocab_size, c.embedding_size, c.hidden_size, c.num_hidden_layers) == (30000, 128, 768, 12)
  assert (c.num_attention_heads, c.intermediate_size, c.head_size) == (12, 3072, 64)
  assert c.cross_layer_sharing == "all" and c.net_structure_type == 0


def test_to_json_string_is_the_originals_format():
  c = AlbertConfig.from_json_file(os.path.join(MODEL_A, "albert_config.json"))
  with open(os.path.join(MODEL_A, "albert_config.json")) as f:
    assert c.to_json_string() == f.read()


def test_sharing_key_written_only_when_not_default():
  c = AlbertConfig(vocab_size=10, hidden_size=8, num_attention_heads=2, intermediate_size=16)
  assert "cross_layer_sharing" not in c.to_dict()
  assert c.replace(cross_layer_sharing="ffn").to_dict()["cross_layer_sharing"] == "ffn"


def test_group_of_layer_is_the_originals_formula():
  c = AlbertConfig(vocab_size=10, hidden_size=8, num_attention_heads=2, intermediate_size=16,
                   num_hidden_layers=12, num_hidden_groups=5)
  assert [c.group_of_layer(l) for l in range(12)] == [int(l / 12 * 5) for l in range(12)]
  assert sorted(set(c.group_of_layer(l) for l in range(12))) == [0, 1, 2, 3, 4]
  none = c.replace(cross_layer_sharing="none")
  assert [none.attention_group(l) for l in range(3)] == [0, 1, 2]
  att = c.replace(cross_layer_sharing="attention")
  assert att.attention_group(11) == 4 and att.ffn_group(11) == 11


def _write(tmp_path, values):
  path = tmp_path / "albert_config.json"
  path.write_text(json.dumps(values))
  return str(path)


@pytest.mark.parametrize("change, key, fragment", [
    ({"hidden_size": 770}, "hidden_size", "divisible by num_attention_heads"),
    ({"num_hidden_groups": 13}, "num_hidden_groups", "must not exceed"),
    ({"hidden_act": "swish"}, "hidden_act", "gelu, relu, tanh, linear"),
    ({"vocab_size": 0}, "vocab_size", "positive integer"),
    ({"num_hidden_layers": -1}, "num_hidden_layers", "positive integer"),
    ({"intermediate_size": 3.5}, "intermediate_size", "positive integer"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob", "probability"),
    ({"initializer_range": 0}, "initializer_range", "positive"),
    ({"cross_layer_sharing": "some"}, "cross_layer_sharing", "all, attention, ffn, none"),
    ({"net_structure_type": -1}, "net_structure_type", "non-negative"),
])
def test_bad_values_name_the_key_and_the_file(tmp_path, change, key, fragment):
  with open(BASE_V2) as f:
    values = {**json.load(f), **change}
  path = _write(tmp_path, values)
  with pytest.raises(ConfigError) as error:
    AlbertConfig.from_json_file(path)
  message = str(error.value)
  assert f"`{key}`" in message and fragment in message and path in message


def test_unknown_and_missing_keys(tmp_path):
  with open(BASE_V2) as f:
    values = json.load(f)
  with pytest.raises(ConfigError, match="unknown key.*'hiden_size'"):
    AlbertConfig.from_json_file(_write(tmp_path, {**values, "hiden_size": 3}))
  del values["vocab_size"]
  with pytest.raises(ConfigError, match="`vocab_size` is required"):
    AlbertConfig.from_json_file(_write(tmp_path, values))


def test_unreadable_and_malformed_files(tmp_path):
  missing = str(tmp_path / "nope.json")
  with pytest.raises(ConfigError, match=f"{missing}: cannot be read"):
    AlbertConfig.from_json_file(missing)
  bad = tmp_path / "bad.json"
  bad.write_text("{not json")
  with pytest.raises(ConfigError, match="not valid JSON"):
    AlbertConfig.from_json_file(str(bad))
  arr = tmp_path / "arr.json"
  arr.write_text("[1, 2]")
  with pytest.raises(ConfigError, match="expected a JSON object"):
    AlbertConfig.from_json_file(str(arr))


def test_a_sequence_longer_than_the_position_embeddings_is_refused_in_one_place():
  from albert.errors import ExportError, FlagError
  config = AlbertConfig(vocab_size=100, max_position_embeddings=64)
  config.check_sequence_length(64)  # the limit itself fits
  with pytest.raises(FlagError) as refused:
    config.check_sequence_length(65)
  assert str(refused.value) == ("--max_seq_length=65 exceeds max_position_embeddings=64 of the "
                                "albert config")
  with pytest.raises(ExportError) as refused:
    config.check_sequence_length(128, "--tflite_seq_length", "c.json", error=ExportError)
  assert str(refused.value) == "--tflite_seq_length=128 exceeds max_position_embeddings=64 of c.json"
