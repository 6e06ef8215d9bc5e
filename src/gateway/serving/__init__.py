"""The data plane: route, validate, batch and run one request on a loaded version.

:mod:`~gateway.serving.catalog` holds the live routing tables and loaded versions,
:mod:`~gateway.serving.routing` picks a version (pure), :mod:`~gateway.serving.runtime`
wraps one ``InferenceSession``, :mod:`~gateway.serving.batching` groups requests. No grpc,
no protobuf: the transport converts at the edge.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.serving.catalog import Catalog
    from gateway.serving.routing import Route
    from gateway.serving.runtime import LoadedVersion

__all__ = [
    "Catalog",
    "LoadedVersion",
    "Route",
]

_LAZY = {
    "Catalog": "gateway.serving.catalog",
    "LoadedVersion": "gateway.serving.runtime",
    "Route": "gateway.serving.routing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway.serving' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
