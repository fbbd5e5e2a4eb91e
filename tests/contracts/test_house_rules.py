"""The house rules of ARCHITECTURE.md, checked on the tree, and each on a planted violation.

* no absl FLAGS outside `albert/cli/` (the library takes typed configs);
* nothing in `albert/data/` imports TensorFlow at module load (data jobs run without it);
* no module over 500 lines, except the named ones below with the reason;
* no module-level class or function name defined in two modules of `albert/` (an idea
  written twice);
* no import circles between the modules of `albert/` (any import statement counts, also one
  inside a function);
* the top-level scripts, `scripts/` and `benchmarks/` use public APIs only: no `x._name` of
  another object and no `from m import _name`.

Each checker takes the root of a package tree, so that the negative controls run it on a copy
of `albert/` with one violation planted.
"""

from __future__ import annotations

import ast
import collections
import os
import re
import shutil
import subprocess
import sys
from typing import Dict, Iterator, List, Set, Tuple

import pytest

from conftest import REPO_DIR

ALBERT = os.path.join(REPO_DIR, "albert")
MAX_LINES = 500
# Modules allowed over MAX_LINES, with the reason.
LONG_MODULES = {
    "albert/tokenization.py": "the original's tokenization.py API in one module (FullTokenizer, "
                              "WordPiece, SentencePiece, the fast preprocessing and TokenizerSpec "
                              "that every data job shares), as users import it",
}


def _modules(root: str) -> Iterator[Tuple[str, str]]:
  """(dotted module name, path) of every .py file under the package `root`."""
  package = os.path.basename(root)
  for directory, _, names in os.walk(root):
    for name in sorted(names):
      if not name.endswith(".py"):
        continue
      path = os.path.join(directory, name)
      parts = os.path.relpath(path, os.path.dirname(root))[:-3].split(os.sep)
      if parts[-1] == "__init__":
        parts = parts[:-1]
      assert parts[0] == package
      yield ".".join(parts), path


def script_files(root: str) -> List[str]:
  """The top-level scripts and the .py files of `scripts/` and `benchmarks/` under `root`."""
  found = []
  for directory in ("", "scripts", "benchmarks"):
    folder = os.path.join(root, directory)
    if os.path.isdir(folder):
      found += [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".py")]
  return found


def protected_uses(paths: List[str], root: str) -> List[Tuple[str, int, str, bool]]:
  """(file, line, name, marked) of each protected name used from outside its object: an
  attribute `x._name` where `x` is not `self` or `cls`, or `from m import _name` (dunders are
  not protected). `marked`: a `TODO(public API)` comment on that line or the line above."""
  found = []
  for path in paths:
    with open(path, encoding="utf-8") as f:
      text = f.read()
    lines = text.splitlines()
    for node in ast.walk(ast.parse(text, path)):
      names = []
      if isinstance(node, ast.Attribute) and not (
          isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
        names = [node.attr]
      elif isinstance(node, ast.ImportFrom):
        names = [alias.name for alias in node.names]
      for name in names:
        if name.startswith("_") and not name.startswith("__"):
          near = " ".join(lines[max(0, node.lineno - 2):node.lineno])
          found.append((os.path.relpath(path, root).replace(os.sep, "/"), node.lineno, name,
                        "TODO(public API)" in near))
  return sorted(found)


def _relative(path: str, root: str) -> str:
  return os.path.relpath(path, os.path.dirname(root)).replace(os.sep, "/")


def flag_users(root: str) -> List[str]:
  """Modules outside `<root>/cli/` that import absl flags or name FLAGS."""
  found = []
  for _, path in _modules(root):
    if _relative(path, root).startswith(os.path.basename(root) + "/cli/"):
      continue
    with open(path, encoding="utf-8") as f:
      text = f.read()
    if re.search(r"^\s*(from absl import .*\bflags\b|import absl\.flags|from absl\.flags)", text,
                 re.M) or re.search(r"\bFLAGS\b", text):
      found.append(_relative(path, root))
  return found


def tensorflow_at_data_import(root: str) -> List[str]:
  """The TensorFlow/Keras modules loaded by importing every module of `<root>/data/`."""
  package = os.path.basename(root)
  names = [name for name, _ in _modules(os.path.join(root, "data"))]
  names = [f"{package}.{name}" for name in names]
  code = ("import sys\n" + "".join(f"import {name}\n" for name in names) +
          "print(sorted(m for m in sys.modules if m.split('.')[0] in "
          "('tensorflow', 'tf_keras', 'keras')))\n")
  # run in the tree's parent: `python -c` puts the working directory first on sys.path
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.path.dirname(root), timeout=300,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(root)))
  assert result.returncode == 0, result.stderr
  return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def long_modules(root: str) -> Dict[str, int]:
  out = {}
  for _, path in _modules(root):
    with open(path, encoding="utf-8") as f:
      count = sum(1 for _ in f)
    if count > MAX_LINES:
      out[_relative(path, root)] = count
  return out


def names_defined_twice(root: str) -> Dict[str, List[str]]:
  """Module-level class and function names defined in more than one module."""
  where = collections.defaultdict(list)
  for _, path in _modules(root):
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read(), path)
    for node in tree.body:
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        where[node.name].append(_relative(path, root))
  return {name: paths for name, paths in sorted(where.items()) if len(paths) > 1}


