"""The one datatype table agrees with numpy, onnxruntime and the protocol's messages."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from gateway._proto import grpc_service_pb2 as pb
from gateway.transport.converters import DATATYPE_TO_CONFIG
from registry import DATATYPE_TO_NUMPY, DATATYPES, ORT_TO_DATATYPE, datatype_of_numpy

OIP = {
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BF16", "BYTES",
}  # fmt: skip


def test_every_protocol_datatype_has_one_row() -> None:
    assert set(DATATYPES) == OIP
    assert {d.name for d in ORT_TO_DATATYPE.values()} == OIP


def test_only_bf16_has_no_numpy_form() -> None:
    assert set(DATATYPES) - set(DATATYPE_TO_NUMPY) == {"BF16"}
    assert not DATATYPES["BF16"].servable


@pytest.mark.parametrize("name", sorted(OIP - {"BYTES", "BF16"}))
def test_sizes_match_numpy_and_the_reverse_lookup(name: str) -> None:
    dtype = DATATYPE_TO_NUMPY[name]
    assert DATATYPES[name].size == dtype.itemsize
    assert datatype_of_numpy(dtype) == name


def test_bytes_is_object_and_strings_map_back() -> None:
    assert DATATYPE_TO_NUMPY["BYTES"] == np.dtype(object)
    assert DATATYPES["BYTES"].size is None
    for arr in (np.array(["a"]), np.array([b"a"]), np.array(["a"], dtype=object)):
        assert datatype_of_numpy(arr.dtype) == "BYTES"
    assert datatype_of_numpy(np.dtype(np.complex64)) is None


def test_contents_fields_exist_and_fp16_bf16_are_raw_only() -> None:
    fields = {f.name for f in pb.InferTensorContents.DESCRIPTOR.fields}
    for d in DATATYPES.values():
        assert d.contents is None or d.contents in fields, d
    assert {d.name for d in DATATYPES.values() if d.contents is None} == {"FP16", "BF16"}


def test_config_enum_covers_every_datatype() -> None:
    assert set(DATATYPE_TO_CONFIG) == OIP
    assert DATATYPE_TO_CONFIG["BYTES"] == pb.TYPE_STRING
    assert DATATYPE_TO_CONFIG["FP32"] == pb.TYPE_FP32


@pytest.mark.parametrize("name", sorted(OIP - {"BF16"}))
def test_onnxruntime_names_match_what_it_reports(name: str) -> None:
    import onnxruntime as ort

    elem = {"BYTES": TensorProto.STRING, "FP16": TensorProto.FLOAT16}.get(name)
    if elem is None:
        elem = helper.np_dtype_to_tensor_dtype(DATATYPE_TO_NUMPY[name])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "id",
        [helper.make_tensor_value_info("x", elem, [1])],
        [helper.make_tensor_value_info("y", elem, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert ORT_TO_DATATYPE[session.get_inputs()[0].type].name == name
