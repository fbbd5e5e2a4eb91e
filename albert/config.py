"""AlbertConfig: the released `albert_config.json` format, read, validated and written.

The keys and their meaning are those of the original release. Released files also carry
`net_structure_type`, `gap_size`, `num_memory_blocks` and `layers_to_keep`; the original model
never reads them, and neither do we, but they are accepted and written back unchanged.

One key is ours: `cross_layer_sharing` selects which parameters the layers share (the four
variants compared in Table 4 of the paper). Its default, "all", is the original's behaviour, and
it is written to JSON only when it differs from the default, so released files round-trip
byte-for-byte in content.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Optional, Tuple

from albert import files
from albert.errors import ConfigError, FlagError

# Activations the original `modeling.get_activation` knows ("linear" means none), and ours
# "gelu_exact" (the erf form: Hugging Face's "gelu", which its copies of the v1 models use).
ACTIVATIONS = ("gelu", "relu", "tanh", "linear", "gelu_exact")

# Which parameters the transformer layers share (paper, Table 4).
#   all       - attention and FFN follow the groups (the original release);
#   attention - only the attention sublayer follows the groups, every layer has its own FFN;
#   ffn       - only the FFN sublayer follows the groups, every layer has its own attention;
#   none      - every layer has its own parameters (BERT-like).
SHARING_MODES = ("all", "attention", "ffn", "none")

# Keys of released files that the original model never reads.
_PASSIVE_KEYS = ("net_structure_type", "gap_size", "num_memory_blocks", "layers_to_keep")




@dataclasses.dataclass
class AlbertConfig:
  """Configuration of the ALBERT encoder, with the original's keys and defaults.

  The defaults are the original's (`albert_xxlarge`); `vocab_size` has none.

  Example:
    >>> config = AlbertConfig(vocab_size=30000, hidden_size=768,
    ...                       num_attention_heads=12, intermediate_size=3072)
    >>> config.head_size
    64
  """

  vocab_size: int
  embedding_size: int = 128
  hidden_size: int = 4096
  num_hidden_layers: int = 12
  num_hidden_groups: int = 1
  num_attention_heads: int = 64
  intermediate_size: int = 16384
  inner_group_num: int = 1
  down_scale_factor: int = 1
  hidden_act: str = "gelu"
  hidden_dropout_prob: float = 0.0
  attention_probs_dropout_prob: float = 0.0
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  initializer_range: float = 0.02
  cross_layer_sharing: str = "all"
  net_structure_type: Optional[int] = None
  gap_size: Optional[int] = None
  num_memory_blocks: Optional[int] = None
  layers_to_keep: Optional[list] = None

  def __post_init__(self):
    self.validate()

  # ----------------------------------------------------------------------------------- checks
  def check_sequence_length(self, length: int, flag: str = "--max_seq_length",
                            source: Optional[str] = None, error=FlagError) -> None:
    """Refuses a sequence length the position embeddings cannot hold, in one line naming the
    flag and the config (`source`, its file, when known); `error`: the class to raise."""
    if length > self.max_position_embeddings:
      raise error(f"{flag}={length} exceeds max_position_embeddings="
                  f"{self.max_position_embeddings} of {source or 'the albert config'}")

  def validate(self, source: Optional[str] = None) -> None:
    """Raises ConfigError naming the first bad key (and `source`, a file name, if given)."""

    def fail(key, message):
      where = f" in {source}" if source else ""
      raise ConfigError(f"albert config{where}: `{key}` {message}")

    def positive_int(key):
      value = getattr(self, key)
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        fail(key, f"must be a positive integer, got {value!r}")

    for key in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
                "num_hidden_groups", "num_attention_heads", "intermediate_size",
                "inner_group_num", "max_position_embeddings", "type_vocab_size"):
      positive_int(key)
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
      value = getattr(self, key)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        fail(key, f"must be a probability in [0, 1), got {value!r}")
    value = self.initializer_range
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
      fail("initializer_range", f"must be a positive number, got {value!r}")
    value = self.down_scale_factor
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
      fail("down_scale_factor", f"must be a positive number, got {value!r}")
    if not isinstance(self.hidden_act, str) or self.hidden_act.lower() not in ACTIVATIONS:
      fail("hidden_act", f"must be one of {', '.join(ACTIVATIONS)}, got {self.hidden_act!r}")
    if self.hidden_size % self.num_attention_heads:
      fail("hidden_size", f"({self.hidden_size}) must be divisible by num_attention_heads "
           f"({self.num_attention_heads})")
    if self.num_hidden_groups > self.num_hidden_layers:
      fail("num_hidden_groups", f"({self.num_hidden_groups}) must not exceed "
           f"num_hidden_layers ({self.num_hidden_layers}); a group with no layer would "
           "hold parameters that are never used")
    if self.cross_layer_sharing not in SHARING_MODES:
      fail("cross_layer_sharing", f"must be one of {', '.join(SHARING_MODES)}, "
           f"got {self.cross_layer_sharing!r}")
    for key in ("net_structure_type", "gap_size", "num_memory_blocks"):
      value = getattr(self, key)
      if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                or value < 0):
        fail(key, f"must be a non-negative integer when present, got {value!r}")
    if self.layers_to_keep is not None and not isinstance(self.layers_to_keep, list):
      fail("layers_to_keep", f"must be a list when present, got {self.layers_to_keep!r}")

  # -------------------------------------------------------------------------- derived values
  @property
  def head_size(self) -> int:
    """D, the size of one attention head."""
    return self.hidden_size // self.num_attention_heads

  def group_of_layer(self, layer_index: int) -> int:
    """The group whose parameters layer `layer_index` uses, as the original computes it."""
    return int(layer_index / self.num_hidden_layers * self.num_hidden_groups)

  def attention_group(self, layer_index: int) -> int:
    """The group (variable scope `group_g`) of layer `layer_index`'s attention sublayer."""
    if self.cross_layer_sharing in ("all", "attention"):
      return self.group_of_layer(layer_index)
    return layer_index

  def ffn_group(self, layer_index: int) -> int:
    """The group (variable scope `group_g`) of layer `layer_index`'s FFN sublayer."""
    if self.cross_layer_sharing in ("all", "ffn"):
      return self.group_of_layer(layer_index)
    return layer_index

  # ------------------------------------------------------------------------------- in and out
  @classmethod
  def from_dict(cls, values: dict, source: Optional[str] = None) -> "AlbertConfig":
    """Builds a config from a dict of the JSON keys; unknown keys are an error."""
    where = f" in {source}" if source else ""
    if not isinstance(values, dict):
      raise ConfigError(f"albert config{where}: expected a JSON object, got "
                        f"{type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      raise ConfigError(f"albert config{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                        f"known keys are {', '.join(sorted(known))}")
    if "vocab_size" not in values:
      raise ConfigError(f"albert config{where}: `vocab_size` is required")
    config = cls.__new__(cls)
    for field in dataclasses.fields(cls):
      if field.name in values:
        value = values[field.name]
      elif field.default is not dataclasses.MISSING:
        value = field.default
      else:
        value = None
      setattr(config, field.name, value)
    # JSON writes 0.1 as a float and 0 as an int; both are valid probabilities.
    config.validate(source)
    return config

  @classmethod
  def from_json_file(cls, path: str) -> "AlbertConfig":
    """Reads a released `albert_config.json`; errors name the file."""
    path = os.fspath(path)
    try:
      with files.open_file(path, "r", encoding="utf-8") as reader:
        text = reader.read()
    except OSError as error:
      raise ConfigError(f"albert config {path}: cannot be read ({error.strerror})") from None
    try:
      values = json.loads(text)
    except json.JSONDecodeError as error:
      raise ConfigError(f"albert config {path}: not valid JSON ({error})") from None
    return cls.from_dict(values, source=path)

  def to_dict(self) -> dict:
    """The JSON keys; passive keys only when present, our own key only when not default."""
    values = dataclasses.asdict(self)
    for key in _PASSIVE_KEYS:
      if values[key] is None:
        del values[key]
    if values["cross_layer_sharing"] == "all":
      del values["cross_layer_sharing"]
    return values

  def to_json_string(self) -> str:
    """Serialises as the original does: sorted keys, indent 2, trailing newline."""
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  def to_json_file(self, path: str) -> None:
    """Writes atomically (a temporary name, then rename)."""
    files.write_text(os.fspath(path), self.to_json_string())

  def differences(self, other: "AlbertConfig") -> Dict[str, Tuple[Any, Any]]:
    """key -> (this config's value, `other`'s) for each key the model reads that differs (the
    passive keys of released files are not compared)."""
    mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
    return {k: (mine[k], theirs[k]) for k in sorted(mine)
            if k not in _PASSIVE_KEYS and mine[k] != theirs[k]}

  def replace(self, **changes: Any) -> "AlbertConfig":
    """A validated copy with some keys changed."""
    return dataclasses.replace(self, **changes)
