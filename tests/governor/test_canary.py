"""Issue 6 proofs 1 and 5 on a real server: a healthy canary ramps through every step and
is promoted with zero failed requests; dry-run records the same decisions and moves no
traffic."""

from __future__ import annotations

from govtools import FAST, Load, decisions, normal_rows, set_policy, threshold_model
from shared import wait_for

from registry.deployment import Role

POLICY = """
[canary]
steps = [5, 10, 25, 50]
interval_s = 0.15
min_requests = 15

[gates]
max_p99_ratio = false  # loopback latency on a loaded 2-core box is noise, not evidence
min_requests = 10
"""


def _canary(registry, model: str) -> None:
    registry.register_version(model, threshold_model(1), version="1", actor="t")
    registry.register_version(model, threshold_model(1, scale=2.0), version="2", actor="t")
    registry.set_weights(model, {"1": 95, "2": 5}, {"2": Role.CANARY}, actor="t", reason="canary")


def test_healthy_canary_ramps_through_every_step_and_is_promoted(registry, make_gateway):
    _canary(registry, "m")
    gw = make_gateway(**FAST)
    set_policy(gw, "m", POLICY)
    load = Load(gw.target, "m", normal_rows).start()
    try:
        wait_for(lambda: registry.get_deployment("m").champion.version == "2", timeout=90)
    finally:
        outcomes = load.stop()

    assert outcomes and all(o.ok for o in outcomes), [o for o in outcomes if not o.ok][:3]
    assert {o.version for o in outcomes} == {"1", "2"}
    shares = []
    for h in registry.history("m"):
        dep = h.deployment.normalised()
        arm = dep.arm("2")
        if arm is not None and arm.role is Role.CANARY:
            shares.append(round(100 * arm.weight))
    assert shares == [5, 10, 25, 50]
    final = registry.get_deployment("m")
    assert [(a.version, a.role) for a in final.arms] == [("2", Role.CHAMPION)]
    assert registry.get_version("m", "1").status == "retired"
    kinds = [d["kind"] for d in decisions(registry, "m") if d["kind"] != "hold"]
    assert kinds == ["advance", "advance", "advance", "promote"]
    promote = [e for e in registry.audit_events(subject="m") if e.action == "deployment.promote"]
    details = promote[-1].after["details"]
    assert promote[-1].actor == "governor"
    gates = {g["name"]: g for g in details["decision"]["gates"]}
    assert gates["error_rate"]["status"] == "pass" and gates["error_rate"]["value"] == 0.0
    assert details["decision"]["figures"]["2"]["requests"] >= 15
    assert registry.verify_audit_chain() == []


def test_dry_run_records_the_same_decisions_and_moves_no_traffic(registry, make_gateway):
    _canary(registry, "enforced")
    _canary(registry, "dry")
    gw = make_gateway(**FAST)
    set_policy(gw, "enforced", POLICY)
    set_policy(gw, "dry", 'mode = "dry-run"\n' + POLICY)
    revision = registry.get_deployment("dry").revision
    loads = [Load(gw.target, m, normal_rows).start() for m in ("enforced", "dry")]
    try:

        def both_promoted() -> bool:
            dry = [d["kind"] for d in decisions(registry, "dry")]
            done = registry.get_deployment("enforced").champion.version == "2"
            return done and "promote" in dry

        wait_for(both_promoted, timeout=90)
    finally:
        outcomes = [o for load in loads for o in load.stop()]

    assert all(o.ok for o in outcomes)
    assert registry.get_deployment("dry").revision == revision  # no traffic moved
    enforced = [d["kind"] for d in decisions(registry, "enforced") if d["kind"] != "hold"]
    dry = [d for d in decisions(registry, "dry") if d["kind"] != "hold"]
    assert [d["kind"] for d in dry] == enforced == ["advance"] * 3 + ["promote"]
    assert [d["weights"]["2"] for d in dry[:3]] == [10.0, 25.0, 50.0]
    assert all(d["mode"] == "dry-run" for d in dry)
    recorded = [e for e in registry.audit_events(subject="dry") if e.action == "governor.decision"]
    assert recorded and all(e.actor == "governor" for e in recorded)
