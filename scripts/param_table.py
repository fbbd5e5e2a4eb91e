"""Prints the paper's parameter tables (Tables 1, 3 and 4) counted on real model instances.

`python scripts/param_table.py [--tables 1,3,4] [--json] [--configs_dir configs]` (from the
repository root, where `configs/` is) builds each backbone (embeddings, encoder, pooler; no
pretraining heads; vocabulary 30000) and prints its exact parameter count beside the paper's
rounded figure. The counting is `albert.param_table`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

# The repository root, so that `python scripts/param_table.py` finds `albert` without PYTHONPATH.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tables", default="1,3,4", help="comma-separated: 1, 3, 4")
  parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
  parser.add_argument("--configs_dir", default="configs",
                      help="the folder of released configurations (v2/<size>/albert_config.json)")
  args = parser.parse_args(argv)
  tables = [t.strip() for t in args.tables.split(",") if t.strip()]
  unknown = sorted(set(tables) - {"1", "3", "4"})
  if unknown:
    parser.error(f"--tables: unknown table(s) {', '.join(unknown)}; expected 1, 3 and/or 4")
  if not os.path.isdir(os.path.join(args.configs_dir, "v2")):
    parser.error(f"--configs_dir={args.configs_dir}: no v2/ folder of released configurations "
                 "there (run from the repository root, or pass the folder)")
  from albert.errors import run_cleanly  # pylint: disable=g-import-not-at-top
  return run_cleanly(lambda: _run(tables, args))


def _run(tables: List[str], args) -> None:
  from albert.cli import startup  # pylint: disable=g-import-not-at-top
  startup.start_tensorflow()
  from albert import param_table  # pylint: disable=g-import-not-at-top  (imports TensorFlow)
  print("Counting parameters on real model instances (backbone with pooler, no heads, "
        "vocabulary 30000) ...", file=sys.stderr, flush=True)
  results = param_table.compute(tables, args.configs_dir)
  if args.json:
    for r in results:
      print(json.dumps(r))
  else:
    print(param_table.format_table(results))


if __name__ == "__main__":
  sys.exit(main())
