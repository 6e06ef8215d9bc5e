"""The edge: the only room that speaks gRPC, protobuf and HTTP.

Servicers (inference, admin, governance, governor, monitoring) convert protobuf to domain
values in :mod:`~gateway.transport.converters`, call the core and convert back; errors become
statuses in one place (:mod:`~gateway.transport.status`); bearer tokens and roles are
checked by :mod:`~gateway.transport.auth` and :mod:`~gateway.transport.roles`; ``/metrics``
is served by :mod:`~gateway.transport.metrics_http`. The composition root
(:mod:`gateway.server`) wires these up; nothing below this room imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.lazy import lazy_attributes

if TYPE_CHECKING:
    from gateway.transport.admin import AdminServicer
    from gateway.transport.auth import requires_token
    from gateway.transport.governance import GovernanceServicer
    from gateway.transport.governor import GOVERNOR_SERVICE, GovernorServicer
    from gateway.transport.handlers import add_service
    from gateway.transport.inference import InferenceServicer
    from gateway.transport.metrics_http import start_metrics_server
    from gateway.transport.monitoring import MonitoringServicer
    from gateway.transport.roles import RoleGuard
    from gateway.transport.status import grpc_errors, status_for

__all__ = [
    "GOVERNOR_SERVICE",
    "AdminServicer",
    "GovernanceServicer",
    "GovernorServicer",
    "InferenceServicer",
    "MonitoringServicer",
    "RoleGuard",
    "add_service",
    "grpc_errors",
    "requires_token",
    "start_metrics_server",
    "status_for",
]

_LAZY = {
    "AdminServicer": "gateway.transport.admin",
    "GOVERNOR_SERVICE": "gateway.transport.governor",
    "GovernanceServicer": "gateway.transport.governance",
    "GovernorServicer": "gateway.transport.governor",
    "InferenceServicer": "gateway.transport.inference",
    "MonitoringServicer": "gateway.transport.monitoring",
    "RoleGuard": "gateway.transport.roles",
    "add_service": "gateway.transport.handlers",
    "grpc_errors": "gateway.transport.status",
    "requires_token": "gateway.transport.auth",
    "start_metrics_server": "gateway.transport.metrics_http",
    "status_for": "gateway.transport.status",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
