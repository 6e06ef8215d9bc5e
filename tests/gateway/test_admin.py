"""Admin API authentication, refusals that change nothing, and the CLI over a real server."""

from __future__ import annotations

import json

import grpc
import pytest
from shared import ADMIN_TOKEN, admin_metadata

from gateway._proto import admin_pb2 as apb
from gateway.cli import main as cli
from gateway.tools import modelzoo


@pytest.fixture
def two_versions(registry):
    registry.register_version("m", modelzoo.linear(4, 2, seed=1), actor="t")
    registry.register_version("m", modelzoo.linear(4, 2, seed=2), actor="t")


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer wrong"),), (("authorization", ADMIN_TOKEN),)],
    ids=["no-token", "wrong-token", "no-bearer-scheme"],
)
def test_admin_refuses_without_valid_token(registry, make_gateway, two_versions, metadata):
    admin = make_gateway().admin()
    calls = [
        lambda: admin.GetDeployment(apb.GetDeploymentRequest(model="m"), metadata=metadata),
        lambda: admin.SetWeights(
            apb.SetWeightsRequest(model="m", weights={"1": 1, "2": 1}), metadata=metadata
        ),
        lambda: admin.Rollback(apb.RollbackRequest(model="m"), metadata=metadata),
        lambda: admin.ListModels(apb.ListModelsRequest(), metadata=metadata),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert ADMIN_TOKEN not in err.value.details()
    assert registry.get_deployment("m").revision == 1  # nothing changed


def test_admin_with_token_is_audited_under_its_principal(registry, make_gateway, two_versions):
    admin = make_gateway().admin()
    resp = admin.SetWeights(
        apb.SetWeightsRequest(model="m", weights={"1": 90, "2": 10}, reason="canary"),
        metadata=admin_metadata(),
    )
    assert resp.deployment.revision == 2
    last = registry.audit_events(subject="m")[-1]
    assert (last.actor, last.action, last.reason) == ("test-operator", "deployment.set", "canary")


@pytest.mark.parametrize(
    ("request_", "code", "needle"),
    [
        (apb.SetWeightsRequest(model="m", weights={"1": 1, "9": 1}), "NOT_FOUND", "9"),
        (apb.SetWeightsRequest(model="m", weights={"1": 1, "2": -1}), "INVALID_ARGUMENT", "2"),
        (apb.SetWeightsRequest(model="m", weights={"1": 0, "2": 0}), "INVALID_ARGUMENT", "weight"),
        (
            apb.SetWeightsRequest(model="m", weights={"2": 1}, roles={"2": "canary"}),
            "INVALID_ARGUMENT",
            "champion",
        ),
        (
            apb.SetWeightsRequest(model="m", weights={"1": 1}, roles={"1": "boss"}),
            "INVALID_ARGUMENT",
            "boss",
        ),
        (apb.SetWeightsRequest(model="nope", weights={"1": 1}), "NOT_FOUND", "nope"),
        (apb.SetWeightsRequest(model="m"), "INVALID_ARGUMENT", "weights"),
    ],
    ids=["unknown-version", "negative", "all-zero", "no-champion", "bad-role", "no-model", "empty"],
)
def test_invalid_changes_are_refused_and_change_nothing(
    registry, make_gateway, two_versions, request_, code, needle
):
    admin = make_gateway().admin()
    with pytest.raises(grpc.RpcError) as err:
        admin.SetWeights(request_, metadata=admin_metadata())
    assert err.value.code().name == code
    assert needle in err.value.details()
    assert registry.get_deployment("m").revision == 1
    assert [e.action for e in registry.audit_events(subject="m")].count("deployment.set") == 1


def test_stale_expected_revision_is_failed_precondition(registry, make_gateway, two_versions):
    admin = make_gateway().admin()
    with pytest.raises(grpc.RpcError) as err:
        admin.SetWeights(
            apb.SetWeightsRequest(model="m", weights={"1": 1, "2": 1}, expected_revision=7),
            metadata=admin_metadata(),
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_round_trip_against_a_real_server(
    registry, make_gateway, two_versions, capsys, monkeypatch
):
    gw = make_gateway()
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", ADMIN_TOKEN)
    t = ("--target", gw.target)

    code, out, _ = _cli(capsys, "traffic", "set", "m", "1=90", "2=10", "--role", "2=canary", *t)
    assert code == 0 and "canary" in out and "10.0%" in out
    code, out, _ = _cli(capsys, "traffic", "show", "m", "--json", *t)
    shown = json.loads(out)
    assert {a["version"]: (a["role"], a["weight"]) for a in shown["arms"]} == {
        "1": ("champion", 90.0),
        "2": ("canary", 10.0),
    }
    assert _cli(capsys, "shadow", "add", "m", "2", "--fraction", "0.2", *t)[0] == 1  # arm
    assert _cli(capsys, "promote", "m", "2", *t)[0] == 0
    assert registry.get_deployment("m").champion.version == "2"
    assert _cli(capsys, "shadow", "add", "m", "1", "--fraction", "0.2", *t)[0] == 0
    assert [s.version for s in registry.get_deployment("m").shadows] == ["1"]
    assert _cli(capsys, "shadow", "remove", "m", "1", *t)[0] == 0
    assert _cli(capsys, "rollback", "m", *t)[0] == 0
    assert [s.version for s in registry.get_deployment("m").shadows] == ["1"]
    code, out, _ = _cli(capsys, "history", "m", "--json", *t)
    history = json.loads(out)
    assert [h["revision"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert history[-1]["actor"] == "test-operator"


@pytest.mark.parametrize(
    "args",
    [
        ("traffic", "set", "m", "1=abc"),
        ("traffic", "set", "m", "1=-5"),
        ("traffic", "set", "m", "justtext"),
        ("traffic", "set", "m", "1=50", "2=50", "--role", "2=chief"),
        ("promote", "m", "42"),
    ],
)
def test_cli_errors_are_one_line_and_change_nothing(
    registry, make_gateway, two_versions, capsys, monkeypatch, args
):
    gw = make_gateway()
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", ADMIN_TOKEN)
    code, out, err = _cli(capsys, *args, "--target", gw.target)
    assert code == 1
    assert err.startswith("onnxgate: ") and err.count("\n") == 1
    assert registry.get_deployment("m").revision == 1


def test_cli_without_token_says_so(registry, make_gateway, two_versions, capsys, monkeypatch):
    gw = make_gateway()
    monkeypatch.delenv("ONNXGATE_ADMIN_TOKEN", raising=False)
    code, _, err = _cli(capsys, "traffic", "show", "m", "--target", gw.target)
    assert code == 1 and "ONNXGATE_ADMIN_TOKEN" in err
