"""Parity: does a converted (or optimised) model answer as its original does?

Both run on the same sample; the figures are the largest absolute difference of the
probabilities (classifiers) or values (regressors), and, for classifiers, the share of rows
whose label agrees. A regressor's tolerance is relative to the largest |value| in the
sample (at least 1: ``parity.scale``), as float32 resolves large values only so finely.
They go into the version's lineage metrics (``parity.*``), from which
the validation report's ``parity`` check is built (:func:`registry.validation.parity_check`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Answers", "Parity", "compare", "native_answers", "onnx_answers"]


@dataclass(frozen=True)
class Answers:
    """What a model says about each row: labels (classifiers only) and scores."""

    scores: npt.NDArray[np.float64]  # rows x classes probabilities, or rows x 1 values
    labels: npt.NDArray[Any] | None = None


@dataclass(frozen=True)
class Parity:
    rows: int
    max_abs_diff: float
    label_agreement: float | None  # None for regressors
    scale: float = 1.0  # the tolerance is multiplied by it (regressors: max |value|, >= 1)

    def within(self, tolerance: float) -> bool:
        labels_ok = self.label_agreement is None or self.label_agreement >= 1.0
        return self.max_abs_diff <= tolerance * self.scale and labels_ok

    def describe(self, tolerance: float) -> str:
        allowed = f"{tolerance:.3g}" if self.scale == 1.0 else f"{tolerance:.3g} x {self.scale:.3g}"
        text = f"max |Δ| {self.max_abs_diff:.3g} (tolerance {allowed}) on {self.rows} rows"
        if self.label_agreement is not None:
            text += f", labels agree on {self.label_agreement:.2%}"
        return text

    def metrics(self) -> dict[str, float]:
        out = {"parity.rows": float(self.rows), "parity.max_abs_diff": self.max_abs_diff}
        if self.scale != 1.0:
            out["parity.scale"] = self.scale
        if self.label_agreement is not None:
            out["parity.label_agreement"] = self.label_agreement
        return out


def compare(original: Answers, candidate: Answers) -> Parity:
    a, b = _columns(original.scores), _columns(candidate.scores)
    if a.shape != b.shape:
        raise ValueError(f"scores have shapes {a.shape} and {b.shape}")
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    agreement = None
    if original.labels is not None and candidate.labels is not None:
        la = np.asarray(original.labels).ravel().astype(str)
        lb = np.asarray(candidate.labels).ravel().astype(str)
        agreement = float(np.mean(la == lb)) if la.size else 1.0
    scale = 1.0
    if agreement is None and a.size:
        scale = max(1.0, float(np.max(np.abs(a))))
    return Parity(rows=a.shape[0], max_abs_diff=diff, label_agreement=agreement, scale=scale)


def _columns(scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
    x = np.asarray(scores, dtype=np.float64)
    return x.reshape(x.shape[0], -1)


def native_answers(model: Any, x: npt.NDArray[np.float32]) -> Answers:
    """Run the original model (scikit-learn API, or a LightGBM ``Booster``)."""
    if type(model).__name__ == "Booster" and type(model).__module__.startswith("lightgbm"):
        objective = str(model.dump_model().get("objective", ""))
        raw = np.asarray(model.predict(x), dtype=np.float64)
        if objective.startswith("binary"):
            probs = np.column_stack([1.0 - raw, raw])
            return Answers(probs, (raw > 0.5).astype(np.int64))
        if objective.startswith(("multiclass", "softmax")):
            return Answers(raw, np.argmax(raw, axis=1))
        return Answers(raw.reshape(-1, 1))
    if hasattr(model, "predict_proba"):
        return Answers(np.asarray(model.predict_proba(x)), np.asarray(model.predict(x)))
    return Answers(np.asarray(model.predict(x), dtype=np.float64).reshape(x.shape[0], -1))


def onnx_answers(outputs: Sequence[Any], names: Sequence[str], classifier: bool) -> Answers:
    """Pick the label and score tensors out of a converted model's outputs."""
    by_name: Mapping[str, Any] = dict(zip(names, outputs, strict=True))
    floats = [v for v in by_name.values() if np.asarray(v).dtype.kind == "f"]
    if not floats:
        raise ValueError("the converted model has no float output to compare")
    if not classifier:
        return Answers(np.asarray(floats[0], dtype=np.float64))
    others = [v for v in by_name.values() if np.asarray(v).dtype.kind != "f"]
    labels = np.asarray(others[0]) if others else None
    return Answers(np.asarray(floats[-1], dtype=np.float64), labels)
