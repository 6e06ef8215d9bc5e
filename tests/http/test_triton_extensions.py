"""Triton's extensions as tritonclient uses them, on both faces: statistics, configuration,
repository index and load/unload, compression, and CUDA shared memory refused.

A real gateway on loopback over a real SQLite registry; answers are compared with
onnxruntime run directly and with the registry's audit log.
"""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
import zlib
from email.message import Message

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from shared import ADMIN_TOKEN
from tritonclient.utils import InferenceServerException

from gateway.tools import modelzoo
from gateway.transport.http.compression import MIN_COMPRESS_BYTES

SIZES = (8, 16, 3)
AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def gw(registry, make_gateway):
    registry.register_version("mlp", modelzoo.mlp(SIZES, seed=1), actor="test")
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    return make_gateway(metrics_port=-1)


@pytest.fixture
def http(gw):
    client = thttp.InferenceServerClient(gw.http_url.removeprefix("http://"))
    yield client
    client.close()


def _x(rows: int = 3) -> np.ndarray:
    return np.random.default_rng(rows).standard_normal((rows, 8)).astype(np.float32)


def _want(x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(modelzoo.mlp(SIZES, seed=1), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"x": x})[0]


def _http_infer(client: thttp.InferenceServerClient, x: np.ndarray, **kw) -> np.ndarray:
    inp = thttp.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=False)
    return client.infer("mlp", [inp], **kw).as_numpy("probabilities")


def test_http_statistics_and_config_match_grpc(gw, http):
    x = _x()
    np.testing.assert_allclose(_http_infer(http, x), _want(x), rtol=1e-6)
    grpc_client = tgrpc.InferenceServerClient(gw.target)
    try:
        over_grpc = grpc_client.get_inference_statistics("mlp", as_json=True)
        config_grpc = grpc_client.get_model_config("mlp", as_json=True)["config"]
    finally:
        grpc_client.close()
    stats = http.get_inference_statistics("mlp")
    (one,) = stats["model_stats"]
    assert one["name"] == "mlp" and one["version"] == "1"
    assert one["inference_count"] == 3 and one["inference_stats"]["success"]["count"] == 1
    assert int(over_grpc["model_stats"][0]["inference_count"]) == 3
    assert {m["name"] for m in http.get_inference_statistics()["model_stats"]} == {"mlp", "lin"}
    assert http.get_inference_statistics("mlp", "1")["model_stats"][0]["version"] == "1"
    config = http.get_model_config("mlp")
    assert config["name"] == "mlp" and config["platform"] == "onnxruntime_onnx"
    assert config["input"][0] == {"name": "x", "data_type": "TYPE_FP32", "dims": [8]}
    assert config["input"][0]["dims"] == [int(d) for d in config_grpc["input"][0]["dims"]]
    with pytest.raises(InferenceServerException) as caught:
        http.get_model_config("nope")
    assert "nope" in str(caught.value)


def test_http_repository_index_lists_versions(http):
    index = {m["name"]: m for m in http.get_model_repository_index()}
    assert index["mlp"] == {"name": "mlp", "version": "1", "state": "READY", "reason": ""}
    assert set(index) == {"mlp", "lin"}


