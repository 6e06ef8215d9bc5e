"""Package faces that re-export names without importing them until first use.

Each room's ``__init__`` lists its public names; importing the room must stay cheap (the
CLI imports ``gateway.transport`` without wanting scipy or onnxruntime), so the names load
on first access. One helper instead of a ``__getattr__`` written out in every face.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``table[name]`` (a module path)
    on first access to ``name``, keeps the value in the package, and raises AttributeError
    for anything else."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        vars(sys.modules[package])[name] = value
        return value

    return __getattr__
