"""The one authorisation decision (gateway.access.AccessPolicy), without servers.

gRPC's role guard, the HTTP face and the console all ask this object; the gRPC side is
tested end to end in tests/governance/test_roles.py, the console in tests/console.
"""

from __future__ import annotations

import pytest

from gateway.access import (
    GRANTS,
    METHOD_PERMISSIONS,
    AccessPolicy,
    AccessRole,
    Permission,
    permission_for,
)

TOKENS = {"t-view": "vera", "t-op": "otto", "t-adm": "ada"}
ROLES = {"vera": "viewer", "otto": "operator"}


def test_a_token_names_its_principal_and_an_unknown_one_none() -> None:
    policy = AccessPolicy(TOKENS, ROLES)
    assert policy.configured
    assert policy.principal_for("t-op") == "otto"
    assert policy.principal_for("  t-op ") == "otto"  # whitespace around it is ignored
    assert policy.principal_for("t-o") is None
    assert not AccessPolicy({}, {}).configured


@pytest.mark.parametrize("role", list(AccessRole))
@pytest.mark.parametrize("needed", list(Permission))
def test_the_decision_follows_the_grants(role: AccessRole, needed: Permission) -> None:
    policy = AccessPolicy({"t": "p"}, {"p": role.value})
    verdict = policy.decide("p", needed, "DoIt")
    assert verdict.allowed == (needed in GRANTS[role])
    assert verdict.role is role and verdict.principal == "p"
    if not verdict.allowed:
        assert verdict.refusal is not None
        assert f"principal 'p' has role '{role}'" in verdict.refusal
        assert f"DoIt needs permission '{needed}'" in verdict.refusal


def test_a_principal_without_a_role_is_an_admin() -> None:
    verdict = AccessPolicy(TOKENS, ROLES).decide("ada", Permission.ADMINISTER, "SetPolicy")
    assert verdict.allowed and verdict.role is AccessRole.ADMIN


def test_methods_take_their_permission_from_the_table_and_unknown_ones_need_administer() -> None:
    policy = AccessPolicy(TOKENS, ROLES)
    for method, needed in METHOD_PERMISSIONS.items():
        assert permission_for(method) is needed
        assert policy.decide_method("otto", method).allowed == (
            needed in GRANTS[AccessRole.OPERATOR]
        )
    assert permission_for("x.Y/Unlisted") is Permission.ADMINISTER
    refused = policy.decide_method("otto", "x.Y/Unlisted")
    assert refused.refusal is not None and "Unlisted needs permission 'administer'" in (
        refused.refusal
    )
