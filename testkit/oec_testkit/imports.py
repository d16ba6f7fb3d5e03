"""The import graph of a package, read from its source with :mod:`ast`, and its cycles.

Every ``import``/``from ... import`` counts, also one inside a function (a "local import" only
hides a cycle: whichever module is imported first still sees the other half-initialised), and
also one under ``if TYPE_CHECKING:`` (such a cycle is harmless at run time, but a module that
needs its importer to be type-checked is still one design split in two).
"""

from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["import_cycles", "import_graph"]


def _module_name(path: Path, package_dir: Path, package_name: str) -> str:
    parts = list(path.relative_to(package_dir).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package_name, *parts])


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Absolute names of what ``node`` imports (``from .a import b``: ``pkg.a`` and ``pkg.a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        keep = len(base) - node.level + (1 if is_package else 0)
        base = base[:keep]
        prefix = ".".join([*base, node.module] if node.module else base)
    else:
        prefix = node.module or ""
    return [prefix, *(f"{prefix}.{alias.name}" for alias in node.names)]


def import_graph(package_dir: str | Path, package_name: str) -> dict[str, set[str]]:
    """Map each module of the package in ``package_dir`` (named ``package_name``) to the modules
    of the same package it imports. Imports of a package's own ``__init__`` by its submodules
    (``from . import x``) count as importing ``x``, not the package."""
    root = Path(package_dir)
    modules = {
        _module_name(path, root, package_name): path for path in sorted(root.rglob("*.py"))
    }
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = _imported(node, module, is_package)
                # ``from . import x`` names the package and x: keep the most specific module.
                found = [n for n in names if n in modules]
                if isinstance(node, ast.ImportFrom) and len(found) > 1:
                    found = [n for n in found if n != names[0]]
                edges.update(n for n in found if n != module)
        graph[module] = edges
    return graph


def import_cycles(package_dir: str | Path, package_name: str) -> list[list[str]]:
    """The import cycles of a package: each strongly connected group of two or more modules of
    :func:`import_graph` that import each other directly or through one another, as a sorted list
    of module names; empty when the graph has no cycle."""
    graph = import_graph(package_dir, package_name)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
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
            group: list[str] = []
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
    return sorted(cycles)

