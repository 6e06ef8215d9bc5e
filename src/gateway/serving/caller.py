"""Who is calling, and through which face: set by a transport for the call's task.

The data plane reads it only to label prediction-log records (``gateway.predictionlog``);
a transport sets it once per call, before :meth:`DataPlane.infer`. The principal is the
name a token maps to, never the token.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["caller"]

caller: ContextVar[tuple[str, str]] = ContextVar("onnxgate_caller", default=("", "anonymous"))
"""``(face, principal)`` of the call being served: ``("grpc" | "http", name)``."""
