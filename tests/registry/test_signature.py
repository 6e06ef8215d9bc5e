"""Signatures read from real ONNX models, their JSON form, and compatibility rules."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from onnx import TensorProto

from registry.errors import InvalidArtifact
from registry.signature import (
    Signature,
    TensorSpec,
    incompatibilities,
    signature_from_bytes,
)


def _sig(inputs: list[TensorSpec], outputs: list[TensorSpec] | None = None) -> Signature:
    return Signature(tuple(inputs), tuple(outputs or [TensorSpec("y", "FP32", (-1, 2))]))


def test_signature_from_bytes_maps_types_and_dynamic_dims(model_v1: bytes) -> None:
    sig = signature_from_bytes(model_v1)
    assert sig == Signature(
        inputs=(TensorSpec("x", "FP32", (-1, 4)),),
        outputs=(TensorSpec("y", "FP32", (-1, 2)),),
    )


def test_signature_maps_fp64(make_model: Callable[..., bytes]) -> None:
    sig = signature_from_bytes(make_model(elem_type=TensorProto.DOUBLE))
    assert sig.inputs[0].datatype == "FP64"


def test_round_trips_through_dict(model_v1: bytes) -> None:
    sig = signature_from_bytes(model_v1)
    assert sig.to_dict()["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert Signature.from_dict(sig.to_dict()) == sig


def test_from_dict_rejects_unknown_datatype() -> None:
    with pytest.raises(ValueError, match="FP8"):
        Signature.from_dict(
            {"inputs": [{"name": "x", "datatype": "FP8", "shape": [1]}], "outputs": []}
        )


@pytest.mark.parametrize("data", [b"", b"definitely not onnx", b"\x08\x07" * 50])
def test_unloadable_bytes_raise_invalid_artifact(data: bytes) -> None:
    with pytest.raises(InvalidArtifact, match="ONNX"):
        signature_from_bytes(data)


def test_same_signature_is_compatible(model_v1: bytes, model_v2: bytes) -> None:
    assert incompatibilities(signature_from_bytes(model_v1), signature_from_bytes(model_v2)) == []


def test_changed_fixed_dim_is_reported(model_v1: bytes, model_other_signature: bytes) -> None:
    problems = incompatibilities(
        signature_from_bytes(model_v1), signature_from_bytes(model_other_signature)
    )
    assert problems == ["input 'x' dim 1 changed 4 -> 3"]


@pytest.mark.parametrize(
    ("new_inputs", "expected"),
    [
        ([TensorSpec("x", "FP64", (-1, 4))], "input 'x' datatype changed FP32 -> FP64"),
        ([TensorSpec("x", "FP32", (-1, 4, 1))], "input 'x' rank changed 2 -> 3"),
        ([TensorSpec("z", "FP32", (-1, 4))], "input 'x' is missing"),
        ([TensorSpec("x", "FP32", (8, 4))], "input 'x' dim 0 changed -1 -> 8"),
    ],
)
def test_input_problems(new_inputs: list[TensorSpec], expected: str) -> None:
    current = _sig([TensorSpec("x", "FP32", (-1, 4))])
    problems = incompatibilities(current, _sig(new_inputs))
    assert any(p.startswith(expected) for p in problems), problems


def test_new_required_input_is_reported() -> None:
    current = _sig([TensorSpec("x", "FP32", (-1, 4))])
    new = _sig([TensorSpec("x", "FP32", (-1, 4)), TensorSpec("mask", "BOOL", (-1,))])
    assert incompatibilities(current, new) == ["input 'mask' is new and callers do not send it"]


def test_fixed_dim_becoming_dynamic_is_compatible() -> None:
    current = _sig([TensorSpec("x", "FP32", (1, 4))])
    assert incompatibilities(current, _sig([TensorSpec("x", "FP32", (-1, 4))])) == []


def test_output_problems() -> None:
    current = _sig(
        [TensorSpec("x", "FP32", (-1, 4))],
        [TensorSpec("y", "FP32", (-1, 2)), TensorSpec("p", "FP32", (-1,))],
    )
    new = _sig([TensorSpec("x", "FP32", (-1, 4))], [TensorSpec("y", "INT64", (-1, 2))])
    assert incompatibilities(current, new) == [
        "output 'y' datatype changed FP32 -> INT64",
        "output 'p' is missing",
    ]


def test_extra_output_is_compatible() -> None:
    current = _sig([TensorSpec("x", "FP32", (-1, 4))])
    new = _sig(
        [TensorSpec("x", "FP32", (-1, 4))],
        [TensorSpec("y", "FP32", (-1, 2)), TensorSpec("extra", "FP32", (-1,))],
    )
    assert incompatibilities(current, new) == []


def _bf16_model(*, at_the_edge: bool) -> bytes:
    """Identity over BF16 (``at_the_edge``), else FP32 in and out with BF16 inside."""
    import onnx
    from onnx import helper

    if at_the_edge:
        nodes = [helper.make_node("Identity", ["x"], ["y"])]
        elem = TensorProto.BFLOAT16
    else:
        nodes = [
            helper.make_node("Cast", ["x"], ["h"], to=TensorProto.BFLOAT16),
            helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT),
        ]
        elem = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "bf16",
        [helper.make_tensor_value_info("x", elem, ["N", 2])],
        [helper.make_tensor_value_info("y", elem, ["N", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_bf16_at_the_graph_edge_is_refused_with_the_way_out() -> None:
    # No numpy form: accepting it would only fail later, at load, with no clear reason.
    with pytest.raises(InvalidArtifact, match=r"input 'x' is BF16.*cast to FP32 or FP16"):
        signature_from_bytes(_bf16_model(at_the_edge=True))


def test_bf16_inside_the_graph_is_fine() -> None:
    sig = signature_from_bytes(_bf16_model(at_the_edge=False))
    assert [t.datatype for t in sig.inputs + sig.outputs] == ["FP32", "FP32"]


def test_stored_bf16_signature_still_reads() -> None:
    # Versions registered before BF16 was refused keep a readable record.
    doc = {"inputs": [{"name": "x", "datatype": "BF16", "shape": [-1]}], "outputs": []}
    assert Signature.from_dict(doc).inputs[0].datatype == "BF16"
