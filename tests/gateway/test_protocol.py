"""The Open Inference Protocol v2 as clients see it: tritonclient and our own stubs.

Every test runs a real gateway on loopback over a real SQLite registry and compares what
comes back with what onnxruntime computes directly, or with the exact bytes that went in.
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException, deserialize_bytes_tensor
from wire_values import DATATYPES, NUMPY, edge_values

import gateway
from gateway._proto import grpc_service_pb2 as pb
from gateway.tools import modelzoo

MLP_SIZES = (8, 16, 3)

TYPED_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _assert_exact(got: np.ndarray, want: np.ndarray) -> None:
    """Same dtype, shape and bit pattern (so -0.0 and NaN count too)."""
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    if want.dtype == np.object_:
        assert got.tolist() == want.tolist()
    else:
        assert got.tobytes() == want.tobytes()


def _raw_bytes(arr: np.ndarray) -> bytes:
    if arr.dtype == np.object_:
        return b"".join(struct.pack("<I", len(b)) + b for b in arr.reshape(-1))
    return np.ascontiguousarray(arr).tobytes()


def _request(model: str, arr: np.ndarray, datatype: str, *, typed: bool = False, **kw):
    req = pb.ModelInferRequest(model_name=model, **kw)
    tensor = req.inputs.add(name="x", datatype=datatype, shape=arr.shape)
    if typed:
        values = arr.reshape(-1).tolist()
        getattr(tensor.contents, TYPED_FIELD[datatype]).extend(values)
    else:
        req.raw_input_contents.append(_raw_bytes(arr))
    return req


def _outputs(response: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    """Decode raw_output_contents independently of the gateway's converters."""
    out = {}
    for spec, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        shape = tuple(spec.shape)
        if spec.datatype == "BYTES":
            out[spec.name] = deserialize_bytes_tensor(raw).reshape(shape)
        else:
            out[spec.name] = np.frombuffer(raw, dtype=NUMPY[spec.datatype]).reshape(shape)
    return out


@pytest.fixture
def served(registry, make_gateway):
    """lin (v1 champion, v2 challenger at weight 0, v3 registered only) and mlp."""
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    registry.register_version("lin", modelzoo.linear(4, 2, seed=4), actor="test")
    registry.register_version("lin", modelzoo.linear(4, 2, seed=5), actor="test")
    registry.set_weights("lin", {"1": 1.0, "2": 0.0}, actor="test")
    registry.register_version("mlp", modelzoo.mlp(MLP_SIZES, seed=1), actor="test")
    gw = make_gateway(metrics_port=-1)
    client = triton.InferenceServerClient(gw.target)
    yield gw, client
    client.close()


def _x(rows: int = 5, features: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, features)).astype(np.float32)


def _triton_input(name: str, arr: np.ndarray, datatype: str) -> triton.InferInput:
    inp = triton.InferInput(name, list(arr.shape), datatype)
    inp.set_data_from_numpy(arr)
    return inp


# -- server and model state ---------------------------------------------------------------


def test_server_live_ready_and_metadata(served):
    _, client = served
    assert client.is_server_live() is True
    assert client.is_server_ready() is True
    meta = client.get_server_metadata()
    assert meta.name == "onnxgate"
    assert meta.version == gateway.__version__
    assert {"model_configuration", "statistics"} <= set(meta.extensions)


def test_model_ready_for_known_models_and_versions_only(served):
    _, client = served
    assert client.is_model_ready("lin") is True
    assert client.is_model_ready("mlp") is True
    assert client.is_model_ready("lin", "1") is True
    assert client.is_model_ready("lin", "2") is True
    assert client.is_model_ready("lin", "3") is False  # registered, not deployed
    assert client.is_model_ready("lin", "99") is False
    assert client.is_model_ready("no-such-model") is False


def test_model_metadata_describes_signature_versions_and_platform(served):
    _, client = served
    meta = client.get_model_metadata("mlp")
    assert meta.name == "mlp"
    assert list(meta.versions) == ["1"]
    assert meta.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("x", "FP32", [-1, 8])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [
        ("probabilities", "FP32", [-1, 3]),
        ("label", "INT64", [-1]),
    ]
    lin = client.get_model_metadata("lin")
    assert list(lin.versions) == ["1", "2"]  # the loaded ones
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("no-such-model")
    assert "NOT_FOUND" in info.value.status()


