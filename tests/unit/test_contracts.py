"""Data contracts derived from a reference profile: ranges with a margin, categories seen,
missing values; one vectorised check per batch naming the first violation."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from shared import wait_for

from gateway.errors import InvalidArgument
from gateway.governor.rollout import RolloutPolicyError, parse_rollout_policy
from gateway.monitoring.contract_guard import ContractGuard
from gateway.monitoring.contracts import Contract
from gateway.monitoring.profiles import build_profile
from gateway.monitoring.reference import build_version_profiles
from gateway.tools import modelzoo
from registry.signature import signature_from_bytes


def reference() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.column_stack(
        [rng.uniform(18, 100, 2000), rng.integers(0, 3, 2000), rng.normal(size=2000)]
    )
    x[::50, 2] = np.nan  # income may be missing; age and region never are
    return x


def test_contract_from_profile_and_check() -> None:
    profile = build_profile(reference(), ("age", "region", "income"))
    contract = Contract.from_profile(profile, margin=0.1)
    width = profile.maximum[0] - profile.minimum[0]
    assert contract.low[0] == pytest.approx(profile.minimum[0] - 0.1 * width)
    assert contract.categorical.tolist() == [False, True, False]
    assert contract.nan_allowed.tolist() == [False, False, True]

    ok = np.array([[30.0, 1.0, 0.5], [99.0, 2.0, math.nan]])
    assert contract.check(ok).total == 0
    bad = np.array([[30.0, 1.0, 0.5], [150.0, 1.0, 0.0], [40.0, 7.0, 0.0], [math.nan, 0.0, 0.0]])
    v = contract.check(bad)
    assert v.per_feature.tolist() == [2, 1, 0]
    assert v.first == (1, 0, 150.0)
    message = contract.describe(v.first)
    assert message.startswith("row 1: feature 'age' = 150 violates the data contract")
    assert "one of 0, 1, 2" in contract.describe((2, 1, 7.0))
    assert "never missing" in contract.describe((3, 0, math.nan))

    again = Contract.from_dict(contract.to_dict())
    assert again.check(bad).per_feature.tolist() == [2, 1, 0]


def test_contract_policy() -> None:
    policy = parse_rollout_policy('[contract]\nmode = "reject"\nmargin = 0.2\n')
    assert (policy.contract.mode, policy.contract.margin) == ("reject", 0.2)
    assert parse_rollout_policy("").contract.mode == "off"
    with pytest.raises(RolloutPolicyError, match="contract.mode"):
        parse_rollout_policy('[contract]\nmode = "strict"\n')


def test_guard_counts_rejects_and_follows_the_margin() -> None:
    signature = signature_from_bytes(modelzoo.mlp((3, 4, 2), seed=0))
    rows = np.random.default_rng(0).uniform(0.0, 1.0, (500, 3))
    doc = build_version_profiles(signature, rows).to_doc()
    guard = ContractGuard(lambda model, version: (doc, "reference"))
    try:
        x = {"x": np.array([[0.5, 0.5, 1.3]], dtype=np.float32)}  # 30 % of the range above
        guard.configure({"m": SimpleNamespace(mode="reject", margin=0.1)})
        guard.check("m", "1", signature, x)  # not read yet: not checked
        wait_for(lambda: guard.ready("m", "1"), timeout=10)
        with pytest.raises(InvalidArgument, match="feature 'x\\[2\\]' = 1.3"):
            guard.check("m", "1", signature, x)
        guard.configure({"m": SimpleNamespace(mode="count", margin=0.5)})
        assert not guard.ready("m", "1")
        guard.check("m", "1", signature, x)  # the old contract counts while the new loads
        wait_for(lambda: guard.ready("m", "1"), timeout=10)
        guard.check("m", "1", signature, x)  # within the wider margin
        names, counts = guard.counts[("m", "1")]
        assert names == ("x[0]", "x[1]", "x[2]") and counts.tolist() == [0, 0, 2]
        guard.configure({})
        assert guard.mode("m") == "off"
    finally:
        guard.close()


def test_flagged_features_are_a_bounded_response_parameter() -> None:
    from gateway.domain import InferResult
    from gateway.transport.oip import MAX_FLAGGED, response_parameters

    def params(flagged: tuple[str, ...]) -> dict[str, str]:
        return response_parameters(InferResult("m", "1", "canary", "", {}, 1, flagged))

    assert params(()) == {"role": "canary"}
    assert params(("a", "b")) == {"role": "canary", "contract_violations": "a,b"}
    many = tuple(f"f{i}" for i in range(MAX_FLAGGED + 5))
    got = params(many)
    assert got["contract_violations"].split(",") == list(many[:MAX_FLAGGED])
    assert got["contract_violations_more"] == "5"
