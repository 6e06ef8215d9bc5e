"""Data contracts on a real gateway: ``[contract] mode = "reject"`` refuses an out-of-range
row naming the feature (INVALID_ARGUMENT); ``count`` changes no answer and counts the
violations per feature in Prometheus."""

from __future__ import annotations

import json

import grpc
import httpx
import numpy as np
import pytest
from monitoring_support import infer_request, outputs_of, register_with_reference
from prometheus_client import generate_latest
from shared import admin_metadata, wait_for

from gateway._proto import governor_pb2 as gpb
from gateway._proto import governor_pb2_grpc
from gateway.tools import modelzoo

FEATURES = 4


def set_contract(gw, mode: str) -> None:  # type: ignore[no-untyped-def]
    stub = governor_pb2_grpc.GovernorServiceStub(gw.channel())
    toml = f'[contract]\nmode = "{mode}"\n'
    stub.SetPolicy(gpb.SetPolicyRequest(model="m", toml=toml), metadata=admin_metadata())


def checked(gw, x: np.ndarray):  # type: ignore[no-untyped-def]
    """Send ``x`` until the version's contract has been read (the first calls are not
    checked while it loads); return the last answer."""
    guard = gw.gateway.contracts
    resp = gw.stub().ModelInfer(infer_request("m", x), timeout=10)
    wait_for(lambda: guard.ready("m", "1"), timeout=10)
    return resp


def violations(gw) -> dict[str, float]:  # type: ignore[no-untyped-def]
    out = {}
    for line in generate_latest(gw.gateway.metrics.registry).decode().splitlines():
        if line.startswith("onnxgate_contract_violations_total{"):
            feature = line.split('feature="')[1].split('"')[0]
            out[feature] = float(line.split()[-1])
    return out


def test_reject_names_the_feature_and_count_changes_no_answer(registry, make_gateway) -> None:
    data = modelzoo.mlp((FEATURES, 8, 2), seed=3)
    reference = np.random.default_rng(1).uniform(-1, 1, (2000, FEATURES))
    register_with_reference(registry, "m", data, reference)
    gw = make_gateway(governor_interval_s=0.05)
    inside = np.zeros((2, FEATURES))
    outside = inside.copy()
    outside[1, 2] = 50.0

    set_contract(gw, "reject")
    wait_for(lambda: gw.gateway.contracts.mode("m") == "reject", timeout=10)
    checked(gw, inside)
    with pytest.raises(grpc.RpcError) as err:
        gw.stub().ModelInfer(infer_request("m", outside), timeout=10)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "row 1: feature 'x[2]' = 50 violates the data contract" in err.value.details()
    assert violations(gw) == {"x[2]": 1.0}

    set_contract(gw, "count")
    wait_for(lambda: gw.gateway.contracts.mode("m") == "count", timeout=10)
    checked(gw, inside)
    counted = outputs_of(gw.stub().ModelInfer(infer_request("m", outside), timeout=10))
    set_contract(gw, "off")
    wait_for(lambda: gw.gateway.contracts.mode("m") == "off", timeout=10)
    plain = outputs_of(gw.stub().ModelInfer(infer_request("m", outside), timeout=10))
    assert counted.keys() == plain.keys()
    for name in plain:
        np.testing.assert_array_equal(counted[name], plain[name])
    assert violations(gw) == {"x[2]": 2.0}


def test_flag_names_the_violated_features_on_both_faces_and_changes_no_answer(
    registry, make_gateway
) -> None:
    data = modelzoo.mlp((FEATURES, 8, 2), seed=3)
    reference = np.random.default_rng(1).uniform(-1, 1, (2000, FEATURES))
    register_with_reference(registry, "m", data, reference)
    gw = make_gateway(governor_interval_s=0.05)
    inside = np.zeros((2, FEATURES), dtype=np.float32)
    outside = inside.copy()
    outside[1, 2] = 50.0
    outside[0, 0] = np.nan  # never missing in the reference

    set_contract(gw, "flag")
    wait_for(lambda: gw.gateway.contracts.mode("m") == "flag", timeout=10)
    clean = checked(gw, inside)
    assert "contract_violations" not in clean.parameters
    assert clean.parameters["role"].string_param == "champion"
    flagged = gw.stub().ModelInfer(infer_request("m", outside), timeout=10)
    assert flagged.parameters["contract_violations"].string_param == "x[0],x[2]"
    assert "contract_violations_more" not in flagged.parameters

    over_http = np.nan_to_num(outside, nan=-50.0)  # JSON data has no NaN: out of range
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, FEATURES],
             "data": over_http.ravel().tolist()}
        ]
    }  # fmt: skip
    http = httpx.post(f"{gw.http_url}/v2/models/m/infer", json=body, timeout=10)
    assert http.status_code == 200, http.text
    assert http.json()["parameters"] == {"role": "champion", "contract_violations": "x[0],x[2]"}
    body["inputs"][0]["data"] = [0.0] * (2 * FEATURES)
    http = httpx.post(f"{gw.http_url}/v2/models/m/infer", json=body, timeout=10)
    assert http.json()["parameters"] == {"role": "champion"}

    set_contract(gw, "off")
    wait_for(lambda: gw.gateway.contracts.mode("m") == "off", timeout=10)
    plain = gw.stub().ModelInfer(infer_request("m", outside), timeout=10)
    assert "contract_violations" not in plain.parameters
    got, want = outputs_of(flagged), outputs_of(plain)
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    assert violations(gw) == {"x[0]": 2.0, "x[2]": 2.0}


