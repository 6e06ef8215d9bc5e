"""Serve a Starlette app with uvicorn on the gateway's own event loop.

No thread and no second loop: uvicorn's server runs as one task beside ``grpc.aio`` (both
are asyncio), so a request reaches :class:`~gateway.serving.dataplane.DataPlane` exactly
as a gRPC call does. The socket is bound here, before uvicorn starts, so a taken port is
an ``OSError`` for the caller (uvicorn itself would ``sys.exit``), and port 0 reports the
port it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp

__all__ = ["HttpServer", "tcp_listener"]


def tcp_listener(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket whose accepted connections get ``TCP_NODELAY``.

    ``socket.create_server`` makes its socket with protocol 0, and asyncio turns Nagle off
    only on transports whose socket says ``IPPROTO_TCP``; uvicorn writes a response's
    headers and its body in two writes, so with Nagle on, every keep-alive response after
    the first waited for the client's delayed ACK (about 40 ms on Linux): 64 callers got
    1,300 req/s.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accept()
        sock.bind(address[0][4])
        sock.listen(2048)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # NOTE: the gateway owns SIGTERM/SIGINT (server._serve_async) and stops us itself;
        # uvicorn's own handlers would replace the gateway's and re-raise the signal.
        yield


class HttpServer:
    """One uvicorn server as a task on the running loop: :meth:`start`, then :meth:`stop`."""

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        *,
        reuse_port: bool,
        grace_s: float,
        tls: tuple[Path, Path, Path | None] | None = None,
    ) -> None:
        self._app = app
        self._tls = tls  # (certificate, key, client CA or None): the gRPC port's TLS
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._grace_s = grace_s
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Bind, start serving, and return the bound port."""
        sock = tcp_listener(self._host, self._port, reuse_port=self._reuse_port)
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            http="auto",  # httptools when installed (uvicorn[standard]), else h11
            ws="none",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=max(1, round(self._grace_s)),
            **self._tls_options(),
        )
        self._server = _Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve([sock]))
        # Startup is a few awaits (create_server on an already bound socket).
        while not self._server.started:
            if self._task.done():
                await self._task
                raise OSError(f"HTTP server on {self._host}:{self._port} did not start")
            await asyncio.sleep(0.005)
        port: int = sock.getsockname()[1]
        return port

    def _tls_options(self) -> dict[str, Any]:
        if self._tls is None:
            return {}
        cert, key, client_ca = self._tls
        options: dict[str, Any] = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        if client_ca is not None:
            options.update(ssl_ca_certs=str(client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
        return options

    async def stop(self) -> None:
        """Stop accepting, let open requests finish (up to the grace period), close."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = None
        self._task = None
