"""The gRPC server: every service registered, wrapped and guarded in one place.

The composition root (:mod:`gateway.server`) builds the servicers; this module decides how
they meet the wire: message size limits, port sharing, the error mapping around every
method, predict tokens, the role guard around every operator RPC, services that parse their
own bodies (so garbage is INVALID_ARGUMENT, never UNKNOWN), reflection over our private
descriptor pool, and the server's TLS credentials.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import SERVICE_NAME as HEALTH_SERVICE
from grpc_reflection.v1alpha import reflection, reflection_pb2

from gateway._proto import (
    admin_pb2,
    governance_pb2,
    governor_pb2,
    grpc_service_pb2,
    monitoring_pb2,
)
from gateway.settings import Settings
from gateway.transport.auth import requires_token
from gateway.transport.explain import EXPLAIN_SERVICE, ExplainServicer
from gateway.transport.governor import GOVERNOR_SERVICE
from gateway.transport.handlers import Wrap, add_service
from gateway.transport.roles import RoleGuard
from gateway.transport.status import grpc_errors
from gateway.transport.triton import PREDICT_METHODS, REPOSITORY_METHODS

__all__ = ["INFERENCE_SERVICE", "build_grpc_server", "inference_wrapper", "server_credentials"]

INFERENCE_SERVICE = grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
MONITORING_SERVICE = monitoring_pb2.DESCRIPTOR.services_by_name["MonitoringService"].full_name
GOVERNANCE_SERVICE = governance_pb2.DESCRIPTOR.services_by_name["GovernanceService"].full_name


class _ReflectionPool:
    """Answers reflection from our private pool first, then protobuf's default pool
    (where the health and reflection services live)."""

    def __init__(self) -> None:
        from google.protobuf import descriptor_pool

        from gateway._proto import _pool

        self._pools = (_pool.POOL, descriptor_pool.Default())

    def __getattr__(self, name: str) -> Any:
        pools = self._pools

        def lookup(*args: Any) -> Any:
            error: Exception | None = None
            for pool in pools:
                try:
                    return getattr(pool, name)(*args)
                except KeyError as exc:
                    error = exc
            assert error is not None
            raise error

        return lookup


def inference_wrapper(s: Settings, guard: RoleGuard) -> Wrap:
    """How each GRPCInferenceService method is wrapped, on gRPC and wherever the HTTP face
    calls the same methods in process (Triton's repository and statistics routes): the
    predict token for what serves predictions, the operator role for repository load and
    unload (they change what is served), one error mapping for all."""

    def wrap(name: str, method: Any) -> Any:
        if name in REPOSITORY_METHODS:
            return grpc_errors(guard(INFERENCE_SERVICE, name, method))
        if name in PREDICT_METHODS and s.predict_tokens:
            method = requires_token(s.predict_tokens)(method)
        return grpc_errors(method)

    return wrap


def build_grpc_server(
    s: Settings,
    *,
    inference: Any,
    admin: Any,
    monitoring: Any,
    governance: Any,
    governor: Any,
    explain: ExplainServicer,
    health: Any,
) -> grpc.aio.Server:
    """A grpc.aio server with every service registered (not yet bound nor started)."""
    options = [
        ("grpc.max_receive_message_length", s.max_message_bytes),
        ("grpc.max_send_message_length", s.max_message_bytes),
        # Several workers share one port only when asked to; otherwise a taken port is
        # an error, not a silent second listener.
        ("grpc.so_reuseport", 1 if s.workers > 1 else 0),
    ]
    server = grpc.aio.server(options=options)
    # Every operator RPC: token -> principal -> role -> the permission the method needs
    # (gateway.access decides), applied here as each handler is registered.
    guard = RoleGuard(s.admin_tokens, s.admin_roles)
    inference_wrap = inference_wrapper(s, guard)

    def guarded(service: str) -> Wrap:
        return lambda name, method: grpc_errors(guard(service, name, method))

    def governor_wrap(name: str, method: Any) -> Any:
        # Feedback is authenticated like ModelInfer (predict tokens when there are any, else
        # open): whoever may ask for predictions may label them.
        if name != "Feedback":
            return guarded(GOVERNOR_SERVICE)(name, method)
        if s.predict_tokens:
            method = requires_token(s.predict_tokens)(method)
        return grpc_errors(method)

    # Every service parses its own request bodies: one that is not a message is the
    # client's INVALID_ARGUMENT, never grpc's UNKNOWN with a traceback (handlers.py).
    add_service(server, inference, grpc_service_pb2, "GRPCInferenceService", inference_wrap)
    add_service(server, admin, admin_pb2, "AdminService", guarded(ADMIN_SERVICE))
    add_service(
        server, monitoring, monitoring_pb2, "MonitoringService", guarded(MONITORING_SERVICE)
    )
    add_service(
        server, governance, governance_pb2, "GovernanceService", guarded(GOVERNANCE_SERVICE)
    )
    add_service(server, governor, governor_pb2, "GovernorService", governor_wrap)
    explain.add_to_server(server, predict_tokens=s.predict_tokens)
    # Health and reflection too, so garbage to them is no traceback either.
    add_service(server, health, health_pb2, "Health")
    reflecting = reflection.aio.ReflectionServicer(
        (
            INFERENCE_SERVICE,
            ADMIN_SERVICE,
            MONITORING_SERVICE,
            GOVERNOR_SERVICE,
            GOVERNANCE_SERVICE,
            EXPLAIN_SERVICE,
            HEALTH_SERVICE,
            reflection.SERVICE_NAME,
        ),
        pool=_ReflectionPool(),  # type: ignore[arg-type]  # duck-typed: see class
    )
    add_service(server, reflecting, reflection_pb2, "ServerReflection")
    return server


def server_credentials(s: Settings) -> grpc.ServerCredentials | None:
    """TLS from the settings (mTLS when a client CA is set); None for plaintext."""
    if s.tls_cert is None or s.tls_key is None:
        return None
    root = s.tls_client_ca.read_bytes() if s.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(s.tls_key.read_bytes(), s.tls_cert.read_bytes())],
        root_certificates=root,
        require_client_auth=root is not None,
    )
