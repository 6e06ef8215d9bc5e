"""Issue 6 proof 4 on a real server: a canary that is unfair to one segment (it rarely
predicts the positive class for segment "b") fails the disparate-impact gate."""

from __future__ import annotations

import numpy as np
from govtools import FAST, N_FEATURES, Load, governor_changes, set_policy, threshold_model
from shared import wait_for

from registry.deployment import Role

POLICY = """
[canary]
steps = [30, 60]
interval_s = 0.2
min_requests = 10000   # never advance: this test is about the gate

[gates]
max_p99_ratio = false
min_disparate_impact = 0.8
min_segment_count = 40
hard = ["error_rate", "disparate_impact"]
"""


def segmented(rng: np.random.Generator, i: int) -> tuple[np.ndarray, str]:
    """Segment "b" is lower on feature 0 (which the canary uses) but not on feature 1."""
    x = rng.standard_normal((1, N_FEATURES)).astype(np.float32)
    segment = "a" if i % 2 else "b"
    if segment == "b":
        x[0, 0] -= 1.5
    return x, segment


def test_unfair_canary_fails_the_fairness_gate(registry, make_gateway):
    registry.register_version("m", threshold_model(1), version="1", actor="t")  # fair
    registry.register_version("m", threshold_model(0), version="2", actor="t")  # unfair to b
    registry.set_weights("m", {"1": 70, "2": 30}, {"2": Role.CANARY}, actor="t")
    gw = make_gateway(**FAST)
    set_policy(gw, "m", POLICY)
    load = Load(gw.target, "m", segmented).start()
    try:
        rolled = wait_for(lambda: governor_changes(registry, "m"), timeout=30)
    finally:
        outcomes = load.stop()
    assert all(o.ok for o in outcomes)
    decision = rolled[0].after["details"]["decision"]
    assert decision["kind"] == "rollback"
    gate = next(g for g in decision["gates"] if g["name"] == "disparate_impact")
    assert gate["status"] == "fail" and gate["value"] < 0.5 and gate["threshold"] == 0.8
    segments = decision["figures"]["2"]["segments"]
    # The canary predicts positive for x0 > 0: P = 0.5 in segment a, P(N(-1.5, 1) > 0) = 0.067
    # in b. The rates come from a few dozen requests each: allow five standard errors.
    for name, p in (("a", 0.5), ("b", 0.067)):
        seen = segments[name]
        margin = 5 * (p * (1 - p) / seen["predictions"]) ** 0.5
        assert abs(seen["positive_rate"] - p) < margin, (name, seen)
    assert "a=" in gate["detail"] and "b=" in gate["detail"]
    assert registry.get_deployment("m").arm("2") is None
