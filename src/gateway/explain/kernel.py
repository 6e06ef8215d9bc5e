"""Attributions by ``shap``'s KernelExplainer, with a batched black box.

Why Kernel SHAP for every feature count: it is model-agnostic, it takes a *weighted*
background (the k-means summary of :mod:`gateway.explain.background`), and its estimates
are Shapley values exactly when it can enumerate every coalition (up to 11 features with
``nsamples="auto"``); beyond that it samples coalitions but still enforces additivity
(base + sum of attributions = output) and recovers a linear model's attributions exactly,
because the coalition values of a linear model are linear in the coalition and the
weighted regression fits them without residual. ``l1_reg`` is off: feature selection would
zero some attributions of a linear model.

The black box is one call per explained row on every perturbed row at once (coalitions x
background rows): the caller's ``predict`` turns a float64 matrix into tensors and runs the
ONNX session once, never row by row.

``shap`` is the optional extra ``onnxgate[explain]``, imported on first use (it takes
seconds to import).
"""

from __future__ import annotations

import importlib.util
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.domain import Tensors
from gateway.errors import DeadlineExceeded, FailedPrecondition
from gateway.explain.background import Background
from gateway.explain.outputs import OutputChoice
from gateway.messages import quoted

__all__ = [
    "EXTRA_HINT",
    "METHOD",
    "Runner",
    "attribute",
    "explain_rows",
    "require_shap",
    "shap_installed",
]

FloatArray = npt.NDArray[np.float64]
Predict = Callable[[FloatArray], FloatArray]
Runner = Callable[[FloatArray], Tensors]  # float64 feature rows -> the model's outputs

METHOD = "kernel"
EXTRA_HINT = "pip install 'onnxgate[explain]'"
_import_lock = threading.Lock()
_shap: Any = None


def shap_installed() -> bool:
    if _shap is not None:
        return True
    try:
        return importlib.util.find_spec("shap") is not None
    except (ImportError, ValueError):  # a broken or blocked install (sys.modules entry None)
        return False


def require_shap() -> Any:
    """The ``shap`` module, or FailedPrecondition naming the extra that installs it."""
    global _shap
    if _shap is not None:
        return _shap
    if not shap_installed():
        raise FailedPrecondition(
            f"explanations need the optional package shap: {EXTRA_HINT} on the gateway"
        )
    with _import_lock:
        if _shap is None:
            # NOTE: shap's import touches matplotlib colormaps, which emits a pending-
            # deprecation warning on recent matplotlib; it says nothing about our use.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import shap  # type: ignore[import-untyped]
                import shap.utils._legacy  # type: ignore[import-untyped]  # DenseData
            _shap = shap
    return _shap


def attribute(
    predict: Predict,
    rows: FloatArray,
    background: Background,
    features: tuple[str, ...],
    *,
    nsamples: int | str = "auto",
    seed: int = 0,
) -> tuple[float, FloatArray]:
    """(base value, rows x features attributions) of ``predict`` at ``rows``."""
    shap = require_shap()
    data = shap.utils._legacy.DenseData(
        np.array(background.rows), list(features), None, np.array(background.weights)
    )
    explainer = shap.KernelExplainer(predict, data, link="identity")
    # NOTE: Kernel SHAP draws coalitions from numpy's global generator (beyond 11 features,
    # where it cannot enumerate them); seeding it makes one row's explanation repeatable.
    # Best effort: two explanations running at the same moment share that generator.
    np.random.seed(seed)
    values = explainer.shap_values(rows, nsamples=nsamples, l1_reg=False, silent=True)
    attrs = np.asarray(values, dtype=np.float64).reshape(rows.shape[0], rows.shape[1])
    return float(np.asarray(explainer.expected_value).reshape(-1)[0]), attrs


def explain_rows(
    run: Runner,
    rows: FloatArray,
    choice: OutputChoice,
    background: Background,
    features: tuple[str, ...],
    *,
    nsamples: int | str,
    deadline: float,
    model: str,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(base value, attributions, output value) per row of ``choice`` of ``run``'s outputs."""

    def predict(x: FloatArray) -> FloatArray:
        # One call per explained row: past the deadline the rest is abandoned, so an
        # expired explanation frees its executor slot instead of running to the end.
        if time.monotonic() > deadline:
            raise DeadlineExceeded(f"the explanation of {quoted(model)} passed its deadline")
        return choice.value(run(np.asarray(x, dtype=np.float64)))

    base, attrs = attribute(predict, rows, background, features, nsamples=nsamples)
    return np.full(rows.shape[0], base), attrs, predict(rows)
