"""System shared memory over HTTP, as tritonclient.http and its shm utilities use it.

One registry of regions for both faces: a region registered over gRPC is used over HTTP.
Inputs are read from regions and outputs written into them; answers are compared with
onnxruntime run directly.
"""

from __future__ import annotations

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import (
    InferenceServerException,
    serialize_byte_tensor,
    serialized_byte_size,
)

from gateway.tools import modelzoo

SIZES = (8, 16, 3)
X = np.random.default_rng(7).standard_normal((3, 8)).astype(np.float32)


@pytest.fixture
def gw(registry, make_gateway):
    registry.register_version("mlp", modelzoo.mlp(SIZES, seed=1), actor="test")
    registry.register_version("text", modelzoo.identity("BYTES"), actor="test")
    return make_gateway(metrics_port=-1)


@pytest.fixture
def client(gw):
    c = thttp.InferenceServerClient(gw.http_url.removeprefix("http://"))
    yield c
    c.close()


@pytest.fixture
def regions():
    made: list[shm.SharedMemoryRegion] = []

    def make(name: str, size: int) -> shm.SharedMemoryRegion:
        made.append(shm.create_shared_memory_region(name, f"/onnxgate-test-{name}", size))
        return made[-1]

    yield make
    for handle in made:
        shm.destroy_shared_memory_region(handle)


def _want(x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(modelzoo.mlp(SIZES, seed=1), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"x": x})[0]


def test_simple_http_shm_client_unmodified(gw, client, regions) -> None:
    """Triton's simple_http_shm_client.py, against the MLP: register, infer, status,
    unregister; the output is read from the region."""
    inputs, outputs = regions("in", X.nbytes), regions("out", 3 * 3 * 4 + 16)
    shm.set_shared_memory_region(inputs, [X])
    client.register_system_shared_memory("in", "/onnxgate-test-in", X.nbytes)
    client.register_system_shared_memory("out", "/onnxgate-test-out", 3 * 3 * 4 + 16)
    status = client.get_system_shared_memory_status()
    assert {r["name"]: (r["key"], int(r["byte_size"])) for r in status} == {
        "in": ("/onnxgate-test-in", X.nbytes),
        "out": ("/onnxgate-test-out", 52),
    }
    inp = thttp.InferInput("x", list(X.shape), "FP32")
    inp.set_shared_memory("in", X.nbytes)
    out = thttp.InferRequestedOutput("probabilities", binary_data=True)
    out.set_shared_memory("out", 36, offset=16)
    result = client.infer("mlp", [inp], outputs=[out])
    answer = result.get_output("probabilities")
    assert answer["parameters"] == {"shared_memory_region": "out", "shared_memory_byte_size": 36}
    assert "data" not in answer
    got = shm.get_contents_as_numpy(outputs, np.float32, [3, 3], offset=16)
    np.testing.assert_allclose(got, _want(X), rtol=1e-6)

    client.unregister_system_shared_memory("in")
    assert [r["name"] for r in client.get_system_shared_memory_status()] == ["out"]
    assert client.get_system_shared_memory_status("out")[0]["name"] == "out"
    client.unregister_system_shared_memory()
    assert client.get_system_shared_memory_status() == []


def test_one_registry_for_both_faces_and_bytes_tensors(gw, client, regions) -> None:
    """Registered over gRPC, used over HTTP; BYTES in and out of regions (Triton's
    simple_http_shm_string_client); released when the gateway stops."""
    words = np.array([b"alpha", b"", "b\u00e9ta".encode()], dtype=np.object_).reshape(1, 3)
    packed = serialize_byte_tensor(words)
    size = serialized_byte_size(packed)
    inputs, outputs = regions("words", size), regions("echo", 64)
    shm.set_shared_memory_region(inputs, [packed])
    grpc_client = tgrpc.InferenceServerClient(gw.target)
    try:
        grpc_client.register_system_shared_memory("words", "/onnxgate-test-words", size)
        grpc_client.register_system_shared_memory("echo", "/onnxgate-test-echo", 64)
    finally:
        grpc_client.close()
    inp = thttp.InferInput("x", [1, 3], "BYTES")
    inp.set_shared_memory("words", size)
    out = thttp.InferRequestedOutput("y")
    out.set_shared_memory("echo", 64)
    result = client.infer("text", [inp], outputs=[out])
    written = result.get_output("y")["parameters"]["shared_memory_byte_size"]
    assert written == size
    echoed = shm.get_contents_as_numpy(outputs, np.object_, [1, 3])
    assert echoed.tolist() == words.tolist()
    held = gw.gateway.regions.status(owner="anonymous")
    gw.stop()
    assert gw.gateway.regions.status(owner="anonymous") == [] and all(r.map.closed for r in held)


