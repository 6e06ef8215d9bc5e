"""Issue 6 proof 2 on a real server: a canary that fails requests, or whose outputs drift,
is rolled back within one evaluation of its gate failing, to the last good deployment, and
is not promoted again."""

from __future__ import annotations

import time

import numpy as np
from govtools import (
    FAST,
    N_FEATURES,
    Load,
    admin_metadata,
    decisions,
    fragile_model,
    governor,
    governor_changes,
    normal_rows,
    set_policy,
    threshold_model,
)
from shared import wait_for

from gateway._proto import governor_pb2 as gpb
from gateway.monitoring.reference import build_version_profiles, onnx_runner
from registry.deployment import Role
from registry.signature import signature_from_bytes

POLICY = """
[canary]
steps = [20, 50]
interval_s = 0.2
min_requests = 40

[gates]
max_p99_ratio = false
min_requests = 20
"""


def _record_decisions(gw) -> list:
    """Every decision the governor makes (holds are not audited, so the audit log alone
    cannot show that the *first* failing evaluation was the one that rolled back)."""
    seen: list = []
    governor_loop = gw.gateway.governor
    previous = governor_loop._on_decision

    def record(decision) -> None:
        seen.append(decision)
        if previous is not None:
            previous(decision)

    governor_loop._on_decision = record
    return seen


def _first_failure_rolled_back(seen: list, gate: str) -> None:
    # The rollback reaches the registry (and its audit log) before the loop reports the
    # decision: wait for the report itself.
    wait_for(lambda: any(d.candidate == "2" and d.kind.value == "rollback" for d in seen))
    statuses = [
        (d.kind.value, next((g.status.value for g in d.gates if g.name == gate), None))
        for d in seen
        if d.candidate == "2"
    ]
    first = next(i for i, (_, status) in enumerate(statuses) if status == "fail")
    assert statuses[first][0] == "rollback", statuses
    assert all(status != "fail" for _, status in statuses[:first])


def _gate_history(registry, model: str, gate: str) -> list[str]:
    out = []
    for d in decisions(registry, model):
        out += [g["status"] for g in d["gates"] if g["name"] == gate]
    return out


def test_failing_canary_is_rolled_back_at_the_first_failing_evaluation(registry, make_gateway):
    registry.register_version("m", threshold_model(1), version="1", actor="t")
    registry.register_version("m", fragile_model(), version="2", actor="t")
    good = registry.get_deployment("m")  # the champion alone: what a rollback restores
    registry.set_weights("m", {"1": 80, "2": 20}, {"2": Role.CANARY}, actor="t")
    gw = make_gateway(**FAST)
    seen = _record_decisions(gw)
    set_policy(gw, "m", POLICY)

    def rows(rng: np.random.Generator, i: int) -> tuple[np.ndarray, str]:
        x = rng.standard_normal((1, N_FEATURES)).astype(np.float32)
        if i % 10 == 0:
            x[0, 3] = 50.0  # the canary cannot serve this row; the champion can
        return x, ""

    load = Load(gw.target, "m", rows).start()
    try:
        rolled = wait_for(lambda: governor_changes(registry, "m"), timeout=30)
        # Requests routed before the swap finish on the canary: count from the moment this
        # gateway routes the rolled-back revision, plus a margin for those in flight.
        revision = registry.get_deployment("m").revision
        wait_for(lambda: gw.gateway.catalog.entry("m").table.revision == revision)
        time.sleep(0.5)
        settled = len(load.outcomes)
        wait_for(lambda: len(load.outcomes) - settled >= 20, timeout=30)
    finally:
        outcomes = load.stop()

    event = rolled[0]
    decision = event.after["details"]["decision"]
    assert decision["kind"] == "rollback"
    gate = next(g for g in decision["gates"] if g["name"] == "error_rate")
    assert gate["status"] == "fail" and gate["hard"] and gate["value"] > gate["threshold"]
    # The first failing evaluation rolled back: no earlier decision saw the gate fail.
    assert _gate_history(registry, "m", "error_rate").count("fail") == 1
    _first_failure_rolled_back(seen, "error_rate")
    now = registry.get_deployment("m")
    assert (now.arms, now.shadows) == (good.arms, good.shadows)  # last good deployment
    failures = [o for o in outcomes if not o.ok]
    assert failures and all(o.code == "INTERNAL" for o in failures)
    assert all(o.ok for o in outcomes[settled:])  # none after the rollback took effect
    status = governor(gw).GetStatus(gpb.GetStatusRequest(model="m"), metadata=admin_metadata(gw))
    assert list(status.rolled_back) == ["2"]
    # Put back by an operator and given healthy traffic, it is held, never advanced.
    registry.set_weights("m", {"1": 80, "2": 20}, {"2": Role.CANARY}, actor="t")
    revision = registry.get_deployment("m").revision
    healthy = Load(gw.target, "m", normal_rows).start()
    try:

        def held() -> bool:
            s = governor(gw).GetStatus(gpb.GetStatusRequest(model="m"), metadata=admin_metadata(gw))
            reasons = " ".join(s.reasons)
            return s.last_decision == "hold" and "will not promote it again" in reasons

        wait_for(held, timeout=30)
        time.sleep(0.5)  # a few more evaluations with enough requests
    finally:
        healthy.stop()
    assert registry.get_deployment("m").revision == revision


def test_drifting_canary_is_rolled_back_by_the_monitor_evidence(registry, make_gateway):
    """The drift monitor (gateway.monitoring.monitor) compares each version with its reference; the
    canary's reference says x ~ N(0, 1), its traffic is shifted, so its outputs drift."""
    champion, canary = threshold_model(1), threshold_model(1, scale=3.0)
    registry.register_version("m", champion, version="1", actor="t")
    registry.register_version("m", canary, version="2", actor="t")
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((2000, N_FEATURES))
    for version, artifact in (("1", champion), ("2", canary)):
        doc = build_version_profiles(
            signature_from_bytes(artifact), reference, run=onnx_runner(artifact)
        ).to_doc()
        registry.set_profile("m", version, doc, source="reference", actor="t")
    good = registry.get_deployment("m")  # the champion alone: what a rollback restores
    registry.set_weights("m", {"1": 80, "2": 20}, {"2": Role.CANARY}, actor="t")
    gw = make_gateway(
        **{
            **FAST,
            "monitoring": True,
            "monitor_min_rows": 60,
            "monitor_window": 200,
            "monitor_interval_s": 0.1,
        }
    )
    seen = _record_decisions(gw)
    set_policy(gw, "m", POLICY.replace("min_requests = 40", "min_requests = 1000"))

    def shifted(rng: np.random.Generator, i: int) -> tuple[np.ndarray, str]:
        return (rng.standard_normal((1, N_FEATURES)) + 2.0).astype(np.float32), ""

    load = Load(gw.target, "m", shifted).start()
    try:
        rolled = wait_for(lambda: governor_changes(registry, "m"), timeout=30)
    finally:
        outcomes = load.stop()
    decision = rolled[0].after["details"]["decision"]
    assert decision["kind"] == "rollback"
    gate = next(g for g in decision["gates"] if g["name"] == "output_drift")
    assert gate["status"] == "fail" and gate["hard"]
    assert decision["figures"]["2"]["output_drifted"] is True
    assert _gate_history(registry, "m", "output_drift").count("fail") == 1
    _first_failure_rolled_back(seen, "output_drift")
    now = registry.get_deployment("m")
    assert (now.arms, now.shadows) == (good.arms, good.shadows)
    assert all(o.ok for o in outcomes)
