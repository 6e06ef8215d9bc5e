"""The role guard: authenticate each call's bearer token, then check its role.

The role model itself (roles, permissions, which method needs which) is
:mod:`gateway.access`; this module enforces it on gRPC calls. The server applies
:class:`RoleGuard` to every method of every authenticated service in one place, and publishes
the caller's role in :data:`principal_role` for the duration of the call.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

import grpc

from gateway.access import (
    DEFAULT_ROLE,
    GRANTS,
    METHOD_PERMISSIONS,
    AccessRole,
    Permission,
    parse_role,
)
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
        self._tokens = tokens
        self._roles = {who: parse_role(role) for who, role in roles.items()}

    def role_of(self, who: str) -> AccessRole:
        return self._roles.get(who, DEFAULT_ROLE)

    def __call__(self, service: str, method: Method[Req, Resp]) -> Method[Req, Resp]:
        name = f"{service}/{method.__name__}"
        needed = METHOD_PERMISSIONS.get(name, Permission.ADMINISTER)
        allowed = sorted(r.value for r, grants in GRANTS.items() if needed in grants)

        @functools.wraps(method)
        async def wrapper(request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
            if not self._tokens:
                raise Unauthenticated("no tokens are configured for this API")
            who = authenticate(context.invocation_metadata(), self._tokens)
            role = self.role_of(who)
            if needed not in GRANTS[role]:
                raise PermissionDenied(
                    f"rule 'roles': principal '{who}' has role '{role}', but "
                    f"{method.__name__} needs permission '{needed}' "
                    f"(role {' or '.join(allowed)})"
                )
            reset_who, reset_role = principal.set(who), principal_role.set(role)
            try:
                return await method(request, context)
            finally:
                principal.reset(reset_who)
                principal_role.reset(reset_role)

        return wrapper
