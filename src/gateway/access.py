"""Who may do what on the authenticated APIs: roles, permissions, and the method table.

Pure data and parsing, no grpc: :mod:`gateway.settings` reads role tables and token entries
with it, and :class:`gateway.transport.roles.RoleGuard` enforces it on every call.

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

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

__all__ = [
    "DEFAULT_ROLE",
    "GRANTS",
    "METHOD_PERMISSIONS",
    "AccessRole",
    "Permission",
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
    _MON + "GetDrift": _R,
    _MON + "GetShadowReport": _R,
    _MON + "GetPerformance": _R,
    _GVR + "GetStatus": _R,
    _GVR + "GetPolicy": _R,
    _GVR + "Pause": _O,
    _GVR + "Resume": _O,
    _GVR + "SetPolicy": _O,
    _GVR + "Approve": _A,
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