def test_refusals_name_the_field(gw, client, regions) -> None:
    regions("small", 16)
    base = gw.http_url + "/v2/systemsharedmemory"
    register = httpx.post(
        f"{base}/region/a/register", json={"key": "/../etc/passwd", "byte_size": 8}
    )
    assert register.status_code == 400 and "/dev/shm" in register.json()["error"]
    missing = httpx.post(f"{base}/region/a/register", json={"key": "/x"})
    assert missing.status_code == 400
    assert missing.json()["error"] == "byte_size must be a byte count"
    client.register_system_shared_memory("small", "/onnxgate-test-small", 16)
    with pytest.raises(InferenceServerException) as twice:
        client.register_system_shared_memory("small", "/onnxgate-test-small", 16)
    assert "already registered" in twice.value.message()
    assert httpx.get(f"{base}/region/nope/status").status_code == 404

    inp = thttp.InferInput("x", list(X.shape), "FP32")
    inp.set_shared_memory("small", X.nbytes)  # 96 bytes from a 16-byte region
    with pytest.raises(InferenceServerException) as past_end:
        client.infer("mlp", [inp])
    assert past_end.value.status() == "400"
    assert "do not fit its 16 bytes" in past_end.value.message()
    inp.set_data_from_numpy(X)
    out = thttp.InferRequestedOutput("probabilities")
    out.set_shared_memory("nope", 36)
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("mlp", [inp], outputs=[out])
    assert unknown.value.status() == "404" and "'nope'" in unknown.value.message()
    out.set_shared_memory("small", 16)  # 36 bytes of output for a 16-byte window
    with pytest.raises(InferenceServerException) as small:
        client.infer("mlp", [inp], outputs=[out])
    assert "its shared memory window holds 16" in small.value.message()
    body = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": [1, 8],
                "data": [0.0] * 8,
                "parameters": {"shared_memory_region": "small", "shared_memory_byte_size": 8},
            }
        ]
    }
    both = httpx.post(gw.http_url + "/v2/models/mlp/infer", json=body)
    assert both.status_code == 400
    assert both.json()["error"] == "input 'x': data sent with a shared memory region"


def test_shared_memory_routes_need_the_predict_token(registry, make_gateway) -> None:
    registry.register_version("mlp", modelzoo.mlp(SIZES, seed=1), actor="test")
    gw = make_gateway(metrics_port=-1, predict_tokens={"app-token": "billing-app"})
    url = gw.http_url + "/v2/systemsharedmemory/status"
    assert httpx.get(url).status_code == 401
    ok = httpx.get(url, headers={"authorization": "Bearer app-token"})
    assert ok.status_code == 200 and ok.json() == []


def test_each_principal_sees_and_uses_only_its_own_regions(registry, make_gateway, regions):
    """Regions live in the registering principal's namespace: another predict token can
    neither list, read from, write to nor unregister them, and may register the same name
    for a region of its own (two copies of Triton's example would otherwise collide)."""
    registry.register_version("mlp", modelzoo.mlp(SIZES, seed=1), actor="test")
    tokens = {"alice-token": "alice", "bob-token": "bob"}
    gw = make_gateway(metrics_port=-1, predict_tokens=tokens)
    host = gw.http_url.removeprefix("http://")
    alice = {"authorization": "Bearer alice-token"}
    bob = {"authorization": "Bearer bob-token"}
    mine, theirs = regions("alice-in", X.nbytes), regions("bob-in", X.nbytes)
    shm.set_shared_memory_region(mine, [X])
    shm.set_shared_memory_region(theirs, [2 * X])
    http = thttp.InferenceServerClient(host)
    grpc_client = tgrpc.InferenceServerClient(gw.target)
    try:
        http.register_system_shared_memory("in", "/onnxgate-test-alice-in", X.nbytes, headers=alice)
        assert http.get_system_shared_memory_status(headers=bob) == []
        assert [r["name"] for r in http.get_system_shared_memory_status(headers=alice)] == ["in"]
        status = grpc_client.get_system_shared_memory_status(headers=bob, as_json=True)
        assert status.get("regions", {}) == {}

        def infer_http(headers: dict[str, str]) -> np.ndarray:
            inp = thttp.InferInput("x", list(X.shape), "FP32")
            inp.set_shared_memory("in", X.nbytes)
            return http.infer("mlp", [inp], headers=headers).as_numpy("probabilities")

        def infer_grpc(headers: dict[str, str]) -> np.ndarray:
            inp = tgrpc.InferInput("x", list(X.shape), "FP32")
            inp.set_shared_memory("in", X.nbytes)
            return grpc_client.infer("mlp", [inp], headers=headers).as_numpy("probabilities")

        for infer in (infer_http, infer_grpc):
            with pytest.raises(InferenceServerException, match="'in' is not registered"):
                infer(bob)
        # Bob's "unregister every region" leaves Alice's; Bob's own "in" is another region.
        http.unregister_system_shared_memory(headers=bob)
        grpc_client.register_system_shared_memory(
            "in", "/onnxgate-test-bob-in", X.nbytes, headers=bob
        )
        for infer in (infer_http, infer_grpc):
            np.testing.assert_allclose(infer(alice), _want(X), rtol=1e-6)
            np.testing.assert_allclose(infer(bob), _want(2 * X), rtol=1e-6)
        grpc_client.unregister_system_shared_memory("in", headers=bob)
        assert [r["name"] for r in http.get_system_shared_memory_status(headers=alice)] == ["in"]
    finally:
        http.close()
        grpc_client.close()
