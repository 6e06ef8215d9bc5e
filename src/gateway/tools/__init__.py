"""Programs around the gateway: the load generator, the model zoo, an embedded server.

:mod:`~gateway.tools.loadgen` (``onnxgate bench``), :mod:`~gateway.tools.modelzoo` (small
ONNX models for tests and benchmarks) and
:class:`EmbeddedGateway` (a gateway on a background thread, for notebooks and tests). Nothing
in the gateway proper imports this room.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.lazy import lazy_attributes

if TYPE_CHECKING:
    from gateway.tools.embedded import EmbeddedGateway

__all__ = [
    "EmbeddedGateway",
]

_LAZY = {
    "EmbeddedGateway": "gateway.tools.embedded",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
