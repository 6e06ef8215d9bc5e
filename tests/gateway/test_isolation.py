"""No request can hurt another: hostile requests interleaved with valid ones under batching.

A real gateway with batching on (a 2 ms window, so requests share runs), valid clients on
gRPC and HTTP, and hostile clients sending, on both faces, values the model cannot run
(``lookup`` fails its whole run on an out-of-range index) and text no encoder accepts
(a lone UTF-16 surrogate in a BYTES element). What must hold whatever the interleaving:
every valid request gets exactly the answer it gets alone; every hostile one gets
INVALID_ARGUMENT / HTTP 400 with a JSON body; the version's INTERNAL count stays 0 (the
governor's error-rate gate reads it); nothing is logged with a traceback.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import numpy as np
import pytest
from shared import assert_no_tracebacks

from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from gateway.tools import modelzoo
from registry.deployment import Role

VALID_CLIENTS = 8  # half gRPC, half HTTP
HOSTILE_CLIENTS = 4
PER_CLIENT = 30


def _expected(index: int) -> np.ndarray:
    return np.array([[index * 10, index * 10 + 1]], dtype=np.float32)


def _grpc_request(index: float) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="lookup")
    req.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    req.raw_input_contents.append(np.array([[index, 0]], np.float32).tobytes())
    return req


def _http_body(index: float) -> dict[str, object]:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [index, 0]}]}


@pytest.fixture
def gw(registry, make_gateway):
    registry.register_version("lookup", modelzoo.lookup(), actor="test")
    # A canary with a larger table: the same answers for indices 0..9, and out-of-range
    # indices fail on both versions (the caller's values, whichever version they reach).
    registry.register_version("lookup", modelzoo.lookup(rows=12), actor="test")
    registry.set_weights("lookup", {"1": 50, "2": 50}, {"2": Role.CANARY}, actor="test")
    registry.register_version("text", modelzoo.identity("BYTES"), actor="test")
    return make_gateway(max_delay_us=2000, metrics_port=-1)


def _valid_grpc(target: str, client: int) -> list[str]:
    problems = []
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for i in range(PER_CLIENT):
            index = (client + i) % 10
            response = stub.ModelInfer(_grpc_request(index), timeout=30)
            y = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(1, 2)
            if not np.array_equal(y, _expected(index)):
                problems.append(f"grpc {client}/{i}: {y} != {_expected(index)}")
    return problems


def _valid_http(url: str, client: int) -> list[str]:
    problems = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for i in range(PER_CLIENT):
            index = (client + i) % 10
            response = http.post("/v2/models/lookup/infer", json=_http_body(index))
            if response.status_code != 200:
                problems.append(f"http {client}/{i}: {response.status_code} {response.text}")
                continue
            y = np.array(response.json()["outputs"][0]["data"], np.float32).reshape(1, 2)
            if not np.array_equal(y, _expected(index)):
                problems.append(f"http {client}/{i}: {y} != {_expected(index)}")
    return problems


def _hostile(target: str, url: str, client: int) -> list[str]:
    """Every hostile request must be refused as the caller's error; returns what was not."""
    problems = []
    surrogate = json.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "BYTES", "shape": [1, 3], "data": ["a", "\ud800", "c"]}
            ]
        }
    )
    with grpc.insecure_channel(target) as channel, httpx.Client(base_url=url, timeout=30) as http:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for i in range(PER_CLIENT):
            kind = (client + i) % 3
            if kind == 0:
                try:
                    stub.ModelInfer(_grpc_request(1e6 + i), timeout=30)
                    problems.append("grpc out-of-range index was answered")
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                        problems.append(f"grpc: {exc.code()} {exc.details()}")
                continue
            if kind == 1:
                response = http.post("/v2/models/lookup/infer", json=_http_body(-1e6 - i))
            else:
                response = http.post(
                    "/v2/models/text/infer",
                    content=surrogate.encode(),
                    headers={"content-type": "application/json"},
                )
            if response.status_code != 400 or "error" not in response.json():
                problems.append(f"http: {response.status_code} {response.text}")
    return problems


def test_hostile_requests_fail_only_themselves(gw, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING),
        ThreadPoolExecutor(VALID_CLIENTS + HOSTILE_CLIENTS) as pool,
    ):
        futures = [
            pool.submit(
                _valid_grpc if c % 2 else _valid_http, gw.target if c % 2 else gw.http_url, c
            )
            for c in range(VALID_CLIENTS)
        ]
        futures += [
            pool.submit(_hostile, gw.target, gw.http_url, c) for c in range(HOSTILE_CLIENTS)
        ]
        problems = [p for f in futures for p in f.result()]
    assert problems == []
    metrics = gw.gateway.metrics.registry

    def count(version: str, role: str, code: str) -> float:
        labels = {"model": "lookup", "version": version, "role": role, "code": code}
        return metrics.get_sample_value("onnxgate_requests_total", labels) or 0.0

    # The governor's error-rate gate reads exactly these.
    assert count("1", "champion", "INTERNAL") == count("2", "canary", "INTERNAL") == 0
    assert count("1", "champion", "OK") + count("2", "canary", "OK") == VALID_CLIENTS * PER_CLIENT
    assert_no_tracebacks(caplog)
    # The refusals were seen to share batches with valid requests at least once (else this
    # test would not test isolation): the batch-size histogram saw runs of several rows.
    rows = sum(
        metrics.get_sample_value("onnxgate_batch_size_rows_sum", {"model": "lookup", "version": v})
        or 0
        for v in "12"
    )
    runs = sum(
        metrics.get_sample_value(
            "onnxgate_batch_size_rows_count", {"model": "lookup", "version": v}
        )
        or 0
        for v in "12"
    )
    assert rows > runs
