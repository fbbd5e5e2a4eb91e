"""Runs transformers itself (in the dev-only environment, see tests/testdata/README.md) on HF
folders: the helper of tests/contracts/test_hf_transformers.py, run in a subprocess.

  python hf_transformers_run.py job.json result.npz

job.json: a list of {"name", "folder", "class", "inputs": npz path, "tokenizer_texts"?,
"tf1_checkpoint"?}; for each, the model is loaded with `<class>.from_pretrained(folder)` (and
`AutoModel`, `AutoTokenizer` where asked) and run in eval mode on the npz's `input_ids`,
`attention_mask`, `token_type_ids`; every output goes into result.npz as `<name>/<output>`.
With "tf1_checkpoint", HF's own TF1 reader (`load_tf_weights_in_albert`, transformers 4.x, needs
TensorFlow) loads that checkpoint into a fresh model of the folder's config instead.
"""

import json
import sys

import numpy as np
import torch
import transformers


def main(job_file, result_file):
  with open(job_file, encoding="utf-8") as f:
    jobs = json.load(f)
  result = {"versions/transformers": np.array(transformers.__version__)}
  for job in jobs:
    cls = getattr(transformers, job["class"])
    if job.get("tf1_checkpoint"):
      config = transformers.AlbertConfig.from_pretrained(job["folder"])
      model = cls(config)
      transformers.load_tf_weights_in_albert(model, config, job["tf1_checkpoint"])
    else:
      model = cls.from_pretrained(job["folder"])
    model.eval()
    data = np.load(job["inputs"])
    feed = {k: torch.tensor(data[k].astype(np.int64))
            for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
      out = model(**feed)
      if hasattr(model, "albert"):
        rows = {k: v.reshape(-1, v.shape[-1]) for k, v in feed.items()}
        base = model.albert(**rows)
        result[f"{job['name']}/sequence_output"] = base.last_hidden_state.numpy()
        if base.pooler_output is not None:
          result[f"{job['name']}/pooled_output"] = base.pooler_output.numpy()
    for key, value in out.items():
      if isinstance(value, torch.Tensor):
        result[f"{job['name']}/{key}"] = value.numpy()
    if job.get("auto_model"):
      auto = transformers.AutoModel.from_pretrained(job["folder"]).eval()
      with torch.no_grad():
        rows = {k: v.reshape(-1, v.shape[-1]) for k, v in feed.items()}
        result[f"{job['name']}/auto_sequence_output"] = auto(**rows).last_hidden_state.numpy()
    if job.get("tokenizer_texts"):
      tokenizer = transformers.AutoTokenizer.from_pretrained(job["folder"], use_fast=False)
      result[f"{job['name']}/tokenizer_class"] = np.array(type(tokenizer).__name__)
      for i, text in enumerate(job["tokenizer_texts"]):
        result[f"{job['name']}/tokens_{i}"] = np.array(tokenizer.encode(text))
  np.savez(result_file, **result)


if __name__ == "__main__":
  main(*sys.argv[1:])
