"""The label-free estimate gates (min_estimated_accuracy, max_estimated_drop): policy keys,
decisions on hand-built snapshots, the audit record saying an estimate was used, and the
fleet's merge of estimates as sums."""

from __future__ import annotations

import math

import pytest

from gateway.fleet.payload import decode, encode, merge
from gateway.governor.decide import (
    DecisionKind,
    Evidence,
    GateStatus,
    GovernorState,
    Snapshot,
    Traffic,
    VersionSnapshot,
    decide,
)
from gateway.governor.evidence import Estimated
from gateway.governor.rollout import (
    CanaryPolicy,
    Gates,
    RolloutPolicy,
    RolloutPolicyError,
    parse_rollout_policy,
)

BOUNDS = (0.01, math.inf)


def estimated(rows: int, accuracy: float) -> Estimated:
    c = accuracy  # every row equally sure: variance rows * c * (1 - c)
    return Estimated(rows, rows * c, rows * c * (1 - c))


def evidence(est: Estimated | None, requests: int = 2000) -> Evidence:
    return Evidence(traffic=Traffic(requests, 0, BOUNDS, (requests, 0)), estimated=est)


def run(gates: Gates, cand: Estimated | None, champ: Estimated | None):  # type: ignore[no-untyped-def]
    policy = RolloutPolicy(canary=CanaryPolicy(min_requests=100), gates=gates)
    versions = {
        "1": VersionSnapshot("1", "champion", 95.0, evidence(champ)),
        "2": VersionSnapshot("2", "canary", 5.0, evidence(cand, 200)),
    }
    return decide(policy, Snapshot("m", 3, versions), GovernorState())


def test_policy_keys_parse_and_are_checked() -> None:
    policy = parse_rollout_policy(
        "[gates]\nmin_estimated_accuracy = 0.8\nmax_estimated_drop = 0.03\n"
        'hard = ["estimated_drop"]\n'
    )
    assert policy.gates.min_estimated_accuracy == 0.8
    assert policy.gates.max_estimated_drop == 0.03
    assert Gates().min_estimated_accuracy is None and Gates().max_estimated_drop is None
    with pytest.raises(RolloutPolicyError, match="min_estimated_accuracy"):
        parse_rollout_policy("[gates]\nmin_estimated_accuracy = 1.5\n")


def test_estimated_drop_rolls_back_before_any_label() -> None:
    gates = Gates(max_estimated_drop=0.03, hard=frozenset({"estimated_drop"}))
    d = run(gates, estimated(4000, 0.70), estimated(20000, 0.82))
    (g,) = [g for g in d.gates if g.name == "estimated_drop"]
    assert g.status is GateStatus.FAIL and g.value is not None and g.value < -0.03
    assert d.kind is DecisionKind.ROLLBACK
    record = d.to_dict()
    assert record["used_estimate"] is True
    assert record["figures"]["2"]["estimated_accuracy"] == pytest.approx(0.70)

    # Within noise of the champion: the interval keeps it from failing.
    d = run(gates, estimated(300, 0.80), estimated(20000, 0.82))
    assert [g.status for g in d.gates if g.name == "estimated_drop"] == [GateStatus.PASS]
    # No estimate (no reference labels): pending, and the record says none was used.
    d = run(gates, None, estimated(20000, 0.82))
    assert [g.status for g in d.gates if g.name == "estimated_drop"] == [GateStatus.PENDING]
    assert d.to_dict()["used_estimate"] is False


def test_min_estimated_accuracy_uses_the_upper_bound() -> None:
    gates = Gates(min_estimated_accuracy=0.8)
    fail = run(gates, estimated(4000, 0.70), None)
    assert [g.status for g in fail.gates if g.name == "estimated_accuracy"] == [GateStatus.FAIL]
    near = run(gates, estimated(100, 0.77), None)  # 0.77 +- 0.08: not clearly below
    assert [g.status for g in near.gates if g.name == "estimated_accuracy"] == [GateStatus.PASS]
    few = run(gates, estimated(5, 0.1), None)  # below min_requests rows: pending
    assert [g.status for g in few.gates if g.name == "estimated_accuracy"] == [GateStatus.PENDING]


def test_fleet_merges_live_estimates_as_sums() -> None:
    a, b = estimated(1000, 0.7), estimated(3000, 0.8)
    back = decode(encode(Evidence(estimated=a)))
    assert back.estimated == a
    merged = merge([(Evidence(estimated=a), True), (Evidence(estimated=b), True)])
    assert merged.estimated is not None
    assert merged.estimated.accuracy == pytest.approx((700 + 2400) / 4000)
    stale = merge([(Evidence(estimated=a), True), (Evidence(estimated=b), False)])
    assert stale.estimated == a  # a stopped process's window is not current
