"""The original's run_squad_v2.py command line: run_squad.py with --version_2_with_negative=True."""
import sys

import run_squad

if __name__ == "__main__":
  sys.argv.insert(1, "--version_2_with_negative=true")
  run_squad.app.run(run_squad.main)
