"""The role guard: authenticate each call's bearer token, then ask :mod:`gateway.access`.

The role model and the decision itself (:class:`gateway.access.AccessPolicy`) are pure; this
module applies them to gRPC calls. The server wraps every method of every authenticated
service with :class:`RoleGuard` when it registers the handlers, and the guard publishes the
caller's role in :data:`principal_role` for the duration of the call.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

import grpc

from gateway.access import NO_TOKENS, AccessPolicy, AccessRole
from gateway.errors import PermissionDenied, Unauthenticated
from gateway.transport.auth import authenticate, principal

__all__ = ["RoleGuard", "principal_role"]

principal_role: ContextVar[AccessRole] = ContextVar("principal_role", default=AccessRole.VIEWER)
"""The calling principal's role, for the duration of an authenticated call."""


Req = TypeVar("Req")
Resp = TypeVar("Resp")
Method = Callable[[Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]


class RoleGuard:
    """Wraps servicer methods: authenticate the bearer token, then check the role.

    A refusal names the rule ("roles"), the principal, its role and what the method needs;
    never the token. With no tokens configured every call is refused.
    """

    def __init__(self, tokens: Mapping[str, str], roles: Mapping[str, str]) -> None:
        self.policy = AccessPolicy(tokens, roles)

    def role_of(self, who: str) -> AccessRole:
        return self.policy.role_of(who)

    def __call__(self, service: str, name: str, method: Method[Req, Resp]) -> Method[Req, Resp]:
        """``method``, answering as RPC ``service/name``, behind the guard."""
        full_name = f"{service}/{name}"
        policy = self.policy

        @functools.wraps(method)
        async def wrapper(request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
            if not policy.configured:
                raise Unauthenticated(NO_TOKENS)
            who = authenticate(context.invocation_metadata(), policy.tokens)
            verdict = policy.decide_method(who, full_name)
            if verdict.refusal is not None:
                raise PermissionDenied(verdict.refusal)
            reset_who, reset_role = principal.set(who), principal_role.set(verdict.role)
            try:
                return await method(request, context)
            finally:
                principal.reset(reset_who)
                principal_role.reset(reset_role)

        return wrapper
