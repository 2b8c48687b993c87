"""The package's layering, checked from the source with ``ast`` (nothing is imported):

* the import graph of ``fastpinn``'s modules has no cycle -- imports inside functions count, since a lazy
  import is how a cycle hides; imports under ``if TYPE_CHECKING:`` do not (they never run: a callback
  module may name the Trainer it is called by in its annotations);
* ``fastpinn.ops`` (and the Triton kernels, ``fastpinn.kernels``) import nothing else from fastpinn: the ops are
  the bottom layer, below the derivative engine and the network;
* no module uses another fastpinn module's private name (``from .x import _y``, ``x._y`` on an imported
  fastpinn module). Private *modules* (``fastpinn._io``, ``fastpinn.ops._ext``) are importable: their public
  names are their interface.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Optional

PACKAGE = Path(__file__).resolve().parent.parent / "fastpinn"

ALLOWED_PRIVATE: dict[str, list[str]] = {}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    # followlinks: fastpinn/kernels is a link to ../kernels (the Triton kernels, installed as fastpinn.kernels)
    for root, _dirs, files in os.walk(PACKAGE, followlinks=True):
        for f in files:
            if f.endswith(".py"):
                path = Path(root) / f
                out[_module_name(path)] = path
    return dict(sorted(out.items()))


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(current: str, level: int, module: Optional[str]) -> str:
    """The absolute name of ``from <level dots><module> import ...`` inside module ``current``."""
    if level == 0:
        return module or ""
    base = current.split(".") if _is_package(current) else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _owner(name: str) -> Optional[str]:
    """The fastpinn module that ``name`` (a dotted module path) is, or is inside of."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


class _Imports:
    """One module's imports of fastpinn modules, and its uses of other modules' private names."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
        self.edges: set[str] = set()
        self.private: list[str] = []
        aliases: dict[str, str] = {}  # local name -> fastpinn module it is bound to
        typing_only = {id(n) for block in ast.walk(self.tree) if _is_type_checking_block(block)
                       for stmt in block.body for n in ast.walk(stmt)}
        for node in ast.walk(self.tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                for a in node.names:
                    if _owner(a.name):
                        self._edge(a.name)
                        if a.asname:
                            aliases[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(name, node.level, node.module)
                if not _owner(source):
                    continue
                for a in node.names:
                    full = f"{source}.{a.name}"
                    if full in MODULES:  # a submodule
                        self._edge(full)
                        aliases[a.asname or a.name] = full
                        continue
                    self._edge(source)
                    if a.name.startswith("_") and not a.name.startswith("__") and _owner(source) != name:
                        self.private.append(f"from {source} import {a.name}")
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                target = aliases.get(node.value.id)
                attr = node.attr
                if target and attr.startswith("_") and not attr.startswith("__") and target != name \
                        and f"{target}.{attr}" not in MODULES:
                    self.private.append(f"{target}.{attr}")

    def _edge(self, target: str) -> None:
        owner = _owner(target)
        if owner and owner != self.name:
            self.edges.add(owner)


IMPORTS = {name: _Imports(name) for name in MODULES}


def _cycles() -> list[list[str]]:
    # Only the modules a module names are its dependencies (``from . import x`` names x, not the package).
    graph = {n: sorted(IMPORTS[n].edges) for n in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in graph[n]:
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n)
    return found


def test_the_module_graph_is_found():
    # the analysis sees the imports it must see (a guard against a parser that finds nothing)
    assert "fastpinn.ops" in IMPORTS["fastpinn.weighter"].edges
    assert "fastpinn.ops._ext" in IMPORTS["fastpinn.ops"].edges  # a lazy import inside a function
    assert "fastpinn.kernels" in MODULES and "fastpinn.ops.layout" in IMPORTS["fastpinn.kernels.grad_stats"].edges


def test_no_import_cycles():
    assert _cycles() == []


def test_ops_import_only_ops_and_kernels():
    low = ("fastpinn.ops", "fastpinn.kernels")
    bad = {n: sorted(e for e in IMPORTS[n].edges if not e.startswith(low))
           for n in MODULES if n.startswith(low)}
    assert {n: e for n, e in bad.items() if e} == {}


def test_no_private_names_across_modules():
    found = {n: sorted(set(IMPORTS[n].private)) for n in MODULES}
    found = {n: p for n, p in found.items() if p}
    assert found == ALLOWED_PRIVATE
