"""Makes the tiny Hugging Face ALBERT folders of tests/testdata/hf/ with transformers itself.

Dev-only: needs torch (CPU) and transformers, which the project does not use at run time. Make
the environment once and run from the repository root (see tests/testdata/README.md):

  python3.11 -m venv /work/notes/venv-hf
  /work/notes/venv-hf/bin/pip install torch==2.13.0 transformers==4.57.6 sentencepiece==0.2.3 \
      safetensors==0.8.0 numpy==2.4.6
  /work/notes/venv-hf/bin/python tests/testdata/hf/make_fixtures.py

Each folder is what `save_pretrained` writes (config.json, model.safetensors) plus
`outputs.npz`: the fixed inputs and HF's outputs on them (eval mode, float32). Every parameter
(LayerNorm and biases too) is drawn at random so that a swapped or untransposed weight shows.
`pretraining/` also holds the test SentencePiece model (tests/testdata/golden/spm.model, 1000
pieces) with the tokenizer files AlbertTokenizer writes, and `tokenizer_ids.json`: HF's ids
for fixed strings.
"""

import json
import os
import shutil

import numpy as np
import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
SPM = os.path.join(HERE, "..", "golden", "spm.model")
VOCAB = 1000
BATCH, SEQ, CHOICES = 2, 12, 3
TEXTS = ["Hello World! Ünïcödé   spaces\tand tabs.", "The quick brown fox, 1,234.5 jumps.",
         "ALBERT: A Lite BERT -- for self-supervised learning", "naïve café résumé", "",
         "  leading and trailing  ", "don't stop (believing)"]

COMMON = dict(vocab_size=VOCAB, max_position_embeddings=64, type_vocab_size=2,
              hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, layer_norm_eps=1e-12,
              initializer_range=0.02)
FIXTURES = {
    # name: (class, config overrides)
    "pretraining": ("AlbertForPreTraining", dict(
        embedding_size=16, hidden_size=32, num_hidden_layers=4, num_hidden_groups=2,
        inner_group_num=2, num_attention_heads=4, intermediate_size=48, hidden_act="gelu_new")),
    "sequence_classification": ("AlbertForSequenceClassification", dict(
        embedding_size=8, hidden_size=24, num_hidden_layers=3, num_hidden_groups=1,
        inner_group_num=1, num_attention_heads=3, intermediate_size=40, hidden_act="gelu",
        num_labels=3, id2label={0: "contradiction", 1: "entailment", 2: "neutral"},
        label2id={"contradiction": 0, "entailment": 1, "neutral": 2})),
    "question_answering": ("AlbertForQuestionAnswering", dict(
        embedding_size=16, hidden_size=32, num_hidden_layers=2, num_hidden_groups=1,
        inner_group_num=1, num_attention_heads=4, intermediate_size=48,
        hidden_act="gelu_new")),
    "multiple_choice": ("AlbertForMultipleChoice", dict(
        embedding_size=16, hidden_size=32, num_hidden_layers=2, num_hidden_groups=2,
        inner_group_num=1, num_attention_heads=4, intermediate_size=48, hidden_act="relu")),
}


def inputs(rng, shape):
  ids = rng.integers(5, VOCAB, size=shape).astype(np.int64)
  ids[..., 0] = 2  # [CLS]
  mask = np.ones(shape, np.int64)
  mask[0, ..., -4:] = 0  # padding in the first example
  ids[mask == 0] = 0
  types = np.zeros(shape, np.int64)
  types[..., shape[-1] // 2:] = 1
  types[mask == 0] = 0
  return ids, mask, types


def make(name, cls_name, overrides, seed):
  torch.manual_seed(seed)
  config = transformers.AlbertConfig(**COMMON, **overrides)
  model = getattr(transformers, cls_name)(config).eval()
  with torch.no_grad():
    for parameter in model.parameters():
      parameter.copy_(torch.randn_like(parameter) * 0.2 + (0.5 if parameter.ndim == 1 else 0))
  rng = np.random.default_rng(seed)
  shape = (BATCH, CHOICES, SEQ) if cls_name == "AlbertForMultipleChoice" else (BATCH, SEQ)
  ids, mask, types = inputs(rng, shape)
  with torch.no_grad():
    out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                token_type_ids=torch.tensor(types), output_hidden_states=True)
    base = model.albert(input_ids=torch.tensor(ids.reshape(-1, SEQ)),
                        attention_mask=torch.tensor(mask.reshape(-1, SEQ)),
                        token_type_ids=torch.tensor(types.reshape(-1, SEQ)))
  record = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types,
            "sequence_output": base.last_hidden_state.numpy()}
  if base.pooler_output is not None:  # AlbertForQuestionAnswering has no pooler
    record["pooled_output"] = base.pooler_output.numpy()
  for key in ("prediction_logits", "sop_logits", "logits", "start_logits", "end_logits"):
    if getattr(out, key, None) is not None:
      record[key] = getattr(out, key).numpy()
  folder = os.path.join(HERE, name)
  shutil.rmtree(folder, ignore_errors=True)
  model.save_pretrained(folder, safe_serialization=True)
  np.savez(os.path.join(folder, "outputs.npz"), **record)
  return folder


def tokenizer_files(folder):
  tokenizer = transformers.AlbertTokenizer(vocab_file=SPM, do_lower_case=True,
                                           keep_accents=False)
  tokenizer.save_pretrained(folder)
  ids = {"do_lower_case": True, "keep_accents": False,
         "texts": TEXTS, "ids": [tokenizer.encode(t) for t in TEXTS],
         "pairs": [tokenizer.encode(TEXTS[0], TEXTS[1])]}
  cased = transformers.AlbertTokenizer(vocab_file=SPM, do_lower_case=False, keep_accents=True)
  ids["cased_keep_accents_ids"] = [cased.encode(t) for t in TEXTS]
  with open(os.path.join(folder, "tokenizer_ids.json"), "w", encoding="utf-8") as f:
    json.dump(ids, f, indent=1, ensure_ascii=False)
    f.write("\n")


def main():
  for seed, (name, (cls_name, overrides)) in enumerate(sorted(FIXTURES.items())):
    folder = make(name, cls_name, overrides, 100 + seed)
    if name == "pretraining":
      tokenizer_files(folder)
    print(folder, sorted(os.listdir(folder)))
  with open(os.path.join(HERE, "versions.json"), "w", encoding="utf-8") as f:
    json.dump({"torch": torch.__version__, "transformers": transformers.__version__}, f)
    f.write("\n")


if __name__ == "__main__":
  main()
