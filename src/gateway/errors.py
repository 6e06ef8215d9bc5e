"""The gateway's one exception tree; each class names the status it maps to.

::

    GatewayError                      INTERNAL (never shows its message for this base)
    ├── InvalidArgument               INVALID_ARGUMENT   bad tensor, dtype, shape, parameter
    │   ├── UnsupportedMediaType      INVALID_ARGUMENT   HTTP body of the wrong Content-Type (415)
    │   └── RefusedByModel            INVALID_ARGUMENT   inputs the model cannot run (the
    │                                                    model runs others: the caller's fault)
    ├── NotFound                      NOT_FOUND          unknown model or version
    ├── Unavailable                   UNAVAILABLE        model not loaded yet, server draining
    ├── ResourceExhausted             RESOURCE_EXHAUSTED too many in flight, queue full (hint)
    │   └── MessageTooLarge           RESOURCE_EXHAUSTED a body over max_message_bytes (HTTP 413)
    ├── DeadlineExceeded              DEADLINE_EXCEEDED  client deadline passed while queued
    ├── FailedPrecondition            FAILED_PRECONDITION stale revision, refused change
    ├── Unauthenticated               UNAUTHENTICATED    missing or wrong token
    ├── PermissionDenied              PERMISSION_DENIED  token lacks the role
    ├── Unimplemented                 UNIMPLEMENTED      a protocol extension not served
    └── InferenceFailed               INTERNAL           the model itself failed (message is safe)

A status is a plain name (:data:`StatusName`, the spelling of ``grpc.StatusCode`` members), so
this module, and everything that raises these errors, stays free of grpc. Only
:mod:`gateway.transport.status` turns the names into ``grpc.StatusCode`` values; everything
else raises them. Messages must be safe to show a client: they name fields and expectations,
never payloads or secrets.

``retry_after_s`` is a hint for when the client should try again (None: no hint). gRPC
sends it as ``grpc-retry-pushback-ms`` trailing metadata, an HTTP face as ``Retry-After``.
:class:`ResourceExhausted` carries one by default; a raiser can give a better figure.
"""

from __future__ import annotations

from typing import ClassVar, Literal

__all__ = [
    "DeadlineExceeded",
    "FailedPrecondition",
    "GatewayError",
    "InferenceFailed",
    "InvalidArgument",
    "MessageTooLarge",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "RefusedByModel",
    "StatusName",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "Unimplemented",
]

StatusName = Literal[
    "CANCELLED",
    "DEADLINE_EXCEEDED",
    "FAILED_PRECONDITION",
    "INTERNAL",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "UNAUTHENTICATED",
    "UNAVAILABLE",
    "UNIMPLEMENTED",
]
"""The status names the gateway reports or counts: members of ``grpc.StatusCode``, by name.

``CANCELLED`` has no error class: no code raises it; the data plane counts a call its client
abandoned under it."""


class GatewayError(Exception):
    """Root of every error the gateway reports to a client on purpose."""

    code: ClassVar[StatusName] = "INTERNAL"
    default_retry_after_s: ClassVar[float | None] = None

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = self.default_retry_after_s if retry_after_s is None else retry_after_s


class InvalidArgument(GatewayError):
    code = "INVALID_ARGUMENT"


class UnsupportedMediaType(InvalidArgument):
    """An HTTP body declared with a media type the face does not read (HTTP 415)."""


class RefusedByModel(InvalidArgument):
    """The model's run failed on this request's values while it runs other requests: the
    caller's data is at fault, so it is the caller's error, never the version's."""


class NotFound(GatewayError):
    code = "NOT_FOUND"


class Unavailable(GatewayError):
    code = "UNAVAILABLE"


class ResourceExhausted(GatewayError):
    """Overload: the client should back off; the hint says for how long."""

    code = "RESOURCE_EXHAUSTED"
    default_retry_after_s: ClassVar[float | None] = 0.1


class MessageTooLarge(ResourceExhausted):
    """A request body over the size limit: retrying the same body cannot succeed."""

    default_retry_after_s = None  # no back-off hint: the same body is refused again


class DeadlineExceeded(GatewayError):
    code = "DEADLINE_EXCEEDED"


class FailedPrecondition(GatewayError):
    code = "FAILED_PRECONDITION"


class Unauthenticated(GatewayError):
    code = "UNAUTHENTICATED"


class PermissionDenied(GatewayError):
    code = "PERMISSION_DENIED"


class Unimplemented(GatewayError):
    code = "UNIMPLEMENTED"


class InferenceFailed(GatewayError):
    """The model's run raised; the message is ours (model, version), not onnxruntime's text."""

    code = "INTERNAL"
