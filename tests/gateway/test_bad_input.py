"""Malformed requests get the right status and a message naming what is wrong, never
INTERNAL; and the gateway answers the next good request correctly.

Models: ``lin`` (x FP32 [-1, 4] -> y FP32 [-1, 2]), ``pair`` (a, b FP32 [-1, 2] -> s = a + b),
``text`` (identity over BYTES [-1, 3]) and ``small`` (identity INT8 [-1, 3]).
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import numpy as np
import pytest
from shared import assert_no_tracebacks, wait_for

from gateway._proto import grpc_service_pb2 as pb
from gateway.tools import modelzoo

W = modelzoo.linear_weights(4, 2, seed=3)
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _pair_model() -> bytes:
    """Two inputs, so that one can be left out without naming an unknown one."""
    from onnx import TensorProto, checker, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"])],
        "pair",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 2]),
        ],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    checker.check_model(model)
    return model.SerializeToString()


def _lin(shape=(2, 4), *, datatype="FP32", raw: bytes | None = None, model="lin"):
    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name="x", datatype=datatype, shape=shape)
    if raw is None:
        raw = np.zeros(shape, np.float32).tobytes()
    req.raw_input_contents.append(raw)
    return req


def _good_roundtrip(stub) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    response = stub.ModelInfer(_lin(raw=x.tobytes()), timeout=10)
    assert [o.name for o in response.outputs] == ["y"]
    y = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(2, 2)
    np.testing.assert_allclose(y, x @ W, rtol=1e-5)


@pytest.fixture
def gw(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    registry.register_version("pair", _pair_model(), actor="test")
    registry.register_version("text", modelzoo.identity("BYTES"), actor="test")
    registry.register_version("small", modelzoo.identity("INT8"), actor="test")
    return make_gateway(metrics_port=-1)


def _unknown_model():
    return _lin(model="no-such-model")


def _wrong_datatype():
    return _lin(datatype="FP64", raw=np.zeros((2, 4), np.float64).tobytes())


def _missing_input():
    req = pb.ModelInferRequest(model_name="pair")
    req.inputs.add(name="a", datatype="FP32", shape=[1, 2])
    req.raw_input_contents.append(np.zeros((1, 2), np.float32).tobytes())
    return req


def _extra_input():
    req = _lin()
    req.inputs.add(name="z", datatype="FP32", shape=[2, 4])
    req.raw_input_contents.append(np.zeros((2, 4), np.float32).tobytes())
    return req


def _duplicate_input():
    req = _lin()
    req.inputs.add(name="x", datatype="FP32", shape=[2, 4])
    req.raw_input_contents.append(np.zeros((2, 4), np.float32).tobytes())
    return req


def _raw_count_mismatch():
    req = _lin()
    req.raw_input_contents.append(b"\0" * 32)
    return req


def _typed(values, shape=(2, 4), field="fp32_contents", datatype="FP32", model="lin"):
    def build():
        req = pb.ModelInferRequest(model_name=model)
        tensor = req.inputs.add(name="x", datatype=datatype, shape=shape)
        getattr(tensor.contents, field).extend(values)
        return req

    return build


def _requested_unknown_output():
    req = _lin()
    req.outputs.add(name="nope")
    return req


def _no_inputs():
    return pb.ModelInferRequest(model_name="lin")


def _no_model_name():
    req = _lin()
    req.model_name = ""
    return req


def _text(raw: bytes):
    return lambda: _lin((1, 3), datatype="BYTES", raw=raw, model="text")


CASES: dict[str, tuple[Callable[[], pb.ModelInferRequest], grpc.StatusCode, tuple[str, ...]]] = {
    "unknown model": (_unknown_model, grpc.StatusCode.NOT_FOUND, ("no-such-model",)),
    "wrong datatype": (_wrong_datatype, INVALID, ("'x'", "FP64", "FP32")),
    "wrong rank": (lambda: _lin((8,)), INVALID, ("'x'", "rank")),
    "wrong fixed dim": (lambda: _lin((2, 5)), INVALID, ("'x'", "[2, 5]", "[-1, 4]")),
    "missing input": (_missing_input, INVALID, ("missing", "'b'")),
    "unknown extra input": (_extra_input, INVALID, ("unknown", "'z'")),
    "duplicate input": (_duplicate_input, INVALID, ("'x'", "twice")),
    "raw length != shape": (lambda: _lin(raw=b"\0" * 31), INVALID, ("'x'", "31 bytes", "32")),
    "raw count != inputs": (_raw_count_mismatch, INVALID, ("raw_input_contents", "2", "1")),
    "unknown datatype": (lambda: _lin(datatype="FP8"), INVALID, ("'x'", "FP8")),
    "negative dim": (lambda: _lin((-1, 4), raw=b""), INVALID, ("'x'", "negative")),
    "typed count mismatch": (_typed([1.0, 2.0, 3.0]), INVALID, ("'x'", "fp32_contents", "3")),
    "typed wrong field": (
        _typed([1, 2, 3, 4, 5, 6, 7, 8], field="int_contents"),
        INVALID,
        ("'x'", "fp32_contents"),
    ),
    "typed value overflows": (
        _typed([1, 300, 3], shape=(1, 3), field="int_contents", datatype="INT8", model="small"),
        INVALID,
        ("'x'", "INT8"),
    ),
    "requested unknown output": (_requested_unknown_output, INVALID, ("'nope'", "'y'")),
    "no inputs": (_no_inputs, INVALID, ("inputs",)),
    "no model name": (_no_model_name, INVALID, ("model_name",)),
    "BYTES not UTF-8": (_text(b"\x01\0\0\0\xff" * 3), INVALID, ("'x'", "UTF-8")),
    "BYTES truncated": (_text(b"\x05\0\0\0ab"), INVALID, ("'x'",)),
    # Element counts past 2**63 must not wrap around (to 0) and reach reshape/alloc.
    "raw shape overflows int64": (lambda: _lin((2**62, 4), raw=b""), INVALID, ("'x'",)),
    "typed shape overflows int64": (_typed([], shape=(2**62, 4)), INVALID, ("'x'",)),
    "BYTES shape beyond memory": (
        lambda: _lin((2**40, 3), datatype="BYTES", raw=b"", model="text"),
        INVALID,
        ("'x'",),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_request_gets_its_status_then_good_request_works(gw, case):
    build, code, fragments = CASES[case]
    stub = gw.stub()
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(build(), timeout=10)
    assert info.value.code() == code, info.value.details()
    for fragment in fragments:
        assert fragment in info.value.details()
    _good_roundtrip(stub)


def test_mutated_requests_never_get_internal(gw):
    """Seeded fuzz over shapes, datatypes and byte lengths: every answer is OK or a client
    error, never INTERNAL/UNKNOWN."""
    rng = np.random.default_rng(1234)
    datatypes = ["FP32", "FP64", "INT64", "BOOL", "BYTES", "FP16", "", "fp32"]
    dims = [-(2**63), -1, 0, 1, 2, 4, 5, 2**31, 2**62, 2**63 - 1]
    stub = gw.stub()
    seen: dict[str, int] = {}
    for _ in range(150):
        rank = int(rng.integers(0, 4))
        shape = [int(rng.choice(dims)) for _ in range(rank)]
        datatype = str(rng.choice(datatypes))
        raw = bytes(rng.integers(0, 256, int(rng.choice([0, 4, 8, 31, 32])), dtype=np.uint8))
        req = _lin(shape, datatype=datatype, raw=raw, model=str(rng.choice(["lin", "text"])))
        try:
            stub.ModelInfer(req, timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
        assert code in (grpc.StatusCode.OK, INVALID, grpc.StatusCode.NOT_FOUND), (
            f"{code} for shape={shape} datatype={datatype!r} raw={len(raw)}B"
        )
        seen[code.name] = seen.get(code.name, 0) + 1
    assert seen.get("INVALID_ARGUMENT", 0) > 100
    _good_roundtrip(stub)


def test_message_over_the_size_limit_is_resource_exhausted(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    gw = make_gateway(metrics_port=-1, max_message_bytes=64 * 1024)
    stub = gw.stub()
    rows = 8192  # 128 KiB of FP32
    big = _lin((rows, 4), raw=np.zeros((rows, 4), np.float32).tobytes())
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(big, timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _good_roundtrip(stub)


def _assert_broken_is_isolated(gw, registry) -> None:
    stub = gw.stub()
    assert stub.ModelReady(pb.ModelReadyRequest(name="broken"), timeout=10).ready is False
    assert stub.ModelReady(pb.ModelReadyRequest(name="lin"), timeout=10).ready is True
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(_lin(model="broken"), timeout=10)
    assert info.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE)
    assert "broken" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelMetadata(pb.ModelMetadataRequest(name="broken"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=10)
    ready = {(m.name, m.version) for m in index.models}
    assert ("lin", "1") in ready
    assert not any(name == "broken" for name, _ in ready)
    _good_roundtrip(stub)
    failures = [e for e in registry.audit_events("broken") if e.action == "deployment.load_failed"]
    assert len(failures) == 1  # audited once, not on every poll
    assert failures[0].actor == "gateway"
    assert failures[0].subject == "broken"


def test_model_failing_warm_up_never_loads_and_others_keep_serving(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    registry.register_version("broken", modelzoo.failing_at_run(), actor="test", force=False)
    gw = make_gateway(metrics_port=-1)
    _assert_broken_is_isolated(gw, registry)


def test_model_failing_warm_up_registered_while_serving(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    gw = make_gateway(metrics_port=-1)
    registry.register_version("broken", modelzoo.failing_at_run(), actor="test", force=False)
    assert wait_for(
        lambda: any(e.action == "deployment.load_failed" for e in registry.audit_events("broken"))
    )
    # a few more polls must neither load it nor audit it again
    registry.register_version("other", modelzoo.identity("FP32"), actor="test")
    assert wait_for(
        lambda: gw.stub().ModelReady(pb.ModelReadyRequest(name="other"), timeout=10).ready
    )
    _assert_broken_is_isolated(gw, registry)


# -- bodies that are not a ModelInferRequest at all ---------------------------------------------

UNDECODABLE = {
    "random bytes": bytes(np.random.default_rng(7).integers(0, 256, 64, dtype=np.uint8)),
    "truncated varint": b"\x0a\x80",  # field 1 (model_name), length varint cut short
    "length past the end": b"\x0a\x10lin",  # model_name claims 16 bytes, has 3
}


@pytest.mark.parametrize("body", list(UNDECODABLE))
def test_undecodable_body_is_invalid_argument_without_a_traceback(gw, body, caplog):
    infer = gw.channel().unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=None,
        response_deserializer=None,
    )
    with caplog.at_level("DEBUG"), pytest.raises(grpc.RpcError) as info:
        infer(UNDECODABLE[body], timeout=10)
    assert info.value.code() == INVALID, info.value.details()
    assert "ModelInferRequest" in info.value.details()
    assert_no_tracebacks(caplog)
    _good_roundtrip(gw.stub())


def _every_method() -> list[str]:
    from gateway._proto import admin_pb2, governance_pb2, governor_pb2, monitoring_pb2

    paths = []
    for module in (pb, admin_pb2, governance_pb2, governor_pb2, monitoring_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            paths += [f"/{service.full_name}/{m.name}" for m in service.methods]
    return paths


def test_every_service_refuses_an_undecodable_body_as_invalid_argument(gw, caplog):
    """Not only ModelInfer: an operator's or a label sender's garbage is their error too,
    and is answered before authentication (there is no request to authorise)."""
    paths = _every_method()
    assert len(paths) > 30  # inference, admin, governance, governor and monitoring
    for path in paths:
        call = gw.channel().unary_unary(path, request_serializer=None, response_deserializer=None)
        with caplog.at_level("DEBUG"), pytest.raises(grpc.RpcError) as info:
            call(UNDECODABLE["truncated varint"], timeout=10)
        assert info.value.code() == INVALID, (path, info.value.code(), info.value.details())
        assert "is not a valid" in info.value.details()
    assert "Traceback" not in caplog.text
    _good_roundtrip(gw.stub())


# -- error messages that echo what the client sent stay under gRPC's metadata limit -------------


def _many_unknown_inputs(count: int = 5000) -> pb.ModelInferRequest:
    req = _lin()
    for i in range(count):
        req.inputs.add(name=f"extra_input_number_{i:05d}", datatype="FP32", shape=[2, 4])
        req.raw_input_contents.append(np.zeros((2, 4), np.float32).tobytes())
    return req


def _long_model_name() -> pb.ModelInferRequest:
    return _lin(model="m" * 40_000)


LONG = {
    # Capped where the list is made (the rest counted), not cut blindly where it leaves.
    "thousands of unknown inputs": (_many_unknown_inputs, INVALID, ("unknown", "and 4,992 more")),
    # Over the documented 256-byte limit: refused at decode, naming the field, not echoed.
    "long model name": (_long_model_name, INVALID, ("model_name", "limit of 256")),
}


@pytest.mark.parametrize("case", list(LONG))
def test_error_echoing_huge_names_keeps_its_status(gw, case):
    build, code, fragments = LONG[case]
    stub = gw.stub()
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(build(), timeout=10)
    assert info.value.code() == code, info.value.details()[:300]
    details = info.value.details()
    assert len(details.encode()) < 4096
    for fragment in fragments:
        assert fragment in details
    _good_roundtrip(stub)


def test_error_echoing_a_long_input_name_truncates_it(gw):
    req = _lin(datatype="FP8")
    req.inputs[0].name = "n" * 200  # under the 256-byte limit: echoed, cut
    with pytest.raises(grpc.RpcError) as info:
        gw.stub().ModelInfer(req, timeout=10)
    assert info.value.code() == INVALID
    assert "FP8" in info.value.details() and "…" in info.value.details()
    assert len(info.value.details()) < 1000


def test_an_input_name_over_the_limit_is_refused_naming_the_field(gw):
    req = _lin()
    req.inputs[0].name = "n" * 50_000
    with pytest.raises(grpc.RpcError) as info:
        gw.stub().ModelInfer(req, timeout=10)
    assert info.value.code() == INVALID
    assert info.value.details() == "inputs[0].name: 50,000 bytes is longer than the limit of 256"


# -- raw and typed contents together -----------------------------------------------------------


def test_raw_and_typed_contents_together_are_refused(gw):
    req = _lin()
    req.inputs[0].contents.fp32_contents.extend([0.0] * 8)
    with pytest.raises(grpc.RpcError) as info:
        gw.stub().ModelInfer(req, timeout=10)
    assert info.value.code() == INVALID
    assert "'x'" in info.value.details()
    assert "contents" in info.value.details() and "raw_input_contents" in info.value.details()
    _good_roundtrip(gw.stub())


def test_bf16_model_is_refused_at_registration(registry):
    from onnx import TensorProto, helper

    from registry.errors import InvalidArtifact

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "bf16",
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, ["N", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(InvalidArtifact, match="BF16"):
        registry.register_version("bf", model.SerializeToString(), actor="test")
    assert not registry.list_models()
