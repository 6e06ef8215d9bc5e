"""Domain objects passed between the servicers and the core; no protobuf in here."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["InferRequest", "ParamValue", "Tensors"]

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
