"""What a careless (or hostile) operator or client sends: each gets one clear refusal,
and nothing is stored.

* ``models register --reference`` with a CSV of words, an empty CSV, a header-only CSV, a
  0-byte ``.npy``/``.npz``: one line on stderr, exit 1, no traceback, no numpy warning, and
  the model is not registered (the reference is read before anything is written).
* Empty governance and governor policy documents are refused (CLI and gRPC): an empty
  document would silently replace the rules in force with every default.
* ``authorization: bearer <token>``: the scheme is case-insensitive (RFC 7235); both
  spellings work, other schemes are refused.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from shared import ADMIN_TOKEN, admin_metadata, clear_onnxgate_env

from gateway import cli
from gateway._proto import admin_pb2 as apb
from gateway._proto import governance_pb2 as gvpb
from gateway._proto import governance_pb2_grpc, governor_pb2_grpc
from gateway._proto import governor_pb2 as gpb
from gateway._proto import grpc_service_pb2 as pb
from gateway.tools import modelzoo

FEATURES = 4


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_onnxgate_env(monkeypatch)
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", ADMIN_TOKEN)


# -- reference samples -------------------------------------------------------------------------

REFERENCES: dict[str, tuple[str, bytes, str]] = {
    "words in a CSV": (
        "ref.csv",
        b"a,b,c,d\n1,2,3,4\n5,six,7,8\n",
        "line 3, column 'b': 'six' is not a number",
    ),
    "empty CSV": ("ref.csv", b"", "the CSV file is empty"),
    "header-only CSV": ("ref.csv", b"a,b,c,d\n", "has a header but no rows"),
    "ragged CSV": ("ref.csv", b"a,b,c,d\n1,2,3\n", "line 2 has 3 cells; the header has 4"),
    "binary CSV": ("ref.csv", b"\xff\xfe\x00a,b\n", "not UTF-8"),
    "0-byte npy": ("ref.npy", b"", "the file is empty (0 bytes)"),
    "0-byte npz": ("ref.npz", b"", "the file is empty (0 bytes)"),
    "truncated npy": ("ref.npy", b"\x93NUMPY\x01\x00", "reading array header"),
    "not a zip npz": ("ref.npz", b"PK\x03\x04garbage", "not a valid .npz file"),
    "npy named npz": ("ref.npz", b"", ""),  # filled in by the test: a real .npy
}


@pytest.mark.parametrize("case", list(REFERENCES))
def test_bad_reference_is_one_line_and_registers_nothing(case, registry, tmp_path, capfd):
    name, content, expected = REFERENCES[case]
    reference = tmp_path / name
    if case == "npy named npz":
        np.save(tmp_path / "x.npy", np.zeros((3, FEATURES)))
        reference.write_bytes((tmp_path / "x.npy").read_bytes())
        expected = "expected a .npz archive, found a single .npy array"
    else:
        reference.write_bytes(content)
    model = tmp_path / "m.onnx"
    model.write_bytes(modelzoo.linear(FEATURES, 2, seed=1))
    artifacts = tmp_path / "artifacts"
    flags = [
        "--registry",
        f"sqlite:///{tmp_path / 'registry.db'}",
        "--artifact-dir",
        str(artifacts),
    ]
    code = cli.main(["models", "register", "m", str(model), "--reference", str(reference), *flags])
    out, err = capfd.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert expected in lines[0] and str(reference) in lines[0]
    assert "Traceback" not in err and "Warning" not in err
    assert cli.main(["models", "list", "--json", *flags]) == 0
    assert capfd.readouterr().out.strip() in ("[]", "")
    assert not [p for p in artifacts.rglob("*") if p.is_file()]


def test_good_csv_with_missing_cells_still_reads(tmp_path):
    from gateway.monitoring.reference import read_reference

    path = tmp_path / "ref.csv"
    path.write_text('"a","b"\n1, 2\n,4\n\n5,nan\n')
    data, names = read_reference(path)
    assert names == ("a", "b")
    assert data.shape == (3, 2)
    assert np.isnan(data[1, 0]) and np.isnan(data[2, 1]) and data[2, 0] == 5


# -- empty policy documents --------------------------------------------------------------------


@pytest.fixture
def gw(registry, make_gateway):
    registry.register_version("m", modelzoo.identity("FP32"), actor="test")
    return make_gateway()


@pytest.mark.parametrize("text", ["", "\n# nothing but a comment\n", "[policy]\n"])
def test_empty_governance_policy_is_refused(gw, registry, tmp_path, capfd, text):
    before = registry.governance.policy()
    events = len(registry.audit_events())
    policy = tmp_path / "policy.toml"
    policy.write_text(text)
    assert cli.main(["governance", "policy", "set", str(policy), "--target", gw.target]) == 1
    err = capfd.readouterr().err.strip()
    assert "the policy document is empty" in err and len(err.splitlines()) == 1
    stub = governance_pb2_grpc.GovernanceServiceStub(gw.channel())
    for body in ("", "{}", '{"policy": {}}'):
        with pytest.raises(grpc.RpcError) as info:
            stub.SetPolicy(gvpb.SetPolicyRequest(policy_json=body), metadata=admin_metadata())
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "policy_json: the policy document is empty" in (info.value.details() or "")
    assert registry.governance.policy() == before
    assert len(registry.audit_events()) == events


@pytest.mark.parametrize("text", ["", "  \n", "# only a comment\n"])
def test_empty_governor_policy_is_refused(gw, registry, tmp_path, capfd, text):
    stub = governor_pb2_grpc.GovernorServiceStub(gw.channel())
    with pytest.raises(grpc.RpcError) as info:
        stub.SetPolicy(gpb.SetPolicyRequest(model="m", toml=text), metadata=admin_metadata())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "the policy document is empty" in (info.value.details() or "")
    policy = tmp_path / "rollout.toml"
    policy.write_text(text)
    assert cli.main(["policy", "set", "m", str(policy), "--target", gw.target]) == 1
    err = capfd.readouterr().err.strip()
    assert "the policy document is empty" in err and len(err.splitlines()) == 1
    assert registry.governor.policies() == {}
    # A document with one key is a policy (the rest defaults, as documented).
    done = stub.SetPolicy(
        gpb.SetPolicyRequest(model="m", toml='mode = "dry-run"\n'), metadata=admin_metadata()
    )
    assert done.version == 1


# -- the bearer scheme -------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(registry, make_gateway, scheme):
    registry.register_version("m", modelzoo.identity("FP32"), actor="test")
    gw = make_gateway(predict_tokens={"p-token": "app"})
    admin = gw.admin()
    md = (("authorization", f"{scheme} {ADMIN_TOKEN}"),)
    assert admin.GetDeployment(apb.GetDeploymentRequest(model="m"), metadata=md).deployment
    req = pb.ModelInferRequest(model_name="m")
    req.inputs.add(name="x", datatype="FP32", shape=[1, 3])
    req.raw_input_contents.append(np.zeros((1, 3), np.float32).tobytes())
    gw.stub().ModelInfer(req, metadata=(("authorization", f"{scheme} p-token"),), timeout=10)


@pytest.mark.parametrize(
    "value", [f"Basic {ADMIN_TOKEN}", "Bearer", "Bearer ", ADMIN_TOKEN, f"Bearer{ADMIN_TOKEN}"]
)
def test_other_schemes_or_no_token_are_refused(registry, make_gateway, value):
    registry.register_version("m", modelzoo.identity("FP32"), actor="test")
    admin = make_gateway().admin()
    with pytest.raises(grpc.RpcError) as info:
        admin.GetDeployment(
            apb.GetDeploymentRequest(model="m"), metadata=(("authorization", value),)
        )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert ADMIN_TOKEN not in (info.value.details() or "")
