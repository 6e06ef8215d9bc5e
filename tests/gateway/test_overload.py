"""Overload and slow models, on a real server with a real slow model.

* admission: per model (``max_inflight_per_model``) and per process (``max_inflight``),
  refused with ``RESOURCE_EXHAUSTED`` and a ``grpc-retry-pushback-ms`` hint, nothing
  queued; the gateway serves again as soon as the calls in flight end;
* a version whose runs take seconds (``modelzoo.slow``: an ONNX Loop of matrix products)
  stalls neither another model, even one whose runs use the executor, nor the admin API.

The slow runs only have to outlast a few millisecond calls; nothing waits on a duration.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import grpc
import numpy as np
import pytest
from shared import admin_metadata, wait_for

from gateway._proto import admin_pb2 as apb
from gateway._proto import grpc_service_pb2 as pb
from gateway.errors import ResourceExhausted, Unavailable
from gateway.tools import modelzoo
from gateway.transport.status import PUSHBACK_KEY, pushback


def _request(model: str, shape: tuple[int, int]) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name="x", datatype="FP32", shape=list(shape))
    req.raw_input_contents.append(np.ones(shape, np.float32).tobytes())
    return req


def _lin() -> pb.ModelInferRequest:
    return _request("lin", (1, 4))


def _slow(model: str = "slow") -> pb.ModelInferRequest:
    return _request(model, (1, 4))


def _refused(gw: Any) -> float:
    value = gw.gateway.metrics.registry.get_sample_value(
        "onnxgate_rejected_requests_total", {"code": "RESOURCE_EXHAUSTED"}
    )
    return 0.0 if value is None else value


@pytest.fixture
def slow_bytes() -> bytes:
    return modelzoo.slow(iterations=600)


def test_retry_hint_lives_on_the_error_and_becomes_pushback_metadata() -> None:
    assert ResourceExhausted("full").retry_after_s == ResourceExhausted.default_retry_after_s
    assert ResourceExhausted("full", retry_after_s=0.25).retry_after_s == 0.25
    assert Unavailable("draining").retry_after_s is None
    assert pushback(ResourceExhausted("full", retry_after_s=0.25)) == ((PUSHBACK_KEY, "250"),)
    assert pushback(Unavailable("draining")) == ()


def test_admission_per_model_and_per_process_refuses_with_pushback_and_recovers(
    registry, make_gateway, slow_bytes
):
    registry.register_version("slow", slow_bytes, actor="test")
    registry.register_version("slow2", slow_bytes, actor="test")
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    gw = make_gateway(max_inflight=2, max_inflight_per_model=1, retry_after_ms=250)
    stub = gw.stub()
    plane = gw.gateway.plane

    held: list[Future[Any]] = [stub.ModelInfer.future(_slow(), timeout=120)]
    wait_for(lambda: plane.inflight == 1)
    # The model is full: refused at once, with the hint; another model is not affected.
    with pytest.raises(grpc.RpcError) as refused:
        stub.ModelInfer(_slow(), timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "model slow has 1 requests in flight" in refused.value.details()
    assert (PUSHBACK_KEY, "250") in tuple(refused.value.trailing_metadata())
    assert stub.ModelInfer(_lin(), timeout=30).model_name == "lin"

    # The process is full: ten times its bound of callers, every one refused, none queued.
    held.append(stub.ModelInfer.future(_slow("slow2"), timeout=120))
    wait_for(lambda: plane.inflight == 2)
    before = _refused(gw)
    calls = [stub.ModelInfer.future(_lin(), timeout=30) for _ in range(20)]
    codes = []
    for call in calls:
        with pytest.raises(grpc.RpcError) as over:
            call.result()
        codes.append(over.value.code())
        assert (PUSHBACK_KEY, "250") in tuple(over.value.trailing_metadata())
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 20
    assert _refused(gw) - before == 20
    assert not any(h.done() for h in held), "the slow runs ended before the checks"

    # Recovers at once: the held calls finish normally, and the next ones are served.
    for h in held:
        assert h.result().outputs[0].name == "y"
    assert plane.inflight == 0
    assert stub.ModelInfer(_lin(), timeout=30).model_name == "lin"
    assert stub.ModelInfer(_slow(), timeout=120).model_name == "slow"


def test_a_slow_model_stalls_neither_other_models_nor_the_admin_api(
    registry, make_gateway, slow_bytes
):
    registry.register_version("slow", slow_bytes, actor="test")
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    # inline_below_us=0: every run of the fast model needs an executor thread too, the
    # case where a slow model holding every thread of the shared pool stalled it (with
    # inference_threads=2, the old default, this test fails: the fast calls waited for
    # the first two slow runs).
    gw = make_gateway(inline_below_us=0)
    stub, admin = gw.stub(), gw.admin()
    plane = gw.gateway.plane

    slow_calls = [stub.ModelInfer.future(_slow(), timeout=300) for _ in range(4)]
    wait_for(lambda: plane.inflight == 4)
    expected = np.ones((1, 4), np.float32) @ modelzoo.linear_weights(4, 2, seed=3)
    for _ in range(20):
        response = stub.ModelInfer(_lin(), timeout=30)
        got = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(1, 2)
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    models = admin.ListModels(apb.ListModelsRequest(), metadata=admin_metadata(), timeout=30)
    assert {m.name for m in models.models} >= {"slow", "lin"}
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=30).ready
    stats = stub.ModelStatistics(pb.ModelStatisticsRequest(name="lin"), timeout=30)
    assert stats.model_stats[0].inference_stats.success.count == 20
    assert not any(c.done() for c in slow_calls), "a slow run ended before the checks"

    for call in slow_calls:
        assert call.result().model_name == "slow"


def test_http_face_refuses_over_the_limit_with_429_and_retry_after(
    registry, make_gateway, slow_bytes
):
    import httpx

    registry.register_version("slow", slow_bytes, actor="test")
    gw = make_gateway(max_inflight_per_model=1, retry_after_ms=1500)
    stub, plane = gw.stub(), gw.gateway.plane
    held = stub.ModelInfer.future(_slow(), timeout=120)
    wait_for(lambda: plane.inflight == 1)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1] * 4}]}
    refused = httpx.post(f"{gw.http_url}/v2/models/slow/infer", json=body, timeout=30)
    assert refused.status_code == 429, refused.text
    assert "model slow has 1 requests in flight" in refused.json()["error"]
    assert refused.headers["Retry-After"] == "2"  # the same hint as gRPC's, in whole seconds
    assert not held.done(), "the slow run ended before the check"
    assert held.result().model_name == "slow"
    served = httpx.post(f"{gw.http_url}/v2/models/slow/infer", json=body, timeout=120)
    assert served.status_code == 200, served.text
