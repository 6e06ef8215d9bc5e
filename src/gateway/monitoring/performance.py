"""Label-free performance estimates of classifiers (confidence-based, CBPE).

A version registered with reference labels (``models register --reference-labels``) gets an
:class:`Estimator`: which output columns are its class scores, and a calibration of those
scores fitted on the reference. For a window of served outputs the estimator adds up the
*expected* confusion-matrix entries, taking each row's calibrated probability of each class
as the chance that it is that class:

* expected correct rows ``sum_i q_i[yhat_i]`` (accuracy), and ``sum_i c_i (1 - c_i)``: the
  variance of the number of correct rows if each row is an independent Bernoulli with the
  estimated chance ``c_i`` of being right (the confidence interval, normal approximation);
* per class: expected true positives, false positives and false negatives (F1; macro
  average over classes for multiclass);
* per class and score bin (bins: quantiles of the reference's raw scores): the expected
  positives and negatives (ROC AUC by the Mann-Whitney sum over bins, ties within a bin
  counted half; one-vs-rest macro average for multiclass).

All of it is sums (:class:`PerformanceSums`), so windows and processes merge by addition
and the estimate of a fleet is computed once from merged sums, never averaged.

Calibration: isotonic regression (pool adjacent violators, one-vs-rest per class, rows
renormalised for multiclass; a binary model calibrates the positive class only). It is
skipped, and the estimator says so, when the raw scores are already calibrated: when their
expected calibration error (10 equal-width bins) on the reference is no worse than that
of isotonic scores fitted out-of-fold (3 seeded folds).

The predicted class ``yhat`` is the argmax of the raw scores (what the model answers).
Class scores are found among the outputs: a fixed-width block of probabilities (values in
[0, 1], rows summing to 1), else a single column of values in [0, 1] (a binary positive-
class score). A model without either (a regression) is not estimated; :func:`fit` raises
:class:`NotClassifier` saying so. Pure numpy; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.monitoring.layout import FeatureLayout

__all__ = [
    "Estimate",
    "Estimator",
    "NotClassifier",
    "PerformanceSums",
    "expected_calibration_error",
    "fit",
    "isotonic_fit",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DOC_FORMAT = 1
ISOTONIC = "isotonic"
NONE = "none"
AUC_BINS = 200
ECE_BINS = 10
FOLDS = 3
Z95 = 1.959963984540054
PROB_TOLERANCE = 1e-3  # rows of a probability block sum to 1 within this


class NotClassifier(ValueError):
    """The outputs hold no class scores (a regression model): no estimate."""


def isotonic_fit(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Non-decreasing least-squares fit of ``y`` on ``x`` (pool adjacent violators).

    Returns knots for ``np.interp`` (clipped outside them): the first and last ``x`` of
    every constant block with the block's mean. Ties in ``x`` are pooled first (one
    ``np.unique``); the pooling loop runs over distinct scores once, at registration.
    """
    ux, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=y, minlength=ux.size)
    block_sum: list[float] = []
    block_w: list[float] = []
    block_start: list[int] = []
    for i in range(ux.size):
        s, w, start = float(sums[i]), float(counts[i]), i
        while block_sum and block_sum[-1] * w >= s * block_w[-1]:
            s += block_sum.pop()
            w += block_w.pop()
            start = block_start.pop()
        block_sum.append(s)
        block_w.append(w)
        block_start.append(start)
    starts = np.array(block_start, dtype=np.int64)
    ends = np.append(starts[1:], ux.size) - 1
    means = np.array(block_sum) / np.array(block_w)
    xs = np.column_stack([ux[starts], ux[ends]]).reshape(-1)
    ys = np.repeat(means, 2)
    keep = np.append(True, (np.diff(xs) != 0) | (np.diff(ys) != 0))  # drop repeated knots
    return xs[keep], ys[keep]


def expected_calibration_error(p: FloatArray, y: FloatArray, bins: int = ECE_BINS) -> float:
    """Mean |score - observed rate| over equal-width score bins, weighted by bin size."""
    idx = np.minimum((np.clip(p, 0.0, 1.0) * bins).astype(np.int64), bins - 1)
    sp = np.bincount(idx, weights=p, minlength=bins)
    sy = np.bincount(idx, weights=y, minlength=bins)
    return float(np.abs(sp - sy).sum() / max(p.size, 1))


@dataclass(frozen=True)
class Estimate:
    """Estimated performance of a window (NaN where undefined, e.g. no rows)."""

    rows: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    roc_auc: float
    f1: float

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return None if np.isnan(v) else round(float(v), 6)

        return {
            "rows": self.rows,
            "accuracy": num(self.accuracy),
            "accuracy_ci": [num(self.accuracy_low), num(self.accuracy_high)],
            "roc_auc": num(self.roc_auc),
            "f1": num(self.f1),
        }


