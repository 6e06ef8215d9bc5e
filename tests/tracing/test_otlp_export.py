"""Tracing end to end: a real gateway exports OTLP/HTTP spans to a real receiver.

A gRPC call and an HTTP call, each with the client's W3C ``traceparent``, come back as a
server span that is the child of the client's span, with decode / route / queue / batch /
compute / encode under it (compute under batch), a shadow run's span too, all in the
client's trace; the prediction log keeps that trace id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from otlp_receiver import OtlpReceiver
from shared import admin_metadata, wait_for

from gateway._proto import admin_pb2 as apb
from gateway._proto import grpc_service_pb2 as pb
from gateway.tools import modelzoo

GRPC_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
GRPC_PARENT = "00f067aa0ba902b7"
HTTP_TRACE = "0af7651916cd43dd8448eb211c80319c"
HTTP_PARENT = "b7ad6b7169203331"
STEPS = {"decode", "route", "queue", "batch", "compute", "encode"}


@pytest.fixture
def receiver():
    with OtlpReceiver() as r:
        yield r


def _request(request_id: str) -> pb.ModelInferRequest:
    x = np.arange(8, dtype="<f4").reshape(2, 4)
    request = pb.ModelInferRequest(model_name="lin", id=request_id)
    request.inputs.add(name="x", datatype="FP32", shape=[2, 4])
    request.raw_input_contents.append(x.tobytes())
    return request


def _complete(receiver: OtlpReceiver, trace_id: str, names: set[str]) -> list[Any] | None:
    spans = receiver.of_trace(trace_id)
    return spans if {s.name for s in spans} >= names else None


def _check_trace(spans: list[Any], trace_id: str, parent: str, face: str) -> None:
    by_name = {s.name: s for s in spans}
    root = by_name["onnxgate.infer"]
    assert root.parent_span_id.hex() == parent  # the child of the client's span
    assert root.kind == root.SPAN_KIND_SERVER
    attributes = {a.key: a.value for a in root.attributes}
    assert attributes["onnxgate.face"].string_value == face
    assert attributes["onnxgate.model"].string_value == "lin"
    assert attributes["onnxgate.version"].string_value == "1"
    assert attributes["onnxgate.status"].string_value == "OK"
    for name in STEPS - {"compute"} | {"shadow"}:
        assert by_name[name].parent_span_id == root.span_id, name
    assert by_name["compute"].parent_span_id == by_name["batch"].span_id
    batch_id = {a.key: a.value for a in by_name["batch"].attributes}["onnxgate.batch.id"]
    assert batch_id.string_value.startswith("lin:")
    for span in spans:
        assert span.trace_id.hex() == trace_id
        assert root.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano
        if span.name != "shadow":  # the shadow run may end after the answer
            assert span.end_time_unix_nano <= root.end_time_unix_nano, span.name
    order = ["decode", "route", "queue", "batch", "encode"]
    starts = [by_name[name].start_time_unix_nano for name in order]
    assert starts == sorted(starts)


def test_traced_grpc_and_http_calls_reach_the_receiver(
    registry, make_gateway, receiver, tmp_path: Path
) -> None:
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    registry.register_version("lin", modelzoo.linear(4, 2, seed=4), actor="test")
    log_dir = tmp_path / "log"
    gw = make_gateway(otel_endpoint=receiver.url, prediction_log=(f"file:{log_dir}",))
    shadow = apb.AddShadowRequest(model="lin", version="2", fraction=1.0)
    gw.admin().AddShadow(shadow, metadata=admin_metadata(), timeout=30)

    parent = (("traceparent", f"00-{GRPC_TRACE}-{GRPC_PARENT}-01"), ("tracestate", "k=v"))
    gw.stub().ModelInfer(_request("g-1"), metadata=parent, timeout=30)
    body = {"id": "h-1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                     "data": [1, 2, 3, 4]}]}  # fmt: skip
    headers = {"traceparent": f"00-{HTTP_TRACE}-{HTTP_PARENT}-01"}
    response = httpx.post(f"{gw.http_url}/v2/models/lin/infer", json=body, headers=headers)
    assert response.status_code == 200, response.text
    # A call the client did not sample is served, logged with its id, and never exported.
    unsampled = f"00-{'1' * 32}-{'2' * 16}-00"
    gw.stub().ModelInfer(_request("g-2"), metadata=(("traceparent", unsampled),), timeout=30)

    wanted = STEPS | {"onnxgate.infer", "shadow"}
    grpc_spans = wait_for(lambda: _complete(receiver, GRPC_TRACE, wanted), timeout=30)
    http_spans = wait_for(lambda: _complete(receiver, HTTP_TRACE, wanted), timeout=30)
    _check_trace(grpc_spans, GRPC_TRACE, GRPC_PARENT, "grpc")
    _check_trace(http_spans, HTTP_TRACE, HTTP_PARENT, "http")
    root = next(s for s in grpc_spans if s.name == "onnxgate.infer")
    assert root.trace_state == "k=v"
    service = {a.key: a.value.string_value for a in receiver.resources[0].attributes}
    assert service["service.name"] == "onnxgate"

    gw.stop()  # flushes the log; the exporter sends what is left
    assert receiver.of_trace("1" * 32) == []
    rows = pq.read_table(log_dir, partitioning="hive").to_pylist()
    traces = {r["request_id"]: r["trace_id"] for r in rows if r["role"] != "shadow"}
    assert traces == {"g-1": GRPC_TRACE, "h-1": HTTP_TRACE, "g-2": "1" * 32}
    metrics = gw.gateway.metrics.registry
    assert metrics.get_sample_value("onnxgate_trace_spans_total", {"outcome": "failed"}) == 0
    assert metrics.get_sample_value("onnxgate_trace_spans_total", {"outcome": "exported"}) >= 16


def test_with_only_the_log_on_it_keeps_the_callers_trace_id(
    registry, make_gateway, tmp_path: Path
) -> None:
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    log_dir = tmp_path / "log"
    gw = make_gateway(prediction_log=(f"file:{log_dir}",))
    assert gw.gateway.tracing is not None and gw.gateway.tracing.export is None
    stub = gw.stub()
    header = (("traceparent", f"00-{GRPC_TRACE}-{GRPC_PARENT}-01"),)
    stub.ModelInfer(_request("header"), metadata=header, timeout=30)
    stub.ModelInfer(_request("none"), timeout=30)
    by_parameter = _request("parameter")
    by_parameter.parameters["traceparent"].string_param = f"00-{HTTP_TRACE}-{HTTP_PARENT}-01"
    stub.ModelInfer(by_parameter, timeout=30)
    gw.stop()
    rows = pq.read_table(log_dir, partitioning="hive").to_pylist()
    traces = {r["request_id"]: r["trace_id"] for r in rows}
    assert traces == {"header": GRPC_TRACE, "none": None, "parameter": HTTP_TRACE}
