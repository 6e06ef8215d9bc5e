"""Run a :class:`Gateway` on its own event loop in a background thread.

For the demo, notebooks and tests: callers use ordinary blocking clients against
``.target`` while the gateway serves, exactly as a separate application would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import grpc

from gateway.server import Gateway

__all__ = ["EmbeddedGateway"]

T = TypeVar("T")


class EmbeddedGateway:
    """Start with :meth:`start`, stop with :meth:`stop` (or use it as a context manager)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, daemon=True, name="onnxgate-embedded"
        )

    def start(self, timeout: float = 60) -> EmbeddedGateway:
        self._thread.start()
        self.call(self.gateway.start(), timeout)
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the gateway's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def port(self) -> int:
        return self.gateway.port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.gateway.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.metrics_port}/metrics"

    @property
    def http_url(self) -> str:
        """The HTTP face (OIP v2 REST and the console), e.g. ``http://127.0.0.1:8000``."""
        return f"http://127.0.0.1:{self.gateway.http_port}"

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.target)

    def stop(self, grace: float = 1.0) -> None:
        if self._thread.is_alive():
            self.call(self.gateway.stop(grace=grace), timeout=grace + 30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> EmbeddedGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
