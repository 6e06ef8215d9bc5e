"""Contract violations as governor evidence: the ``contracts`` part merges a fleet's counts
as sums and windows by difference, and the gate ``max_contract_violation_rate`` holds or
rolls back a canary whose share of violating rows is over the bar (and passes one under)."""

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
from gateway.governor.evidence import ContractCounts
from gateway.governor.evidence_windows import windowed
from gateway.governor.rollout import (
    CanaryPolicy,
    Gates,
    RolloutPolicy,
    RolloutPolicyError,
    parse_rollout_policy,
)

BOUNDS = (0.01, math.inf)


def evidence(counts: ContractCounts | None, requests: int = 2000) -> Evidence:
    return Evidence(traffic=Traffic(requests, 0, BOUNDS, (requests, 0)), contracts=counts)


def run(gates: Gates, cand: ContractCounts | None):  # type: ignore[no-untyped-def]
    policy = RolloutPolicy(canary=CanaryPolicy(min_requests=100), gates=gates)
    versions = {
        "1": VersionSnapshot("1", "champion", 95.0, evidence(ContractCounts(5000, 0, {}))),
        "2": VersionSnapshot("2", "canary", 5.0, evidence(cand, 200)),
    }
    return decide(policy, Snapshot("m", 3, versions), GovernorState())


def gate_of(d, name: str = "contract_violation_rate"):  # type: ignore[no-untyped-def]
    (g,) = [g for g in d.gates if g.name == name]
    return g


def test_the_policy_key_parses_is_bounded_and_off_by_default() -> None:
    policy = parse_rollout_policy("[gates]\nmax_contract_violation_rate = 0.01\n")
    assert policy.gates.max_contract_violation_rate == 0.01
    assert Gates().max_contract_violation_rate is None
    assert not [g for g in run(Gates(), ContractCounts(400, 200, {})).gates
                if g.name == "contract_violation_rate"]  # fmt: skip
    with pytest.raises(RolloutPolicyError, match="max_contract_violation_rate"):
        parse_rollout_policy("[gates]\nmax_contract_violation_rate = 1.5\n")


def test_a_canary_over_the_rate_is_rolled_back_and_one_under_it_is_not() -> None:
    hard = Gates(max_contract_violation_rate=0.05, hard=frozenset({"contract_violation_rate"}))
    over = ContractCounts(400, 80, {"age": 60, "income": 30})
    d = run(hard, over)
    g = gate_of(d)
    assert g.status is GateStatus.FAIL and g.value == pytest.approx(0.2)
    assert "80 of 400 rows" in g.detail and "age 60" in g.detail
    assert d.kind is DecisionKind.ROLLBACK

    d = run(hard, ContractCounts(400, 4, {"age": 4}))
    assert gate_of(d).status is GateStatus.PASS and gate_of(d).value == pytest.approx(0.01)
    assert d.kind is not DecisionKind.ROLLBACK

    # Soft: over the bar holds the canary at its step (no advance) before rolling back.
    soft = Gates(max_contract_violation_rate=0.05, hard=frozenset())
    d = run(soft, over)
    assert gate_of(d).status is GateStatus.FAIL
    assert d.kind is DecisionKind.HOLD  # the first soft failure of three allowed

    # Fewer rows checked than [gates] min_requests (20), or contracts off: pending, judged later.
    assert gate_of(run(hard, ContractCounts(10, 10, {}))).status is GateStatus.PENDING
    assert gate_of(run(hard, None)).status is GateStatus.PENDING


def test_the_fleet_sums_members_counts_and_a_window_is_their_difference() -> None:
    a = Evidence(contracts=ContractCounts(1000, 10, {"age": 8, "region": 3}))
    b = Evidence(contracts=ContractCounts(500, 40, {"age": 40}))
    # Through the payload each member publishes, as the fleet node merges them.
    total = merge([(decode(encode(a)), True), (decode(encode(b)), False)]).contracts
    assert total == ContractCounts(1500, 50, {"age": 48, "region": 3})
    assert total.violation_rate == pytest.approx(50 / 1500)

    base = Evidence(contracts=ContractCounts(1000, 10, {"age": 8, "region": 3}))
    win = windowed(Evidence(contracts=total), None, base).contracts
    assert win == ContractCounts(500, 40, {"age": 40})
