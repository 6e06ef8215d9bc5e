"""The pure CBPE estimator: isotonic calibration, expected confusion sums, their merge."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import f1_score, roc_auc_score

from gateway.monitoring import performance as perf
from gateway.monitoring.layout import FeatureLayout
from registry.signature import TensorSpec

BINARY = FeatureLayout.from_specs(
    [TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 2))]
)


def _binary(rng: np.random.Generator, rows: int, *, sharpen: float = 1.0, shift: bool = False):
    x = rng.standard_normal((rows, 3))
    if shift:
        x[:, 0] *= 0.3
    truth = 1.0 / (1.0 + np.exp(-(x @ [2.0, -1.0, 0.5])))
    y = (rng.random(rows) < truth).astype(np.int64)
    score = 1.0 / (1.0 + np.exp(-sharpen * (x @ [2.0, -1.0, 0.5])))
    outputs = np.column_stack([(score > 0.5).astype(float), 1.0 - score, score])
    return outputs, y, truth


def test_isotonic_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    x = np.round(rng.random(2000), 2)  # ties
    y = (rng.random(2000) < x).astype(float)
    xs, ys = perf.isotonic_fit(x, y)
    probe = np.linspace(-0.1, 1.1, 500)
    ref = IsotonicRegression(out_of_bounds="clip").fit(x, y).predict(probe)
    np.testing.assert_allclose(np.interp(probe, xs, ys), ref, atol=1e-12)
    assert np.all(np.diff(ys) >= 0)


def test_estimate_tracks_the_truth_under_shift_and_merges_as_sums() -> None:
    rng = np.random.default_rng(1)
    ref_out, ref_y, _ = _binary(rng, 20_000, sharpen=2.5)  # over-confident: calibrated
    est = perf.fit(BINARY, ref_out, ref_y)
    assert est.method == perf.ISOTONIC and est.reason.startswith("isotonic")
    out, y, truth = _binary(rng, 20_000, sharpen=2.5, shift=True)
    sums = est.sums(out)
    e = sums.estimate()
    yhat = out[:, 2] > 0.5
    expected = np.mean(np.where(yhat, truth, 1.0 - truth))  # the accuracy to expect
    assert abs(e.accuracy - expected) < 0.01
    assert e.accuracy_low < np.mean(yhat == y) < e.accuracy_high
    assert abs(e.roc_auc - roc_auc_score(y, out[:, 2])) < 0.02
    assert abs(e.f1 - f1_score(y, yhat)) < 0.02
    halves = est.sums(out[:7000]).merge(est.sums(out[7000:]))
    assert halves.estimate().accuracy == pytest.approx(e.accuracy)
    assert halves.estimate().roc_auc == pytest.approx(e.roc_auc)
    back = perf.PerformanceSums.from_dict(sums.to_dict())
    assert back.estimate() == e
    again = perf.Estimator.from_doc(est.to_doc())
    assert again.sums(out).estimate() == e


def test_calibrated_scores_are_not_recalibrated() -> None:
    rng = np.random.default_rng(2)
    out, y, _ = _binary(rng, 20_000)
    forced = perf.fit(BINARY, out, y, calibrate=False)
    assert forced.method == perf.NONE and forced.reason.startswith("already calibrated")
    np.testing.assert_array_equal(forced.calibrated(forced.raw(out)), forced.raw(out))


def test_multiclass_macro_and_regression_skipped() -> None:
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((6000, 3)) * 2
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (rng.random(6000)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    layout = FeatureLayout.from_specs([TensorSpec("probs", "FP32", (-1, 3))])
    est = perf.fit(layout, p, y)
    assert est.classes == 3
    e = est.sums(p).estimate()
    assert abs(e.accuracy - np.mean(np.argmax(p, axis=1) == y)) < 0.02
    assert abs(e.f1 - f1_score(y, np.argmax(p, axis=1), average="macro")) < 0.03
    assert abs(e.roc_auc - roc_auc_score(y, p, multi_class="ovr")) < 0.03
    with pytest.raises(ValueError, match="not a class id"):
        perf.fit(layout, p, np.full(6000, 3))

    regression = FeatureLayout.from_specs([TensorSpec("value", "FP32", (-1, 1))])
    with pytest.raises(perf.NotClassifier, match="regression"):
        perf.fit(regression, rng.standard_normal((100, 1)) * 10, np.zeros(100))