@dataclass(frozen=True, eq=False)
class PerformanceSums:
    """Expected confusion-matrix sums of some rows: merge by :meth:`merge` (addition)."""

    rows: int
    correct: float
    correct_var: float
    tp: FloatArray  # per class
    fp: FloatArray
    fn: FloatArray
    pos: FloatArray  # AUC classes x score bins: expected positives
    neg: FloatArray  # expected negatives

    def merge(self, other: PerformanceSums) -> PerformanceSums:
        return PerformanceSums(
            self.rows + other.rows,
            self.correct + other.correct,
            self.correct_var + other.correct_var,
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
            self.pos + other.pos,
            self.neg + other.neg,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "correct": self.correct,
            "correct_var": self.correct_var,
            **{k: getattr(self, k).tolist() for k in ("tp", "fp", "fn", "pos", "neg")},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PerformanceSums:
        arrays = {k: np.asarray(d[k], dtype=np.float64) for k in ("tp", "fp", "fn", "pos", "neg")}
        return cls(int(d["rows"]), float(d["correct"]), float(d["correct_var"]), **arrays)

    def estimate(self) -> Estimate:
        n = self.rows
        if n == 0:
            return Estimate(0, *([float("nan")] * 5))
        acc = self.correct / n
        half = Z95 * float(np.sqrt(self.correct_var)) / n
        denom = 2 * self.tp + self.fp + self.fn
        with np.errstate(invalid="ignore", divide="ignore"):
            f1_k = np.where(denom > 0, 2 * self.tp / denom, np.nan)
            f1 = float(f1_k[1]) if self.tp.size == 2 else float(np.nanmean(f1_k))
            # Mann-Whitney over bins: a negative in bin b is outranked by every positive in
            # a higher bin, and by half of those in its own.
            above = np.cumsum(self.pos[:, ::-1], axis=1)[:, ::-1] - self.pos
            pairs = self.pos.sum(axis=1) * self.neg.sum(axis=1)
            auc_k = (self.neg * (above + 0.5 * self.pos)).sum(axis=1) / pairs
            auc = float(np.nanmean(auc_k)) if np.isfinite(auc_k).any() else float("nan")
        return Estimate(n, acc, max(acc - half, 0.0), min(acc + half, 1.0), auc, f1)


@dataclass(frozen=True, eq=False)
class Estimator:
    """Where a version's class scores are and how they are calibrated (see module docs)."""

    start: int  # first column of the scores in the outputs' feature matrix
    width: int  # 1: a binary positive-class score; >= 2: one column per class
    classes: int
    method: str  # isotonic | none
    reason: str  # why (calibrated or not), said in reports
    knots: tuple[tuple[FloatArray, FloatArray], ...]  # per calibrated class
    edges: FloatArray  # AUC classes x (AUC_BINS - 1) interior score-bin edges
    scores_name: str = ""

    # -- applying ------------------------------------------------------------------------

    def raw(self, outputs: FloatArray) -> FloatArray:
        """Rows x classes raw scores from the outputs' feature matrix."""
        block = np.nan_to_num(outputs[:, self.start : self.start + self.width])
        if self.width == 1:
            p1 = np.clip(block[:, 0], 0.0, 1.0)
            return np.column_stack([1.0 - p1, p1])
        return block

    def calibrated(self, p: FloatArray) -> FloatArray:
        if self.method == NONE:
            return p
        if self.classes == 2:
            q1 = np.interp(p[:, 1], *self.knots[0])
            return np.column_stack([1.0 - q1, q1])
        q = np.column_stack([np.interp(p[:, k], *kn) for k, kn in enumerate(self.knots)])
        total = q.sum(axis=1, keepdims=True)
        out: FloatArray = np.full_like(q, 1.0 / self.classes)
        np.divide(q, total, out=out, where=total > 0)
        return out

    def sums(self, outputs: FloatArray) -> PerformanceSums:
        """Expected confusion sums of a window of served outputs (rows x output features)."""
        p = self.raw(outputs)
        q = self.calibrated(p)
        yhat = np.argmax(p, axis=1)
        c = q[np.arange(q.shape[0]), yhat]
        onehot = yhat[:, None] == np.arange(self.classes)[None, :]
        tp = (q * onehot).sum(axis=0)
        fp = onehot.sum(axis=0) - tp
        fn = q.sum(axis=0) - tp
        auc_classes = [1] if self.classes == 2 else list(range(self.classes))
        pos = np.zeros((len(auc_classes), AUC_BINS))
        neg = np.zeros_like(pos)
        for j, k in enumerate(auc_classes):  # a loop over classes, not rows
            idx = np.searchsorted(self.edges[j], p[:, k], side="left")
            pos[j] = np.bincount(idx, weights=q[:, k], minlength=AUC_BINS)
            neg[j] = np.bincount(idx, weights=1.0 - q[:, k], minlength=AUC_BINS)
        return PerformanceSums(
            int(q.shape[0]), float(c.sum()), float((c * (1.0 - c)).sum()), tp, fp, fn, pos, neg
        )

    def empty(self) -> PerformanceSums:
        return self.sums(np.zeros((0, self.start + self.width)))

    # -- storing -------------------------------------------------------------------------

    def to_doc(self) -> dict[str, Any]:
        return {
            "format": DOC_FORMAT,
            "start": self.start,
            "width": self.width,
            "classes": self.classes,
            "method": self.method,
            "reason": self.reason,
            "scores": self.scores_name,
            "knots": [[x.tolist(), y.tolist()] for x, y in self.knots],
            "edges": self.edges.tolist(),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Estimator:
        if doc.get("format") != DOC_FORMAT:
            raise ValueError(f"unsupported estimator format {doc.get('format')!r}")
        knots = tuple(
            (np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
            for x, y in doc["knots"]
        )
        return cls(
            int(doc["start"]),
            int(doc["width"]),
            int(doc["classes"]),
            str(doc["method"]),
            str(doc["reason"]),
            knots,
            np.asarray(doc["edges"], dtype=np.float64),
            str(doc.get("scores", "")),
        )


def _score_block(layout: FeatureLayout, outputs: FloatArray) -> tuple[int, int, str]:
    """(start, width, tensor name) of the class scores among the outputs (see module docs)."""
    single: tuple[int, int, str] | None = None
    for b in layout.blocks:
        if not b.datatype.startswith("FP"):
            continue
        block = outputs[:, b.start : b.start + b.width]
        if not np.isfinite(block).all() or block.min() < 0.0 or block.max() > 1.0:
            continue
        if b.width >= 2 and np.allclose(block.sum(axis=1), 1.0, atol=PROB_TOLERANCE):
            return b.start, b.width, b.name
        if b.width == 1 and single is None:
            single = (b.start, 1, b.name)
    if single is None:
        raise NotClassifier(
            "no class scores among the monitored outputs (a block of probabilities, or one "
            "score in [0, 1]): a regression model is not estimated (nor scores in a "
            "non-tensor output such as ZipMap's)"
        )
    return single


def _folds(n: int) -> IntArray:
    rng = np.random.default_rng(0)
    return rng.permutation(n) % FOLDS


def _oof_ece(p: FloatArray, y: FloatArray) -> float:
    """ECE of isotonic scores fitted on the other folds (cross-fitted)."""
    fold = _folds(p.size)
    out = np.empty_like(p)
    for f in range(FOLDS):
        test = fold == f
        xs, ys = isotonic_fit(p[~test], y[~test])
        out[test] = np.interp(p[test], xs, ys)
    return expected_calibration_error(out, y)


def fit(
    layout: FeatureLayout,
    outputs: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    calibrate: bool | None = None,
) -> Estimator:
    """An estimator from the reference's outputs (rows x output features) and labels.

    ``calibrate`` forces isotonic calibration on (True) or off (False); None decides by the
    expected calibration error (module docs). Raises :class:`ValueError` (one line) when
    the labels do not fit: lengths differ, or they are not class ids the model can output.
    """
    out = np.asarray(outputs, dtype=np.float64)
    y_raw = np.asarray(labels).reshape(-1)
    if y_raw.size != out.shape[0]:
        raise ValueError(f"{y_raw.size} labels for {out.shape[0]} reference rows")
    start, width, name = _score_block(layout, out)
    classes = max(width, 2)
    y = y_raw.astype(np.float64)
    ok = np.isfinite(y) & (y == np.round(y)) & (y >= 0) & (y < classes)
    if not ok.all():
        bad = y_raw[~ok][0]
        raise ValueError(
            f"label {bad!r} is not a class id the model can output (0..{classes - 1}, from "
            f"output {name!r})"
        )
    yi = y.astype(np.int64)
    probe = Estimator(start, width, classes, NONE, "", (), np.zeros((0, 0)), name)
    p = probe.raw(out)
    cal_classes = [1] if classes == 2 else list(range(classes))
    onehot = (yi[:, None] == np.arange(classes)[None, :]).astype(np.float64)
    raw_ece = float(
        np.mean([expected_calibration_error(p[:, k], onehot[:, k]) for k in cal_classes])
    )
    iso_ece = float(np.mean([_oof_ece(p[:, k], onehot[:, k]) for k in cal_classes]))
    if calibrate is None:
        calibrate = iso_ece < raw_ece
    if calibrate:
        method = ISOTONIC
        reason = f"isotonic: reference ECE {raw_ece:.4f} raw, {iso_ece:.4f} isotonic (out-of-fold)"
        knots = tuple(isotonic_fit(p[:, k], onehot[:, k]) for k in cal_classes)
    else:
        method = NONE
        reason = (
            f"already calibrated: reference ECE {raw_ece:.4f} raw, {iso_ece:.4f} isotonic "
            "(out-of-fold)"
        )
        knots = ()
    qs = np.linspace(0.0, 1.0, AUC_BINS + 1)[1:-1]
    edges = np.stack([np.quantile(p[:, k], qs) for k in cal_classes])
    return Estimator(start, width, classes, method, reason, knots, edges, name)
