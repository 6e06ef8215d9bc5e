"""Small ONNX models built in code, for the demo, the tests and the benchmarks.

Nothing is downloaded: every model is made here with ``onnx.helper`` from a seed, so the
same call gives the same bytes. Needs the ``onnx`` package (a dev/demo dependency).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["failing_at_run", "identity", "linear", "logistic", "mlp", "slow"]

OPSET = 17
IR_VERSION = 8


def _finish(graph: object, name: str) -> bytes:
    from onnx import checker, helper

    model = helper.make_model(
        graph,  # type: ignore[arg-type]
        producer_name="onnxgate.modelzoo",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    model.doc_string = name
    checker.check_model(model)
    return bytes(model.SerializeToString())


def linear(
    in_features: int = 4,
    out_features: int = 2,
    *,
    seed: int = 0,
    scale: float = 1.0,
    bias: float = 0.0,
    batch: int | None = None,
) -> bytes:
    """``y = scale * (x @ W) + b``; input ``x`` FP32 [batch, in], output ``y`` [batch, out].

    ``batch=None`` makes the first dimension dynamic (batchable); an int fixes it.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((in_features, out_features)) * scale).astype(np.float32)
    b = np.full(out_features, bias, dtype=np.float32)
    dim: int | str = batch if batch is not None else "batch"
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [dim, in_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [dim, out_features])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    return _finish(graph, f"linear {in_features}->{out_features} seed={seed}")


def logistic(weights: Sequence[float]) -> bytes:
    """A binary logistic classifier without bias: input ``x`` FP32 [batch, len(weights)];
    outputs ``label`` INT64 [batch] (argmax) and ``probabilities`` FP32 [batch, 2],
    ``[1 - p, p]`` with ``p = sigmoid(x @ weights)``."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.asarray(weights, dtype=np.float32).reshape(-1, 1)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["p"]),
            helper.make_node("Sub", ["one", "p"], ["q"]),
            helper.make_node("Concat", ["q", "p"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ],
        "logistic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", w.shape[0]])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2]),
        ],
        initializer=[
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        ],
    )
    return _finish(graph, f"logistic {w.shape[0]} features")


def linear_weights(
    in_features: int = 4, out_features: int = 2, *, seed: int = 0, scale: float = 1.0
) -> np.ndarray:
    """The W that :func:`linear` uses for the same arguments (to compute expected outputs)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((in_features, out_features)) * scale).astype(np.float32)


def mlp(sizes: Sequence[int] = (32, 64, 64, 2), *, seed: int = 0, bias_shift: float = 0.0) -> bytes:
    """A ReLU MLP classifier: input ``x`` FP32 [batch, sizes[0]]; outputs ``probabilities``
    FP32 [batch, sizes[-1]] (softmax) and ``label`` INT64 [batch] (argmax).

    ``bias_shift`` is added to the last layer's bias of class 0, to make a version that
    disagrees with another on a controllable share of inputs.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes = []
    inits = []
    prev = "x"
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = np.zeros(fan_out, dtype=np.float32)
        last = i == len(sizes) - 2
        if last:
            b[0] += bias_shift
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("MatMul", [prev, f"W{i}"], [f"mm{i}"]))
        out = "logits" if last else f"h{i}"
        nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [out if last else f"a{i}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"a{i}"], [out]))
        prev = out
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
    nodes.append(helper.make_node("ArgMax", ["logits"], ["label"], axis=-1, keepdims=0))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", sizes[0]])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", sizes[-1]]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        initializer=inits,
    )
    return _finish(graph, f"mlp {'-'.join(map(str, sizes))} seed={seed}")


_ONNX_TYPES = {
    "BOOL": "BOOL",
    "UINT8": "UINT8",
    "UINT16": "UINT16",
    "UINT32": "UINT32",
    "UINT64": "UINT64",
    "INT8": "INT8",
    "INT16": "INT16",
    "INT32": "INT32",
    "INT64": "INT64",
    "FP16": "FLOAT16",
    "FP32": "FLOAT",
    "FP64": "DOUBLE",
    "BYTES": "STRING",
}


def identity(datatype: str = "FP32", width: int = 3) -> bytes:
    """``y = x`` for one OIP datatype: input ``x`` [batch, width], output ``y`` the same."""
    from onnx import TensorProto, helper

    elem = getattr(TensorProto, _ONNX_TYPES[datatype])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", elem, ["batch", width])],
        [helper.make_tensor_value_info("y", elem, ["batch", width])],
    )
    return _finish(graph, f"identity {datatype}")


def failing_at_run(in_features: int = 4) -> bytes:
    """Loads fine (so registration accepts it) but every run fails: a Reshape to a shape
    that no input can have. Stands in for a version that breaks on warm-up."""
    from onnx import TensorProto, helper, numpy_helper

    shape = np.array([7, 11, 13], dtype=np.int64)
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "shape"], ["r"]),
            helper.make_node("ReduceSum", ["r"], ["y"], keepdims=1),
        ],
        "failing",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", in_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1])],
        initializer=[numpy_helper.from_array(shape, "shape")],
    )
    return _finish(graph, "fails at run")


def lookup(rows: int = 10, width: int = 2) -> bytes:
    """``y = table[int(x[:, 0])]`` over a ``rows`` x ``width`` table of ``row * 10 + col``.

    Runs for any index in ``[-rows, rows)`` (warm-up's zeros included) and fails its whole
    run (onnxruntime: indices out of bounds) for any other: the stand-in for inputs a model
    cannot run, which must fail only the request that carried them, not its batch.
    """
    from onnx import TensorProto, helper, numpy_helper

    table = (np.arange(rows)[:, None] * 10 + np.arange(width)[None, :]).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["x", "zero"], ["first"], axis=1),
            helper.make_node("Cast", ["first"], ["index"], to=TensorProto.INT64),
            helper.make_node("Gather", ["table", "index"], ["y"], axis=0),
        ],
        "lookup",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
        ],
    )
    return _finish(graph, "table lookup")


def slow(iterations: int = 2000, size: int = 384, in_features: int = 4) -> bytes:
    """A model whose every run takes long: an ONNX ``Loop`` of ``iterations`` ``size`` x
    ``size`` matrix products (real compute, no sleep op exists), seeded from the input so
    that nothing can be folded at load. Input ``x`` [1, in_features] (a fixed first
    dimension: it does not batch), output ``y`` [1, 1] = sum(x) * (something finite)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    # Orthogonal, so repeated products neither blow up nor vanish.
    weights, _ = np.linalg.qr(rng.standard_normal((size, size)))
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("MatMul", ["s_in", "w"], ["s_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [size, size]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [size, size]),
        ],
    )
    ones = np.full((size, size), 1.0 / size, dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
            helper.make_node("Mul", ["ones", "total"], ["s0"]),
            helper.make_node("Loop", ["trips", "cond", "s0"], ["s_final"], body=body),
            helper.make_node("ReduceMean", ["s_final"], ["m"], keepdims=1),
            helper.make_node("Reshape", ["m", "shape"], ["y"]),
        ],
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, in_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        initializer=[
            numpy_helper.from_array(ones, "ones"),
            numpy_helper.from_array(weights.astype(np.float32), "w"),
            numpy_helper.from_array(np.array(iterations, dtype=np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "cond"),
            numpy_helper.from_array(np.array([1, 1], dtype=np.int64), "shape"),
        ],
    )
    return _finish(graph, f"slow: {iterations} products of {size}x{size}")
