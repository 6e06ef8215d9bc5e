"""The HTTP face assembled: OIP v2 routes, Triton's extensions and the console, one app.

Kept beside the routes so that the composition root (``gateway.server``) hands over the
collaborators and gets back one :class:`HttpServer` that serves them on the gateway's loop,
through the same data plane, operations core and wrappers as gRPC.
"""

from __future__ import annotations

from typing import Any

from gateway.access import AccessPolicy
from gateway.operations import Operations
from gateway.registry_facade import AsyncSessions
from gateway.serving.dataplane import DataPlane
from gateway.serving.reads import Reads
from gateway.settings import Settings
from gateway.transport.decoding import Decoder
from gateway.transport.grpc_server import inference_wrapper
from gateway.transport.http.app import build_app
from gateway.transport.http.console import ConsoleRoutes
from gateway.transport.http.guard import LoginThrottle
from gateway.transport.http.inference import InferenceRoutes
from gateway.transport.http.server import HttpServer
from gateway.transport.http.triton_ext import TritonRoutes
from gateway.transport.roles import RoleGuard
from gateway.transport.shm import SharedMemoryRegions

__all__ = ["http_server"]


def http_server(
    s: Settings,
    *,
    reads: Reads,
    plane: DataPlane,
    decoder: Decoder,
    operations: Operations,
    sessions: AsyncSessions,
    inference: Any,
    regions: SharedMemoryRegions,
) -> HttpServer:
    """OIP v2 over HTTP, on this loop, through the same data plane as gRPC."""
    routes = InferenceRoutes(
        reads,
        plane,
        predict_tokens=s.predict_tokens,
        max_body_bytes=s.max_message_bytes,
        decoder=decoder,
        regions=regions,
    )
    # The console calls the operations core, authorised by the same decision as gRPC.
    console = ConsoleRoutes(
        operations=operations,
        access=AccessPolicy(s.admin_tokens, s.admin_roles),
        sessions=sessions,
        session_s=s.console_session_s,
        throttle=LoginThrottle(s.console_login_attempts),
    )
    tls = (
        None
        if s.tls_cert is None or s.tls_key is None
        else (s.tls_cert, s.tls_key, s.tls_client_ca)
    )
    # Triton's routes call the inference servicer's methods wrapped as gRPC registers them.
    triton = TritonRoutes(inference, inference_wrapper(s, RoleGuard(s.admin_tokens, s.admin_roles)))
    return HttpServer(
        build_app(
            # Triton's extensions first: /v2/models/stats is not a model's metadata.
            [*triton.routes(), *routes.routes(), *console.routes()],
            max_body_bytes=s.max_message_bytes,
            infer=routes.infer,
        ),
        s.host,
        s.http_port,
        reuse_port=s.workers > 1,
        grace_s=s.grace_s,
        tls=tls,
    )
