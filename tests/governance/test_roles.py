"""Roles on every operator RPC, four-eyes and the approvals rule over gRPC and the CLI,
optimistic concurrency through the API, and the role settings.

A real gateway on loopback (SQLite only: the rules themselves are tested on both backends
in test_lifecycle.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway import cli
from gateway._proto import (
    admin_pb2,
    admin_pb2_grpc,
    governance_pb2,
    governance_pb2_grpc,
    governor_pb2,
    governor_pb2_grpc,
    grpc_service_pb2,
    grpc_service_pb2_grpc,
    monitoring_pb2,
    monitoring_pb2_grpc,
)
from gateway.access import GRANTS, METHOD_PERMISSIONS, AccessRole, Permission
from gateway.settings import Settings, SettingsError
from governance.support import linear
from registry.registry import Registry

TOKENS = {"t-view": "vera", "t-op": "otto", "t-appr": "alice", "t-appr2": "bob", "t-adm": "ada"}
ROLES = {"vera": "viewer", "otto": "operator", "alice": "approver", "bob": "approver"}
TOKEN_OF = {"viewer": "t-view", "operator": "t-op", "approver": "t-appr", "admin": "t-adm"}
SERVICES = [
    (admin_pb2, "AdminService", admin_pb2_grpc.AdminServiceStub),
    (governance_pb2, "GovernanceService", governance_pb2_grpc.GovernanceServiceStub),
    (monitoring_pb2, "MonitoringService", monitoring_pb2_grpc.MonitoringServiceStub),
    (governor_pb2, "GovernorService", governor_pb2_grpc.GovernorServiceStub),
]
# Feedback carries delayed labels from applications: it follows predict auth, not roles.
INFERENCE = "inference.GRPCInferenceService/"
PREDICT_AUTH = {"onnxgate.governor.v1.GovernorService/Feedback"}


@pytest.fixture
def registry_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture
def gw(registry: Registry, make_gateway: Callable[..., Any]) -> Any:
    registry.register_version("m", linear(1), actor="cli:alice")
    registry.register_version("m", linear(2), actor="cli:alice")
    return make_gateway(admin_tokens=TOKENS, admin_roles=ROLES, metrics_port=-1)


def md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def test_every_operator_method_has_a_permission() -> None:
    for module, service, _ in SERVICES:
        descriptor = module.DESCRIPTOR.services_by_name[service]
        for method in descriptor.methods:
            path = f"{descriptor.full_name}/{method.name}"
            assert path in METHOD_PERMISSIONS or path in PREDICT_AUTH, method.name


def test_reads_never_need_more_than_read() -> None:
    for path, permission in METHOD_PERMISSIONS.items():
        if path.rsplit("/", 1)[1].startswith(("Get", "List")):
            assert permission is Permission.READ, path


def test_role_refusals_on_every_method(gw: Any, registry: Registry) -> None:
    channel = gw.channel()
    checked = 0
    for module, service, stub_type in SERVICES:
        stub = stub_type(channel)
        descriptor = module.DESCRIPTOR.services_by_name[service]
        for method in descriptor.methods:
            path = f"{descriptor.full_name}/{method.name}"
            if path in PREDICT_AUTH:
                continue
            needed = METHOD_PERMISSIONS[path]
            request = getattr(module, method.input_type.name)()
            for role, token in TOKEN_OF.items():
                allowed = needed in GRANTS[AccessRole(role)]
                try:
                    getattr(stub, method.name)(request, metadata=md(token), timeout=10)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    code, details = exc.code(), exc.details()
                if allowed:
                    refused = {
                        grpc.StatusCode.PERMISSION_DENIED,
                        grpc.StatusCode.UNAUTHENTICATED,
                        grpc.StatusCode.INTERNAL,
                        grpc.StatusCode.UNKNOWN,
                    }
                    assert code not in refused, (method.name, role, code)
                else:
                    assert code == grpc.StatusCode.PERMISSION_DENIED, (method.name, role)
                    assert f"rule 'roles': principal '{TOKENS[token]}' has role '{role}'" in details
                    assert token not in details
                checked += 1
    operator_paths = [p for p in METHOD_PERMISSIONS if not p.startswith(INFERENCE)]
    assert checked == 4 * len(operator_paths)
    assert registry.get_deployment("m").revision == 1  # no refused call changed anything


def test_repository_load_and_unload_need_the_operator_role(gw: Any) -> None:
    """Triton's repository control changes what is served: roles as for traffic changes."""
    stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(gw.channel())
    unload = grpc_service_pb2.RepositoryModelUnloadRequest(model_name="m")
    load = grpc_service_pb2.RepositoryModelLoadRequest(model_name="m")
    for role in ("viewer", "approver"):
        with pytest.raises(grpc.RpcError) as refused:
            stub.RepositoryModelUnload(unload, metadata=md(TOKEN_OF[role]), timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, role
    for role in ("operator", "admin"):
        stub.RepositoryModelUnload(unload, metadata=md(TOKEN_OF[role]), timeout=10)
        stub.RepositoryModelLoad(load, metadata=md(TOKEN_OF[role]), timeout=30)


def test_four_eyes_over_grpc(gw: Any, registry: Registry) -> None:
    gov = governance_pb2_grpc.GovernanceServiceStub(gw.channel())
    request = governance_pb2.ApproveRequest(model="m", version="2", comment="lgtm")
    with pytest.raises(grpc.RpcError) as err:
        gov.Approve(request, metadata=md("t-appr"), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "rule 'four-eyes'" in err.value.details()
    approval = gov.Approve(request, metadata=md("t-appr2"), timeout=10)
    assert (approval.approver, approval.comment) == ("bob", "lgtm")
    listed = gov.ListApprovals(
        governance_pb2.ListApprovalsRequest(model="m"), metadata=md("t-view")
    )
    assert [(a.version, a.approver) for a in listed.approvals] == [("2", "bob")]


def test_approvals_rule_over_grpc(gw: Any, registry: Registry) -> None:
    gov = governance_pb2_grpc.GovernanceServiceStub(gw.channel())
    admin = admin_pb2_grpc.AdminServiceStub(gw.channel())
    policy = '{"approvals_required": 1, "unapproved_max_share": 0.1}'
    gov.SetPolicy(governance_pb2.SetPolicyRequest(policy_json=policy), metadata=md("t-adm"))
    half = admin_pb2.SetWeightsRequest(model="m", weights={"1": 50, "2": 50})
    with pytest.raises(grpc.RpcError) as err:
        admin.SetWeights(half, metadata=md("t-op"), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "rule 'approvals'" in err.value.details() and "0 of 1" in err.value.details()
    gov.Approve(governance_pb2.ApproveRequest(model="m", version="2"), metadata=md("t-appr2"))
    assert admin.SetWeights(half, metadata=md("t-op"), timeout=10).deployment.revision == 2
    assert registry.audit_events("m")[-1].actor == "otto"
    bad = governance_pb2.SetPolicyRequest(policy_json='{"approvals_required": -1}')
    with pytest.raises(grpc.RpcError) as err:
        gov.SetPolicy(bad, metadata=md("t-adm"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_concurrent_set_weights_one_wins(gw: Any, registry: Registry) -> None:
    barrier = threading.Barrier(2)
    codes: list[grpc.StatusCode] = []

    def writer(weight: float) -> None:
        admin = admin_pb2_grpc.AdminServiceStub(gw.channel())
        req = admin_pb2.SetWeightsRequest(
            model="m", weights={"1": 100 - weight, "2": weight}, expected_revision=1
        )
        barrier.wait()
        try:
            admin.SetWeights(req, metadata=md("t-op"), timeout=30)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())

    threads = [threading.Thread(target=writer, args=(w,)) for w in (10.0, 20.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(c.name for c in codes) == ["FAILED_PRECONDITION", "OK"]
    assert registry.get_deployment("m").revision == 2


def test_cli_approve_whoami_policy_and_stale_revision(
    gw: Any,
    registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = ["--target", gw.target]
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", "t-appr")
    assert cli.main(["governance", "whoami", *target]) == 0
    assert capsys.readouterr().out.strip() == "alice (approver)"
    assert cli.main(["approve", "m:2", *target]) == 1
    err = capsys.readouterr().err
    assert err.startswith("onnxgate: PERMISSION_DENIED: rule 'four-eyes'")
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", "t-appr2")
    assert cli.main(["approve", "m:2", "--reason", "parity checked", *target]) == 0
    assert capsys.readouterr().out.strip() == "bob approved m:2"
    approval = registry.audit_events("m:2")[-1]  # a governance decision carries its reason
    assert (approval.action, approval.reason) == ("version.approve", "parity checked")
    assert registry.governance.approvals("m", "2")[-1].comment == "parity checked"
    policy = tmp_path / "policy.toml"
    policy.write_text('[policy]\napprovals_required = 2\nlicense_denylist = ["GPL-*"]\n')
    assert cli.main(["governance", "policy", "set", str(policy), *target]) == 1
    assert "PERMISSION_DENIED: rule 'roles'" in capsys.readouterr().err
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", "t-adm")
    assert cli.main(["governance", "policy", "set", str(policy), "--json", *target]) == 0
    assert registry.governance.policy().approvals_required == 2
    assert registry.audit_events("policy")[-1].actor == "ada"
    policy.write_text("[policy]\napprovals = 2\n")
    assert cli.main(["governance", "policy", "set", str(policy), *target]) == 1
    assert "unknown policy key(s): approvals" in capsys.readouterr().err
    # Two operators editing one deployment: the second, based on revision 1, is refused.
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", "t-op")
    registry.set_weights("m", {"1": 95, "2": 5}, actor="someone-else")
    stale = ["traffic", "set", "m", "1=90", "2=10", "--expected-revision", "1", *target]
    assert cli.main(stale) == 1
    err = capsys.readouterr().err
    assert err.startswith("onnxgate: FAILED_PRECONDITION:") and "expected revision 1" in err


def test_role_settings() -> None:
    s = Settings.load(
        environ={"ONNXGATE_ADMIN_TOKENS": "alice:approver:t1,bob:operator:t:2,carol:t3"}
    )
    assert dict(s.admin_tokens) == {"t1": "alice", "t:2": "bob", "t3": "carol"}
    assert dict(s.admin_roles) == {"alice": "approver", "bob": "operator"}
    # The one-token shorthand is principal "admin" with role admin (no role given).
    s = Settings.load(environ={"ONNXGATE_ADMIN_TOKEN": "s3cret"})
    assert dict(s.admin_tokens) == {"s3cret": "admin"} and dict(s.admin_roles) == {}
    s = Settings.load(environ={"ONNXGATE_ADMIN_ROLES": "alice:Viewer"})
    assert dict(s.admin_roles) == {"alice": "viewer"}
    with pytest.raises(SettingsError, match="unknown role 'boss'"):
        Settings.load(environ={"ONNXGATE_ADMIN_ROLES": "alice:boss"})
