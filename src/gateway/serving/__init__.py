"""The data plane: route, validate, batch and run one request on a loaded version.

Every face calls :class:`DataPlane` (:mod:`~gateway.serving.dataplane`) and, for the
protocol's reads (ready, metadata, config, statistics, index), :class:`Reads`;
:mod:`~gateway.serving.catalog` holds the live routing tables and loaded versions,
:mod:`~gateway.serving.routing` picks a version (pure), :mod:`~gateway.serving.runtime`
wraps one ``InferenceSession``, :mod:`~gateway.serving.batching` groups requests, and
:mod:`~gateway.serving.taps` feeds served requests to monitoring and the governor off the
request path. No grpc, no protobuf: the transport converts at the edge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.lazy import lazy_attributes

if TYPE_CHECKING:
    from gateway.serving.catalog import Catalog
    from gateway.serving.dataplane import DataPlane
    from gateway.serving.reads import Reads
    from gateway.serving.routing import Route
    from gateway.serving.runtime import LoadedVersion
    from gateway.serving.taps import Tap, TapQueue, TapRecord

__all__ = [
    "Catalog",
    "DataPlane",
    "LoadedVersion",
    "Reads",
    "Route",
    "Tap",
    "TapQueue",
    "TapRecord",
]

_LAZY = {
    "Catalog": "gateway.serving.catalog",
    "DataPlane": "gateway.serving.dataplane",
    "LoadedVersion": "gateway.serving.runtime",
    "Reads": "gateway.serving.reads",
    "Route": "gateway.serving.routing",
    "Tap": "gateway.serving.taps",
    "TapQueue": "gateway.serving.taps",
    "TapRecord": "gateway.serving.taps",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
