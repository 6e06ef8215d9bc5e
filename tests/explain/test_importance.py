"""Global importance from sampled live traffic on a real gateway: Prometheus gauges, and
the importance-drift gate flagging a challenger whose top feature differs, not a retrained
copy of the champion."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
from explain_support import infer, onnx_of, register
from shared import ADMIN_TOKEN, wait_for
from sklearn.linear_model import LinearRegression

from gateway import cli
from gateway.governor.evidence import VersionSnapshot
from gateway.governor.gates import GateStatus, evaluate_gates
from gateway.governor.rollout import parse_rollout_policy
from registry.deployment import Arm, Role

FEATURES = 6
CHAMPION_W = np.array([3.0, 1.5, 0.8, 0.4, 0.2, 0.1])
OTHER_W = np.array([0.4, 1.5, 0.8, 3.0, 0.2, 0.1])  # x[3] now matters most
POLICY = """
[gates]
min_importance_correlation = 0.7
min_importance_rows = 64
"""


def _fit(w: np.ndarray, seed: int) -> tuple[LinearRegression, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(500, FEATURES))
    return LinearRegression().fit(x, x @ w + rng.normal(scale=0.1, size=500)), x


def test_importance_drift_flags_a_changed_top_feature_only(
    registry, make_gateway, tmp_path, capsys, monkeypatch
) -> None:
    champion, ref = _fit(CHAMPION_W, 0)
    retrained, _ = _fit(CHAMPION_W, 1)
    other, _ = _fit(OTHER_W, 2)
    for model in (champion, retrained, other):
        register(registry, "imp", onnx_of(model, FEATURES), ref)
    arms = [Arm("1", Role.CHAMPION, 80), Arm("2", Role.CHALLENGER, 10)]
    registry.set_deployment("imp", [*arms, Arm("3", Role.CHALLENGER, 10)], actor="test")
    gw = make_gateway(explain_sample_rate=1000.0, explain_sample_rows=8, explain_sample_queue=8)
    sampler = gw.gateway.explanations.importance
    assert sampler is not None

    rng = np.random.default_rng(3)
    for version in ("1", "2", "3"):

        def sampled(version: str = version) -> bool:
            infer(gw, "imp", rng.normal(size=(8, FEATURES)), version=version)
            imp = sampler.importance("imp", version)
            return imp is not None and imp.rows >= 64

        wait_for(sampled, timeout=120)

    policy = parse_rollout_policy(POLICY)
    (source,) = gw.gateway.explanations.evidence()
    evidence = source.evidence("imp", ["1", "2", "3"])
    champ = VersionSnapshot("1", "champion", 80, evidence["1"])

    def gate(version: str):
        cand = VersionSnapshot(version, "challenger", 10, evidence[version])
        (result,) = [
            g for g in evaluate_gates(policy, cand, champ)[0] if g.name == "importance_drift"
        ]
        return result

    copy, changed = gate("2"), gate("3")
    assert copy.status is GateStatus.PASS and copy.value is not None and copy.value > 0.9
    assert changed.status is GateStatus.FAIL and changed.value is not None
    assert changed.value < 0.7
    assert changed.detail == "top feature x[0] -> x[3] (changed)"

    metrics = urllib.request.urlopen(gw.metrics_url, timeout=10).read().decode()
    assert 'onnxgate_explain_importance{feature="x[3]",model="imp",version="3"}' in metrics
    assert 'onnxgate_explain_rows_total{model="imp",source="sample",version="1"}' in metrics

    # Shown by `onnxgate explain --importance` and in the drift report.
    assert cli.main(["explain", "imp", "--importance", "--json", "--target", gw.target]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown) == {"1", "2", "3"} and shown["3"]["rows"] >= 64
    top = max(range(FEATURES), key=shown["3"]["mean_abs"].__getitem__)
    assert shown["3"]["features"][top] == "x[3]"
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", ADMIN_TOKEN)
    report = tmp_path / "drift.html"
    assert cli.main(["drift", "imp", "--html", str(report), "--target", gw.target]) == 0
    page = report.read_text(encoding="utf-8")
    assert "feature importance" in page and "sampled rows of live traffic" in page
