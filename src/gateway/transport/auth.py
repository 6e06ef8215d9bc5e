"""Bearer-token authentication for servicer methods.

``authorization: Bearer <token>`` metadata is compared in constant time against the
configured tokens; the matching principal is published in :data:`principal` for the call
(audit records name it). Tokens are never logged; a refusal names no token.

The scheme name is case-insensitive (RFC 7235 section 2.1, as RFC 6750 uses it):
``Bearer``, ``bearer`` and ``BEARER`` are one scheme. Any other scheme (``Basic``...), or
no token after it, is refused. Whitespace around the token is ignored.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

import grpc

from gateway.access import NO_TOKENS, principal_for_token
from gateway.errors import Unauthenticated

__all__ = ["authenticate", "principal", "requires_token"]

principal: ContextVar[str] = ContextVar("principal", default="anonymous")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Method = Callable[[Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]


def authenticate(metadata: Any, tokens: Mapping[str, str]) -> str:
    """Return the principal for the call's bearer token, or raise Unauthenticated."""
    presented = None
    for name, value in metadata or ():
        if name == "authorization":
            presented = value if isinstance(value, str) else value.decode()
            break
    if presented is None:
        raise Unauthenticated("missing 'authorization: Bearer <token>' metadata")
    scheme, _, token = presented.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
    found = principal_for_token(token, tokens)  # constant time (gateway.access)
    if found is None:
        raise Unauthenticated("invalid token")
    return found


def requires_token(tokens: Mapping[str, str]) -> Callable[[Method[Req, Resp]], Method[Req, Resp]]:
    """Decorate a servicer method so it runs only for a caller holding one of ``tokens``.

    With no tokens configured every call is refused: an admin API must not be open by
    accident.
    """

    def decorate(method: Method[Req, Resp]) -> Method[Req, Resp]:
        @functools.wraps(method)
        async def wrapper(request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
            if not tokens:
                raise Unauthenticated(NO_TOKENS)
            who = authenticate(context.invocation_metadata(), tokens)
            reset = principal.set(who)
            try:
                return await method(request, context)
            finally:
                principal.reset(reset)

        return wrapper

    return decorate
