"""The paper's parameter tables (Tables 1, 3 and 4), counted on real model instances.

`compute(tables, configs_dir)` builds each backbone (embeddings, encoder, pooler; no pretraining
heads; vocabulary 30000) and returns its exact parameter count beside the paper's rounded
figure; `format_table` prints them. Released configurations come from `<configs_dir>/v2/` (the
repository's `configs/`). The command is `python scripts/param_table.py`.
"""

from __future__ import annotations

import gc
import os
from typing import Dict, List, NamedTuple, Optional

import numpy as np

CONFIG_DIR = "configs"  # the repository's configs/, relative to where the command runs


class Row(NamedTuple):
  table: str
  model: str
  overrides: Dict  # changes to the base configuration of `released`
  released: str  # configs/v2/<released>/albert_config.json
  paper: str  # the paper's rounded figure


def _bert(hidden, layers, heads, intermediate):
  """A BERT-like configuration: E == H, nothing shared."""
  return {"embedding_size": hidden, "hidden_size": hidden, "num_hidden_layers": layers,
          "num_attention_heads": heads, "intermediate_size": intermediate,
          "cross_layer_sharing": "none"}


ROWS: List[Row] = [
    Row("1", "BERT base", _bert(768, 12, 12, 3072), "base", "108M"),
    Row("1", "BERT large", _bert(1024, 24, 16, 4096), "large", "334M"),
    Row("1", "ALBERT base", {}, "base", "12M"),
    Row("1", "ALBERT large", {}, "large", "18M"),
    Row("1", "ALBERT xlarge", {}, "xlarge", "60M"),
    Row("1", "ALBERT xxlarge", {}, "xxlarge", "235M"),
]
for _e, _ns, _as in ((64, "87M", "10M"), (128, "89M", "12M"), (256, "93M", "16M"),
                     (768, "108M", "31M")):
  ROWS.append(Row("3", f"ALBERT base not-shared E={_e}",
                  {"embedding_size": _e, "cross_layer_sharing": "none"}, "base", _ns))
  ROWS.append(Row("3", f"ALBERT base all-shared E={_e}", {"embedding_size": _e}, "base", _as))
for _e, _figures in ((768, ("31M", "83M", "57M", "108M")), (128, ("12M", "64M", "38M", "89M"))):
  for _mode, _label, _paper in zip(("all", "attention", "ffn", "none"),
                                   ("all-shared", "shared-attention", "shared-FFN", "not-shared"),
                                   _figures):
    ROWS.append(Row("4", f"ALBERT base E={_e} {_label}",
                    {"embedding_size": _e, "cross_layer_sharing": _mode}, "base", _paper))


def row_config(row: Row, configs_dir: str = CONFIG_DIR):
  from albert.config import AlbertConfig
  base = AlbertConfig.from_json_file(os.path.join(configs_dir, "v2", row.released,
                                                  "albert_config.json"))
  return base.replace(**row.overrides)


def count_backbone_parameters(config) -> int:
  """Builds the backbone for `config` and counts its parameters (each shared variable once).

  The model is built in a graph of its own: the variables are declared with their real shapes,
  but no initial value is computed or stored (BERT large would fill 1.3 GB with random numbers).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from albert.modeling import build_backbone
  with tf.Graph().as_default():
    bert = build_backbone(config)
    count = int(sum(np.prod(v.shape) for v in bert.weights))
    del bert
  gc.collect()
  return count


_COUNTS: Dict[str, int] = {}  # config JSON -> count: a model is built once per process


def compute(tables: Optional[List[str]] = None, configs_dir: str = CONFIG_DIR) -> List[Dict]:
  """One dict per row: table, model, params (exact), paper (rounded), and the key settings."""
  results = []
  for row in ROWS:
    if tables and row.table not in tables:
      continue
    config = row_config(row, configs_dir)
    key = config.to_json_string()
    if key not in _COUNTS:
      _COUNTS[key] = count_backbone_parameters(config)
    results.append({"table": row.table, "model": row.model, "params": _COUNTS[key],
                    "paper": row.paper, "embedding_size": config.embedding_size,
                    "hidden_size": config.hidden_size,
                    "num_hidden_layers": config.num_hidden_layers,
                    "cross_layer_sharing": config.cross_layer_sharing})
  return results


def format_table(results: List[Dict]) -> str:
  lines = []
  titles = {"1": "Table 1: models", "3": "Table 3: embedding size (ALBERT base)",
            "4": "Table 4: cross-layer sharing (ALBERT base)"}
  for table in sorted({r["table"] for r in results}):
    lines.append(f"\n{titles[table]}")
    lines.append(f"  {'model':<36} {'E':>5} {'H':>5} {'L':>3} {'sharing':<10} "
                 f"{'parameters':>13} {'paper':>6}")
    for r in (r for r in results if r["table"] == table):
      lines.append(f"  {r['model']:<36} {r['embedding_size']:>5} {r['hidden_size']:>5} "
                   f"{r['num_hidden_layers']:>3} {r['cross_layer_sharing']:<10} "
                   f"{r['params']:>13,} {r['paper']:>6}")
  return "\n".join(lines).lstrip("\n")
