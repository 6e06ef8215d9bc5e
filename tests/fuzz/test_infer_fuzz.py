"""ModelInferRequest fuzzing against a real gateway.

Every generated request gets a documented status — OK, INVALID_ARGUMENT, NOT_FOUND,
FAILED_PRECONDITION, RESOURCE_EXHAUSTED or UNAVAILABLE; never UNKNOWN or INTERNAL — nothing
is logged with a traceback, and the next valid request is answered correctly. Two
strategies: anything at all (every field, see ``strategies.py``), and a valid request with
one or two fields mutated (which reaches the data plane's checks instead of stopping at an
unknown model name). Cases found while hunting are kept as ``@example``s.
"""

from __future__ import annotations

import logging

import grpc
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from shared import assert_no_tracebacks
from strategies import DATATYPES, contents, dims, infer_requests, names, parameters

from gateway._proto import grpc_service_pb2 as pb
from gateway.tools import modelzoo

W = modelzoo.linear_weights(4, 2, seed=3)
DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
}


@pytest.fixture
def gw(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    registry.register_version("ident", modelzoo.identity("FP32"), actor="test")
    registry.register_version("text", modelzoo.identity("BYTES"), actor="test")
    registry.register_version("small", modelzoo.identity("INT8"), actor="test")
    return make_gateway(metrics_port=-1)


def _valid(rows: int = 2) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="lin")
    req.inputs.add(name="x", datatype="FP32", shape=[rows, 4])
    x = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)
    req.raw_input_contents.append(x.tobytes())
    return req


def _check_good(stub) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    response = stub.ModelInfer(_valid(), timeout=10)
    y = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(2, 2)
    np.testing.assert_allclose(y, x @ W, rtol=1e-5)


def _send(stub, request: pb.ModelInferRequest) -> grpc.StatusCode:
    try:
        stub.ModelInfer(request, timeout=30)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        assert code in DOCUMENTED, (code, exc.details(), request)
        # A status message names the problem; it never carries a Python exception's text.
        assert "Traceback" not in (exc.details() or "")
        return code
    return grpc.StatusCode.OK


@st.composite
def mutated(draw: st.DrawFn) -> pb.ModelInferRequest:
    """A valid ``lin`` request with one or two fields changed."""
    req = _valid(draw(st.integers(1, 3)))
    tensor = req.inputs[0]
    for _ in range(draw(st.integers(1, 2))):
        what = draw(
            st.sampled_from(
                [
                    "datatype",
                    "shape",
                    "raw",
                    "typed",
                    "drop_raw",
                    "extra_input",
                    "extra_raw",
                    "outputs",
                    "parameters",
                    "name",
                    "version",
                ]
            )
        )
        if what == "datatype":
            tensor.datatype = draw(st.sampled_from(DATATYPES))
        elif what == "shape":
            del tensor.shape[:]
            tensor.shape.extend(draw(st.lists(dims, max_size=4)))
        elif what == "raw":
            raw = bytes(req.raw_input_contents[0]) if req.raw_input_contents else b""
            cut = draw(st.integers(0, len(raw) + 8))
            req.raw_input_contents[:] = [(raw + b"\x7f" * 8)[:cut]]
        elif what == "typed":
            tensor.contents.CopyFrom(draw(contents()))
            if draw(st.booleans()):
                del req.raw_input_contents[:]
        elif what == "drop_raw":
            del req.raw_input_contents[:]
        elif what == "extra_input":
            req.inputs.add(name=draw(names), datatype="FP32", shape=[1, 4])
        elif what == "extra_raw":
            req.raw_input_contents.append(draw(st.binary(max_size=32)))
        elif what == "outputs":
            req.outputs.add(name=draw(st.sampled_from(["y", "y", "x", ""])))
        elif what == "parameters":
            for key, value in draw(parameters).items():
                req.parameters[key].CopyFrom(value)
                tensor.parameters[key].CopyFrom(value)
        elif what == "name":
            tensor.name = draw(names)
        else:
            req.model_version = draw(st.sampled_from(["1", "2", "0", "01", " 1"]))
    return req


def _nan_typed() -> pb.ModelInferRequest:
    req = _valid(1)
    del req.raw_input_contents[:]
    req.inputs[0].contents.fp32_contents.extend([float("nan"), float("inf"), -0.0, 1e38])
    return req


def _huge_shape() -> pb.ModelInferRequest:
    req = _valid(1)
    del req.inputs[0].shape[:]
    req.inputs[0].shape.extend([2**62, 4])
    return req


def _overflowing_shape() -> pb.ModelInferRequest:
    req = _valid(1)
    del req.inputs[0].shape[:]
    req.inputs[0].shape.extend([2**40, 2**40, 4])
    return req


@given(request=mutated())
@example(request=_nan_typed())
@example(request=_huge_shape())
@example(request=_overflowing_shape())
def test_mutated_valid_requests_get_documented_statuses(gw, caplog, request):
    stub = gw.stub()
    with caplog.at_level(logging.WARNING):
        _send(stub, request)
        _check_good(stub)
    assert_no_tracebacks(caplog)


@given(request=infer_requests())
@example(request=pb.ModelInferRequest())
@example(request=pb.ModelInferRequest(model_name="lin", raw_input_contents=[b""]))
def test_any_request_gets_a_documented_status(gw, caplog, request):
    stub = gw.stub()
    with caplog.at_level(logging.WARNING):
        _send(stub, request)
        _check_good(stub)
    assert_no_tracebacks(caplog)
