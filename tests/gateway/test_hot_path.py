"""Defects the hot path used to hide, each checked on a real server on loopback.

* a client that cancels is counted as CANCELLED, not INTERNAL;
* a failing tap never turns a served response into an error;
* ``onnxgate_inference_rows_total`` counts the rows served;
* a model whose first input is a scalar (rank 0) is served, not an IndexError.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from shared import wait_for

from gateway._proto import grpc_service_pb2 as pb
from gateway.serving.runtime import LoadedVersion
from gateway.tools import modelzoo


def _lin(rows: int = 2) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="lin")
    req.inputs.add(name="x", datatype="FP32", shape=[rows, 4])
    req.raw_input_contents.append(np.ones((rows, 4), np.float32).tobytes())
    return req


def _sample(gw: Any, name: str, **labels: str) -> float:
    value = gw.gateway.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _requests(gw: Any, code: str, model: str = "lin") -> float:
    labels = {"model": model, "version": "1", "role": "champion", "code": code}
    return _sample(gw, "onnxgate_requests_total", **labels)


def test_rows_served_are_counted(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    gw = make_gateway()
    stub = gw.stub()
    stub.ModelInfer(_lin(2), timeout=10)
    stub.ModelInfer(_lin(5), timeout=10)
    assert _sample(gw, "onnxgate_inference_rows_total", model="lin", version="1") == 7
    stats = stub.ModelStatistics(pb.ModelStatisticsRequest(name="lin"), timeout=10)
    assert stats.model_stats[0].inference_count == 7
    assert stats.model_stats[0].inference_stats.success.count == 2


@pytest.mark.parametrize("batching", [True, False])
def test_cancelled_call_is_counted_as_cancelled(registry, make_gateway, monkeypatch, batching):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    armed, entered, release = threading.Event(), threading.Event(), threading.Event()
    real_run = LoadedVersion.run

    def slow_run(self: LoadedVersion, inputs: Any) -> Any:
        if armed.is_set():
            entered.set()
            release.wait(10)
        return real_run(self, inputs)

    monkeypatch.setattr(LoadedVersion, "run", slow_run)
    # inline_below_us=0: runs go to the executor, so a slow run never blocks the loop.
    gw = make_gateway(batching=batching, inline_below_us=0)
    stub = gw.stub()
    armed.set()
    try:
        call = stub.ModelInfer.future(_lin(), timeout=30)
        assert entered.wait(10), "the request never reached the model"
        call.cancel()
        wait_for(lambda: _requests(gw, "CANCELLED") == 1, timeout=10)
    finally:
        armed.clear()
        release.set()
    assert _requests(gw, "INTERNAL") == 0
    stub.ModelInfer(_lin(), timeout=10)  # and the next call is served
    assert _requests(gw, "OK") == 1


def test_failing_tap_never_changes_the_callers_status(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    calls: list[object] = []

    def boom(*args: object) -> None:
        calls.append(args)
        raise RuntimeError("tap bug")

    gw = make_gateway({"taps": {"boom": boom}})
    stub = gw.stub()
    for _ in range(3):
        response = stub.ModelInfer(_lin(), timeout=10)
        assert response.model_version == "1"
    # The tap is counted after it raised: wait on the counter itself.
    wait_for(lambda: _sample(gw, "onnxgate_tap_errors_total", tap="boom") == 3, timeout=10)
    assert len(calls) == 3
    assert _requests(gw, "OK") == 3
    assert _requests(gw, "INTERNAL") == 0


def _scalar_model() -> bytes:
    """``y = 2 * x`` over a rank-0 (scalar) FP32 input: nothing to batch on."""
    from onnx import TensorProto, checker, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "scalar",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        initializer=[numpy_helper.from_array(np.array(2.0, np.float32), "two")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    checker.check_model(model)
    return model.SerializeToString()


@pytest.mark.parametrize("inline_below_us", [0, 1_000_000])
def test_rank0_input_is_served_as_is(registry, make_gateway, inline_below_us):
    registry.register_version("scalar", _scalar_model(), actor="test")
    gw = make_gateway(inline_below_us=inline_below_us)
    req = pb.ModelInferRequest(model_name="scalar")
    req.inputs.add(name="x", datatype="FP32", shape=[])
    req.raw_input_contents.append(np.array(1.5, np.float32).tobytes())
    response = gw.stub().ModelInfer(req, timeout=10)
    assert list(response.outputs[0].shape) == []
    assert np.frombuffer(response.raw_output_contents[0], np.float32)[0] == 3.0
    assert _requests(gw, "OK", model="scalar") == 1
    assert _sample(gw, "onnxgate_inference_rows_total", model="scalar", version="1") == 1
