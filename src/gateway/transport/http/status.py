"""The one place where exceptions become HTTP responses.

The status *name* comes from the same mapping the gRPC face uses
(:func:`gateway.transport.status.status_for`: the error tree's codes, the registry's
kinds); this module only says which HTTP status each name is::

    INVALID_ARGUMENT     400  bad tensor, datatype, shape, parameter, body
    UNAUTHENTICATED      401  missing or wrong token (with WWW-Authenticate: Bearer)
    PERMISSION_DENIED    403  the token's role lacks the permission
    NOT_FOUND            404  unknown model or version
    ALREADY_EXISTS       409
    FAILED_PRECONDITION  409  stale revision, refused change
    RESOURCE_EXHAUSTED   429  too many requests in flight (with Retry-After)
      MessageTooLarge    413  the body is over max_message_bytes (retrying cannot help)
    INVALID_ARGUMENT
      UnsupportedMediaType 415  an infer body that is neither JSON nor the binary extension
    CANCELLED            499  the client went away
    INTERNAL, DATA_LOSS  500  fixed message; the traceback is logged, never sent
    UNAVAILABLE          503  not loaded yet, draining
    DEADLINE_EXCEEDED    504

The body is always ``{"error": "<message>"}``; the message names the field at fault.
"""

from __future__ import annotations

import logging
import math

from starlette.responses import JSONResponse

from gateway.errors import GatewayError, MessageTooLarge, UnsupportedMediaType
from gateway.messages import cap_message
from gateway.transport.status import INTERNAL_MESSAGE, status_for
from registry import errors as reg

__all__ = ["HTTP_STATUS", "error_response", "http_status"]

log = logging.getLogger(__name__)

HTTP_STATUS: dict[str, int] = {
    "INVALID_ARGUMENT": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "FAILED_PRECONDITION": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
"""gRPC status names -> HTTP status; anything else (INTERNAL, DATA_LOSS, UNKNOWN) is 500."""


def http_status(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and client-safe message for an exception (500 for the unexpected)."""
    code, message = status_for(exc)
    if isinstance(exc, MessageTooLarge):
        return 413, message
    if isinstance(exc, UnsupportedMediaType):
        return 415, message
    return HTTP_STATUS.get(code.name, 500), message


def error_response(exc: BaseException) -> JSONResponse:
    """``{"error": ...}`` with the mapped status; logs a traceback only for the unexpected."""
    if not isinstance(exc, GatewayError | reg.RegistryError):
        log.error("unhandled error in the HTTP face", exc_info=exc)
        return JSONResponse({"error": INTERNAL_MESSAGE}, status_code=500)
    status, message = http_status(exc)
    headers: dict[str, str] = {}
    after = getattr(exc, "retry_after_s", None)
    if status == 429 and after is not None:
        # The same hint gRPC sends as grpc-retry-pushback-ms; Retry-After counts whole
        # seconds, so round up (a client retrying sooner than the hint would be refused).
        headers["Retry-After"] = str(max(1, math.ceil(after)))
    elif status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": cap_message(message)}, status_code=status, headers=headers)
