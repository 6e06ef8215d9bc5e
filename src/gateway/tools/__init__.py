"""Programs around the gateway: the load generator, the model zoo, an embedded server.

:mod:`~gateway.tools.loadgen` (``onnxgate bench``), :mod:`~gateway.tools.modelzoo` (small
ONNX models for tests and benchmarks) and
:class:`EmbeddedGateway` (a gateway on a background thread, for notebooks and tests). Nothing
in the gateway proper imports this room.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.tools.embedded import EmbeddedGateway

__all__ = [
    "EmbeddedGateway",
]

_LAZY = {
    "EmbeddedGateway": "gateway.tools.embedded",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway.tools' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