def test_model_config_drops_batch_dim_when_batching(served):
    _, client = served
    config = client.get_model_config("mlp").config
    assert config.name == "mlp"
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 64  # Settings default
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("x", triton.model_config_pb2.TYPE_FP32, [8])
    ]
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [
        ("probabilities", triton.model_config_pb2.TYPE_FP32, [3]),
        ("label", triton.model_config_pb2.TYPE_INT64, []),
    ]


def test_model_config_keeps_batch_dim_without_batching(registry, make_gateway):
    registry.register_version("mlp", modelzoo.mlp(MLP_SIZES, seed=1), actor="test")
    gw = make_gateway(metrics_port=-1, batching=False)
    client = triton.InferenceServerClient(gw.target)
    config = client.get_model_config("mlp").config
    client.close()
    assert config.max_batch_size == 0
    assert [list(i.dims) for i in config.input] == [[-1, 8]]
    assert [list(o.dims) for o in config.output] == [[-1, 3], [-1]]


def test_repository_index_lists_loaded_versions(served):
    _, client = served
    index = client.get_model_repository_index()
    got = [(m.name, m.version, m.state) for m in index.models]
    assert got == [("lin", "1", "READY"), ("lin", "2", "READY"), ("mlp", "1", "READY")]


def test_inference_statistics_count_successes_and_failures_per_version(served):
    gw, client = served
    before = client.get_inference_statistics("lin")
    assert [(s.name, s.version) for s in before.model_stats] == [("lin", "1"), ("lin", "2")]
    assert all(s.inference_stats.success.count == 0 for s in before.model_stats)

    x = _x(rows=2)
    for _ in range(3):
        client.infer("lin", [_triton_input("x", x, "FP32")])
    client.infer("lin", [_triton_input("x", x, "FP32")], model_version="2")
    bad = pb.ModelInferRequest(model_name="lin")
    bad.inputs.add(name="x", datatype="FP32", shape=[2, 5])
    bad.raw_input_contents.append(np.zeros((2, 5), np.float32).tobytes())
    with pytest.raises(grpc.RpcError):
        gw.stub().ModelInfer(bad, timeout=10)

    v1 = client.get_inference_statistics("lin", "1").model_stats
    assert [(s.name, s.version) for s in v1] == [("lin", "1")]
    stats = v1[0]
    assert stats.inference_stats.success.count == 3
    assert stats.inference_stats.success.ns > 0
    assert stats.inference_stats.fail.count == 1
    assert stats.inference_count == 6  # rows
    assert 1 <= stats.execution_count <= 3
    assert stats.last_inference > 0
    v2 = client.get_inference_statistics("lin", "2").model_stats[0]
    assert v2.inference_stats.success.count == 1
    assert v2.inference_stats.fail.count == 0

    client.infer("lin", [_triton_input("x", x, "FP32")])
    again = client.get_inference_statistics("lin", "1").model_stats[0]
    assert again.inference_stats.success.count == 4
    assert again.inference_stats.success.ns > stats.inference_stats.success.ns

    everything = client.get_inference_statistics()
    assert {(s.name, s.version) for s in everything.model_stats} == {
        ("lin", "1"),
        ("lin", "2"),
        ("mlp", "1"),
    }
    with pytest.raises(InferenceServerException) as info:
        client.get_inference_statistics("no-such-model")
    assert "NOT_FOUND" in info.value.status()


# -- inference --------------------------------------------------------------------------


def test_infer_equals_direct_onnxruntime(served):
    _, client = served
    artifact = modelzoo.mlp(MLP_SIZES, seed=1)
    x = _x(rows=7, features=8, seed=11)
    probabilities, label = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )
    result = client.infer("mlp", [_triton_input("x", x, "FP32")], request_id="r-42")
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("label"), label)
    assert result.as_numpy("label").dtype == np.int64
    response = result.get_response()
    assert response.id == "r-42"
    assert response.model_name == "mlp"
    assert response.model_version == "1"
    assert response.parameters["role"].string_param == "champion"


