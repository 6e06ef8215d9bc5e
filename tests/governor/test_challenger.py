"""Issue 6 proof 3 on a real server: with delayed labels sent through the Feedback RPC, a
challenger that is truly better is promoted by the sequential test; one that is equal is
held over many evaluations. (The false-promotion rate over many simulated runs is checked
on decide() itself in tests/unit/test_governor.py.)"""

from __future__ import annotations

import zlib

import numpy as np
from govtools import (
    FAST,
    Load,
    admin_metadata,
    decisions,
    governor,
    normal_rows,
    set_policy,
    threshold_model,
)
from shared import wait_for

from gateway._proto import governor_pb2 as gpb
from registry.deployment import Role

POLICY = """
[canary]
interval_s = 0.1

[gates]
max_p99_ratio = false
max_quality_drop = false

[challenger]
alpha = 0.01  # the equal-challenger test may falsely promote with at most this probability
min_labels = 40
"""


def truth(x: np.ndarray) -> str:
    """The world: the class is the sign of feature 0 (feature 1 is noise)."""
    return str(int(x[0, 0] > 0))


def test_better_challenger_is_promoted_on_delayed_labels(registry, make_gateway):
    registry.register_version("m", threshold_model(1), version="1", actor="t")  # ~50% right
    registry.register_version("m", threshold_model(0), version="2", actor="t")  # 100% right
    registry.set_weights("m", {"1": 50, "2": 50}, {"2": Role.CHALLENGER}, actor="t")
    gw = make_gateway(**FAST)
    set_policy(gw, "m", POLICY)
    load = Load(gw.target, "m", normal_rows, truth=truth).start()
    try:
        wait_for(lambda: registry.get_deployment("m").champion.version == "2", timeout=30)
    finally:
        outcomes = load.stop()
    assert all(o.ok for o in outcomes)
    final = [d for d in decisions(registry, "m") if d["kind"] == "promote"][-1]
    assert final["test"]["delta"] > 0.3
    assert final["state"]["p_value"] <= 0.01
    assert "challenger better" in final["reasons"][0]


def test_equal_challenger_is_not_promoted_over_many_evaluations(registry, make_gateway):
    registry.register_version("m", threshold_model(0), version="1", actor="t")
    registry.register_version("m", threshold_model(0, scale=2.0), version="2", actor="t")
    registry.set_weights("m", {"1": 50, "2": 50}, {"2": Role.CHALLENGER}, actor="t")
    revision = registry.get_deployment("m").revision
    gw = make_gateway(**FAST)
    set_policy(gw, "m", POLICY)

    def noisy(x: np.ndarray) -> str:  # labels both versions get right 80% of the time
        flip = np.random.default_rng(zlib.crc32(x.tobytes())).random() < 0.2
        return str(int((x[0, 0] > 0) != flip))

    load = Load(gw.target, "m", normal_rows, truth=noisy).start()
    try:
        stub = governor(gw)

        def evaluated() -> bool:
            s = stub.GetStatus(gpb.GetStatusRequest(model="m"), metadata=admin_metadata(gw))
            return s.last_decision == "hold" and "not shown better" in " ".join(s.reasons)

        wait_for(evaluated, timeout=20)

        def evaluations() -> int:
            state = registry.governor.get_state("m")
            return int(state.state["evaluations"]) if state is not None else 0

        start = evaluations()
        labelled = len(load.outcomes)
        # ~20 more evaluations with labels flowing in, however slow the machine is.
        wait_for(lambda: evaluations() >= start + 20, timeout=60)
        assert len(load.outcomes) > labelled  # traffic (and so labels) kept coming
        assert evaluated()
    finally:
        outcomes = load.stop()
    assert all(o.ok for o in outcomes)
    assert registry.get_deployment("m").revision == revision
    state = registry.governor.get_state("m")
    assert state is not None and state.state["p_value"] > 0.01
