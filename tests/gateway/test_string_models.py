"""Models that parse their string inputs load, serve and pass registration's validation.

A graph that ``Cast``s BYTES to INT64 refuses empty strings (onnxruntime: ``stoll``); the
warm-up tries ``"0"`` next. A graph that refuses every synthetic value still loads, with
its warm-up marked skipped, and serves the values a client sends.
"""

from __future__ import annotations

import numpy as np
import tritonclient.grpc as triton
from onnx import TensorProto, helper

from gateway._proto import grpc_service_pb2 as pb
from registry.validation import probe_artifact


def _finish(graph: object) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def parse_and_double() -> bytes:
    """``n = int(s) * 2``: input ``s`` BYTES [batch, 1], output ``n`` INT64."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["s"], ["i"], to=TensorProto.INT64),
            helper.make_node("Mul", ["i", "two"], ["n"]),
        ],
        "parse",
        [helper.make_tensor_value_info("s", TensorProto.STRING, ["batch", 1])],
        [helper.make_tensor_value_info("n", TensorProto.INT64, ["batch", 1])],
        [helper.make_tensor("two", TensorProto.INT64, [], [2])],
    )
    return _finish(graph)


def lookup_from_two() -> bytes:
    """``y = [7.0][int(s) - 2]``: only "1" and "2" are valid, so "", "a" and "0" fail."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["s"], ["i"], to=TensorProto.INT64),
            helper.make_node("Sub", ["i", "two"], ["j"]),
            helper.make_node("Gather", ["table", "j"], ["y"], axis=0),
        ],
        "lookup",
        [helper.make_tensor_value_info("s", TensorProto.STRING, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [
            helper.make_tensor("two", TensorProto.INT64, [], [2]),
            helper.make_tensor("table", TensorProto.FLOAT, [1], [7.0]),
        ],
    )
    return _finish(graph)


def _bytes_input(values: list[bytes], shape: list[int]) -> triton.InferInput:
    inp = triton.InferInput("s", shape, "BYTES")
    inp.set_data_from_numpy(np.array(values, dtype=np.object_).reshape(shape))
    return inp


def test_validation_passes_string_parsing_graphs_by_the_gateways_rule():
    checks = {c.name: c for c in probe_artifact(parse_and_double())}
    assert checks["inference"].passed and '"0"' in checks["inference"].detail
    assert checks["deterministic"].passed
    checks = {c.name: c for c in probe_artifact(lookup_from_two())}
    assert checks["loads"].passed
    assert checks["inference"].passed and checks["inference"].detail.startswith("skipped")


def test_string_parsing_models_load_and_serve(registry, make_gateway):
    registry.register_version("parse", parse_and_double(), actor="test")
    registry.register_version("lookup", lookup_from_two(), actor="test")
    gw = make_gateway(metrics_port=-1)
    client = triton.InferenceServerClient(gw.target)
    try:
        assert client.is_model_ready("parse") and client.is_model_ready("lookup")
        result = client.infer("parse", [_bytes_input([b"21", b"-4"], [2, 1])])
        assert result.as_numpy("n").tolist() == [[42], [-8]]
        result = client.infer("lookup", [_bytes_input([b"2"], [1])])
        assert result.as_numpy("y").tolist() == [7.0]
    finally:
        client.close()
    index = {m.name: m for m in gw.stub().RepositoryIndex(pb.RepositoryIndexRequest()).models}
    assert index["parse"].state == index["lookup"].state == "READY"
    assert index["parse"].reason == ""
    assert index["lookup"].reason.startswith("warm-up skipped")
    catalog = gw.gateway.catalog
    assert catalog.find("lookup", "").loaded.warm_up_skipped is not None
