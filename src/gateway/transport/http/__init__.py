"""The HTTP face: the Open Inference Protocol v2 over REST, and the operator console's routes.

Starlette routes served by uvicorn on the gateway's own event loop
(:class:`~gateway.transport.http.server.HttpServer`); inference goes through the same
:class:`~gateway.serving.dataplane.DataPlane` as gRPC. Bodies are decoded in
:mod:`~gateway.transport.http.codec`, errors become HTTP statuses in
:mod:`~gateway.transport.http.status`.
"""

from __future__ import annotations

from gateway.transport.http.app import build_app
from gateway.transport.http.console import ConsoleRoutes
from gateway.transport.http.inference import InferenceRoutes
from gateway.transport.http.server import HttpServer

__all__ = ["ConsoleRoutes", "HttpServer", "InferenceRoutes", "build_app"]
