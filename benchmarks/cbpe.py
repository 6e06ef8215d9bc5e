"""Benchmark: onnxgate's label-free performance estimator against NannyML's CBPE.

A logistic model on a synthetic binary task: a reference (with labels) and analysis chunks
whose covariate shift pulls the strongest features towards the decision boundary, so the
realised accuracy falls chunk by chunk. Labels are drawn from the model's own probabilities
(no concept shift: what CBPE assumes). Both estimators are fitted on the same reference and
estimate accuracy, ROC AUC and F1 on the same chunks; printed per chunk: both estimates,
the realised values and the time each estimator took (fit, then all chunks).

NannyML is an optional benchmark dependency, not a runtime or test one
(``pip install nannyml statsmodels``); without it only onnxgate's side runs.

    PYTHONPATH=src python benchmarks/cbpe.py [--rows 5000] [--chunks 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.monitoring import performance as perf
from gateway.monitoring.layout import FeatureLayout
from registry.signature import TensorSpec

WEIGHTS = np.array([2.0, -1.5, 1.0, 0.5])
LAYOUT = FeatureLayout.from_specs(
    [TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 2))]
)
FloatArray = npt.NDArray[np.float64]


def draw(rng: np.random.Generator, rows: int, scale: float) -> tuple[FloatArray, FloatArray]:
    """The model's outputs (label, 1 - p, p) and labels; ``scale`` < 1 shifts the inputs."""
    x = rng.standard_normal((rows, WEIGHTS.size))
    x[:, :2] *= scale
    p = (1.0 / (1.0 + np.exp(-(x @ WEIGHTS)))).astype(np.float32).astype(np.float64)
    y = (rng.random(rows) < p).astype(np.float64)
    return np.column_stack([(p >= 0.5).astype(np.float64), 1.0 - p, p]), y


def realised(out: FloatArray, y: FloatArray) -> dict[str, float]:
    from sklearn.metrics import f1_score, roc_auc_score

    yhat = out[:, 0]
    return {
        "accuracy": float(np.mean(yhat == y)),
        "roc_auc": float(roc_auc_score(y, out[:, 2])),
        "f1": float(f1_score(y, yhat)),
    }


def onnxgate_side(ref: tuple[FloatArray, FloatArray], chunks: list[FloatArray]) -> Any:
    t0 = time.perf_counter()
    est = perf.fit(LAYOUT, ref[0], ref[1])
    out = [est.sums(c).estimate() for c in chunks]
    elapsed = time.perf_counter() - t0
    rows = [{"accuracy": e.accuracy, "roc_auc": e.roc_auc, "f1": e.f1} for e in out]
    return rows, elapsed, est.reason


def nannyml_side(
    ref: tuple[FloatArray, FloatArray], chunks: list[FloatArray], rows: int
) -> tuple[list[dict[str, float]], float] | None:
    try:
        import nannyml as nml
        import pandas as pd
    except ImportError:
        return None
    warnings.filterwarnings("ignore", module="nannyml")  # its own deprecation chatter

    def frame(out: FloatArray, y: FloatArray | None) -> Any:
        d = {"y_pred_proba": out[:, 2], "y_pred": out[:, 0].astype(int)}
        if y is not None:
            d["y_true"] = y.astype(int)
        return pd.DataFrame(d)

    t0 = time.perf_counter()
    cbpe = nml.CBPE(
        y_pred_proba="y_pred_proba",
        y_pred="y_pred",
        y_true="y_true",
        metrics=["accuracy", "roc_auc", "f1"],
        problem_type="classification_binary",
        chunk_size=rows,
    )
    cbpe.fit(frame(*ref))
    analysis = pd.concat([frame(c, None) for c in chunks], ignore_index=True)
    df = cbpe.estimate(analysis).filter(period="analysis").to_df()
    elapsed = time.perf_counter() - t0
    out = [
        {m: float(df[(m, "value")].iloc[i]) for m in ("accuracy", "roc_auc", "f1")}
        for i in range(len(chunks))
    ]
    return out, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=int, default=20_000, help="reference rows")
    ap.add_argument("--rows", type=int, default=5_000, help="rows per analysis chunk")
    ap.add_argument("--chunks", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rng = np.random.default_rng(42)
    ref = draw(rng, args.reference, 1.0)
    scales = np.linspace(1.0, 0.2, args.chunks)
    drawn = [draw(rng, args.rows, float(s)) for s in scales]
    chunks = [c for c, _ in drawn]
    truth = [realised(c, y) for c, y in drawn]
    ours, ours_s, reason = onnxgate_side(ref, chunks)
    theirs = nannyml_side(ref, chunks, args.rows)
    print(f"onnxgate calibration: {reason}")
    print(f"{'chunk':>5} {'shift':>5} {'metric':>8} {'realised':>9} {'onnxgate':>9} {'nannyml':>9}")
    diffs: list[float] = []
    for i, s in enumerate(scales):
        for m in ("accuracy", "roc_auc", "f1"):
            nml_v = "-" if theirs is None else f"{theirs[0][i][m]:.4f}"
            if theirs is not None:
                diffs.append(abs(ours[i][m] - theirs[0][i][m]))
            print(f"{i:>5} {s:>5.2f} {m:>8} {truth[i][m]:>9.4f} {ours[i][m]:>9.4f} {nml_v:>9}")
    print(f"onnxgate: {ours_s * 1e3:.1f} ms (fit + {args.chunks} chunks)")
    if theirs is not None:
        print(f"nannyml:  {theirs[1] * 1e3:.1f} ms (fit + {args.chunks} chunks)")
        print(f"largest |onnxgate - nannyml| over every chunk and metric: {max(diffs):.2e}")
    else:
        print("nannyml: not installed (pip install nannyml statsmodels)")
    if args.json:
        payload = {
            "realised": truth,
            "onnxgate": {"estimates": ours, "seconds": ours_s},
            "nannyml": None if theirs is None else {"estimates": theirs[0], "seconds": theirs[1]},
        }
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
