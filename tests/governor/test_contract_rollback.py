"""A canary whose inputs break its data contract more often than
``max_contract_violation_rate`` allows is rolled back; one under the bar advances."""

from __future__ import annotations

import numpy as np
from govtools import FAST, Load, governor_changes, set_policy
from shared import wait_for

from gateway.monitoring.reference import build_version_profiles
from gateway.tools import modelzoo
from registry.deployment import Role
from registry.signature import signature_from_bytes

WEIGHTS = [2.0, -1.5, 1.0, 0.5]
POLICY = """
[canary]
steps = [20, 50]
interval_s = 0.2
min_requests = 400

[contract]
mode = "count"

[gates]
max_p99_ratio = false
max_drifted_features = false
output_drift = false
max_contract_violation_rate = 0.05
min_requests = 50
hard = ["error_rate", "contract_violation_rate"]
"""


def register(registry, model: str, canary_reference: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    wide = np.random.default_rng(0).standard_normal((5000, len(WEIGHTS)))
    for version, scale, reference in (("1", 1.0, wide), ("2", 0.5, canary_reference)):
        artifact = modelzoo.logistic([w * scale for w in WEIGHTS])
        registry.register_version(model, artifact, version=version, actor="t")
        doc = build_version_profiles(signature_from_bytes(artifact), reference).to_doc()
        registry.set_profile(model, version, doc, source="reference", actor="t")
    registry.set_weights(model, {"1": 80, "2": 20}, {"2": Role.CANARY}, actor="t")


def test_canary_over_the_violation_rate_is_rolled_back_and_one_under_advances(
    registry, make_gateway
) -> None:
    rng = np.random.default_rng(1)
    # "narrow": the canary's reference spans +-0.1, so standard-normal traffic mostly breaks it
    register(registry, "narrow", rng.uniform(-0.1, 0.1, (2000, len(WEIGHTS))))
    register(registry, "wide", rng.standard_normal((5000, len(WEIGHTS))))
    gw = make_gateway(**FAST)
    for model in ("narrow", "wide"):
        set_policy(gw, model, POLICY)

    def rows(rng: np.random.Generator, i: int) -> tuple[np.ndarray, str]:
        return rng.standard_normal((1, len(WEIGHTS))).astype(np.float32), ""

    loads = [Load(gw.target, m, rows, clients=1).start() for m in ("narrow", "wide")]
    try:
        narrow = wait_for(lambda: governor_changes(registry, "narrow"), timeout=60)
        wide = wait_for(lambda: governor_changes(registry, "wide"), timeout=60)
    finally:
        outcomes = [o for load in loads for o in load.stop()]

    decision = narrow[0].after["details"]["decision"]
    assert decision["kind"] == "rollback"
    gate = next(g for g in decision["gates"] if g["name"] == "contract_violation_rate")
    assert gate["status"] == "fail" and gate["hard"] and gate["value"] > 0.5
    assert "rows outside the contract" in gate["detail"]

    decision = wide[0].after["details"]["decision"]
    assert decision["kind"] == "advance"
    gate = next(g for g in decision["gates"] if g["name"] == "contract_violation_rate")
    assert gate["status"] == "pass" and gate["value"] <= 0.05
    assert all(o.ok for o in outcomes)  # count mode refuses nothing
