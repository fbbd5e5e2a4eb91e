"""Tests of albert/data/workers.py: the one ordered process pool of the data jobs.

The pool's users check their bytes for any number of workers (GLUE, SQuAD, pretraining tests);
here: order, the worker-count rule, both start methods, and errors in a worker. The states and
functions are builtins (`int`, `operator.*`), which pickle by name without this module.
"""

from __future__ import annotations

import operator
import os
import subprocess
import sys

import pytest

from albert.data import workers
from conftest import REPO_DIR


def test_results_come_in_input_order_for_any_number_of_workers():
  items = list(range(40))  # more than the window of items in flight
  want = [5 + i for i in items]
  for num_workers in (1, 2, 3):
    with workers.OrderedPool(num_workers, int, ("5",)) as pool:
      assert list(pool.map(operator.add, items)) == want
  assert list(workers.ordered_map(operator.add, iter(items), 2, int, ("5",))) == want
  # local_args: the state of this process (in-process, or inherited by forked workers)
  assert list(workers.ordered_map(operator.add, [1], 1, int, ("x",), local_args=("7",))) == [8]


def test_the_worker_count_rule():
  cores = workers.available_cores()
  assert workers.resolve_workers(0) == workers.resolve_workers(None) == cores >= 1
  assert workers.resolve_workers(3) == 3
  assert workers.resolve_workers(8, num_tasks=2) == 2
  assert workers.resolve_workers(0, num_tasks=0) == 1


def test_a_process_with_tensorflow_spawns_and_an_error_in_a_worker_is_raised():
  assert "tensorflow" in sys.modules and not workers.can_fork()  # the test process: spawn
  with pytest.raises(ZeroDivisionError):
    with workers.OrderedPool(2, int, ("1",)) as pool:
      list(pool.map(operator.truediv, [1, 2, 0, 4]))
  # a state that cannot be built in a spawned worker: raised by the first item (the pool
  # does not restart the worker forever)
  with pytest.raises(ValueError, match="invalid literal"):
    list(workers.ordered_map(operator.add, [1, 2], 2, int, ("not a number",)))


def test_a_process_without_tensorflow_forks_with_the_same_results():
  code = ("import operator, sys\n"
          "from albert.data import workers\n"
          "assert workers.can_fork() and 'tensorflow' not in sys.modules\n"
          "print(list(workers.ordered_map(operator.add, range(30), 3, int, ('5',))))\n")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=120, env=dict(os.environ, PYTHONPATH=REPO_DIR), check=False)
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip() == str([5 + i for i in range(30)])
