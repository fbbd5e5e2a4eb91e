"""The one ordered process pool of the data jobs (TF-free): pretraining, GLUE and SQuAD features.

`OrderedPool(num_workers, factory, args)` runs `fn(state, item)` over items and yields the
results in input order, with a bounded number of items in flight (memory does not grow with
the input). Each process holds one worker state, `factory(*args)` (a tokenizer, a converter),
built once and used for every item; `fn` is a module-level function or a method of the state's
class (`_WorkerState.tokenize`), so that it pickles by name. With one worker everything runs
in this process, without a pool. `ordered_map(...)` is the same as one generator.

How workers start (the output does not depend on it, nor on the number of workers):

* fork where it is safe, i.e. this process is single-threaded and has not loaded TensorFlow
  (a command line such as `create_pretraining_data.py`): the state is built once here and the
  children inherit it and start at once;
* spawn otherwise (forking a process with other threads is unsafe; TensorFlow starts threads).
  Each worker builds its own state from the pickled `args`. A spawned child normally runs the
  parent's main script again before it can unpickle anything, and a script that imports
  TensorFlow (`run_classifier.py`, `run_squad.py`) would cost every worker ~4 s and ~700 MB;
  workers only need `albert.data`, so the main module is hidden while the pool starts them.
  A state that fails to build in a worker is raised by the first item (instead of the pool
  restarting the worker forever).

Workers leave Ctrl-C to the parent (`errors.leave_interrupts_to_parent`), which ends the pool.
A pool left on an error (or a generator abandoned early) is terminated; a finished one is closed.

The worker-count rule, `resolve_workers`: the requested count, or one per available core when
it is 0 or None, never more than the number of tasks when that is known.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import sys
import threading
import types
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Tuple

from albert.errors import leave_interrupts_to_parent

_STATE: Any = None  # this process's worker state
_START_ERROR: Optional[BaseException] = None  # why a spawned worker has no state


def available_cores() -> int:
  """The CPUs this process may run on."""
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:
    return max(1, os.cpu_count() or 1)


def resolve_workers(requested: Optional[int], num_tasks: Optional[int] = None) -> int:
  """`requested` worker processes (0 or None: one per available core), at most `num_tasks`."""
  count = requested or available_cores()
  if num_tasks is not None:
    count = min(count, num_tasks)
  return max(1, count)


def can_fork() -> bool:
  """Fork only a single-threaded process without TensorFlow (forking threads is unsafe)."""
  return ("fork" in multiprocessing.get_all_start_methods() and "tensorflow" not in sys.modules
          and threading.active_count() == 1)


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
  """While spawned workers start, `__main__` is an empty module: they do not re-run the script."""
  main = sys.modules.get("__main__")
  sys.modules["__main__"] = types.ModuleType("__main__")
  try:
    yield
  finally:
    if main is None:
      sys.modules.pop("__main__", None)
    else:
      sys.modules["__main__"] = main


def _start(factory: Optional[Callable[..., Any]], args: Sequence[Any]) -> None:
  """A worker's initializer: interrupts to the parent; the state (None: inherited by fork)."""
  global _STATE, _START_ERROR
  leave_interrupts_to_parent()
  if factory is None:
    return
  try:
    _STATE = factory(*args)
  except BaseException as error:  # pylint: disable=broad-except  (raised by the first item)
    _START_ERROR = error


def _call(fn: Callable[[Any, Any], Any], item: Any) -> Any:
  if _START_ERROR is not None:
    raise _START_ERROR
  return fn(_STATE, item)


def worker_status(_state: Any, _item: Any) -> Tuple[bool, int]:
  """(whether TensorFlow is loaded, peak resident MB) of the process that runs it (for tests)."""
  with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
  return "tensorflow" in sys.modules, peak // 1024


class OrderedPool:
  """`num_workers` processes (or this process alone) with one state each; see the module doc.

  Args:
    num_workers: processes; 1 runs every item in this process.
    factory: builds a worker state, `factory(*args)` (a class or module-level function).
    args: picklable arguments of `factory` (sent to spawned workers).
    local_args: the arguments for the state built in this process (in-process or inherited by
      forked workers), e.g. with an already loaded tokenizer; default `args`.
  """

  def __init__(self, num_workers: int, factory: Callable[..., Any], args: Sequence[Any] = (),
               local_args: Optional[Sequence[Any]] = None):
    global _STATE
    self.num_workers = max(1, num_workers)
    self._pool = None
    self._state = None
    if self.num_workers > 1 and not can_fork():
      with main_module_hidden():
        self._pool = multiprocessing.get_context("spawn").Pool(
            self.num_workers, _start, (factory, tuple(args)))
      return
    self._state = factory(*(args if local_args is None else local_args))
    if self.num_workers > 1:
      _STATE = self._state  # inherited by the forked workers
      self._pool = multiprocessing.get_context("fork").Pool(self.num_workers, _start, (None, ()))

  def map(self, fn: Callable[[Any, Any], Any], items: Iterable[Any], window: int = 0
          ) -> Iterator[Any]:
    """`fn(state, item)` for each item, in order; at most `window` items in flight."""
    if self._pool is None:
      for item in items:
        yield fn(self._state, item)
      return
    window = window or 2 * self.num_workers + 1
    pending: collections.deque = collections.deque()
    for item in items:
      pending.append(self._pool.apply_async(_call, (fn, item)))
      if len(pending) >= window:
        yield pending.popleft().get()
    while pending:
      yield pending.popleft().get()

  def close(self, ok: bool = True) -> None:
    """Ends the workers (waits for them when `ok`, else terminates them); closes the state."""
    global _STATE
    if self._pool is not None:
      if ok:
        self._pool.close()
      else:
        self._pool.terminate()
      self._pool.join()
      self._pool = None
    state, self._state = self._state, None
    if _STATE is state:
      _STATE = None
    if hasattr(state, "close"):
      state.close()

  def __enter__(self) -> "OrderedPool":
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    self.close(ok=exc_type is None)


def ordered_map(fn: Callable[[Any, Any], Any], items: Iterable[Any], num_workers: int,
                factory: Callable[..., Any], args: Sequence[Any] = (),
                local_args: Optional[Sequence[Any]] = None) -> Iterator[Any]:
  """`OrderedPool(num_workers, factory, args, local_args).map(fn, items)` as one generator
  (the pool ends with it; abandoned early, it is terminated)."""
  with OrderedPool(num_workers, factory, args, local_args) as pool:
    yield from pool.map(fn, items)
