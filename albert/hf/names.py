"""Hugging Face ALBERT <-> the original release: weight names, layouts and configs (numpy only).

HF stores torch `Linear` weights [out, in]; the original's Dense kernels are [in, out], so those
are transposed; embeddings, LayerNorms and the original's `output_weights` heads ([L,H], as
torch stores them) are not. Task models prefix the encoder with `albert.`; a bare `AlbertModel`
does not. The table is in docs/huggingface.md.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from albert.config import AlbertConfig
from albert.errors import CheckpointError

# HF `hidden_act` -> the albert config's. gelu_new / gelu_pytorch_tanh / gelu_fast are the tanh
# approximation (the original's gelu); HF's plain "gelu" is the exact erf form, ours
# "gelu_exact" (the HF copies of the v1 models use it).
ACTIVATION_FROM_HF = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu",
                      "gelu": "gelu_exact", "relu": "relu", "tanh": "tanh", "linear": "linear"}
ACTIVATION_TO_HF = {"gelu": "gelu_new", "gelu_exact": "gelu", "relu": "relu", "tanh": "tanh",
                    "linear": "linear"}
LAYER_NORM_EPS = 1e-12

# HF architectures -> the head of the original each carries ("none": the encoder alone).
ARCHITECTURE_HEADS = {"AlbertModel": "none", "AlbertForPreTraining": "pretraining",
                      "AlbertForMaskedLM": "masked_lm",
                      "AlbertForSequenceClassification": "classifier",
                      "AlbertForQuestionAnswering": "squad",
                      "AlbertForMultipleChoice": "race", "AlbertForTokenClassification": "none"}
HEAD_ARCHITECTURES = {"none": "AlbertModel", "pretraining": "AlbertForPreTraining",
                      "masked_lm": "AlbertForMaskedLM",
                      "classifier": "AlbertForSequenceClassification",
                      "regression": "AlbertForSequenceClassification",
                      "squad": "AlbertForQuestionAnswering", "race": "AlbertForMultipleChoice"}

# HF config keys with no albert_config.json counterpart that change nothing the weights compute.
IGNORED_HF_KEYS = ("architectures", "model_type", "transformers_version", "dtype", "torch_dtype",
                   "id2label", "label2id", "classifier_dropout_prob", "pad_token_id",
                   "bos_token_id", "eos_token_id", "problem_type", "num_labels",
                   "_name_or_path", "output_past", "layer_norm_eps", "position_embedding_type",
                   "hidden_act", "use_cache", "tie_word_embeddings", "finetuning_task")

_T = "bert/encoder/transformer/group_{g}/inner_group_{i}/"
_L = r"encoder\.albert_layer_groups\.(?P<g>\d+)\.albert_layers\.(?P<i>\d+)\."
# (HF key pattern after the `albert.` prefix for encoder rows, TF1 name template, transposed)
_ENCODER = [
    (r"embeddings\.word_embeddings\.weight", "bert/embeddings/word_embeddings", False),
    (r"embeddings\.token_type_embeddings\.weight", "bert/embeddings/token_type_embeddings",
     False),
    (r"embeddings\.position_embeddings\.weight", "bert/embeddings/position_embeddings", False),
    (r"embeddings\.LayerNorm\.weight", "bert/embeddings/LayerNorm/gamma", False),
    (r"embeddings\.LayerNorm\.bias", "bert/embeddings/LayerNorm/beta", False),
    (r"encoder\.embedding_hidden_mapping_in\.weight",
     "bert/encoder/embedding_hidden_mapping_in/kernel", True),
    (r"encoder\.embedding_hidden_mapping_in\.bias",
     "bert/encoder/embedding_hidden_mapping_in/bias", False),
    (r"pooler\.weight", "bert/pooler/dense/kernel", True),
    (r"pooler\.bias", "bert/pooler/dense/bias", False),
]
for _hf, _tf in (("attention.query", "attention_1/self/query"),
                 ("attention.key", "attention_1/self/key"),
                 ("attention.value", "attention_1/self/value"),
                 ("attention.dense", "attention_1/output/dense"),
                 ("ffn", "ffn_1/intermediate/dense"),
                 ("ffn_output", "ffn_1/intermediate/output/dense")):
  _ENCODER.append((_L + re.escape(_hf) + r"\.weight", _T + _tf + "/kernel", True))
  _ENCODER.append((_L + re.escape(_hf) + r"\.bias", _T + _tf + "/bias", False))
for _hf, _tf in (("attention.LayerNorm", "LayerNorm"), ("full_layer_layer_norm", "LayerNorm_1")):
  _ENCODER.append((_L + re.escape(_hf) + r"\.weight", _T + _tf + "/gamma", False))
  _ENCODER.append((_L + re.escape(_hf) + r"\.bias", _T + _tf + "/beta", False))

_HEADS = {
    "predictions.dense.weight": ("cls/predictions/transform/dense/kernel", True),
    "predictions.dense.bias": ("cls/predictions/transform/dense/bias", False),
    "predictions.LayerNorm.weight": ("cls/predictions/transform/LayerNorm/gamma", False),
    "predictions.LayerNorm.bias": ("cls/predictions/transform/LayerNorm/beta", False),
    "predictions.bias": ("cls/predictions/output_bias", False),
    "sop_classifier.classifier.weight": ("cls/seq_relationship/output_weights", False),
    "sop_classifier.classifier.bias": ("cls/seq_relationship/output_bias", False),
    "classifier.weight": ("output_weights", False),
    "classifier.bias": ("output_bias", False),
    "qa_outputs.weight": ("cls/squad/output_weights", False),
    "qa_outputs.bias": ("cls/squad/output_bias", False),
}
# HF keys that hold no weight of their own: tied copies and buffers (checked or dropped).
TIED_KEYS = {"predictions.decoder.weight": "bert/embeddings/word_embeddings",
             "predictions.decoder.bias": "cls/predictions/output_bias"}
BUFFER_KEYS = ("embeddings.position_ids",)
SQUAD_V2_PREFIXES = ("start_logits/", "end_logits/", "answer_class/")
_COMPILED = [(re.compile(p + r"\Z"), t, tr) for p, t, tr in _ENCODER]


def tf1_name(hf_key: str) -> Optional[Tuple[str, bool]]:
  """(original TF1 name, transposed) of an HF key, or None for a key with no counterpart."""
  if hf_key in _HEADS:
    return _HEADS[hf_key]
  key = hf_key[len("albert."):] if hf_key.startswith("albert.") else hf_key
  for pattern, template, transposed in _COMPILED:
    match = pattern.match(key)
    if match:
      return template.format(**match.groupdict()), transposed
  return None


def hf_key(name: str, prefix: str = "albert.") -> Optional[Tuple[str, bool]]:
  """(HF key, transposed) of an original TF1 name (encoder keys get `prefix`), or None."""
  for key, (tf_name, transposed) in _HEADS.items():
    if tf_name == name:
      return key, transposed
  match = re.match(r"bert/encoder/transformer/group_(\d+)/inner_group_(\d+)/(.*)\Z", name)
  for pattern, template, transposed in _ENCODER:
    if match and "{g}" in template:
      if template.format(g=match.group(1), i=match.group(2)) == name:
        key = pattern.replace("(?P<g>\\d+)", match.group(1)).replace("(?P<i>\\d+)",
                                                                       match.group(2))
        return prefix + key.replace("\\", ""), transposed
    elif template == name:
      return prefix + pattern.replace("\\", ""), transposed
  return None


def expected_shapes(config: AlbertConfig, pooler: bool = True) -> Dict[str, List[int]]:
  """TF1 name -> shape of every encoder variable `config` implies (and the MLM / SOP heads'
  where their sizes follow from it); what a folder's tensors are checked against."""
  e, h, i, v = (config.embedding_size, config.hidden_size, config.intermediate_size,
                config.vocab_size)
  shapes = {"bert/embeddings/word_embeddings": [v, e],
            "bert/embeddings/token_type_embeddings": [config.type_vocab_size, e],
            "bert/embeddings/position_embeddings": [config.max_position_embeddings, e],
            "bert/embeddings/LayerNorm/gamma": [e], "bert/embeddings/LayerNorm/beta": [e]}
  if e != h:
    shapes["bert/encoder/embedding_hidden_mapping_in/kernel"] = [e, h]
    shapes["bert/encoder/embedding_hidden_mapping_in/bias"] = [h]
  for g in range(config.num_hidden_groups):
    for inner in range(config.inner_group_num):
      t = _T.format(g=g, i=inner)
      for part in ("attention_1/self/query", "attention_1/self/key", "attention_1/self/value",
                   "attention_1/output/dense"):
        shapes[t + part + "/kernel"], shapes[t + part + "/bias"] = [h, h], [h]
      shapes[t + "ffn_1/intermediate/dense/kernel"] = [h, i]
      shapes[t + "ffn_1/intermediate/dense/bias"] = [i]
      shapes[t + "ffn_1/intermediate/output/dense/kernel"] = [i, h]
      shapes[t + "ffn_1/intermediate/output/dense/bias"] = [h]
      for norm in ("LayerNorm", "LayerNorm_1"):
        shapes[t + norm + "/gamma"], shapes[t + norm + "/beta"] = [h], [h]
  if pooler:
    shapes["bert/pooler/dense/kernel"], shapes["bert/pooler/dense/bias"] = [h, h], [h]
  heads = {"cls/predictions/transform/dense/kernel": [h, e],
           "cls/predictions/transform/dense/bias": [e],
           "cls/predictions/transform/LayerNorm/gamma": [e],
           "cls/predictions/transform/LayerNorm/beta": [e], "cls/predictions/output_bias": [v],
           "cls/seq_relationship/output_weights": [2, h], "cls/seq_relationship/output_bias": [2],
           "cls/squad/output_weights": [2, h], "cls/squad/output_bias": [2]}
  return {**shapes, **{f"(head) {k}": s for k, s in heads.items()}}


