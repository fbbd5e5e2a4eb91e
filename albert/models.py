"""Functional task models: a dict of named inputs in, a dict of named outputs out.

Functional (not subclassed) so that variable names stay the original TF1 names: the backbone
layer is named `bert`, the heads `cls/predictions` and `cls/seq_relationship` (pretraining),
"" (the classifier and multiple-choice heads, whose variables sit at the root), `cls/squad`
(SQuAD v1), `start_logits`, `end_logits`, `answer_class` (SQuAD v2).

The fine-tuning builders take the encoder from an `AlbertConfig` (a fresh `AlbertBackbone`
named `bert`) or as a layer (`albert.hub.load_encoder(handle)`, whose variables keep the
`bert/...` names), so one task code fine-tunes from a TF1 checkpoint or a hub handle. An
encoder layer takes a dict of `input_ids`, `input_mask`, `segment_ids` [B,S] and returns at
least `sequence_output` [B,S,H] and `pooled_output` [B,H].

`output_subset(model, keys)` is a model with the same layers computing only some outputs (and
taking only the inputs those need), e.g. SQuAD v2 training without the beam search.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Union

import tensorflow as tf
import tf_keras

from albert.config import AlbertConfig
from albert.errors import FlagError, InputError
from albert.heads import (ClassifierHead, MaskedLMHead, MultipleChoiceHead, SentenceOrderHead,
                          SquadV1Head, SquadV2AnswerClassHead, SquadV2EndHead, SquadV2StartHead)
from albert.modeling import AlbertBackbone

ENCODER_INPUTS = ("input_ids", "input_mask", "segment_ids")
# SQuAD v2 outputs the training step needs, and those prediction needs (the beam search).
SQUAD_V2_TRAIN_OUTPUTS = ("start_log_probs", "end_log_probs", "cls_logits")
SQUAD_V2_PREDICT_OUTPUTS = ("start_top_log_probs", "start_top_index", "end_top_log_probs",
                            "end_top_index", "cls_logits")


def encoder_inputs(seq_length: Optional[int] = None) -> Dict[str, tf_keras.Input]:
  """int32 inputs `input_ids`, `input_mask`, `segment_ids` [B,S] (S may be None)."""
  return {name: tf_keras.Input(shape=(seq_length,), dtype=tf.int32, name=name)
          for name in ("input_ids", "input_mask", "segment_ids")}


def build_encoder_model(config: AlbertConfig, seq_length: Optional[int] = None,
                        return_attention_probs: bool = False,
                        name: str = "albert_encoder") -> tf_keras.Model:
  """Encoder model: outputs `sequence_output`, `pooled_output`, `encoder_outputs`, ...

  Example:
    >>> model = build_encoder_model(AlbertConfig.from_json_file("configs/tiny/albert_config.json"))
    >>> sorted(model.output)[:2]
    ['embedding_output', 'encoder_input']
  """
  inputs = encoder_inputs(seq_length)
  bert = AlbertBackbone(config, return_attention_probs=return_attention_probs, name="bert")
  outputs = bert(inputs)
  return tf_keras.Model(inputs=inputs, outputs=outputs, name=name)


def build_pretraining_model(config: AlbertConfig, seq_length: Optional[int] = None,
                            max_predictions_per_seq: Optional[int] = None,
                            name: str = "albert_pretraining") -> tf_keras.Model:
  """Backbone + MLM + SOP heads.

  Inputs: `input_ids`, `input_mask`, `segment_ids` [B,S], `masked_lm_positions` [B,P].
  Outputs: `sequence_output`, `pooled_output`, `encoder_outputs`, `mlm_logits` [B,P,V],
  `sop_logits` [B,2].
  """
  inputs = encoder_inputs(seq_length)
  inputs["masked_lm_positions"] = tf_keras.Input(
      shape=(max_predictions_per_seq,), dtype=tf.int32, name="masked_lm_positions")
  bert = AlbertBackbone(config, name="bert")
  encoded = bert({k: inputs[k] for k in ("input_ids", "input_mask", "segment_ids")})
  mlm = MaskedLMHead(config, bert.embeddings, name="cls/predictions")
  sop = SentenceOrderHead(config, name="cls/seq_relationship")
  outputs = {
      "sequence_output": encoded["sequence_output"],
      "pooled_output": encoded["pooled_output"],
      "encoder_outputs": encoded["encoder_outputs"],
      "mlm_logits": mlm(encoded["sequence_output"], inputs["masked_lm_positions"]),
      "sop_logits": sop(encoded["pooled_output"]),
  }
  return tf_keras.Model(inputs=inputs, outputs=outputs, name=name)


# ------------------------------------------------------------------------------ fine-tuning
def _encoder_layer(config: Optional[AlbertConfig],
                   encoder: Union[tf_keras.layers.Layer, str, None]) -> tf_keras.layers.Layer:
  """The encoder of a fine-tuning model: `encoder` itself, the encoder of a hub handle (a str:
  `--albert_hub_module_handle`, loaded trainable by `albert.hub.load_encoder`; its variables
  keep the `bert/...` names; `config` serves a TF1 module that carries none), or a fresh
  backbone `bert` from `config`."""
  if isinstance(encoder, str):
    from albert import hub  # pylint: disable=g-import-not-at-top
    return hub.load_encoder(encoder, trainable=True, albert_config=config)
  if encoder is not None:
    return encoder
  if config is None:
    raise FlagError("a fine-tuning model needs an albert config (--albert_config_file) or an "
                    "encoder layer (--albert_hub_module_handle)")
  return AlbertBackbone(config, name="bert")


def _initializer_range(config: Optional[AlbertConfig]) -> float:
  return config.initializer_range if config is not None else 0.02


def _float32(tensor, name: str):
  """The model output `name` in float32 (a no-op in float32; a cast under a mixed policy)."""
  return tf_keras.layers.Activation("linear", dtype="float32", name=name)(tensor)


def _check_positive(name: str, value: int) -> None:
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise FlagError(f"{name} must be a positive integer, got {value!r}")


def build_classifier_model(albert_config: Optional[AlbertConfig], num_labels: int,
                           regression: bool = False,
                           encoder: Union[tf_keras.layers.Layer, str, None] = None,
                           name: str = "albert_classifier",
                           multi_label: bool = False) -> tf_keras.Model:
  """Encoder + the GLUE head of `run_classifier.py` (see `heads.ClassifierHead`).

  Inputs: int32 `input_ids`, `input_mask`, `segment_ids` [B,S] (S free).
  Outputs (float32): `pooled_output` [B,H], `logits` [B,L], `probabilities`, `log_probs` [B,L],
  `predictions` [B] (int32); with `regression=True` (STS-B, `num_labels=1`): `logits` [B],
  `probabilities` [B,1], `predictions` [B] (= logits). Dropout 0.1 on the pooled output in
  training (hard-coded, as the original). Loss: `losses.classification_loss` /
  `losses.regression_loss`.

  Example:
    >>> config = AlbertConfig.from_json_file("configs/tiny/albert_config.json")
    >>> model = build_classifier_model(config, num_labels=2)
    >>> sorted(n for n in (v.name for v in model.weights) if not n.startswith("bert/"))
    ['output_bias:0', 'output_weights:0']
  """
  _check_positive("num_labels", num_labels)
  if regression and num_labels != 1:
    raise FlagError(f"a regression head (STS-B) has num_labels 1, got {num_labels}")
  if not regression and not multi_label and num_labels < 2:
    raise FlagError("a classification head needs num_labels >= 2 (one label is regression: "
                    "pass regression=True)")
  inputs = encoder_inputs()
  encoded = _encoder_layer(albert_config, encoder)(inputs)
  head = ClassifierHead(num_labels, regression=regression, name="", multi_label=multi_label)
  outputs = {"pooled_output": _float32(encoded["pooled_output"], "pooled_output"),
             **head(encoded["pooled_output"])}
  return tf_keras.Model(inputs=inputs, outputs=outputs, name=name)


class ChoicesToRows(tf_keras.layers.Layer):
  """[B, C*S] features (choice-major, as RACE records store them) -> [B*C, S] rows."""

  def __init__(self, num_choices: int, name: str = "choices_to_rows", **kwargs):
    super().__init__(name=name, **kwargs)
    self.num_choices = int(num_choices)

  def call(self, features):
    static_width = features["input_ids"].shape[1]
    if static_width is not None and static_width % self.num_choices:
      raise InputError(f"multiple-choice inputs are num_choices ({self.num_choices}) x "
                       f"max_seq_length wide; got width {static_width}")
    width = tf.shape(features["input_ids"])[1]
    checks = [tf.debugging.assert_equal(
        width % self.num_choices, 0,
        message=f"multiple-choice inputs must be num_choices ({self.num_choices}) x "
                "max_seq_length wide")]
    with tf.control_dependencies(checks):
      seq = width // self.num_choices
    return {k: tf.reshape(features[k], [-1, seq]) for k in ENCODER_INPUTS}

  def get_config(self):
    return {**super().get_config(), "num_choices": self.num_choices}


def build_race_model(albert_config: Optional[AlbertConfig], num_choices: int = 4,
                     max_seq_length: Optional[int] = None, dropout_prob: float = 0.1,
                     encoder: Union[tf_keras.layers.Layer, str, None] = None,
                     name: str = "albert_race") -> tf_keras.Model:
  """Encoder + the multiple-choice head of `run_race.py` (see `heads.MultipleChoiceHead`).

  Inputs: int32 `input_ids`, `input_mask`, `segment_ids` [B, C*S], the C choices one after the
  other (choice-major, as the original's records); `max_seq_length` fixes S (None: S = width
  / C). Each choice is encoded as its own row [B*C, S].
  Outputs (float32): `pooled_output` [B*C,H], `logits` [B,C], `probabilities`, `log_probs`
  [B,C], `predictions` [B] (int32). Dropout `dropout_prob` (the original's flag, default 0.1)
  on the pooled output in training. Loss: `losses.multiple_choice_loss`.
  """
  _check_positive("num_choices", num_choices)
  if max_seq_length is not None:
    _check_positive("max_seq_length", max_seq_length)
  if not 0 <= dropout_prob < 1:
    raise FlagError(f"dropout_prob must be in [0, 1), got {dropout_prob}")
  width = None if max_seq_length is None else num_choices * max_seq_length
  inputs = encoder_inputs(width)
  rows = ChoicesToRows(num_choices)(inputs)  # [B*C,S] each
  encoded = _encoder_layer(albert_config, encoder)(rows)
  head = MultipleChoiceHead(num_choices, dropout_rate=dropout_prob, name="")
  outputs = {"pooled_output": _float32(encoded["pooled_output"], "pooled_output"),
             **head(encoded["pooled_output"])}
  return tf_keras.Model(inputs=inputs, outputs=outputs, name=name)


def build_squad_model(albert_config: Optional[AlbertConfig], version_2_with_negative: bool,
                      start_n_top: int = 5, end_n_top: int = 5, dropout_prob: float = 0.1,
                      encoder: Union[tf_keras.layers.Layer, str, None] = None,
                      name: Optional[str] = None) -> tf_keras.Model:
  """Encoder + the SQuAD head of `run_squad_v1.py` or ALBERT's v2 head (`run_squad_v2.py`).

  Inputs: int32 `input_ids`, `input_mask`, `segment_ids`, `p_mask` [B,S] (p_mask 1 = not a
  legal answer position; v1 ignores it, as the original's v1 does, so that both versions take
  the same features); v2 also `start_positions` [B].

  v1 outputs (float32): `start_logits`, `end_logits` [B,S] (raw logits, train and predict).
  Loss: `losses.squad_v1_loss`.

  v2 outputs: the training ones, `start_log_probs` [B,S], `end_log_probs` [B,S] (the end given
  the start `start_positions`: the gold start in training), `cls_logits` [B] (answer-class
  logit, with dropout `dropout_prob` in training); and the prediction ones (beam search, which
  does not read `start_positions`): `start_top_log_probs`, `start_top_index` [B,start_n_top],
  `end_top_log_probs`, `end_top_index` [B,start_n_top*end_n_top]. Masked log-probs are
  exactly -1e30. Loss: `losses.squad_v2_loss`.

  Training vs predict in one model: the model computes both. For prediction without
  `start_positions`, use `output_subset(model, SQUAD_V2_PREDICT_OUTPUTS)` (inputs without
  `start_positions`), or feed zeros. A train step may use `output_subset(model,
  SQUAD_V2_TRAIN_OUTPUTS)`, which skips the beam search; the full model gives the same
  training outputs, with the beam computed on the side. All share the same variables.
  """
  for key, value in (("start_n_top", start_n_top), ("end_n_top", end_n_top)):
    _check_positive(key, value)
  if not 0 <= dropout_prob < 1:
    raise FlagError(f"dropout_prob must be in [0, 1), got {dropout_prob}")
  inputs = encoder_inputs()
  inputs["p_mask"] = tf_keras.Input(shape=(None,), dtype=tf.int32, name="p_mask")
  encoder = _encoder_layer(albert_config, encoder)
  sequence_output = encoder({k: inputs[k] for k in ENCODER_INPUTS})["sequence_output"]
  if not version_2_with_negative:
    outputs = SquadV1Head(name="cls/squad")(sequence_output)
    return tf_keras.Model(inputs=inputs, outputs=outputs, name=name or "albert_squad_v1")

  inputs["start_positions"] = tf_keras.Input(shape=(), dtype=tf.int32, name="start_positions")
  init = _initializer_range(albert_config)
  start_head = SquadV2StartHead(init, name="start_logits")
  end_head = SquadV2EndHead(start_n_top, end_n_top, init, name="end_logits")
  answer_head = SquadV2AnswerClassHead(dropout_prob, init, name="answer_class")
  start = start_head(sequence_output, inputs["p_mask"])
  end_log_probs = end_head(sequence_output, inputs["p_mask"],
                           start_positions=inputs["start_positions"])
  beam = end_head(sequence_output, inputs["p_mask"], start_log_probs=start["log_probs"])
  outputs = {"start_log_probs": start["log_probs"], "end_log_probs": end_log_probs,
             "cls_logits": answer_head(sequence_output, start["masked_logits"]),
             **{k: beam[k] for k in SQUAD_V2_PREDICT_OUTPUTS if k != "cls_logits"}}
  return tf_keras.Model(inputs=inputs, outputs=outputs, name=name or "albert_squad_v2")


def _reaching_inputs(tensors) -> set:
  """ids of the Input tensors the KerasTensors `tensors` are computed from."""
  found, seen, stack = set(), set(), list(tf.nest.flatten(tensors))
  while stack:
    tensor = stack.pop()
    if id(tensor) in seen:
      continue
    seen.add(id(tensor))
    layer, node_index, _ = tensor._keras_history  # pylint: disable=protected-access
    node = layer._inbound_nodes[node_index]  # pylint: disable=protected-access
    if node.is_input:
      found.add(id(tensor))
    else:
      stack.extend(tf.nest.flatten(node.keras_inputs))
  return found


def output_subset(model: tf_keras.Model, keys: Iterable[str],
                  name: Optional[str] = None) -> tf_keras.Model:
  """The functional `model` restricted to the outputs `keys`, sharing its layers and variables.

  Only the layers those outputs need run, and only the inputs they need are inputs (e.g.
  `output_subset(squad_v2_model, SQUAD_V2_PREDICT_OUTPUTS)` takes no `start_positions`).
  """
  keys = list(keys)
  unknown = [k for k in keys if k not in model.output]
  if unknown:
    raise FlagError(f"model {model.name} has no output {', '.join(unknown)}; its outputs are "
                    f"{', '.join(sorted(model.output))}")
  outputs = {k: model.output[k] for k in keys}
  needed = _reaching_inputs(list(outputs.values()))
  inputs = {k: v for k, v in model.input.items() if id(v) in needed}
  return tf_keras.Model(inputs=inputs, outputs=outputs,
                        name=name or f"{model.name}_{'_'.join(keys)[:40]}")
