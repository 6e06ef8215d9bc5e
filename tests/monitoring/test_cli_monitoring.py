"""``onnxgate models register --reference``, ``onnxgate drift`` and ``onnxgate shadow
report`` end to end, through ``gateway.cli.main`` against a real registry and gateway."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from monitoring_support import send
from shared import ADMIN_TOKEN, admin_metadata, clear_onnxgate_env, wait_for

from gateway import cli
from gateway._proto import admin_pb2 as apb
from gateway._proto import governor_pb2 as gpb
from gateway._proto import governor_pb2_grpc
from gateway.tools import modelzoo

FEATURES = 8
NAMES = [f"f{i}" for i in range(FEATURES)]


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    clear_onnxgate_env(monkeypatch)
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", ADMIN_TOKEN)


@pytest.fixture
def register(registry_url, tmp_path):
    """``onnxgate models register NAME FILE ...`` against the test registry."""
    model = tmp_path / "mlp.onnx"
    model.write_bytes(modelzoo.mlp((FEATURES, 16, 2), seed=1))
    flags = ["--registry", registry_url, "--artifact-dir", str(tmp_path / "artifacts")]

    def run(*args: str) -> int:
        # The same bytes again with other references: duplicates are the point here.
        return cli.main(["models", "register", "m", str(model), "--allow-duplicate", *args, *flags])

    return run


def _csv(path: Path, x: np.ndarray) -> Path:
    np.savetxt(path, x, delimiter=",", header=",".join(NAMES), comments="")
    return path


def test_register_with_reference_formats(registry, register, tmp_path, capfd) -> None:
    x = np.random.default_rng(0).standard_normal((3000, FEATURES))
    assert register("--reference", str(_csv(tmp_path / "ref.csv", x))) == 0
    doc, source = registry.get_profile("m", "1")
    assert source == "reference"
    assert doc["inputs"]["feature_names"] == NAMES and doc["inputs"]["n_rows"] == 3000
    assert doc["outputs"]["n_rows"] == 3000  # the model was run on the reference
    (event,) = [e for e in registry.audit_events("m:1") if e.action == "version.profile"]
    assert event.after["reference"] == "ref.csv"

    np.save(tmp_path / "ref.npy", x)
    np.savez(tmp_path / "ref.npz", other=np.zeros(3), x=x)
    assert register("--reference", str(tmp_path / "ref.npy")) == 0
    assert register("--reference", str(tmp_path / "ref.npz")) == 0
    for version in ("2", "3"):
        doc, _ = registry.get_profile("m", version)
        assert doc["inputs"]["feature_names"][0] == "x[0]" and doc["inputs"]["n_rows"] == 3000

    capfd.readouterr()
    np.save(tmp_path / "bad.npy", x[:, :5])
    assert register("--reference", str(tmp_path / "bad.npy")) == 1
    assert "5 columns" in capfd.readouterr().err
    assert [v.version for v in registry.list_versions("m")] == ["1", "2", "3"]  # refused


def test_drift_table_json_and_html(registry, register, make_gateway, tmp_path, capfd) -> None:
    rng = np.random.default_rng(5)
    reference = _csv(tmp_path / "ref.csv", rng.standard_normal((5000, FEATURES)))
    assert register("--reference", str(reference)) == 0
    gw = make_gateway(monitor_window=1000, monitor_min_rows=200, monitor_interval_s=60)
    x = rng.standard_normal((1000, FEATURES))
    x[:, 3] += 2.0
    send(gw, "m", x)
    capfd.readouterr()

    assert cli.main(["drift", "m", "--target", gw.target]) == 0
    out = capfd.readouterr().out
    lines = out.splitlines()
    assert "m:1  profile reference  window 1000 rows" in lines[0]
    assert lines[1].startswith("inputs: DRIFT") and lines[1].endswith(": f3")
    assert lines[2].split() == [
        "FEATURE",
        "PSI",
        "KS",
        "P",
        "P_ADJ",
        "W/STD",
        "MEAN_SHIFT",
        "VERDICT",
    ]
    assert lines[4].startswith("f3 ") and lines[4].endswith("DRIFT")  # most drifted first
    assert sum("DRIFT" in line for line in lines[4:]) == 1

    assert cli.main(["drift", "m", "--version", "1", "--json", "--target", gw.target]) == 0
    payload = json.loads(capfd.readouterr().out)
    (side,) = [s for s in payload["versions"][0]["sides"] if s["side"] == "inputs"]
    assert side["driving_features"] == ["f3"]
    assert [f["name"] for f in side["features"]][0] == "f3"

    html_path = tmp_path / "drift.html"
    assert cli.main(["drift", "m", "--html", str(html_path), "--target", gw.target]) == 0
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert all(name in page for name in NAMES)
    assert page.count("<svg") >= FEATURES and "reference" in page and "current" in page

    assert cli.main(["drift", "nope", "--target", gw.target]) == 1
    assert "NOT_FOUND" in capfd.readouterr().err


def test_shadow_report_command(registry, make_gateway, capfd) -> None:
    registry.register_version("m", modelzoo.mlp((FEATURES, 16, 2), seed=1), actor="test")
    registry.register_version(
        "m", modelzoo.mlp((FEATURES, 16, 2), seed=1, bias_shift=0.5), actor="test"
    )
    gw = make_gateway(monitor_interval_s=60)
    request = apb.AddShadowRequest(model="m", version="2", fraction=1.0)
    gw.admin().AddShadow(request, metadata=admin_metadata(), timeout=30)
    send(gw, "m", np.random.default_rng(1).standard_normal((500, FEATURES)), rows_per_call=50)
    assert gw.gateway.taps.flush(30)
    assert gw.gateway.shadow.drain(30)
    capfd.readouterr()
    assert cli.main(["shadow", "report", "m", "--target", gw.target]) == 0
    lines = capfd.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["SHADOW", "VS", "CALLS", "ROWS", "AGREE"]
    assert lines[2].split()[:4] == ["2", "1", "10", "500"]
    assert lines[2].split()[4].endswith("%")
    assert cli.main(["shadow", "report", "m", "--json", "--target", gw.target]) == 0
    (c,) = json.loads(capfd.readouterr().out)["comparisons"]
    assert c["rows"] == 500 and 0.5 < c["agreement"] < 1.0


def test_drift_shows_contract_violations(registry, register, make_gateway, tmp_path, capfd) -> None:
    rng = np.random.default_rng(6)
    reference = _csv(tmp_path / "ref.csv", rng.uniform(-1, 1, (2000, FEATURES)))
    assert register("--reference", str(reference)) == 0
    gw = make_gateway(governor_interval_s=0.05, monitor_min_rows=50, monitor_interval_s=60)
    governor_pb2_grpc.GovernorServiceStub(gw.channel()).SetPolicy(
        gpb.SetPolicyRequest(model="m", toml='[contract]\nmode = "count"\n'),
        metadata=admin_metadata(),
    )
    guard = gw.gateway.contracts
    wait_for(lambda: guard.mode("m") == "count", timeout=10)
    inside = rng.uniform(-1, 1, (100, FEATURES))
    send(gw, "m", inside[:1])  # read the contract (this call is not checked)
    wait_for(lambda: guard.ready("m", "1"), timeout=10)
    x = rng.uniform(-1, 1, (200, FEATURES))
    x[:30, 5] = 40.0  # 30 rows outside on one feature
    send(gw, "m", x)
    wait_for(lambda: guard.tallies("m").get("1", (0, 0, {}))[0] == 200, timeout=10)
    capfd.readouterr()

    assert cli.main(["drift", "m", "--json", "--target", gw.target]) == 0
    contract = json.loads(capfd.readouterr().out)["versions"][0]["contract"]
    (feature,) = contract["features"]
    assert contract == {
        "mode": "count",
        "rows": 200,
        "violating_rows": 30,
        "violation_rate": pytest.approx(30 / 200),
        "features": {feature: 30},
        "fleet": False,
    }
    assert cli.main(["drift", "m", "--target", gw.target]) == 0
    out = capfd.readouterr().out
    assert f"contract (count, this gateway): 30 of 200 rows violate (15.00%): {feature} 30" in out
