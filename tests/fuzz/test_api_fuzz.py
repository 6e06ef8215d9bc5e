"""Operator APIs fuzzed over every field of every request: admin, governance, governor.

Each request message is drawn from its descriptor (``messages.py``), so every field is
covered and a new one is fuzzed without a change here. Every call, authorised as an admin,
gets a documented status — never UNKNOWN or INTERNAL — nothing is logged with a traceback,
and afterwards the gateway still serves correctly and the audit chain is intact. Rollout
policy TOML is fuzzed as structured documents (known tables and keys, values of any type)
rather than only as random text, so the validation behind the parser is reached.
"""

from __future__ import annotations

import json
import logging
import math

import grpc
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from messages import messages
from shared import admin_metadata, assert_no_tracebacks

from gateway._proto import (
    admin_pb2,
    admin_pb2_grpc,
    governance_pb2,
    governance_pb2_grpc,
    governor_pb2,
    governor_pb2_grpc,
)
from gateway._proto import grpc_service_pb2 as pb
from gateway.tools import modelzoo

DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAVAILABLE,
}

SERVICES = {
    "admin": (admin_pb2, "AdminService", admin_pb2_grpc.AdminServiceStub),
    "governance": (governance_pb2, "GovernanceService", governance_pb2_grpc.GovernanceServiceStub),
    "governor": (governor_pb2, "GovernorService", governor_pb2_grpc.GovernorServiceStub),
}


def _calls() -> list[tuple[str, str, type]]:
    found = []
    for face, (module, service, _) in SERVICES.items():
        for method in module.DESCRIPTOR.services_by_name[service].methods:
            found.append((face, method.name, getattr(module, method.input_type.name)))
    return found


CALLS = _calls()


@pytest.fixture
def gw(registry, make_gateway):
    registry.register_version("m", modelzoo.linear(4, 2, seed=1), actor="test")
    registry.register_version("m", modelzoo.linear(4, 2, seed=2), actor="test")
    registry.register_version("m", modelzoo.linear(4, 2, seed=3), actor="test")
    # The model checked after every call: no fuzzed request names it (see messages.WORDS).
    registry.register_version("anchor-model", modelzoo.identity("FP32"), actor="test")
    return make_gateway(metrics_port=-1)


def _check_serving(gw) -> None:
    req = pb.ModelInferRequest(model_name="anchor-model")
    req.inputs.add(name="x", datatype="FP32", shape=[1, 3])
    req.raw_input_contents.append(np.array([[1, 2, 3]], np.float32).tobytes())
    out = gw.stub().ModelInfer(req, timeout=10)
    assert np.frombuffer(out.raw_output_contents[0], np.float32).tolist() == [1, 2, 3]


def _call(gw, face: str, method: str, request) -> grpc.StatusCode:
    stub = SERVICES[face][2](gw.channel())
    try:
        getattr(stub, method)(request, metadata=admin_metadata(), timeout=30)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        assert code in DOCUMENTED, (face, method, code, exc.details(), request)
        return code
    return grpc.StatusCode.OK


@st.composite
def operator_calls(draw: st.DrawFn) -> tuple[str, str, object]:
    face, method, message = draw(st.sampled_from(CALLS))
    return face, method, draw(messages(message))


def _weights(values: dict[str, float]) -> admin_pb2.SetWeightsRequest:
    return admin_pb2.SetWeightsRequest(model="m", weights=values)


@given(call=operator_calls())
@example(call=("admin", "SetWeights", _weights({"1": math.nan})))
@example(call=("admin", "SetWeights", _weights({"1": math.inf, "2": 1.0})))
@example(call=("admin", "SetWeights", _weights({"1": 1e308, "2": 1e308})))
@example(call=("admin", "SetWeights", _weights({"1": -1.0, "2": 2.0})))
@example(
    call=(
        "admin",
        "AddShadow",
        admin_pb2.AddShadowRequest(model="m", version="2", fraction=math.nan),
    )
)
@example(call=("admin", "ListHistory", admin_pb2.ListHistoryRequest(model="m", limit=-(2**31))))
@example(
    call=(
        "governance",
        "DeploymentAt",
        governance_pb2.DeploymentAtRequest(model="m", at="99999-01-01"),
    )
)
@example(
    call=("governance", "ListAudit", governance_pb2.ListAuditRequest(since="not a time", limit=-1))
)
@example(call=("governance", "SetPolicy", governance_pb2.SetPolicyRequest(policy_json="[1, 2]")))
@example(
    call=(
        "governance",
        "SetPolicy",
        governance_pb2.SetPolicyRequest(policy_json='{"approvals_required": 1e400}'),
    )
)
@example(
    call=(
        "governor",
        "Feedback",
        governor_pb2.FeedbackRequest(
            model="m", items=[governor_pb2.FeedbackItem(id="x", value=math.nan)]
        ),
    )
)
def test_operator_calls_get_documented_statuses(gw, registry, caplog, call):
    face, method, request = call
    with caplog.at_level(logging.WARNING):
        _call(gw, face, method, request)
        _check_serving(gw)
    assert_no_tracebacks(caplog)
    assert registry.verify_audit_chain() == []


# -- rollout policy TOML -----------------------------------------------------------------------

TABLES = {
    "": ["mode", "require_approval"],
    "canary": ["steps", "interval_s", "min_requests", "min_labels"],
    "gates": [
        "max_error_rate",
        "max_error_rate_delta",
        "max_p99_ratio",
        "max_drifted_features",
        "output_drift",
        "min_shadow_agreement",
        "max_quality_drop",
        "min_disparate_impact",
        "min_tpr_ratio",
        "min_requests",
        "min_labels",
        "min_segment_count",
        "hard",
        "soft_failures",
    ],
    "challenger": ["alpha", "tau", "min_labels"],
    "feedback": [
        "task",
        "output",
        "positive",
        "threshold",
        "segment_param",
        "segment_feature",
    ],
}

toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.sampled_from(["enforce", "dry-run", "paused", "classification", "regression", "x:1"]),
    st.text(max_size=8),
)
toml_values = st.one_of(toml_scalars, st.lists(toml_scalars, max_size=5))


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


@st.composite
def rollout_documents(draw: st.DrawFn) -> str:
    lines = []
    for table, keys in TABLES.items():
        chosen = draw(st.lists(st.sampled_from(keys + ["unknown_key"]), unique=True, max_size=4))
        if not chosen and table:
            continue
        if table:
            lines.append(f"[{table}]")
        lines += [f"{key} = {_toml(draw(toml_values))}" for key in chosen]
    return "\n".join(lines) + "\n"


@given(toml=st.one_of(rollout_documents(), st.text(max_size=40)))
@example(toml="[canary]\nsteps = []\n")
@example(toml="[canary]\nsteps = [100, 5]\n")
@example(toml="[canary]\ninterval_s = nan\n")
@example(toml="[gates]\nhard = [1]\n")
@example(toml="[challenger]\nalpha = 1e400\n")
@example(toml='[feedback]\nsegment_feature = "x:-1"\n')
def test_rollout_policy_documents_get_documented_statuses(gw, registry, caplog, toml):
    request = governor_pb2.SetPolicyRequest(model="m", toml=toml)
    with caplog.at_level(logging.WARNING):
        code = _call(gw, "governor", "SetPolicy", request)
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
        if code == grpc.StatusCode.OK:  # what was stored reads back
            _call(gw, "governor", "GetPolicy", governor_pb2.GetPolicyRequest(model="m"))
        _check_serving(gw)
    assert_no_tracebacks(caplog)
