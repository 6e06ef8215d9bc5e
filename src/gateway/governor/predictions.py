"""What the governor reads from a served request: its predictions and its segments.

Which output is the prediction: ``feedback.output`` if the policy names one; otherwise an
output called "label", else the first integer or string output, else the first output.
A float output of several columns in a classification task is read as class scores
(argmax); one float column as a score compared with ``feedback.threshold``. A label is
spelt one way per class (:func:`normalise_label`), so a label joins its prediction
whatever its type. Pure: numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from gateway.domain import ParamValue, Tensors
from gateway.governor.rollout import FeedbackPolicy

__all__ = ["Prediction", "is_positive", "normalise_label", "predictions_of", "segments_of"]

Prediction = str | float


def normalise_label(value: Any) -> str:
    """One spelling per class: 1, 1.0, "1", np.int64(1) all become "1"; text is stripped."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return text
    else:
        number = float(value)
    if number.is_integer():
        return str(int(number))
    return repr(number)


def _output_name(policy: FeedbackPolicy, outputs: Tensors) -> str | None:
    if policy.output:
        return policy.output if policy.output in outputs else None
    if "label" in outputs:
        return "label"
    for name, arr in outputs.items():
        if arr.dtype.kind in "iuOSU":
            return name
    return next(iter(outputs), None)


def predictions_of(policy: FeedbackPolicy, outputs: Tensors) -> list[Prediction]:
    """The per-row prediction a label will be compared with (see the module docstring)."""
    name = _output_name(policy, outputs)
    if name is None:
        return []
    arr = np.asarray(outputs[name])
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if policy.task == "regression":
        col = arr.reshape(arr.shape[0], -1)[:, 0]
        return [float(v) for v in col.astype(np.float64)]
    if arr.dtype.kind == "f":
        flat = arr.reshape(arr.shape[0], -1)
        if flat.shape[1] > 1:
            return [str(int(i)) for i in np.argmax(flat, axis=1)]
        return ["1" if v >= policy.threshold else "0" for v in flat[:, 0]]
    return [normalise_label(v) for v in arr.reshape(arr.shape[0], -1)[:, 0]]


class _Segmented(Protocol):
    """Where segments come from: an ``InferRequest`` or a ``TapRecord``."""

    @property
    def parameters(self) -> Mapping[str, ParamValue]: ...

    @property
    def inputs(self) -> Tensors: ...


def segments_of(policy: FeedbackPolicy, req: _Segmented, rows: int) -> list[str]:
    """Each row's segment: the request parameter, else the input column; "" when neither."""
    if policy.segment_param:
        value = req.parameters.get(policy.segment_param)
        if value is not None and value != "":
            return [str(value)] * rows
    column = policy.segment_column
    if column is not None:
        arr = req.inputs.get(column[0])
        if arr is not None and arr.ndim >= 1 and arr.shape[0] == rows:
            flat = arr.reshape(rows, -1)
            if column[1] < flat.shape[1]:
                return [normalise_label(v) for v in flat[:, column[1]]]
    return [""] * rows


def is_positive(policy: FeedbackPolicy, pred: Prediction) -> bool:
    """Whether ``pred`` counts as a positive prediction (fairness counts)."""
    if policy.task == "regression":
        return float(pred) >= policy.threshold
    return pred == normalise_label(policy.positive)