# --------------------------------------------------------------------------------- configs
def config_from_hf(values: dict, source: str) -> AlbertConfig:
  """The albert config of an HF `config.json` (already parsed); refuses by name what the model
  cannot compute as HF does."""
  def fail(message):
    raise CheckpointError(f"{source}: {message}")

  if not isinstance(values, dict):
    fail("expected a JSON object")
  if values.get("model_type") != "albert":
    fail(f"model_type is {values.get('model_type')!r}, not 'albert': not an ALBERT model")
  act = values.get("hidden_act", "gelu_new")
  if act not in ACTIVATION_FROM_HF:
    fail(f"hidden_act {act!r} is not supported (supported: "
         f"{', '.join(sorted(ACTIVATION_FROM_HF))})")
  eps = values.get("layer_norm_eps", LAYER_NORM_EPS)
  if eps != LAYER_NORM_EPS:
    fail(f"layer_norm_eps {eps!r} is not supported: the original ALBERT's LayerNorm epsilon "
         f"is {LAYER_NORM_EPS!r}, and outputs would differ")
  position = values.get("position_embedding_type", "absolute")
  if position != "absolute":
    fail(f"position_embedding_type {position!r} is not supported: the original ALBERT has "
         "absolute position embeddings only")
  known = {"vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
           "num_hidden_groups", "num_attention_heads", "intermediate_size", "inner_group_num",
           "down_scale_factor", "hidden_dropout_prob", "attention_probs_dropout_prob",
           "max_position_embeddings", "type_vocab_size", "initializer_range",
           "net_structure_type", "gap_size", "num_memory_blocks", "layers_to_keep"}
  fields = {k: v for k, v in values.items() if k in known}
  fields["hidden_act"] = ACTIVATION_FROM_HF[act]
  try:
    return AlbertConfig.from_dict(fields, source=source)
  except Exception as error:  # a ConfigError names the key
    fail(str(error))
    raise