def _imports(path: str, module: str, is_package: bool, known: Set[str]) -> Set[str]:
  """The modules of `known` that `module` imports anywhere in its file."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  out = set()
  for node in ast.walk(tree):
    targets = []
    if isinstance(node, ast.Import):
      targets = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = module.split(".")
        parts = parts if is_package else parts[:-1]
        parts = parts[:len(parts) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
      targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
    for target in targets:
      # the longest known module that the target names (a name inside a module counts for it)
      while target and target not in known:
        target = target.rpartition(".")[0]
      if target and target != module:
        out.add(target)
  return out


def import_cycles(root: str) -> List[List[str]]:
  """Strongly connected groups of modules (more than one) in the import graph."""
  modules = dict(_modules(root))
  graph = {name: _imports(path, name, path.endswith("__init__.py"), set(modules))
           for name, path in modules.items()}
  # a package's __init__ is imported by its submodules' imports: not an edge of its own here
  for name in graph:
    graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
  index: Dict[str, int] = {}
  low: Dict[str, int] = {}
  stack: List[str] = []
  on_stack: Set[str] = set()
  cycles: List[List[str]] = []

  def visit(node: str) -> None:  # Tarjan's algorithm
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for succ in sorted(graph[node]):
      if succ not in index:
        visit(succ)
        low[node] = min(low[node], low[succ])
      elif succ in on_stack:
        low[node] = min(low[node], index[succ])
    if low[node] == index[node]:
      group = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        group.append(member)
        if member == node:
          break
      if len(group) > 1:
        cycles.append(sorted(group))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return cycles


# ------------------------------------------------------------------------------ the tree
def test_no_absl_flags_outside_cli():
  assert flag_users(ALBERT) == []


def test_data_modules_import_no_tensorflow():
  assert len(list(_modules(os.path.join(ALBERT, "data")))) >= 20
  assert tensorflow_at_data_import(ALBERT) == []


def test_no_module_over_500_lines_but_the_named_ones():
  long = long_modules(ALBERT)
  assert set(long) <= set(LONG_MODULES), {k: v for k, v in long.items() if k not in LONG_MODULES}
  # the list names no module that has become short again (or gone)
  assert set(long) == set(LONG_MODULES)


def test_no_name_defined_in_two_modules():
  twins = {name: sorted(paths) for name, paths in names_defined_twice(ALBERT).items()}
  assert twins == {}


def test_no_import_circles():
  assert import_cycles(ALBERT) == []


def test_scripts_and_benchmarks_use_public_apis_only():
  assert protected_uses(script_files(REPO_DIR), REPO_DIR) == []


# ------------------------------------------------------------------- negative controls
@pytest.fixture
def copy(tmp_path):
  """A copy of the albert package to plant violations in."""
  target = tmp_path / "albert"
  shutil.copytree(ALBERT, target, ignore=shutil.ignore_patterns("__pycache__"))
  return str(target)


def _append(path: str, text: str) -> None:
  with open(path, "a", encoding="utf-8") as f:
    f.write(text)


def test_a_planted_flag_user_is_found(copy):
  _append(os.path.join(copy, "models.py"), "\nfrom absl import flags\n")
  _append(os.path.join(copy, "cli", "startup.py"), "\nfrom absl import flags\n")  # allowed there
  assert flag_users(copy) == ["albert/models.py"]


def test_a_planted_tensorflow_import_in_data_is_found(copy):
  _append(os.path.join(copy, "data", "squad", "metrics.py"), "\nimport tensorflow\n")
  assert "tensorflow" in tensorflow_at_data_import(copy)


def test_a_planted_long_module_is_found(copy):
  _append(os.path.join(copy, "losses.py"), "\n" * MAX_LINES)
  assert "albert/losses.py" in long_modules(copy)


def test_a_planted_twin_is_found(copy):
  _append(os.path.join(copy, "metrics.py"), "\n\ndef build_backbone():\n  pass\n")
  assert names_defined_twice(copy)["build_backbone"] == ["albert/metrics.py",
                                                         "albert/modeling.py"]


def test_a_planted_protected_call_is_found(tmp_path):
  for directory in ("scripts", "benchmarks"):
    (tmp_path / directory).mkdir()
  (tmp_path / "run_x.py").write_text("from albert.train.trainer import _helper\n")
  (tmp_path / "scripts" / "job.py").write_text(
      "class A:\n  def f(self):\n    return self._x, cls._y, a.__dict__\n\n"
      "trainer._build()\n")
  (tmp_path / "benchmarks" / "common.py").write_text(
      "# TODO(public API): Trainer._build\ntrainer._build()\n")
  assert protected_uses(script_files(str(tmp_path)), str(tmp_path)) == [
      ("benchmarks/common.py", 2, "_build", True), ("run_x.py", 1, "_helper", False),
      ("scripts/job.py", 5, "_build", False)]


def test_a_planted_circle_is_found(copy):
  # config is imported by modeling; config importing modeling (in a function) closes a circle
  _append(os.path.join(copy, "config.py"), "\n\ndef _late():\n  from albert import modeling\n")
  assert ["albert.config", "albert.modeling"] in import_cycles(copy)
