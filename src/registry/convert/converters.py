"""Trained model → ONNX bytes: scikit-learn (skl2onnx), LightGBM and XGBoost (onnxmltools).

Every conversion uses the options the gateway needs: ``zipmap`` off (probabilities as a
plain float tensor, so the gateway's outputs are arrays), the caller's target opset, one
float input ``input`` of shape ``[N, features]`` — or, when the sample has column names,
one ``[N, 1]`` input per column, concatenated inside the graph. Every output's first
dimension is left free (``N``): some converters declare ``[1]`` for a label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from registry.convert.native import ConversionError, Sample, require

__all__ = ["Converted", "family_of", "to_onnx"]

INPUT = "input"
_TENSOR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")
_TYPE_IN_MESSAGE = re.compile(r"type '<class '([\w.]+)'>'")


@dataclass(frozen=True)
class Converted:
    """The ONNX bytes and which converter (name and version) produced them."""

    onnx: bytes
    converter: str
    converter_version: str
    family: str  # sklearn | lightgbm | xgboost


def family_of(model: Any) -> str:
    """The library a trained model comes from, by its class's module."""
    root = type(model).__module__.split(".")[0]
    if root in ("sklearn", "lightgbm", "xgboost"):
        return root
    if hasattr(model, "fit") and hasattr(model, "predict"):
        # A user class with a scikit-learn API: only skl2onnx could know it (it will not).
        return "sklearn"
    raise ConversionError(
        f"cannot convert {type(model).__name__}: not a scikit-learn, LightGBM or XGBoost model"
    )


def to_onnx(model: Any, sample: Sample, *, opset: int | None) -> Converted:
    """Convert ``model`` (see the module docstring); one-line errors name what failed."""
    family = family_of(model)
    features = sample.values.shape[1]
    try:
        if family == "sklearn":
            proto, name, version = _sklearn(model, features, opset)
        else:
            proto, name, version = _mltools(model, family, features, opset)
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001 - converters raise many types; report one line
        raise ConversionError(_unsupported(model, exc)) from None
    _free_batch_dimension(proto)
    if sample.columns is not None:
        _inputs_per_column(proto, sample.columns)
    return Converted(proto.SerializeToString(), name, version, family)


def _sklearn(model: Any, features: int, opset: int | None) -> tuple[Any, str, str]:
    skl2onnx = require("skl2onnx", "converting a scikit-learn model")
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(model): {"zipmap": False}} if _is_classifier(model) else None
    proto = skl2onnx.convert_sklearn(
        model,
        initial_types=[(INPUT, FloatTensorType([None, features]))],
        options=options,
        target_opset=opset,
    )
    return proto, "skl2onnx", str(skl2onnx.__version__)


def _mltools(model: Any, family: str, features: int, opset: int | None) -> tuple[Any, str, str]:
    onnxmltools = require("onnxmltools", f"converting a {family} model")
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [(INPUT, FloatTensorType([None, features]))]
    if family == "lightgbm":
        proto = onnxmltools.convert_lightgbm(
            model, initial_types=types, zipmap=False, target_opset=opset
        )
    else:  # xgboost's converter emits plain probability tensors (no ZipMap)
        proto = onnxmltools.convert_xgboost(model, initial_types=types, target_opset=opset)
    return proto, "onnxmltools", str(onnxmltools.__version__)


def _is_classifier(model: Any) -> bool:
    return hasattr(model, "predict_proba")


def _unsupported(model: Any, exc: Exception) -> str:
    """One line naming the estimator the converter could not handle."""
    found = _TYPE_IN_MESSAGE.search(str(exc))
    culprit = found.group(1).rsplit(".", 1)[-1] if found else type(model).__name__
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if found:
        return f"cannot convert {culprit}: the converter has no support for it"
    return f"cannot convert {culprit}: {first[:200]}"


def _free_batch_dimension(proto: Any) -> None:
    for value in list(proto.graph.output) + list(proto.graph.input):
        dims = value.type.tensor_type.shape.dim
        if len(dims) > 0:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"


def _inputs_per_column(proto: Any, columns: tuple[str, ...]) -> None:
    """Replace the one ``[N, features]`` input by one ``[N, 1]`` input per column."""
    onnx = require("onnx", "naming inputs after a sample's columns")
    from onnx import TensorProto, helper

    for column in columns:
        if not _TENSOR_NAME.fullmatch(column):
            raise ConversionError(
                f"sample column {column!r} cannot name an input: use letters, digits, '_', "
                "'.' or '-', starting with a letter or '_'"
            )
    if INPUT in columns:
        raise ConversionError(f"sample column {INPUT!r} is reserved: rename the column")
    if len(set(columns)) != len(columns):
        raise ConversionError("sample columns repeat a name; each column names one input")
    graph = proto.graph
    (original,) = [i for i in graph.input if i.name == INPUT]
    graph.input.remove(original)
    for column in columns:
        graph.input.append(helper.make_tensor_value_info(column, TensorProto.FLOAT, ["N", 1]))
    concat = helper.make_node("Concat", list(columns), [INPUT], axis=1, name="columns_to_input")
    graph.node.insert(0, concat)
    onnx.checker.check_model(proto)
