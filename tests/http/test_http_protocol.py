"""The Open Inference Protocol v2 over HTTP as clients see it: httpx, curl, tritonclient.http.

A real gateway on loopback (gRPC and HTTP on free ports, one event loop) over a real SQLite
registry; predictions are compared with onnxruntime run directly, or with the exact values
that went in.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import threading

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
from http_support import binary_body
from shared import wait_for
from wire_values import DATATYPES, NUMPY, edge_values

from gateway.tools import modelzoo

MLP_SIZES = (8, 16, 3)


def _assert_exact(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    if want.dtype == np.object_:
        as_bytes = [v.encode() if isinstance(v, str) else v for v in got.reshape(-1).tolist()]
        assert as_bytes == want.reshape(-1).tolist()
    else:
        assert got.dtype == want.dtype
        assert got.tobytes() == want.tobytes()


def _x(rows: int = 5, features: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, features)).astype(np.float32)


def _ort(model: bytes, x: np.ndarray, output: str = "probabilities") -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run([output], {"x": x})[0]


def _json_infer(x: np.ndarray, **extra: object) -> dict[str, object]:
    tensor = {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.tolist()}
    return {"inputs": [tensor], **extra}


MLP = modelzoo.mlp(MLP_SIZES, seed=1)


@pytest.fixture
def served(registry, make_gateway):
    """mlp (one version); lin v1 champion at 0.5 and v2 challenger at 0.5."""
    registry.register_version("mlp", MLP, actor="test")
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    registry.register_version("lin", modelzoo.linear(4, 2, seed=4), actor="test")
    registry.set_weights("lin", {"1": 0.5, "2": 0.5}, actor="test")
    gw = make_gateway()
    with httpx.Client(base_url=gw.http_url, timeout=30) as client:
        yield gw, client


# -- health and metadata ------------------------------------------------------------------


def test_health_server_and_model_metadata(served):
    gw, client = served
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2").json()
    assert meta["name"] == "onnxgate"
    assert "binary_tensor_data" in meta["extensions"]
    model = client.get("/v2/models/mlp").json()
    assert model["versions"] == ["1"]
    assert model["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 8]}]
    assert client.get("/v2/models/lin/versions/2").json()["versions"] == ["1", "2"]
    assert client.get("/v2/models/lin/ready").json() == {"name": "lin", "ready": True}
    assert client.get("/v2/models/lin/versions/9/ready").status_code == 503
    assert client.get("/v2/models/nope/ready").status_code == 503


def test_tritonclient_http_sees_a_live_server_and_ready_models(served):
    gw, _ = served
    client = triton.InferenceServerClient(gw.http_url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("mlp") and not client.is_model_ready("nope")
        assert client.get_model_metadata("mlp")["platform"] == "onnxruntime_onnx"
    finally:
        client.close()


# -- predictions ---------------------------------------------------------------------------


def test_json_predictions_equal_onnxruntime(served):
    _, client = served
    x = _x()
    response = client.post("/v2/models/mlp/infer", json=_json_infer(x, id="req-7"))
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["model_name"] == "mlp" and doc["model_version"] == "1" and doc["id"] == "req-7"
    assert doc["parameters"] == {"role": "champion"}
    outputs = {o["name"]: o for o in doc["outputs"]}
    probabilities, label = outputs["probabilities"], outputs["label"]
    assert probabilities["datatype"] == "FP32" and probabilities["shape"] == [5, 3]
    got = np.asarray(probabilities["data"], dtype=np.float32).reshape(5, 3)
    np.testing.assert_array_equal(got, _ort(MLP, x))
    assert label["datatype"] == "INT64"
    np.testing.assert_array_equal(label["data"], _ort(MLP, x, "label"))


def test_curl_predictions_equal_onnxruntime(served):
    curl = shutil.which("curl")
    if curl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is not installed")
        pytest.skip("curl is not installed")
    gw, _ = served
    x = _x(rows=2)
    out = subprocess.run(
        [curl, "-s", "-X", "POST", f"{gw.http_url}/v2/models/mlp/infer",
         "-H", "Content-Type: application/json", "-d", json.dumps(_json_infer(x))],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    tensor = json.loads(out.stdout)["outputs"][0]
    assert tensor["name"] == "probabilities"
    got = np.asarray(tensor["data"], dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(got, _ort(MLP, x))


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_http_predictions_equal_onnxruntime_and_grpc(served, binary):
    gw, _ = served
    x = _x(rows=4, seed=3)
    client = triton.InferenceServerClient(gw.http_url.removeprefix("http://"))
    grpc_client = triton_grpc.InferenceServerClient(gw.target)
    try:
        inp = triton.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = triton.InferRequestedOutput("probabilities", binary_data=binary)
        result = client.infer("mlp", [inp], outputs=[out], request_id="r1")
        np.testing.assert_array_equal(result.as_numpy("probabilities"), _ort(MLP, x))
        assert result.as_numpy("label") is None  # only the requested output comes back
        assert result.get_response()["id"] == "r1"
        g_inp = triton_grpc.InferInput("x", list(x.shape), "FP32")
        g_inp.set_data_from_numpy(x)
        via_grpc = grpc_client.infer("mlp", [g_inp]).as_numpy("probabilities")
        assert via_grpc.tobytes() == result.as_numpy("probabilities").tobytes()
    finally:
        client.close()
        grpc_client.close()


def test_every_datatype_round_trips_in_json_and_binary(registry, make_gateway):
    for datatype in DATATYPES:
        registry.register_version(f"id-{datatype.lower()}", modelzoo.identity(datatype), actor="t")
    gw = make_gateway()
    client = triton.InferenceServerClient(gw.http_url.removeprefix("http://"))
    try:
        for datatype in DATATYPES:
            x = edge_values(datatype)
            for binary in (True, False):
                if not binary and datatype in ("FP16", "FP32", "FP64"):
                    continue  # NaN and inf have no JSON spelling; checked below with finite ones
                inp = triton.InferInput("x", [2, 3], datatype)
                inp.set_data_from_numpy(x, binary_data=binary)
                out = triton.InferRequestedOutput("y", binary_data=binary)
                result = client.infer(f"id-{datatype.lower()}", [inp], outputs=[out])
                _assert_exact(result.as_numpy("y"), x)
        for datatype in ("FP16", "FP32", "FP64"):
            x = np.array([[0.0, -0.0, 1.5], [65504.0, -2.0, 1e-3]], dtype=NUMPY[datatype])
            inp = triton.InferInput("x", [2, 3], datatype)
            inp.set_data_from_numpy(x, binary_data=False)
            out = triton.InferRequestedOutput("y", binary_data=False)
            result = client.infer(f"id-{datatype.lower()}", [inp], outputs=[out])
            _assert_exact(result.as_numpy("y"), x)
    finally:
        client.close()


def test_hand_built_binary_body_and_binary_output_parameter(served):
    gw, client = served
    x = _x(rows=3)
    blob = x.tobytes()
    content, headers = binary_body("x", "FP32", [3, 8], blob, binary_data_output=True)
    response = client.post("/v2/models/mlp/infer", content=content, headers=headers)
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    doc = json.loads(response.content[:length])
    probabilities, label = doc["outputs"]
    assert (probabilities["name"], label["name"]) == ("probabilities", "label")
    size = probabilities["parameters"]["binary_data_size"]
    blobs = response.content[length:]
    got = np.frombuffer(blobs[:size], np.float32).reshape(3, 3)
    np.testing.assert_array_equal(got, _ort(MLP, x))
    labels = np.frombuffer(blobs[size:], np.int64)
    assert len(blobs) == size + label["parameters"]["binary_data_size"]
    np.testing.assert_array_equal(labels, _ort(MLP, x, "label"))


def test_bytes_tensor_sent_as_json_strings(registry, make_gateway):
    registry.register_version("words", modelzoo.identity("BYTES"), actor="t")
    gw = make_gateway()
    body = {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1, 3],
                        "data": ["a", "h\u00e9", ""]}]}  # fmt: skip
    response = httpx.post(f"{gw.http_url}/v2/models/words/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == ["a", "h\u00e9", ""]
    raw = b"".join(struct.pack("<I", len(w)) + w for w in (b"z", b"", "\u00e9".encode()))
    content, headers = binary_body("x", "BYTES", [1, 3], raw)
    response = httpx.post(
        f"{gw.http_url}/v2/models/words/infer", content=content, headers=headers, timeout=30
    )
    assert response.json()["outputs"][0]["data"] == ["z", "", "\u00e9"]


# -- routing ------------------------------------------------------------------------------


def test_routing_key_parameter_and_header_stick_and_agree(served):
    _, client = served
    x = _x(rows=1, features=4)
    seen: dict[str, set[str]] = {}
    for i in range(24):
        key = f"user-{i}"
        by_param = client.post(
            "/v2/models/lin/infer", json=_json_infer(x, parameters={"routing_key": key})
        ).json()["model_version"]
        by_header = client.post(
            "/v2/models/lin/infer", json=_json_infer(x), headers={"x-routing-key": key}
        ).json()["model_version"]
        again = client.post(
            "/v2/models/lin/infer", json=_json_infer(x), headers={"x-routing-key": key}
        ).json()["model_version"]
        assert by_param == by_header == again
        seen.setdefault(by_param, set()).add(key)
    assert set(seen) == {"1", "2"}  # 24 keys over a 50/50 split reach both versions


def test_versioned_path_pins_the_version_and_reports_its_role(served):
    _, client = served
    x = _x(rows=1, features=4)
    for version, role in (("1", "champion"), ("2", "challenger")):
        for _ in range(5):
            doc = client.post(
                f"/v2/models/lin/versions/{version}/infer",
                json=_json_infer(x),
                headers={"x-routing-key": "sticky"},
            ).json()
            assert doc["model_version"] == version
            assert doc["parameters"]["role"] == role


# -- metrics ------------------------------------------------------------------------------


def test_http_requests_are_counted_like_grpc_ones(served):
    gw, client = served
    registry = gw.gateway.metrics.registry

    def ok() -> float:
        labels = {"model": "mlp", "version": "1", "role": "champion", "code": "OK"}
        return registry.get_sample_value("onnxgate_requests_total", labels) or 0.0

    def rejected() -> float:
        labels = {"code": "INVALID_ARGUMENT"}
        return registry.get_sample_value("onnxgate_rejected_requests_total", labels) or 0.0

    before_ok, before_bad = ok(), rejected()
    for _ in range(3):
        assert client.post("/v2/models/mlp/infer", json=_json_infer(_x())).status_code == 200
    assert client.post("/v2/models/mlp/infer", content=b"{nope").status_code == 400
    assert ok() == before_ok + 3
    assert rejected() == before_bad + 1


# -- overload -----------------------------------------------------------------------------


def test_overload_is_429_with_retry_after(registry, make_gateway):
    registry.register_version("mlp", MLP, actor="test")
    # At most one request in flight, no batching, every run on the one inference thread.
    gw = make_gateway(max_inflight=1, batching=False, inline_below_us=0, inference_threads=1)
    # NOTE: a job holding the gateway's only inference thread keeps the first request in
    # flight (its run waits behind it) until the second has been refused.
    release = threading.Event()
    blocker = gw.gateway._inference_pool.submit(release.wait, 60)
    first: list[httpx.Response] = []
    url = f"{gw.http_url}/v2/models/mlp/infer"
    thread = threading.Thread(
        target=lambda: first.append(httpx.post(url, json=_json_infer(_x()), timeout=60))
    )
    thread.start()
    try:
        depth = {"model": "mlp", "version": "1"}
        registry_ = gw.gateway.metrics.registry
        wait_for(lambda: registry_.get_sample_value("onnxgate_queue_depth", depth) == 1)
        refused = httpx.post(url, json=_json_infer(_x()), timeout=30)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert "in flight" in refused.json()["error"]
    finally:
        release.set()
        thread.join(60)
        blocker.result(10)
    assert first[0].status_code == 200