def test_concurrent_requests_each_get_their_own_rows(served):
    """Requests batched together must be split back to the caller they came from."""
    gw, _ = served
    session = ort.InferenceSession(
        modelzoo.mlp(MLP_SIZES, seed=1), providers=["CPUExecutionProvider"]
    )
    inputs = [_x(rows=1 + i % 4, features=8, seed=100 + i) for i in range(24)]

    def call(x: np.ndarray) -> dict[str, np.ndarray]:
        return _outputs(gw.stub().ModelInfer(_request("mlp", x, "FP32"), timeout=10))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, inputs))
    for x, got in zip(inputs, results, strict=True):
        probabilities, label = session.run(None, {"x": x})
        np.testing.assert_allclose(got["probabilities"], probabilities, rtol=1e-6)
        np.testing.assert_array_equal(got["label"], label)


def test_requested_outputs_filter_the_response(served):
    _, client = served
    x = _x(rows=3, features=8)
    result = client.infer(
        "mlp", [_triton_input("x", x, "FP32")], outputs=[triton.InferRequestedOutput("label")]
    )
    assert [o.name for o in result.get_response().outputs] == ["label"]
    assert len(result.get_response().raw_output_contents) == 1
    assert result.as_numpy("probabilities") is None
    assert result.as_numpy("label").shape == (3,)


def test_explicit_version_pin_is_served_and_unknown_version_is_not_found(served):
    gw, client = served
    x = _x(rows=4)
    pinned = client.infer("lin", [_triton_input("x", x, "FP32")], model_version="2")
    np.testing.assert_allclose(
        pinned.as_numpy("y"), x @ modelzoo.linear_weights(4, 2, seed=4), rtol=1e-5
    )
    assert pinned.get_response().model_version == "2"
    assert pinned.get_response().parameters["role"].string_param == "challenger"

    champion = client.infer("lin", [_triton_input("x", x, "FP32")])
    assert champion.get_response().model_version == "1"
    np.testing.assert_allclose(
        champion.as_numpy("y"), x @ modelzoo.linear_weights(4, 2, seed=3), rtol=1e-5
    )

    stub = gw.stub()
    for version in ("99", "3"):  # never registered; registered but not deployed
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(_request("lin", x, "FP32", model_version=version), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert f"'{version}'" in info.value.details()


def test_raw_and_typed_inputs_give_identical_results(served):
    gw, _ = served
    stub = gw.stub()
    x = _x(rows=6, features=8, seed=5)
    raw = _outputs(stub.ModelInfer(_request("mlp", x, "FP32"), timeout=10))
    typed = _outputs(stub.ModelInfer(_request("mlp", x, "FP32", typed=True), timeout=10))
    assert raw.keys() == typed.keys() == {"probabilities", "label"}
    for name in raw:
        _assert_exact(typed[name], raw[name])


def test_every_datatype_round_trips_exactly(registry, make_gateway):
    for datatype in DATATYPES:
        registry.register_version(f"id-{datatype.lower()}", modelzoo.identity(datatype), actor="t")
    gw = make_gateway(metrics_port=-1)
    stub = gw.stub()
    client = triton.InferenceServerClient(gw.target)
    try:
        for datatype in DATATYPES:
            model = f"id-{datatype.lower()}"
            x = edge_values(datatype)
            response = stub.ModelInfer(_request(model, x, datatype), timeout=10)
            assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
                ("y", datatype, [2, 3])
            ], datatype
            _assert_exact(_outputs(response)["y"], x)

            if datatype != "FP16":  # the protocol has no typed field for FP16
                typed = stub.ModelInfer(_request(model, x, datatype, typed=True), timeout=10)
                _assert_exact(_outputs(typed)["y"], x)

            result = client.infer(model, [_triton_input("x", x, datatype)])
            _assert_exact(result.as_numpy("y"), x)
    finally:
        client.close()


def test_fp16_sent_typed_is_refused_with_a_pointer_to_raw(registry, make_gateway):
    registry.register_version("half", modelzoo.identity("FP16"), actor="t")
    gw = make_gateway(metrics_port=-1)
    req = pb.ModelInferRequest(model_name="half")
    req.inputs.add(name="x", datatype="FP16", shape=[1, 3]).contents.fp32_contents.extend([1, 2, 3])
    with pytest.raises(grpc.RpcError) as info:
        gw.stub().ModelInfer(req, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw_input_contents" in info.value.details()
