"""decide(): every gate, every decision kind and every mode, on hand-built snapshots."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from gateway.governor.decide import (
    DecisionKind,
    Drift,
    Evidence,
    GateStatus,
    GovernorState,
    Quality,
    SegmentCounts,
    ShadowAgreement,
    Snapshot,
    Traffic,
    VersionSnapshot,
    candidate_of,
    decide,
)
from gateway.governor.rollout import CanaryPolicy, ChallengerPolicy, Gates, Mode, RolloutPolicy

BOUNDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, math.inf)
POLICY = RolloutPolicy(
    canary=CanaryPolicy(min_requests=100), gates=Gates(min_requests=20, min_labels=30)
)


def traffic(requests: int, errors: int = 0, bucket: int = 1) -> Traffic:
    counts = [0] * len(BOUNDS)
    counts[bucket] = requests
    return Traffic(requests, errors, BOUNDS, tuple(counts))


def snapshot(
    cand: Evidence | None = None,
    champ: Evidence | None = None,
    *,
    role: str = "canary",
    weight: float = 5.0,
    approved: frozenset[str] = frozenset(),
) -> Snapshot:
    champ = champ if champ is not None else Evidence(traffic=traffic(2000))
    cand = cand if cand is not None else Evidence(traffic=traffic(200))
    versions = {"1": VersionSnapshot("1", "champion", 100.0 - weight, champ)}
    if weight or role == "shadow":
        versions["2"] = VersionSnapshot("2", role, weight, cand)
    return Snapshot("m", 7, versions, approved)


def gate(decision, name):  # type: ignore[no-untyped-def]
    return next(g for g in decision.gates if g.name == name)


def test_no_candidate_holds() -> None:
    d = decide(POLICY, snapshot(weight=0.0), GovernorState(rolled_back=frozenset({"9"})))
    assert d.kind is DecisionKind.HOLD and d.candidate is None
    assert d.state.rolled_back == {"9"}
    shadow_only = snapshot(role="shadow", weight=0.0)
    assert candidate_of(shadow_only) is None


def test_healthy_canary_advances_step_by_step_then_promotes() -> None:
    state = GovernorState()
    weights = []
    for weight in (5.0, 10.0, 25.0, 50.0):
        d = decide(POLICY, snapshot(weight=weight), state)
        assert all(g.status is not GateStatus.FAIL for g in d.gates)
        if weight < 50:
            assert d.kind is DecisionKind.ADVANCE
            weights.append(d.weights)
        state = d.state
    assert d.kind is DecisionKind.PROMOTE and d.candidate == "2"
    assert weights[0] == {"1": 90.0, "2": 10.0} and weights[-1] == {"1": 50.0, "2": 50.0}
    assert d.state.step == 3 and d.to_dict()["kind"] == "promote"


def test_canary_waits_for_requests_and_labels() -> None:
    d = decide(POLICY, snapshot(Evidence(traffic=traffic(50))), GovernorState())
    assert d.kind is DecisionKind.HOLD and "50/100 requests" in d.reasons[0]
    assert "labels" not in d.reasons[0]  # the policy asks for none: no "0/0 labels"
    need_labels = replace(POLICY, canary=CanaryPolicy(min_requests=10, min_labels=5))
    d = decide(need_labels, snapshot(), GovernorState())
    assert d.kind is DecisionKind.HOLD and "0/5 labels" in d.reasons[0]


def test_below_first_step_goes_to_first_step() -> None:
    d = decide(POLICY, snapshot(weight=1.0), GovernorState())
    assert d.kind is DecisionKind.ADVANCE and d.weights == {"1": 95.0, "2": 5.0}


def test_approval_gates_the_final_promotion() -> None:
    policy = replace(POLICY, require_approval=True)
    d = decide(policy, snapshot(weight=50.0), GovernorState())
    assert d.kind is DecisionKind.AWAIT_APPROVAL
    d = decide(policy, snapshot(weight=50.0, approved=frozenset({"2"})), d.state)
    assert d.kind is DecisionKind.PROMOTE


def test_error_rate_is_hard_and_rolls_back_at_once() -> None:
    d = decide(POLICY, snapshot(Evidence(traffic=traffic(200, errors=10))), GovernorState())
    assert d.kind is DecisionKind.ROLLBACK and "error_rate" in d.reasons[0]
    g = gate(d, "error_rate")
    assert (g.status, g.value, g.threshold, g.hard) == (GateStatus.FAIL, 0.05, 0.02, True)
    assert d.state.rolled_back == {"2"}
    again = decide(POLICY, snapshot(), d.state)
    assert again.kind is DecisionKind.HOLD and "rolled back" in again.reasons[0]


def test_error_rate_relative_to_champion() -> None:
    policy = replace(POLICY, gates=replace(POLICY.gates, max_error_rate=0.5))
    champ = Evidence(traffic=traffic(2000, errors=20))  # 1%
    d = decide(policy, snapshot(Evidence(traffic=traffic(200, errors=6)), champ), GovernorState())
    assert gate(d, "error_rate_delta").value == pytest.approx(0.02)
    assert d.kind is DecisionKind.ROLLBACK


def test_too_few_requests_leave_rate_gates_pending() -> None:
    d = decide(POLICY, snapshot(Evidence(traffic=traffic(5, errors=5))), GovernorState())
    assert gate(d, "error_rate").status is GateStatus.PENDING
    assert d.kind is DecisionKind.HOLD


def test_soft_latency_gate_rolls_back_after_n_consecutive_failures() -> None:
    slow = Evidence(traffic=traffic(200, bucket=4))  # p99 ~ 20 ms vs the champion's 2 ms
    state = GovernorState()
    kinds = []
    for _ in range(3):
        d = decide(POLICY, snapshot(slow), state)
        kinds.append(d.kind)
        state = d.state
    assert kinds == [DecisionKind.HOLD, DecisionKind.HOLD, DecisionKind.ROLLBACK]
    g = gate(d, "p99_ratio")
    assert g.status is GateStatus.FAIL and not g.hard and g.value > 5
    # a passing evaluation in between resets the count
    d1 = decide(POLICY, snapshot(slow), GovernorState())
    d2 = decide(POLICY, snapshot(Evidence(traffic=traffic(50))), d1.state)
    assert d2.state.consecutive_failures == 0


def test_drift_gates() -> None:
    drifted = Evidence(traffic=traffic(50), drift=Drift(("age", "income"), False, (), 1000))
    policy = replace(POLICY, gates=replace(POLICY.gates, max_drifted_features=1))
    d = decide(policy, snapshot(drifted), GovernorState())
    g = gate(d, "input_drift")
    assert (g.status, g.value, g.threshold) == (GateStatus.FAIL, 2.0, 1.0)
    assert "age" in g.detail and d.kind is DecisionKind.HOLD  # soft by default
    outputs = Evidence(traffic=traffic(50), drift=Drift((), True, ("y",), 1000))
    d = decide(POLICY, snapshot(outputs), GovernorState())
    assert gate(d, "output_drift").status is GateStatus.FAIL
    assert d.kind is DecisionKind.ROLLBACK  # hard by default
    nothing = decide(POLICY, snapshot(Evidence(traffic=traffic(50))), GovernorState())
    assert gate(nothing, "output_drift").status is GateStatus.PENDING  # no monitor


def test_shadow_agreement_gate() -> None:
    policy = replace(POLICY, gates=replace(POLICY.gates, min_shadow_agreement=0.9))
    low = Evidence(traffic=traffic(50), shadow=ShadowAgreement(100, 80))
    d = decide(policy, snapshot(low), GovernorState())
    g = gate(d, "shadow_agreement")
    assert (g.status, g.value, g.op) == (GateStatus.FAIL, 0.8, ">=")
    high = Evidence(traffic=traffic(50), shadow=ShadowAgreement(100, 95))
    assert (
        gate(decide(policy, snapshot(high), GovernorState()), "shadow_agreement").status == "pass"
    )


def quality(labelled: int, correct: int, **segments: SegmentCounts) -> Quality:
    return Quality(labelled, labelled, correct, segments=segments)


def test_quality_gate_fails_only_on_evidence_of_being_worse() -> None:
    champ = Evidence(traffic=traffic(2000), quality=quality(400, 360))
    worse = Evidence(traffic=traffic(200), quality=quality(200, 100))
    d = decide(POLICY, snapshot(worse, champ), GovernorState())
    g = gate(d, "quality")
    assert g.status is GateStatus.FAIL and g.value < -0.02 and d.test is not None
    slightly = Evidence(traffic=traffic(200), quality=quality(200, 176))  # 0.88 vs 0.90
    assert (
        gate(decide(POLICY, snapshot(slightly, champ), GovernorState()), "quality").status == "pass"
    )
    few = Evidence(traffic=traffic(200), quality=quality(10, 0))
    assert (
        gate(decide(POLICY, snapshot(few, champ), GovernorState()), "quality").status == "pending"
    )


def test_fairness_gates() -> None:
    policy = replace(POLICY, gates=replace(POLICY.gates, min_tpr_ratio=0.8, min_segment_count=30))
    unfair = quality(
        0,
        0,
        a=SegmentCounts(predictions=100, positives=50, actual_positives=40, true_positives=36),
        b=SegmentCounts(predictions=100, positives=10, actual_positives=40, true_positives=8),
        tiny=SegmentCounts(predictions=5, positives=0),
    )
    d = decide(policy, snapshot(Evidence(traffic=traffic(50), quality=unfair)), GovernorState())
    di = gate(d, "disparate_impact")
    assert di.status is GateStatus.FAIL and di.value == pytest.approx(0.2)
    assert "tiny" not in di.detail  # too few predictions to count
    tpr = gate(d, "tpr_ratio")
    assert tpr.status is GateStatus.FAIL and tpr.value == pytest.approx(0.2 / 0.9)
    fair = quality(
        0,
        0,
        a=SegmentCounts(predictions=100, positives=50),
        b=SegmentCounts(predictions=100, positives=45),
    )
    d = decide(policy, snapshot(Evidence(traffic=traffic(50), quality=fair)), GovernorState())
    assert gate(d, "disparate_impact").status is GateStatus.PASS


def test_hard_and_soft_are_policy_choices() -> None:
    policy = replace(POLICY, gates=replace(POLICY.gates, hard=frozenset({"p99_ratio"})))
    d = decide(policy, snapshot(Evidence(traffic=traffic(200, bucket=4))), GovernorState())
    assert d.kind is DecisionKind.ROLLBACK
    soft_errors = replace(POLICY, gates=replace(POLICY.gates, hard=frozenset()))
    d = decide(soft_errors, snapshot(Evidence(traffic=traffic(200, 20))), GovernorState())
    assert d.kind is DecisionKind.HOLD and d.state.consecutive_failures == 1


def test_disabled_gates_are_not_reported() -> None:
    off = replace(POLICY, gates=Gates(max_error_rate=None, max_p99_ratio=None))
    names = {g.name for g in decide(off, snapshot(), GovernorState()).gates}
    assert "error_rate" not in names and "p99_ratio" not in names


def test_paused_evaluates_nothing() -> None:
    state = GovernorState(candidate="2", step=1)
    d = decide(
        replace(POLICY, mode=Mode.PAUSED), snapshot(Evidence(traffic=traffic(200, 100))), state
    )
    assert d.kind is DecisionKind.HOLD and d.gates == () and d.state.step == 1


def _scripted(mode: Mode) -> list[DecisionKind]:
    """Five evaluations of a canary at 5% that never moves (as in dry-run), healthy."""
    policy = replace(POLICY, mode=mode)
    state, kinds = GovernorState(), []
    for _ in range(6):
        d = decide(policy, snapshot(weight=5.0), state)
        kinds.append(d.kind)
        state = d.state
    return kinds


def test_dry_run_records_what_enforce_would_do_and_then_holds() -> None:
    dry = _scripted(Mode.DRY_RUN)
    assert dry == [DecisionKind.ADVANCE] * 3 + [
        DecisionKind.PROMOTE,
        DecisionKind.HOLD,
        DecisionKind.HOLD,
    ]
    # Enforcement sees its own changes applied; the decisions are the same.
    state, kinds = GovernorState(), []
    weight = 5.0
    for _ in range(4):
        d = decide(POLICY, snapshot(weight=weight), state)
        kinds.append(d.kind)
        state = d.state
        if d.weights:
            weight = d.weights["2"]
    assert kinds == dry[:4]


def test_dry_run_rollback_is_recorded_once_and_marks_nothing() -> None:
    policy = replace(POLICY, mode=Mode.DRY_RUN)
    bad = snapshot(Evidence(traffic=traffic(200, errors=50)))
    d = decide(policy, bad, GovernorState())
    assert d.kind is DecisionKind.ROLLBACK and d.state.rolled_back == frozenset()
    assert decide(policy, bad, d.state).kind is DecisionKind.HOLD


def test_enforce_follows_an_operator_weight_change() -> None:
    d = decide(POLICY, snapshot(weight=5.0), GovernorState())
    assert d.state.step == 1  # advanced to 10%
    moved = decide(POLICY, snapshot(weight=25.0), d.state)  # operator set 25% meanwhile
    assert moved.kind is DecisionKind.ADVANCE and moved.weights == {"1": 50.0, "2": 50.0}


def challenger(cand_correct: int, champ_correct: int, n: int = 400) -> Snapshot:
    return snapshot(
        Evidence(traffic=traffic(n), quality=quality(n, cand_correct)),
        Evidence(traffic=traffic(n), quality=quality(n, champ_correct)),
        role="challenger",
        weight=50.0,
    )


def test_better_challenger_is_promoted_equal_one_is_held() -> None:
    d = decide(POLICY, challenger(380, 320), GovernorState())
    assert d.kind is DecisionKind.PROMOTE and d.state.p_value <= 0.05
    held = decide(POLICY, challenger(321, 320), GovernorState())
    assert held.kind is DecisionKind.HOLD and "not shown better" in held.reasons[0]
    worse_first = decide(POLICY, challenger(250, 320), GovernorState())
    assert worse_first.state.p_value == 1.0  # evidence against it never counts for it
    waits = decide(POLICY, challenger(20, 10, n=20), GovernorState())
    assert waits.kind is DecisionKind.HOLD and "waits for labels" in waits.reasons[0]
    assert "challenger has 20, champion 20" in waits.reasons[0], waits.reasons[0]


def test_equal_challenger_false_promotion_rate_within_alpha() -> None:
    """Many simulated runs of an equal challenger, decide() called every interval."""
    rng = np.random.default_rng(5)
    alpha, runs, looks, per_look = 0.05, 300, 40, 25
    policy = replace(POLICY, challenger=ChallengerPolicy(alpha=alpha, tau=0.05, min_labels=50))
    promoted = 0
    for _ in range(runs):
        state = GovernorState()
        a = b = n = 0
        for _ in range(looks):
            n += per_look
            a += int(rng.binomial(per_look, 0.85))
            b += int(rng.binomial(per_look, 0.85))
            d = decide(policy, challenger(b, a, n=n), state)
            state = d.state
            if d.kind is DecisionKind.PROMOTE:
                promoted += 1
                break
    assert promoted / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)
