"""The parameter table of the paper's Tables 1, 3 and 4, counted on real model instances."""

from __future__ import annotations

import pytest

from albert import param_table
from conftest import CONFIGS, load_script

param_table_cli = load_script("param_table")

EXPECTED = {  # the original code's counts (vocab 30000, pooler included, no heads)
    "ALBERT base": 11_683_584, "ALBERT large": 17_683_968, "ALBERT xlarge": 58_724_864,
    "ALBERT xxlarge": 222_595_584, "BERT base": 109_081_344, "BERT large": 334_607_360,
}


@pytest.fixture(scope="module")
def results():
  return param_table.compute(configs_dir=CONFIGS)


def test_released_counts_equal_the_originals(results):
  table1 = {r["model"]: r["params"] for r in results if r["table"] == "1"}
  assert table1 == EXPECTED


def test_sharing_and_embedding_rows(results):
  rows = {r["model"]: r["params"] for r in results}
  assert rows["ALBERT base E=768 all-shared"] == 31_114_752
  assert rows["ALBERT base E=768 not-shared"] == rows["BERT base"]
  assert rows["ALBERT base E=128 all-shared"] == rows["ALBERT base"]
  # shared-attention keeps 12 FFNs, shared-FFN 12 attentions: per-layer sizes add up.
  attention = 4 * (768 * 768 + 768) + 2 * 768
  ffn = 768 * 3072 + 3072 + 3072 * 768 + 768 + 2 * 768
  assert rows["ALBERT base E=128 shared-attention"] - rows["ALBERT base"] == 11 * ffn
  assert rows["ALBERT base E=128 shared-FFN"] - rows["ALBERT base"] == 11 * attention
  assert rows["ALBERT base E=128 not-shared"] - rows["ALBERT base"] == 11 * (attention + ffn)
  for r in results:  # every row rounds to the paper's figure within 13% (xxlarge: 235M vs 223M)
    paper = float(r["paper"].rstrip("M")) * 1e6
    assert abs(r["params"] - paper) / paper < 0.06 or r["model"] == "ALBERT xxlarge"


def test_table_text_and_cli(capsys):
  assert param_table_cli.main(["--tables", "4", "--json", "--configs_dir", CONFIGS]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 8 and '"cross_layer_sharing": "ffn"' in lines[2]
  text = param_table.format_table([{"table": "1", "model": "ALBERT base", "params": 11683584,
                                    "paper": "12M", "embedding_size": 128, "hidden_size": 768,
                                    "num_hidden_layers": 12, "cross_layer_sharing": "all"}])
  assert "11,683,584" in text and "Table 1" in text
  with pytest.raises(SystemExit):
    param_table_cli.main(["--tables", "2"])
