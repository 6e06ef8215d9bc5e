"""Who may do what on the authenticated APIs: roles, permissions, the method table, and the
one decision every face asks.

Pure data, parsing and decisions, no grpc: :mod:`gateway.settings` reads role tables and
token entries with it; :class:`AccessPolicy` decides, for a bearer token and the permission
an action needs, who is asking and whether they may. The gRPC role guard
(:class:`gateway.transport.roles.RoleGuard`, applied when handlers are registered), the HTTP
face and the console all ask it, so the three cannot disagree.

A principal (from its bearer token, see :mod:`gateway.transport.auth`) has one role:

==========  ==============================================================
viewer      reads: models, deployments, history, approvals, audit, drift
operator    reads, and changes traffic and lifecycle (weights, promote, retire)
approver    reads, and approves versions
admin       everything, including the governance policy
==========  ==============================================================

Approver does not include operator on purpose: whoever signs a version off need not be
able to route traffic to it (separation of duties). Roles come from the settings
(``admin_roles``, principal -> role, or ``principal:role:token`` entries in
``ONNXGATE_ADMIN_TOKENS``); a principal given no role is an admin, which is what every
token was before roles existed.

:data:`METHOD_PERMISSIONS` maps every authenticated RPC to the permission it needs; a
method missing from it needs ``administer`` (fail closed).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "DEFAULT_ROLE",
    "GRANTS",
    "METHOD_PERMISSIONS",
    "NO_TOKENS",
    "AccessPolicy",
    "AccessRole",
    "Permission",
    "Verdict",
    "permission_for",
    "principal_for_token",
    "parse_role",
    "parse_role_table",
    "roles_in_token_spec",
    "split_token_entry",
]


class AccessRole(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"
    OPERATE = "operate"
    APPROVE = "approve"
    ADMINISTER = "administer"


GRANTS: Mapping[AccessRole, frozenset[Permission]] = {
    AccessRole.VIEWER: frozenset({Permission.READ}),
    AccessRole.OPERATOR: frozenset({Permission.READ, Permission.OPERATE}),
    AccessRole.APPROVER: frozenset({Permission.READ, Permission.APPROVE}),
    AccessRole.ADMIN: frozenset(Permission),
}

DEFAULT_ROLE = AccessRole.ADMIN
"""The role of a principal the settings give no role (tokens configured the old way)."""

_ADMIN = "onnxgate.admin.v1.AdminService/"
_GOV = "onnxgate.governance.v1.GovernanceService/"
_MON = "onnxgate.monitoring.v1.MonitoringService/"
_GVR = "onnxgate.governor.v1.GovernorService/"
_INF = "inference.GRPCInferenceService/"
_R, _O, _A, _X = Permission.READ, Permission.OPERATE, Permission.APPROVE, Permission.ADMINISTER

METHOD_PERMISSIONS: Mapping[str, Permission] = {
    _ADMIN + "ListModels": _R,
    _ADMIN + "GetDeployment": _R,
    _ADMIN + "ListHistory": _R,
    _ADMIN + "SetDeployment": _O,
    _ADMIN + "SetWeights": _O,
    _ADMIN + "Promote": _O,
    _ADMIN + "Rollback": _O,
    _ADMIN + "AddShadow": _O,
    _ADMIN + "RemoveShadow": _O,
    _GOV + "WhoAmI": _R,
    _GOV + "ListApprovals": _R,
    _GOV + "GetPolicy": _R,
    _GOV + "ListAudit": _R,
    _GOV + "VerifyAudit": _R,
    _GOV + "DeploymentAt": _R,
    _GOV + "ValidateVersion": _O,
    _GOV + "RetireVersion": _O,
    _GOV + "Approve": _A,
    _GOV + "SetPolicy": _X,
    _GOV + "GetContract": _R,
    _GOV + "SetContract": _O,
    _MON + "GetDrift": _R,
    _MON + "GetShadowReport": _R,
    _MON + "GetPerformance": _R,
    _GVR + "GetStatus": _R,
    _GVR + "GetPolicy": _R,
    _GVR + "Pause": _O,
    _GVR + "Resume": _O,
    _GVR + "SetPolicy": _O,
    _GVR + "Approve": _A,
    _INF + "RepositoryModelLoad": _O,
    _INF + "RepositoryModelUnload": _O,
}


def parse_role(name: str) -> AccessRole:
    """A role by name, case-insensitively; ValueError naming the known roles otherwise."""
    try:
        return AccessRole(name.strip().lower())
    except ValueError:
        known = ", ".join(r.value for r in AccessRole)
        raise ValueError(f"unknown role {name!r}; roles are {known}") from None


def split_token_entry(item: str) -> tuple[str, str | None, str]:
    """``principal:token`` or ``principal:role:token`` -> (principal, role or None, token).

    The middle part is read as a role only when it names one, so a legacy token that itself
    contains ':' keeps working.
    """
    who, sep, rest = item.partition(":")
    if not sep or not who.strip() or not rest:
        raise ValueError("expected principal:token or principal:role:token entries")
    maybe_role, sep, token = rest.partition(":")
    if sep and token and maybe_role.strip().lower() in {r.value for r in AccessRole}:
        return who.strip(), maybe_role.strip().lower(), token
    return who.strip(), None, rest


def roles_in_token_spec(spec: str) -> dict[str, str]:
    """principal -> role for the ``principal:role:token`` entries of a token list."""
    roles: dict[str, str] = {}
    for item in spec.split(","):
        if item.strip():
            who, role, _ = split_token_entry(item.strip())
            if role is not None:
                roles[who] = role
    return roles


def parse_role_table(value: Any) -> dict[str, str]:
    """``alice:approver,bob:operator`` (env) or a TOML table {alice = "approver"}."""
    pairs: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        for item in str(value).split(","):
            if item.strip():
                who, sep, role = item.partition(":")
                if not sep or not who.strip():
                    raise ValueError("expected principal:role entries separated by commas")
                pairs.append((who.strip(), role))
    return {who: parse_role(role).value for who, role in pairs}


NO_TOKENS = "no tokens are configured for this API"
"""The refusal of every call to an API that has no tokens (it must not be open by accident)."""


def permission_for(method: str) -> Permission:
    """The permission ``service/Method`` needs; ``administer`` for one not listed (fail
    closed)."""
    return METHOD_PERMISSIONS.get(method, Permission.ADMINISTER)


def principal_for_token(token: str, tokens: Mapping[str, str]) -> str | None:
    """The principal holding ``token``, or None; compared in constant time against every
    known token, so timing does not reveal which prefix matched."""
    found = None
    for known, who in tokens.items():
        if hmac.compare_digest(known.encode(), token.strip().encode()):
            found = who
    return found


@dataclass(frozen=True)
class Verdict:
    """The decision on one call: who, their role, what it needed, and the refusal if any."""

    principal: str
    role: AccessRole
    needed: Permission
    refusal: str | None = None
    """Why the call is refused (a PERMISSION_DENIED message naming the rule); None: allowed."""

    @property
    def allowed(self) -> bool:
        return self.refusal is None


class AccessPolicy:
    """The token table and role table of one API, and the decisions over them."""

    def __init__(self, tokens: Mapping[str, str], roles: Mapping[str, str]) -> None:
        self.tokens = tokens
        self._roles = {who: parse_role(role) for who, role in roles.items()}

    @property
    def configured(self) -> bool:
        """Whether any token is configured (with none, every call is refused)."""
        return bool(self.tokens)

    def principal_for(self, token: str) -> str | None:
        return principal_for_token(token, self.tokens)

    def role_of(self, who: str) -> AccessRole:
        return self._roles.get(who, DEFAULT_ROLE)

    def decide(self, who: str, needed: Permission, action: str) -> Verdict:
        """May ``who`` (authenticated) do ``action``, which needs ``needed``?"""
        role = self.role_of(who)
        if needed in GRANTS[role]:
            return Verdict(who, role, needed)
        allowed = sorted(r.value for r, grants in GRANTS.items() if needed in grants)
        refusal = (
            f"rule 'roles': principal '{who}' has role '{role}', but {action} needs "
            f"permission '{needed}' (role {' or '.join(allowed)})"
        )
        return Verdict(who, role, needed, refusal)

    def decide_method(self, who: str, method: str) -> Verdict:
        """:meth:`decide` for the RPC ``service/Method`` (its permission from the table)."""
        return self.decide(who, permission_for(method), method.rpartition("/")[2])