def labels_from_hf(values: dict, source: str) -> Optional[List[str]]:
  """The label list of `id2label` (index order), or None when the config has none."""
  id2label = values.get("id2label")
  if not id2label:
    return None
  try:
    indexed = {int(k): str(v) for k, v in id2label.items()}
  except (AttributeError, TypeError, ValueError):
    raise CheckpointError(f"{source}: id2label must map 0..L-1 to labels, got "
                          f"{id2label!r}") from None
  if sorted(indexed) != list(range(len(indexed))):
    raise CheckpointError(f"{source}: id2label must map 0..L-1 to labels, got keys "
                          f"{sorted(indexed)}")
  return [indexed[i] for i in range(len(indexed))]


def config_to_hf(config: AlbertConfig, architecture: str,
                 labels: Optional[List[str]] = None, regression: bool = False) -> dict:
  """An HF `config.json` (as a dict) for `config` and an architecture."""
  if config.hidden_act.lower() not in ACTIVATION_TO_HF:
    raise CheckpointError(f"hidden_act {config.hidden_act!r} has no HF counterpart")
  if config.cross_layer_sharing != "all":
    raise CheckpointError(f"cross_layer_sharing {config.cross_layer_sharing!r}: HF's ALBERT "
                          "shares every layer of a group (only 'all' can be written)")
  values = {k: v for k, v in config.to_dict().items() if v is not None}
  values.update({"architectures": [architecture], "model_type": "albert",
                 "hidden_act": ACTIVATION_TO_HF[config.hidden_act.lower()],
                 "layer_norm_eps": LAYER_NORM_EPS, "position_embedding_type": "absolute",
                 "classifier_dropout_prob": 0.1, "pad_token_id": 0, "bos_token_id": 2,
                 "eos_token_id": 3})
  if labels:
    values["id2label"] = {str(i): label for i, label in enumerate(labels)}
    values["label2id"] = {label: i for i, label in enumerate(labels)}
  if regression:
    values.update(num_labels=1, problem_type="regression")
  return values


def is_unnamed(folder_labels: Optional[List[str]]) -> bool:
  """No labels, or HF's default names `LABEL_0`, `LABEL_1`, ... (a config that names none)."""
  return not folder_labels or all(label == f"LABEL_{i}" for i, label in enumerate(folder_labels))


def label_order(folder_labels: Optional[List[str]], task_labels: Optional[List[str]]
                ) -> Tuple[Optional[List[int]], Optional[str]]:
  """How a folder's classifier rows (its id2label) map to a task's labels: (None, None) when they
  agree or either is unnamed (HF's default `LABEL_i`); (row order, None) when the same labels
  (ignoring case) come in another order; (None, why) when they are other labels."""
  if is_unnamed(folder_labels) or not task_labels:
    return None, None
  ours = [str(label).lower() for label in task_labels]
  theirs = [label.lower() for label in folder_labels]
  if ours == theirs:
    return None, None
  if sorted(ours) == sorted(theirs) and len(set(ours)) == len(ours):
    return [theirs.index(label) for label in ours], None
  return None, (f"the Hugging Face folder's labels {folder_labels} are not the task's "
                f"{list(task_labels)}")
