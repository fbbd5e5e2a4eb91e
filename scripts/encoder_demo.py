"""The encoder pipeline on the embedded default: build, save and reload in TF1 names, check parity.

`python scripts/encoder_demo.py`, from the repository root (the default paths are relative to
it), does, with visible output:
1. builds the encoder of `configs/tiny/albert_config.json` and prints its variables;
2. saves it as a TF1-name checkpoint under `--output_dir`, reloads it into a fresh model and
   checks that the outputs are bit-identical;
3. loads the original release's golden checkpoint (`tests/testdata/golden/model_A`), prints the
   load report and the largest difference from the original's recorded outputs;
4. prints the parameter table of the paper's Tables 1, 3 and 4 from real model instances.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

import numpy as np

# The repository root, so that `python scripts/encoder_demo.py` finds `albert` without PYTHONPATH.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _step(title: str) -> None:
  print(f"\n== {title}", flush=True)


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--albert_config_file",
                      default=os.path.join("configs", "tiny", "albert_config.json"),
                      help="the encoder of steps 1 and 2")
  parser.add_argument("--golden_dir",
                      default=os.path.join("tests", "testdata", "golden", "model_A"),
                      help="the original release's checkpoint, config and recorded outputs")
  parser.add_argument("--output_dir", default=os.path.join("output", "encoder_demo"),
                      help="where the round-trip checkpoint of step 2 goes")
  parser.add_argument("--skip_param_table", action="store_true",
                      help="skip step 4 (the parameter tables)")
  args = parser.parse_args(argv)
  from albert.errors import run_cleanly  # pylint: disable=g-import-not-at-top
  status = []
  run_cleanly(lambda: status.append(_run(args)))
  return status[0] if status else 0


def _run(args) -> int:
  from albert import files  # pylint: disable=g-import-not-at-top
  from albert.cli import startup
  files.check_output_dir(args.output_dir)
  for path in (args.albert_config_file, os.path.join(args.golden_dir, "albert_config.json"),
               os.path.join(args.golden_dir, "outputs.npz")):
    if not os.path.isfile(path):
      raise FileNotFoundError(2, "No such file or directory (run from the repository root, or "
                              "pass the path)", path)
  startup.start_tensorflow()
  import tf_keras  # pylint: disable=g-import-not-at-top
  from albert import checkpoint, losses, param_table  # pylint: disable=g-import-not-at-top
  from albert.config import AlbertConfig  # pylint: disable=g-import-not-at-top
  from albert.models import (  # pylint: disable=g-import-not-at-top
      build_encoder_model, build_pretraining_model)

  tf_keras.utils.set_random_seed(12345)
  start = time.time()

  _step(f"1. Encoder of {args.albert_config_file}")
  config = AlbertConfig.from_json_file(args.albert_config_file)
  model = build_encoder_model(config)
  rng = np.random.RandomState(0)
  features = {"input_ids": rng.randint(5, config.vocab_size, (2, 16)).astype(np.int32),
              "input_mask": np.ones((2, 16), np.int32),
              "segment_ids": np.repeat([[0] * 8 + [1] * 8], 2, axis=0).astype(np.int32)}
  features["input_mask"][1, 10:] = 0
  outputs = model(features)
  total = 0
  for var in sorted(model.weights, key=lambda v: v.name):
    size = int(np.prod(var.shape))
    total += size
    print(f"  {checkpoint.variable_name(var):<80} {str(list(var.shape)):>14} {size:>10,}")
  print(f"  {len(model.weights)} variables, {total:,} parameters; sequence_output "
        f"{list(outputs['sequence_output'].shape)}, pooled_output "
        f"{list(outputs['pooled_output'].shape)}")

  _step(f"2. TF1-name checkpoint round trip in {args.output_dir}")
  prefix = checkpoint.save_tf1_checkpoint(model, os.path.join(args.output_dir, "model.ckpt"),
                                          global_step=0)
  fresh = build_encoder_model(config)
  report = checkpoint.load_tf1_checkpoint(fresh, prefix, require_all=True)
  again = fresh(features)
  identical = all(np.array_equal(outputs[k].numpy(), again[k].numpy())
                  for k in ("sequence_output", "pooled_output"))
  print(f"  saved {prefix}; reloaded {len(report.loaded)} variables; outputs bit-identical: "
        f"{identical}")
  if not identical:
    print("  ERROR: the reloaded model does not reproduce the saved one", file=sys.stderr)
    return 1

  _step(f"3. The original release's checkpoint {args.golden_dir}")
  golden_config = AlbertConfig.from_json_file(os.path.join(args.golden_dir, "albert_config.json"))
  pretraining = build_pretraining_model(golden_config)
  report = checkpoint.load_tf1_checkpoint(pretraining, args.golden_dir)
  print("  " + report.format().replace("\n", "\n  "))
  with np.load(os.path.join(args.golden_dir, "outputs.npz")) as g:
    inputs = {k: g["input/" + k] for k in ("input_ids", "input_mask", "segment_ids",
                                             "masked_lm_positions")}
    result = pretraining(inputs)
    mlm = losses.masked_lm_loss(result["mlm_logits"], g["input/masked_lm_ids"],
                                g["input/masked_lm_weights"])
    sop = losses.sentence_order_loss(result["sop_logits"], g["input/next_sentence_labels"])
    diffs = {
        "sequence_output": np.abs(result["sequence_output"].numpy()
                                  - g["output/sequence_output"]).max(),
        "pooled_output": np.abs(result["pooled_output"].numpy() - g["output/pooled_output"]).max(),
        "total_loss": abs(float(mlm["loss"] + sop["loss"]) - float(g["output/total_loss"])),
    }
  for key, value in diffs.items():
    print(f"  max |ours - original| {key:<16} {value:.2e}")
  if max(diffs.values()) > 1e-5:
    print("  ERROR: outputs differ from the original release by more than 1e-5", file=sys.stderr)
    return 1

  if not args.skip_param_table:
    _step("4. Parameter counts of the paper's Tables 1, 3 and 4 (real model instances)")
    print(param_table.format_table(param_table.compute()))

  print(f"\nDone in {time.time() - start:.0f} s. Checkpoint: {prefix}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