def test_unload_and_load_on_both_faces_are_authenticated_and_audited(gw, http, registry):
    with pytest.raises(InferenceServerException) as caught:
        http.unload_model("mlp")
    assert "401" in str(caught.value.status()) or "token" in str(caught.value).lower()
    http.unload_model("mlp", headers=AUTH)
    assert http.is_model_ready("mlp") is False
    assert http.is_model_ready("lin") is True
    http.load_model("mlp", headers=AUTH)
    assert http.is_model_ready("mlp") is True
    x = _x(2)
    np.testing.assert_allclose(_http_infer(http, x), _want(x), rtol=1e-6)

    client = tgrpc.InferenceServerClient(gw.target)
    try:
        with pytest.raises(InferenceServerException) as refused:
            client.unload_model("lin")
        assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
        client.unload_model("lin", headers=AUTH)
        assert client.is_model_ready("lin") is False
        client.load_model("lin", headers=AUTH)
        assert client.is_model_ready("lin") is True
        with pytest.raises(InferenceServerException) as unknown:
            client.load_model("no-such-model", headers=AUTH)
        assert unknown.value.status() == "StatusCode.NOT_FOUND"
    finally:
        client.close()
    actions = [(e.action, e.subject, e.actor) for e in registry.audit_events()]
    assert ("deployment.unload", "mlp", "test-operator") in actions
    assert ("deployment.load", "mlp", "test-operator") in actions
    assert ("deployment.unload", "lin", "test-operator") in actions
    # The registry's deployment is untouched: unload is this gateway's, not the fleet's.
    assert registry.get_deployment("mlp").revision == 1


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_http_request_and_response_compression_with_tritonclient(http, algorithm):
    x = _x(4)
    got = _http_infer(
        http,
        x,
        request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm,
    )
    np.testing.assert_allclose(got, _want(x), rtol=1e-6)


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Message, bytes]:
    # urllib would call the body a form (x-www-form-urlencoded), which /v2 refuses (415).
    headers = {"Content-Type": "application/json", **headers}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_http_compression_on_the_wire(gw):
    x = _x(40)  # an answer over MIN_COMPRESS_BYTES
    doc = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [40, 8], "data": x.ravel().tolist()}]
    }
    body = json.dumps(doc).encode()
    url = f"{gw.http_url}/v2/models/mlp/infer"
    status, headers, content = _post(
        url, gzip.compress(body), {"Content-Encoding": "gzip", "Accept-Encoding": "gzip"}
    )
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    outputs = {o["name"]: o for o in json.loads(gzip.decompress(content))["outputs"]}
    np.testing.assert_allclose(
        np.array(outputs["probabilities"]["data"]).reshape(40, 3), _want(x), rtol=1e-6
    )
    # A small answer goes out as it is, whatever the client accepts.
    row = {**doc["inputs"][0], "shape": [1, 8], "data": doc["inputs"][0]["data"][:8]}
    small = json.dumps({"inputs": [row]}).encode()
    status, headers, content = _post(url, small, {"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and headers.get("Content-Encoding") is None
    assert len(content) < MIN_COMPRESS_BYTES and json.loads(content)["outputs"]
    # Raw deflate (no zlib header) is read too; an unknown encoding is 415.
    raw = zlib.compressobj(wbits=-15)
    status, headers, _ = _post(
        url, raw.compress(body) + raw.flush(), {"Content-Encoding": "deflate"}
    )
    assert status == 200 and headers.get("Content-Encoding") is None
    status, _, content = _post(url, body, {"Content-Encoding": "br"})
    assert status == 415 and "br" in json.loads(content)["error"]
    # A bomb: a small body inflating past the limit is refused, not inflated.
    bomb = gzip.compress(b" " * (80 * 1024 * 1024))
    status, _, content = _post(url, bomb, {"Content-Encoding": "gzip"})
    assert status == 413 and "max_message_bytes" in json.loads(content)["error"]


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_grpc_compression_with_tritonclient(gw, algorithm):
    client = tgrpc.InferenceServerClient(gw.target)
    try:
        x = _x(3)
        inp = tgrpc.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        result = client.infer("mlp", [inp], compression_algorithm=algorithm)
        np.testing.assert_allclose(result.as_numpy("probabilities"), _want(x), rtol=1e-6)
    finally:
        client.close()


def test_cuda_shared_memory_is_refused_in_one_line(gw, http):
    client = tgrpc.InferenceServerClient(gw.target)
    try:
        with pytest.raises(InferenceServerException) as caught:
            client.register_cuda_shared_memory("r", b"aGFuZGxl", 0, 64)
        assert caught.value.status() == str(grpc.StatusCode.UNIMPLEMENTED)
        assert "CUDA shared memory is not supported" in caught.value.message()
    finally:
        client.close()
    with pytest.raises(InferenceServerException) as over_http:
        http.get_cuda_shared_memory_status()
    assert "CUDA shared memory is not supported" in str(over_http.value)


def test_load_with_a_config_override_is_refused_not_ignored(gw, http):
    with pytest.raises(InferenceServerException) as over_http:
        http.load_model("mlp", headers=AUTH, config='{"max_batch_size": 4}')
    assert "registered deployment" in str(over_http.value)
    client = tgrpc.InferenceServerClient(gw.target)
    try:
        with pytest.raises(InferenceServerException) as over_grpc:
            client.load_model("mlp", headers=AUTH, config='{"max_batch_size": 4}')
        assert over_grpc.value.status() == "StatusCode.INVALID_ARGUMENT"
    finally:
        client.close()
    assert http.is_model_ready("mlp")
