"""What Triton's own example clients do, unmodified tritonclient calls, against onnxgate.

Triton's ``simple`` (INT32 INPUT0, INPUT1 [batch, 16] -> OUTPUT0 = sum, OUTPUT1 =
difference) and ``simple_string`` (the same over decimal strings: a graph that parses BYTES
to integers and formats the results back) are rebuilt here as ONNX. Each test does what one
example client does — sync, async (callback), streaming and asyncio inference on both faces,
strings, explicit typed contents, health and metadata, configuration, statistics, the
repository index, model control and system shared memory — and checks what the example checks.
System shared memory is covered over gRPC; not covered: sequences, image models, CUDA shared
memory (the README says why).
"""

from __future__ import annotations

import asyncio
import queue

import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.grpc.aio as tgrpc_aio
import tritonclient.http as thttp
import tritonclient.http.aio as thttp_aio
from onnx import TensorProto, helper
from shared import ADMIN_TOKEN
from tritonclient.utils import InferenceServerException

from gateway._proto import grpc_service_pb2 as pb

AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def _model(graph: object) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def simple() -> bytes:
    """Triton's ``simple``: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (INT32)."""
    io = [
        helper.make_tensor_value_info(name, TensorProto.INT32, ["batch", 16])
        for name in ("INPUT0", "INPUT1", "OUTPUT0", "OUTPUT1")
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
        ],
        "simple",
        io[:2],
        io[2:],
    )
    return _model(graph)


def simple_string() -> bytes:
    """Triton's ``simple_string``: the same over BYTES holding decimal integers."""
    io = [
        helper.make_tensor_value_info(name, TensorProto.STRING, ["batch", 16])
        for name in ("INPUT0", "INPUT1", "OUTPUT0", "OUTPUT1")
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["INPUT0"], ["a"], to=TensorProto.INT32),
            helper.make_node("Cast", ["INPUT1"], ["b"], to=TensorProto.INT32),
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Sub", ["a", "b"], ["diff"]),
            helper.make_node("Cast", ["sum"], ["OUTPUT0"], to=TensorProto.STRING),
            helper.make_node("Cast", ["diff"], ["OUTPUT1"], to=TensorProto.STRING),
        ],
        "simple_string",
        io[:2],
        io[2:],
    )
    return _model(graph)


@pytest.fixture
def gw(registry, make_gateway):
    registry.register_version("simple", simple(), actor="test")
    registry.register_version("simple_string", simple_string(), actor="test")
    return make_gateway(metrics_port=-1)


@pytest.fixture
def grpc_client(gw):
    client = tgrpc.InferenceServerClient(gw.target)
    yield client
    client.close()


@pytest.fixture
def http_client(gw):
    client = thttp.InferenceServerClient(gw.http_url.removeprefix("http://"), concurrency=4)
    yield client
    client.close()


INPUT0 = np.arange(16, dtype=np.int32).reshape(1, 16)
INPUT1 = np.ones((1, 16), dtype=np.int32)


def _inputs(module, datatype: str = "INT32", **kw):
    a, b = INPUT0, INPUT1
    if datatype == "BYTES":
        a = np.array([str(v).encode() for v in a.ravel()], dtype=np.object_).reshape(1, 16)
        b = np.array([str(v).encode() for v in b.ravel()], dtype=np.object_).reshape(1, 16)
    first = module.InferInput("INPUT0", [1, 16], datatype)
    second = module.InferInput("INPUT1", [1, 16], datatype)
    first.set_data_from_numpy(a, **kw)
    second.set_data_from_numpy(b, **kw)
    return [first, second]


def _outputs(module, **kw):
    return [
        module.InferRequestedOutput("OUTPUT0", **kw),
        module.InferRequestedOutput("OUTPUT1", **kw),
    ]


def _check(result) -> None:
    out0, out1 = result.as_numpy("OUTPUT0"), result.as_numpy("OUTPUT1")
    if out0.dtype == np.object_:
        out0 = np.array([int(v) for v in out0.ravel()]).reshape(out0.shape)
        out1 = np.array([int(v) for v in out1.ravel()]).reshape(out1.shape)
    np.testing.assert_array_equal(out0, INPUT0 + INPUT1)
    np.testing.assert_array_equal(out1, INPUT0 - INPUT1)


