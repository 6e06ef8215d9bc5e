"""A real Prometheus server scrapes a running gateway; PromQL returns the drift and shadow
series with the expected labels. The shipped alert rules pass ``promtool``.

Prometheus and promtool come from Debian's ``prometheus`` package (installed by
``.ci/run``). Without them these tests skip locally and fail in CI (``CI=true``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from monitoring_support import get_drift, register_with_reference, send
from shared import admin_metadata

from gateway._proto import admin_pb2 as apb
from gateway.tools import modelzoo

pytestmark = pytest.mark.prometheus

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
FEATURES = 8


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI (Debian package 'prometheus')")
        # -ra prints only the reason and a line number: say which test and how to run it.
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0] or "this test"
        pytest.skip(
            f"{test}: {name} is not installed; `apt-get install prometheus` (or `.ci/run`, "
            "which installs it) to run the real-Prometheus tests"
        )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    doc = _get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    assert doc["status"] == "success", doc
    result: list[dict[str, Any]] = doc["data"]["result"]
    return result


def _wait_for(base: str, promql: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            result = _query(base, promql)
        except OSError:
            result = []  # not listening yet
        if len(result) >= count:
            return result
        time.sleep(0.25)
    raise AssertionError(f"{promql}: {len(result)} series after {timeout}s, wanted {count}")


def test_prometheus_scrapes_drift_and_shadow_series(registry, make_gateway, tmp_path) -> None:
    prometheus = _binary("prometheus")
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

    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES / 'alerts.yml'}\n"
        "scrape_configs:\n  - job_name: onnxgate\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{gw.gateway.metrics_port}']\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        features = _wait_for(
            base, 'onnxgate_drift_feature_drifted{model="m",version="1",side="inputs"}', FEATURES
        )
        drifted = {s["metric"]["feature"] for s in features if s["value"][1] == "1"}
        assert drifted == {"x[2]"}
        assert all(s["metric"]["job"] == "onnxgate" for s in features)

        (verdict,) = _query(base, 'onnxgate_drift_verdict{model="m",version="1",side="inputs"}')
        assert verdict["value"][1] == "1"
        psi = _query(base, 'onnxgate_drift_psi{model="m",version="1",feature="x[2]"}')
        assert float(psi[0]["value"][1]) > 0.2
        adjusted = _query(base, 'onnxgate_drift_ks_pvalue_adjusted{model="m",feature="x[2]"}')
        assert float(adjusted[0]["value"][1]) < 1e-6

        (agreement,) = _wait_for(base, 'onnxgate_shadow_agreement_ratio{model="m"}', 1)
        labels = agreement["metric"]
        assert (labels["version"], labels["served_version"]) == ("2", "1")
        assert 0.5 < float(agreement["value"][1]) < 0.95
        (calls,) = _query(base, 'onnxgate_shadow_requests_total{model="m",version="2"}')
        assert calls["value"][1] == "10"
        assert _query(base, "onnxgate_monitor_dropped_total")[0]["value"][1] == "0"

        groups = _get(f"{base}/api/v1/rules")["data"]["groups"]
        names = {rule["name"] for g in groups for rule in g["rules"]}
        assert {"OnnxgateInputDrift", "OnnxgateShadowDisagreement"} <= names
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_alert_rules_pass_promtool() -> None:
    promtool = _binary("promtool")
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


def test_a_missing_prometheus_skip_names_the_test_and_how_to_get_it(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        _binary("prometheus")
    reason = str(skipped.value)
    assert "test_prometheus.py::test_a_missing_prometheus_skip_names_the_test" in reason
    assert "apt-get install prometheus" in reason and ".ci/run" in reason
