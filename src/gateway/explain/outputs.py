"""Which number of a model's outputs is explained, and in which space.

A regression output (one float column) is explained as it is. A probability output (float
columns in [0, 1] whose rows sum to 1 on the background) is explained in margin space, the
log-odds, where a logistic or softmax model is linear and attributions are exact:

* two classes: ``log p_k - log p_other`` (the logistic regression's own margin);
* more classes: ``log p_k - mean_j log p_j`` (the softmax's logits, centred).

Attributions of probabilities would not add up linearly for such models, and their base
value would be the mean probability, not the probability of the mean; margins avoid both.

Pure numpy; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from gateway.errors import InvalidArgument
from gateway.messages import name_list, quoted

__all__ = ["OutputChoice", "choose_output"]

FloatArray = npt.NDArray[np.float64]
Space = Literal["identity", "logit"]

_EPS = 1e-15  # probabilities are clipped here before the log: 0 and 1 have no margin
_SUM_TOL = 1e-3


@dataclass(frozen=True)
class OutputChoice:
    """One column of one output, and the space it is explained in."""

    name: str
    index: int
    width: int
    space: Space

    @property
    def label(self) -> str:
        """How the explanation names what it explains, e.g. ``logit(probabilities[1])``."""
        column = f"{self.name}[{self.index}]"
        return column if self.space == "identity" else f"logit({column})"

    def value(self, outputs: Mapping[str, npt.NDArray[np.generic]]) -> FloatArray:
        """The explained number of each row of a run's ``outputs``."""
        arr = np.asarray(outputs[self.name], dtype=np.float64)
        cols = arr.reshape(arr.shape[0], -1)
        if self.space == "identity":
            return np.ascontiguousarray(cols[:, self.index])
        logp = np.log(np.clip(cols, _EPS, 1.0))
        if self.width == 2:
            return np.asarray(logp[:, self.index] - logp[:, 1 - self.index])
        return np.asarray(logp[:, self.index] - logp.mean(axis=1))


def _is_probability(cols: FloatArray) -> bool:
    if cols.shape[1] < 2 or not np.isfinite(cols).all():
        return False
    in_range = bool((cols >= -_SUM_TOL).all() and (cols <= 1 + _SUM_TOL).all())
    return in_range and bool(np.allclose(cols.sum(axis=1), 1.0, atol=_SUM_TOL))


def choose_output(
    outputs: Mapping[str, npt.NDArray[np.generic]], name: str = "", index: int = -1
) -> OutputChoice:
    """Pick the output column to explain from a run on the background.

    ``name`` defaults to the first float output (class labels are integers or strings and
    have no attribution); ``index`` (-1: not given) defaults to the only column, or to
    class 1 of a two-class output; an output of more columns needs it.
    """
    floats = [n for n, a in outputs.items() if np.asarray(a).dtype.kind == "f"]
    if name:
        if name not in outputs:
            raise InvalidArgument(
                f"output: {quoted(name)} does not exist; outputs are [{name_list(list(outputs))}]"
            )
        if name not in floats:
            raise InvalidArgument(
                f"output: {quoted(name)} is not a float output; explainable outputs are "
                f"[{name_list(floats)}]"
            )
    elif not floats:
        raise InvalidArgument("output: the model has no float output to explain")
    else:
        name = floats[0]
    arr = np.asarray(outputs[name], dtype=np.float64)
    cols = arr.reshape(arr.shape[0], -1) if arr.ndim else arr.reshape(1, 1)
    width = int(cols.shape[1])
    if index < 0:
        if width > 2:
            raise InvalidArgument(
                f"output_index: output {quoted(name)} has {width} columns; choose one "
                f"(0..{width - 1})"
            )
        index = width - 1
    if index >= width:
        raise InvalidArgument(
            f"output_index: {index} is out of range; output {quoted(name)} has {width} column(s)"
        )
    space: Space = "logit" if _is_probability(cols) else "identity"
    return OutputChoice(name, index, width, space)