# simple_grpc_infer_client / simple_http_infer_client (and their string variants)


def test_simple_grpc_infer_client(grpc_client):
    _check(grpc_client.infer("simple", _inputs(tgrpc), outputs=_outputs(tgrpc), request_id="1"))
    _check(grpc_client.infer("simple_string", _inputs(tgrpc, "BYTES"), outputs=_outputs(tgrpc)))


@pytest.mark.parametrize("binary", [True, False])
def test_simple_http_infer_client(http_client, binary):
    result = http_client.infer(
        "simple",
        _inputs(thttp, binary_data=binary),
        outputs=_outputs(thttp, binary_data=binary),
        request_id="1",
    )
    _check(result)
    strings = _inputs(thttp, "BYTES", binary_data=binary)
    _check(http_client.infer("simple_string", strings, outputs=_outputs(thttp, binary_data=binary)))


# simple_grpc_async_infer_client / simple_http_async_infer_client


def test_simple_grpc_async_infer_client(grpc_client):
    done: queue.Queue[tuple[object, object]] = queue.Queue()
    for _ in range(4):
        grpc_client.async_infer(
            "simple",
            _inputs(tgrpc),
            callback=lambda result, error: done.put((result, error)),
            outputs=_outputs(tgrpc),
        )
    for _ in range(4):
        result, error = done.get(timeout=30)
        assert error is None
        _check(result)


def test_simple_http_async_infer_client(http_client):
    pending = [http_client.async_infer("simple", _inputs(thttp)) for _ in range(4)]
    for request in pending:
        _check(request.get_result())


# simple_grpc_stream_infer_client (Triton's decoupled-free streaming path)


def test_simple_grpc_stream_infer_client(grpc_client):
    done: queue.Queue[tuple[object, object]] = queue.Queue()
    grpc_client.start_stream(callback=lambda result, error: done.put((result, error)))
    try:
        for i in range(16):
            grpc_client.async_stream_infer("simple", _inputs(tgrpc), request_id=str(i))
        ids = set()
        for _ in range(16):
            result, error = done.get(timeout=30)
            assert error is None
            _check(result)
            ids.add(result.get_response().id)
        assert ids == {str(i) for i in range(16)}
    finally:
        grpc_client.stop_stream()


# simple_grpc_aio_infer_client / simple_http_aio_infer_client


def test_simple_aio_infer_clients(gw):
    async def run() -> None:
        grpc_aio = tgrpc_aio.InferenceServerClient(gw.target)
        http_aio = thttp_aio.InferenceServerClient(gw.http_url.removeprefix("http://"))
        try:
            assert await grpc_aio.is_server_live() and await http_aio.is_server_ready()
            _check(await grpc_aio.infer("simple", _inputs(tgrpc)))
            _check(await http_aio.infer("simple", _inputs(thttp)))

            async def requests():
                for i in range(3):
                    yield {"model_name": "simple", "inputs": _inputs(tgrpc), "request_id": str(i)}

            answered = 0
            async for result, error in grpc_aio.stream_infer(requests()):
                assert error is None
                _check(result)
                answered += 1
                if answered == 3:
                    break
        finally:
            await grpc_aio.close()
            await http_aio.close()

    asyncio.run(run())


# grpc_explicit_int_content_client: typed contents instead of raw bytes


def test_grpc_explicit_int_content_client(gw):
    request = pb.ModelInferRequest(model_name="simple")
    for name, values in (("INPUT0", INPUT0), ("INPUT1", INPUT1)):
        tensor = request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        tensor.contents.int_contents.extend(values.ravel().tolist())
    response = gw.stub().ModelInfer(request, timeout=10)
    outputs = {
        spec.name: np.frombuffer(raw, np.int32).reshape(1, 16)
        for spec, raw in zip(response.outputs, response.raw_output_contents, strict=True)
    }
    np.testing.assert_array_equal(outputs["OUTPUT0"], INPUT0 + INPUT1)


