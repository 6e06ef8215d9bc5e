"""A real Prometheus server scrapes a running gateway; PromQL returns the drift and shadow
series with the expected labels. The shipped alert rules pass ``promtool``.

Prometheus and promtool: see ``prometheus_support``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from monitoring_support import get_drift, register_with_reference, send
from prometheus_support import binary, get, query, running_prometheus, wait_for_series
from shared import admin_metadata

from gateway._proto import admin_pb2 as apb
from gateway.tools import modelzoo

pytestmark = pytest.mark.prometheus

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
FEATURES = 8


def test_prometheus_scrapes_drift_and_shadow_series(registry, make_gateway, tmp_path) -> None:
    binary("prometheus")  # before the story: skip (or fail in CI) early
    rng = np.random.default_rng(2)
    data = modelzoo.mlp((FEATURES, 16, 2), seed=1)
    register_with_reference(registry, "m", data, rng.standard_normal((10_000, FEATURES)))
    registry.register_version("m", modelzoo.mlp((FEATURES, 16, 2), seed=1, bias_shift=1.0))
    gw = make_gateway(monitor_window=1000, monitor_min_rows=200, monitor_interval_s=0.5)
    request = apb.AddShadowRequest(model="m", version="2", fraction=1.0)
    gw.admin().AddShadow(request, metadata=admin_metadata(), timeout=30)
    x = rng.standard_normal((1000, FEATURES))
    x[:, 2] += 1.0
    send(gw, "m", x)
    assert gw.gateway.taps.flush(30)
    assert gw.gateway.shadow.drain(30)
    get_drift(gw, "m")  # publish now rather than at the next interval

    with running_prometheus(tmp_path, gw.gateway.metrics_port, [RULES / "alerts.yml"]) as base:
        features = wait_for_series(
            base, 'onnxgate_drift_feature_drifted{model="m",version="1",side="inputs"}', FEATURES
        )
        drifted = {s["metric"]["feature"] for s in features if s["value"][1] == "1"}
        assert drifted == {"x[2]"}
        assert all(s["metric"]["job"] == "onnxgate" for s in features)

        (verdict,) = query(base, 'onnxgate_drift_verdict{model="m",version="1",side="inputs"}')
        assert verdict["value"][1] == "1"
        psi = query(base, 'onnxgate_drift_psi{model="m",version="1",feature="x[2]"}')
        assert float(psi[0]["value"][1]) > 0.2
        adjusted = query(base, 'onnxgate_drift_ks_pvalue_adjusted{model="m",feature="x[2]"}')
        assert float(adjusted[0]["value"][1]) < 1e-6

        (agreement,) = wait_for_series(base, 'onnxgate_shadow_agreement_ratio{model="m"}', 1)
        labels = agreement["metric"]
        assert (labels["version"], labels["served_version"]) == ("2", "1")
        assert 0.5 < float(agreement["value"][1]) < 0.95
        (calls,) = query(base, 'onnxgate_shadow_requests_total{model="m",version="2"}')
        assert calls["value"][1] == "10"
        assert query(base, "onnxgate_monitor_dropped_total")[0]["value"][1] == "0"

        groups = get(f"{base}/api/v1/rules")["data"]["groups"]
        names = {rule["name"] for g in groups for rule in g["rules"]}
        assert {"OnnxgateInputDrift", "OnnxgateShadowDisagreement"} <= names


def test_alert_rules_pass_promtool() -> None:
    promtool = binary("promtool")
    check = subprocess.run(
        [promtool, "check", "rules", str(RULES / "alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout
    unit = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        check=False,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    cases = yaml.safe_load((RULES / "alerts_test.yml").read_text())
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in cases["tests"]:
        for case in test.get("alert_rule_test", []):
            (fired if case["exp_alerts"] else quiet).add(case["alertname"])
    assert len(alerts) >= 14
    assert not alerts - fired, f"never shown firing: {sorted(alerts - fired)}"
    assert not alerts - quiet, f"never shown quiet: {sorted(alerts - quiet)}"


def test_a_missing_prometheus_skip_names_the_test_and_how_to_get_it(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        binary("prometheus")
    reason = str(skipped.value)
    assert "test_prometheus.py::test_a_missing_prometheus_skip_names_the_test" in reason
    assert "apt-get install prometheus" in reason and ".ci/run" in reason
