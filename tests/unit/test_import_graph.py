"""The project's import graph: no cycles anywhere, and the package boundaries hold.

These tests read the source with ``ast`` rather than importing it, so they see every
import: module-level, function-local and the ones under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kernel", "app", "conversation", "retrieval", "inference", "safety", "bench")
DOMAINS = ("conversation", "retrieval", "inference", "safety")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(path: Path, name: str, modules: dict[str, Path]) -> Iterator[str]:
    """Every project module that ``name`` imports, resolving ``from pkg import mod``."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def import_graph() -> dict[str, set[str]]:
    """The project's modules and, for each, the project modules it imports."""
    modules = _modules()
    return {name: set(_imports(path, name, modules)) for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm).

    NOTE: a package ``__init__`` that imports its own submodules is an edge
    ``pkg -> pkg.mod``; ``pkg.mod -> pkg`` back would be a cycle, and is one at import
    time too, so it is counted.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_module_imports_itself_in_a_circle() -> None:
    """Guards against import cycles such as auth -> services -> rate limits -> auth."""
    assert import_cycles(import_graph()) == []


@pytest.mark.parametrize("domain", DOMAINS)
def test_domain_packages_import_only_the_kernel(domain: str) -> None:
    """Guards the boundary: a domain package imports no other project package but ``kernel``."""
    allowed = {domain, "kernel"}
    leaks = {
        (module, target)
        for module, targets in import_graph().items()
        if module.split(".")[0] == domain
        for target in targets
        if target.split(".")[0] not in allowed
    }
    assert leaks == set()


def test_kernel_imports_no_project_package() -> None:
    """Guards the kernel as the bottom layer: it may import only itself."""
    leaks = {
        (module, target)
        for module, targets in import_graph().items()
        if module.split(".")[0] == "kernel"
        for target in targets
        if target.split(".")[0] != "kernel"
    }
    assert leaks == set()
