"""A canary that is worse than its champion is rolled back on the label-free estimate
(CBPE, ``max_estimated_drop``) before any label exists; the decision says it used one."""

from __future__ import annotations

import numpy as np
from govtools import FAST, Load, decisions, governor_changes, set_policy
from shared import wait_for

from gateway.monitoring.reference import build_version_profiles, onnx_runner
from gateway.tools import modelzoo
from registry.deployment import Role
from registry.signature import signature_from_bytes

WEIGHTS = [2.0, -1.5, 1.0, 0.5]
POLICY = """
[canary]
steps = [20, 50]
interval_s = 0.2
min_requests = 100000

[gates]
max_p99_ratio = false
max_drifted_features = false
output_drift = false
max_estimated_drop = 0.03
min_requests = 300
hard = ["error_rate", "estimated_drop"]
"""


def test_worse_canary_is_rolled_back_on_the_estimate_before_labels(registry, make_gateway):
    champion = modelzoo.logistic(WEIGHTS)
    canary = modelzoo.logistic([0.2, -1.5, 1.0, 0.5])  # lost its strongest feature
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((5000, len(WEIGHTS)))
    truth = 1.0 / (1.0 + np.exp(-(reference @ np.array(WEIGHTS))))
    labels = (rng.random(5000) < truth).astype(np.int64)
    for version, artifact in (("1", champion), ("2", canary)):
        registry.register_version("m", artifact, version=version, actor="t")
        doc = build_version_profiles(
            signature_from_bytes(artifact), reference, run=onnx_runner(artifact), labels=labels
        ).to_doc()
        registry.set_profile("m", version, doc, source="reference", actor="t")
    good = registry.get_deployment("m")
    registry.set_weights("m", {"1": 50, "2": 50}, {"2": Role.CANARY}, actor="t")
    gw = make_gateway(**{**FAST, "monitoring": True, "monitor_interval_s": 0.1})
    set_policy(gw, "m", POLICY)

    def rows(rng: np.random.Generator, i: int) -> tuple[np.ndarray, str]:
        return rng.standard_normal((1, len(WEIGHTS))).astype(np.float32), ""

    load = Load(gw.target, "m", rows, clients=2).start()  # no labels are ever sent
    try:
        rolled = wait_for(lambda: governor_changes(registry, "m"), timeout=60)
    finally:
        outcomes = load.stop()
    decision = rolled[0].after["details"]["decision"]
    assert decision["kind"] == "rollback" and decision["used_estimate"] is True
    gate = next(g for g in decision["gates"] if g["name"] == "estimated_drop")
    assert gate["status"] == "fail" and gate["hard"] and gate["value"] < -0.03
    figures = decision["figures"]
    assert figures["2"]["estimated_accuracy"] < figures["1"]["estimated_accuracy"] - 0.05
    assert "labelled" not in figures["2"] or not figures["2"]["labelled"]
    now = registry.get_deployment("m")
    assert (now.arms, now.shadows) == (good.arms, good.shadows)
    assert all(o.ok for o in outcomes)
    assert all(d["kind"] != "promote" for d in decisions(registry, "m"))
