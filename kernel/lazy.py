"""Package re-exports that import their module on first use (PEP 562).

A domain package re-exports its public names from ``__init__`` so callers write
``from inference import BatchingEngine``; importing every submodule eagerly made
``import inference.errors`` pay for torch, and every ``ragserve`` command
(``keys create``, ``migrate``) load torch, FAISS and Qdrant before doing a
database write. With :func:`lazy_exports` a name's module is imported the first
time the name is read, and the package's ``TYPE_CHECKING`` imports keep the
names typed for mypy and visible to the import-graph test.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package that re-exports lazily.

    Args:
        package: The package's ``__name__``.
        exports: Each submodule (relative to the package, e.g. ``"errors"``) and
            the names the package re-exports from it.
    """
    where = {name: f"{package}.{module}" for module, names in exports.items() for name in names}
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later reads skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
