"""Functional task models: a dict of named inputs in, a dict of named outputs out.

Functional (not subclassed) so that variable names stay the original TF1 names: the backbone
layer is named `bert`, the heads `cls/predictions` and `cls/seq_relationship`.
"""

from __future__ import annotations

from typing import Dict, Optional

import tensorflow as tf
import tf_keras

from albert.config import AlbertConfig
from albert.heads import MaskedLMHead, SentenceOrderHead
from albert.modeling import AlbertBackbone


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
