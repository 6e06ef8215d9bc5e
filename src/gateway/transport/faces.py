"""The gateway's faces (the ways in: gRPC, HTTP, ``/metrics``) behind one small protocol.

The composition root starts every face once the catalog is loaded, in order, and stops them
in reverse once the data plane drained; a face that cannot listen raises the one
:func:`gateway.settings.listen_error` line naming the setting that chose its port. A new face
(a Kafka consumer, a second HTTP port) is one more class here with ``start``/``stop`` and one
line in :class:`gateway.server.Gateway`'s list.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry

from gateway.settings import listen_error
from gateway.transport.http.server import HttpServer
from gateway.transport.metrics_http import start_metrics_server

__all__ = ["Face", "GrpcFace", "HttpFace", "MetricsFace"]


class Face(Protocol):
    """A way in to the gateway: :meth:`start` listens; :meth:`stop` closes, letting calls
    still being answered finish until ``deadline`` (a ``time.monotonic()`` value)."""

    port: int

    async def start(self) -> None: ...

    async def stop(self, deadline: float) -> None: ...


class GrpcFace:
    """The gRPC server: every service, plaintext or TLS (``credentials``)."""

    def __init__(
        self,
        build: Callable[[], grpc.aio.Server],
        address: str,
        credentials: grpc.ServerCredentials | None,
    ) -> None:
        self._build = build
        self._address = address
        self._credentials = credentials
        self.server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = server = self._build()
        try:
            if self._credentials is None:
                self.port = server.add_insecure_port(self._address)
            else:
                self.port = server.add_secure_port(self._address, self._credentials)
        except RuntimeError:  # grpc's "Failed to bind to address"
            self.port = 0
        if self.port == 0:
            raise listen_error("gRPC", self._address, "port")
        await server.start()

    async def stop(self, deadline: float) -> None:
        if self.server is not None:
            await self.server.stop(max(0.0, deadline - time.monotonic()))


class HttpFace:
    """OIP v2 over HTTP and the console (uvicorn on the gateway's own loop)."""

    def __init__(self, build: Callable[[], HttpServer], host: str, port: int) -> None:
        self._build = build
        self._where = f"{host}:{port}"
        self.server: HttpServer | None = None
        self.port = 0  # the bound port once started (the setting may be 0)

    async def start(self) -> None:
        try:
            self.server = self._build()
            self.port = await self.server.start()
        except OSError as exc:
            raise listen_error("HTTP", self._where, "http_port", exc.strerror) from None

    async def stop(self, deadline: float) -> None:
        # uvicorn lets open requests finish within its own grace period (grace_s).
        if self.server is not None:
            await self.server.stop()


class MetricsFace:
    """The Prometheus ``/metrics`` endpoint (a daemon thread)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._server: WSGIServer | None = None
        self.port = 0

    async def start(self) -> None:
        try:
            self._server, self.port = start_metrics_server(self._registry, self._host, self._port)
        except OSError as exc:
            where = f"{self._host}:{self._port}"
            raise listen_error("metrics", where, "metrics_port", exc.strerror) from None

    async def stop(self, deadline: float) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
