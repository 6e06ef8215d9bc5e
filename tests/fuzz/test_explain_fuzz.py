"""Explain's parameters, fuzzed against a real gateway (issue 21).

Any model name, version, id, output, output index, timeout and rows gets a documented
status (never UNKNOWN or INTERNAL), nothing is logged with a traceback, the gateway still
explains a valid call afterwards, and no name a client made up becomes a metric label.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from shared import assert_no_tracebacks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "explain"))
from explain_support import explain, register

from gateway._proto import explain_pb2 as epb
from gateway.tools import modelzoo

DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
names = st.one_of(st.sampled_from(["lin", "", "1", "9"]), st.text(max_size=300))


@pytest.fixture
def gw(registry, make_gateway):
    reference = np.random.default_rng(0).standard_normal((200, 4))
    register(registry, "lin", modelzoo.linear(4, 2, seed=3), reference)
    return make_gateway()


@settings(max_examples=40)
@given(
    model=names,
    version=names,
    request_id=st.text(max_size=300),
    output=names,
    index=st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
    timeout=st.floats(allow_nan=True, allow_infinity=True),
    shape=st.lists(st.integers(0, 5), max_size=4),
    rows=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=30),
)
@example(model="lin", version="", request_id="", output="", index=None, timeout=float("nan"),
         shape=[1, 4], rows=[0.0] * 4)  # fmt: skip
@example(model="lin", version="", request_id="", output="", index=None, timeout=1.0,
         shape=[1, 4], rows=[float("nan")] * 4)  # fmt: skip
def test_any_explain_call_gets_a_documented_status(
    gw, caplog, model, version, request_id, output, index, timeout, shape, rows
):
    req = epb.ExplainRequest(
        model=model, version=version, id=request_id, output=output, timeout_s=timeout
    )
    if index is not None:
        req.output_index = index
    req.shape.extend(shape)
    req.rows.extend(rows)
    with caplog.at_level(logging.WARNING):
        try:
            explain(gw, req)
        except grpc.RpcError as exc:
            assert exc.code() in DOCUMENTED, (exc.code(), exc.details())
    assert_no_tracebacks(caplog)
    good = explain(gw, epb.ExplainRequest(model="lin", rows=[0.5] * 4, shape=[1, 4]))
    assert len(good.attributions) == 4  # one output, four features
    page = gw.gateway.metrics.registry
    models = {
        s.labels.get("model")
        for family in page.collect()
        for s in family.samples
        if s.name.startswith("onnxgate_explain_requests")
    }
    assert models <= {"lin", "(unknown)"}
