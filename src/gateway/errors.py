"""The gateway's one exception tree; each class names the gRPC status it maps to.

::

    GatewayError                      INTERNAL (never shows its message for this base)
    ├── InvalidArgument               INVALID_ARGUMENT   bad tensor, dtype, shape, parameter
    ├── NotFound                      NOT_FOUND          unknown model or version
    ├── Unavailable                   UNAVAILABLE        model not loaded yet, server draining
    ├── ResourceExhausted             RESOURCE_EXHAUSTED queue full, message too large
    ├── DeadlineExceeded              DEADLINE_EXCEEDED  client deadline passed while queued
    ├── FailedPrecondition            FAILED_PRECONDITION stale revision, refused change
    ├── Unauthenticated               UNAUTHENTICATED    missing or wrong token
    ├── PermissionDenied              PERMISSION_DENIED  token lacks the role
    └── InferenceFailed               INTERNAL           the model itself failed (message is safe)

Only :mod:`gateway.transport.status` turns these into statuses; everything else raises them.
Messages must be safe to show a client: they name fields and expectations, never payloads
or secrets.
"""

from __future__ import annotations

import grpc

__all__ = [
    "DeadlineExceeded",
    "FailedPrecondition",
    "GatewayError",
    "InferenceFailed",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
]


class GatewayError(Exception):
    """Root of every error the gateway reports to a client on purpose."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(GatewayError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(GatewayError):
    code = grpc.StatusCode.NOT_FOUND


class Unavailable(GatewayError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(GatewayError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(GatewayError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class FailedPrecondition(GatewayError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(GatewayError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(GatewayError):
    code = grpc.StatusCode.PERMISSION_DENIED


class InferenceFailed(GatewayError):
    """The model's run raised; the message is ours (model, version), not onnxruntime's text."""

    code = grpc.StatusCode.INTERNAL
