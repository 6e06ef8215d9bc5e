"""Domain objects passed between the transports and the core; no protobuf in here."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["InferRequest", "InferResult", "ParamValue", "Tensors"]

Tensors = dict[str, npt.NDArray[np.generic]]
ParamValue = bool | int | float | str


@dataclass(slots=True)
class InferRequest:
    """One decoded ModelInfer call: tensors as numpy views over the request's bytes."""

    model: str
    version: str
    id: str
    inputs: Tensors
    requested_outputs: tuple[str, ...] = ()
    parameters: dict[str, ParamValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InferResult:
    """What the data plane served for one request, ready for any transport to encode.

    ``version`` and ``role`` are the ones routing chose; ``outputs`` are filtered to the
    requested ones (all of them when none was named); ``rows`` is the row count validation
    computed (1 for a model without a batch dimension); ``flagged`` names the input
    features outside the version's data contract when its model's contract mode is
    ``flag`` (empty otherwise).
    """

    model: str
    version: str
    role: str
    request_id: str
    outputs: Tensors
    rows: int
    flagged: tuple[str, ...] = ()