def test_an_edited_contract_is_a_new_audited_revision_that_reject_applies(
    registry, make_gateway, tmp_path, monkeypatch, capfd
) -> None:
    from shared import ADMIN_TOKEN, clear_onnxgate_env

    from gateway import cli

    clear_onnxgate_env(monkeypatch)
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", ADMIN_TOKEN)
    data = modelzoo.mlp((FEATURES, 8, 2), seed=3)
    reference = np.random.default_rng(1).uniform(-1, 1, (2000, FEATURES))
    register_with_reference(registry, "m", data, reference)
    gw = make_gateway(governor_interval_s=0.05)
    set_contract(gw, "reject")
    guard = gw.gateway.contracts
    wait_for(lambda: guard.mode("m") == "reject", timeout=10)
    row = np.zeros((1, FEATURES))
    row[0, 2] = 50.0
    checked(gw, np.zeros((1, FEATURES)))
    with pytest.raises(grpc.RpcError) as err:
        gw.stub().ModelInfer(infer_request("m", row), timeout=10)
    assert "feature 'x[2]' = 50" in err.value.details()

    capfd.readouterr()
    assert cli.main(["contracts", "show", "m", "1", "--json", "--target", gw.target]) == 0
    shown = json.loads(capfd.readouterr().out)
    assert (shown["revision"], shown["source"]) == (0, "reference")
    contract = shown["contract"]
    assert contract["features"] == [f"x[{i}]" for i in range(FEATURES)]
    assert contract["high"][2] == pytest.approx(1.2, abs=0.01)  # 10 % margin

    contract["high"][2] = 100.0
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(shown))  # `show --json` output, edited, is accepted
    argv = ["contracts", "set", "m", "1", str(path), "--reason", "x[2] goes to 100 now"]
    assert cli.main([*argv, "--json", "--target", gw.target]) == 0
    stored = json.loads(capfd.readouterr().out)
    assert (stored["revision"], stored["source"]) == (1, "edited")
    assert stored["created_by"] == "test-operator"
    assert stored["contract"]["high"][2] == 100.0
    (event,) = [e for e in registry.audit_events("m:1") if e.action == "contract.set"]
    assert (event.actor, event.reason, event.after["revision"]) == (
        "test-operator",
        "x[2] goes to 100 now",
        1,
    )
    assert cli.main(["contracts", "show", "m", "1", "--target", gw.target]) == 0
    table = capfd.readouterr().out
    assert "revision 1 (edited by test-operator" in table and "x[2] goes to 100 now" in table

    # The gateway picks the revision up off the request path; reject now follows it.
    wait_for(lambda: guard.revision("m", "1") == 1, timeout=10)
    gw.stub().ModelInfer(infer_request("m", row), timeout=10)  # 50 is allowed now
    row[0, 2] = 150.0
    with pytest.raises(grpc.RpcError) as err:
        gw.stub().ModelInfer(infer_request("m", row), timeout=10)
    assert "feature 'x[2]' = 150" in err.value.details() and "100]" in err.value.details()

    # A malformed edit is refused naming the field; nothing is stored.
    path.write_text(json.dumps({**contract, "low": contract["low"][:2]}))
    assert cli.main([*argv, "--target", gw.target]) == 1
    assert "low: 2 entries for 4 features" in capfd.readouterr().err
    assert [r.revision for r in registry.contracts.revisions("m", "1")] == [1]
