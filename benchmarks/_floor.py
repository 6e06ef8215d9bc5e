"""What the two floor servers (``echo_server.py``, ``bare_server.py``) share: the health
answers, the command line and the run until SIGTERM.

Imports only grpc and the generated messages, like ``bare_server.py`` itself, so both still
run under another grpcio release (``--bare-python``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc

from gateway._proto import grpc_service_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]


class HealthAnswers:
    """ServerLive, ServerReady and ModelReady over ``self._models``."""

    _models: Mapping[str, object]

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=True)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=request.name in self._models)


def arguments(doc: str) -> tuple[int, dict[str, Path]]:
    """``--port`` and the ``--model NAME=PATH.onnx`` list, by name."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model", action="append", required=True, metavar="NAME=PATH.onnx")
    args = p.parse_args()
    models = {}
    for item in args.model:
        name, _, path = item.partition("=")
        models[name] = Path(path)
    return args.port, models


async def run_until_signalled(
    server: grpc.aio.Server, program: str, port: int, banner: str
) -> None:
    """Listen on 127.0.0.1:``port``, print ``banner`` once serving, stop on SIGTERM/SIGINT."""
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"{program}: cannot listen on 127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(banner, flush=True)
    await stop.wait()
    await server.stop(0.5)