# simple_{grpc,http}_health_metadata, model config, statistics, repository, model control


def test_health_metadata_config_statistics_and_repository(grpc_client, http_client):
    for client in (grpc_client, http_client):
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("simple")
        assert client.get_server_metadata()
        _check(client.infer("simple", _inputs(tgrpc if client is grpc_client else thttp)))
    meta = grpc_client.get_model_metadata("simple")
    assert meta.name == "simple" and [i.name for i in meta.inputs] == ["INPUT0", "INPUT1"]
    assert http_client.get_model_metadata("simple")["inputs"][0]["datatype"] == "INT32"
    config = grpc_client.get_model_config("simple").config
    assert config.name == "simple" and list(config.input[0].dims) == [16]
    assert http_client.get_model_config("simple")["input"][0]["dims"] == [16]
    stats = grpc_client.get_inference_statistics("simple").model_stats[0]
    assert stats.inference_stats.success.count >= 1
    over_http = http_client.get_inference_statistics("simple")["model_stats"][0]
    assert over_http["inference_stats"]["success"]["count"] >= 1
    names = {m.name for m in grpc_client.get_model_repository_index().models}
    assert names == {m["name"] for m in http_client.get_model_repository_index()} >= {"simple"}


def test_simple_model_control_on_both_faces(grpc_client, http_client):
    for client in (grpc_client, http_client):
        client.unload_model("simple", headers=AUTH)
        assert not client.is_model_ready("simple")
        client.load_model("simple", headers=AUTH)
        assert client.is_model_ready("simple")
        _check(client.infer("simple", _inputs(tgrpc if client is grpc_client else thttp)))


# simple_grpc_shm_client: system shared memory in and out


def test_simple_grpc_shm_client(grpc_client):
    from multiprocessing import shared_memory

    inputs = shared_memory.SharedMemory(create=True, size=128)
    outputs = shared_memory.SharedMemory(create=True, size=128)
    try:
        inputs.buf[:64] = INPUT0.tobytes()
        inputs.buf[64:128] = INPUT1.tobytes()
        grpc_client.register_system_shared_memory("in", "/" + inputs.name, 128)
        grpc_client.register_system_shared_memory("out", "/" + outputs.name, 128)
        status = grpc_client.get_system_shared_memory_status(as_json=True)["regions"]
        assert set(status) == {"in", "out"} and int(status["in"]["byte_size"]) == 128
        first, second = (
            tgrpc.InferInput("INPUT0", [1, 16], "INT32"),
            tgrpc.InferInput("INPUT1", [1, 16], "INT32"),
        )
        first.set_shared_memory("in", 64)
        second.set_shared_memory("in", 64, offset=64)
        wanted = _outputs(tgrpc)
        wanted[0].set_shared_memory("out", 64)
        wanted[1].set_shared_memory("out", 64, offset=64)
        result = grpc_client.infer("simple", [first, second], outputs=wanted)
        assert result.get_output("OUTPUT0").name == "OUTPUT0"
        sums = np.frombuffer(bytes(outputs.buf[:64]), np.int32).reshape(1, 16)
        diffs = np.frombuffer(bytes(outputs.buf[64:128]), np.int32).reshape(1, 16)
        np.testing.assert_array_equal(sums, INPUT0 + INPUT1)
        np.testing.assert_array_equal(diffs, INPUT0 - INPUT1)
        # Past the end of a region, and a key outside /dev/shm, are the client's errors.
        second.set_shared_memory("in", 64, offset=100)
        with pytest.raises(InferenceServerException) as past_end:
            grpc_client.infer("simple", [first, second])
        assert past_end.value.status() == "StatusCode.INVALID_ARGUMENT"
        with pytest.raises(InferenceServerException) as escape:
            grpc_client.register_system_shared_memory("bad", "/../etc/passwd", 8)
        assert escape.value.status() == "StatusCode.INVALID_ARGUMENT"
        grpc_client.unregister_system_shared_memory()
        assert grpc_client.get_system_shared_memory_status(as_json=True).get("regions", {}) == {}
    finally:
        inputs.close()
        inputs.unlink()
        outputs.close()
        outputs.unlink()
