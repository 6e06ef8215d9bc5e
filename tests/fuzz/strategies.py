"""Hypothesis strategies for the gateway's wire messages (shared by the fuzz tests)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from gateway._proto import grpc_service_pb2 as pb
from registry.datatypes import DATATYPE_TO_NUMPY

DATATYPES = sorted(DATATYPE_TO_NUMPY) + ["BYTES", "BF16", "FP8", "", "fp32", "INT128"]

# Names the served models use, mixed with anything at all.
names = st.one_of(
    st.sampled_from(["ident", "text", "small", "lin", "x", "y", "s"]),
    st.text(max_size=12),
)

dims = st.one_of(
    st.integers(-3, 5),
    st.sampled_from([2**31, 2**40, 2**62, -(2**63), 2**63 - 1]),
)

floats = st.floats(width=32, allow_nan=True, allow_infinity=True)


def _parameter(value: Any) -> pb.InferParameter:
    p = pb.InferParameter()
    if isinstance(value, bool):
        p.bool_param = value
    elif isinstance(value, int):
        p.int64_param = value
    elif isinstance(value, float):
        p.double_param = value
    else:
        p.string_param = value
    return p


parameters = st.dictionaries(
    st.one_of(
        st.sampled_from(["segment", "binary_data_size", "priority", "timeout", "sequence_id"]),
        st.text(max_size=8),
    ),
    st.one_of(
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=True),
        st.text(max_size=8),
    ),
    max_size=3,
).map(lambda d: {k: _parameter(v) for k, v in d.items()})


@st.composite
def contents(draw: st.DrawFn) -> pb.InferTensorContents:
    c = pb.InferTensorContents()
    kind = draw(
        st.sampled_from(["none", "fp32", "fp64", "int", "int64", "uint", "uint64", "bool", "bytes"])
    )
    size = st.integers(0, 12)
    n = draw(size)
    if kind == "fp32":
        c.fp32_contents.extend(draw(st.lists(floats, min_size=n, max_size=n)))
    elif kind == "fp64":
        c.fp64_contents.extend(draw(st.lists(st.floats(), min_size=n, max_size=n)))
    elif kind == "int":
        c.int_contents.extend(
            draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=n, max_size=n))
        )
    elif kind == "int64":
        c.int64_contents.extend(
            draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n))
        )
    elif kind == "uint":
        c.uint_contents.extend(draw(st.lists(st.integers(0, 2**32 - 1), min_size=n, max_size=n)))
    elif kind == "uint64":
        c.uint64_contents.extend(draw(st.lists(st.integers(0, 2**64 - 1), min_size=n, max_size=n)))
    elif kind == "bool":
        c.bool_contents.extend(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    elif kind == "bytes":
        c.bytes_contents.extend(draw(st.lists(st.binary(max_size=8), min_size=n, max_size=n)))
    return c


@st.composite
def infer_requests(draw: st.DrawFn) -> pb.ModelInferRequest:
    """Any ModelInferRequest: every field, raw or typed contents or both, sane or not."""
    req = pb.ModelInferRequest(
        model_name=draw(names),
        model_version=draw(st.sampled_from(["", "1", "2", "latest", "-1", "1.0"])),
        id=draw(st.text(max_size=8)),
    )
    for key, value in draw(parameters).items():
        req.parameters[key].CopyFrom(value)
    for _ in range(draw(st.integers(0, 3))):
        tensor = req.inputs.add(
            name=draw(names),
            datatype=draw(st.sampled_from(DATATYPES)),
            shape=draw(st.lists(dims, max_size=4)),
        )
        for key, value in draw(parameters).items():
            tensor.parameters[key].CopyFrom(value)
        if draw(st.booleans()):
            tensor.contents.CopyFrom(draw(contents()))
    if draw(st.booleans()):
        req.raw_input_contents.extend(draw(st.lists(st.binary(max_size=48), max_size=3)))
    for _ in range(draw(st.integers(0, 2))):
        out = req.outputs.add(name=draw(names))
        for key, value in draw(parameters).items():
            out.parameters[key].CopyFrom(value)
    return req
