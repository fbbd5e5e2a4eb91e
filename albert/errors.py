"""How the scripts report the library's errors: one clear line on stderr and exit status 1.

The library raises `ValueError` subclasses (ConfigError, CheckpointError, InputError, ...) and
TrainingError with messages that name the file, flag or key; a traceback would bury them.
Set ALBERT_TRACEBACK=1 to see the traceback too.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable


def run_cleanly(main: Callable[[], object]) -> int:
  """Runs `main`; on a library error prints `error: <message>` and exits with status 1."""
  from albert.training import TrainingError
  try:
    main()
  except (ValueError, FileNotFoundError, TrainingError) as error:
    if os.environ.get("ALBERT_TRACEBACK"):
      traceback.print_exc()
    print(f"error: {error}", file=sys.stderr, flush=True)
    sys.exit(1)
  return 0
