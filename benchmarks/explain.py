"""Benchmark: explanations per second and latency, batched black box vs row by row.

For each feature count (8, 32, 128 by default) an MLP classifier (``modelzoo.mlp``:
features -> 64 -> 2) is explained, one row per explanation, in two ways with the *same*
explainer (shap's KernelExplainer, ``nsamples="auto"``, ``l1_reg=False``), the same
weighted 32-row k-means background and the same output (class 1 in logit space):

* ``onnxgate``: the gateway's default method (:class:`gateway.explain.service.VersionModel`):
  the black box turns every perturbed row of one explanation into one tensor and runs the
  version's ``InferenceSession`` once on all of them;
* ``row_by_row``: the black box calls the same raw onnxruntime session once per perturbed
  row, as a straightforward wrapper around a single-row predict function does.

Both run in this process, single-threaded onnxruntime (as the gateway loads versions); the
attributions of the two are checked to agree. Latency is per explanation (wall clock).

    PYTHONPATH=src python benchmarks/explain.py [--features 8 32 128] [--rows 20]
        [--naive-rows 3] [--json benchmarks/results/explain.json] [--plot PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from gateway.explain.background import summarise  # noqa: E402
from gateway.explain.kernel import attribute, require_shap  # noqa: E402
from gateway.explain.outputs import choose_output  # noqa: E402
from gateway.explain.service import VersionModel  # noqa: E402
from gateway.serving.runtime import LoadedVersion  # noqa: E402
from gateway.tools import modelzoo  # noqa: E402

BACKGROUND = 32
HIDDEN = 64


def quantile(values: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(values), q))


def run_case(features: int, rows: int, naive_rows: int, seed: int) -> dict[str, Any]:
    data = modelzoo.mlp((features, HIDDEN, 2), seed=seed)
    loaded = LoadedVersion.load("bench", "1", hashlib.sha256(data).hexdigest(), data)
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=(2000, features))
    vm = VersionModel(loaded, summarise(reference, BACKGROUND), ())
    choice = choose_output(vm.background_outputs, "probabilities", 1)
    x = rng.normal(size=(rows, features))
    session = loaded.session

    def row_by_row(m: np.ndarray) -> np.ndarray:
        out = np.empty(m.shape[0])
        for i in range(m.shape[0]):
            probs = session.run(["probabilities"], {"x": m[i : i + 1].astype(np.float32)})[0]
            out[i] = choice.value({"probabilities": probs})[0]
        return out

    batched_ms: list[float] = []
    phis = []
    for i in range(rows):
        start = time.perf_counter()
        _, phi, _ = vm.explain(x[i : i + 1], choice, nsamples="auto")
        batched_ms.append((time.perf_counter() - start) * 1e3)
        phis.append(phi)
    naive_ms: list[float] = []
    max_diff = 0.0
    for i in range(naive_rows):
        start = time.perf_counter()
        _, phi = attribute(row_by_row, x[i : i + 1], vm.background, vm.features)
        naive_ms.append((time.perf_counter() - start) * 1e3)
        max_diff = max(max_diff, float(np.abs(phi - phis[i]).max()))

    def summary(ms: list[float]) -> dict[str, Any]:
        return {
            "explanations": len(ms),
            "per_s": len(ms) / (sum(ms) / 1e3),
            "p50_ms": quantile(ms, 0.5),
            "p99_ms": quantile(ms, 0.99),
            "times_ms": ms,
        }

    result = {
        "features": features,
        "onnxgate": summary(batched_ms),
        "row_by_row": summary(naive_ms),
        "max_abs_difference": max_diff,
    }
    result["speedup_p50"] = result["row_by_row"]["p50_ms"] / result["onnxgate"]["p50_ms"]
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--features", type=int, nargs="+", default=[8, 32, 128])
    p.add_argument("--rows", type=int, default=20, help="explanations per size (onnxgate)")
    p.add_argument("--naive-rows", type=int, default=3, help="explanations per size (naive)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=c.RESULTS / "explain.json")
    p.add_argument("--plot", type=Path, help="write a PNG of explanations/s per size")
    args = p.parse_args()
    if args.naive_rows > args.rows:
        p.error("--naive-rows must be <= --rows (the same rows are compared)")
    shap = require_shap()
    cases = []
    for features in args.features:
        c.log(f"{features} features ...")
        cases.append(run_case(features, args.rows, args.naive_rows, args.seed))
    rows = [
        [
            r["features"],
            f"{r['onnxgate']['per_s']:.2f}",
            f"{r['onnxgate']['p50_ms']:.1f}",
            f"{r['onnxgate']['p99_ms']:.1f}",
            f"{r['row_by_row']['per_s']:.3f}",
            f"{r['row_by_row']['p50_ms']:.0f}",
            f"{r['row_by_row']['p99_ms']:.0f}",
            f"{r['speedup_p50']:.0f}x",
            f"{r['max_abs_difference']:.1e}",
        ]
        for r in cases
    ]
    c.print_table(
        rows,
        [
            "features",
            "onnxgate/s",
            "p50 ms",
            "p99 ms",
            "row-by-row/s",
            "p50 ms",
            "p99 ms",
            "speed-up",
            "max |diff|",
        ],
    )
    doc = {
        "benchmark": "explain",
        "method": "shap.KernelExplainer nsamples=auto l1_reg=False",
        "background_rows": BACKGROUND,
        "model": f"modelzoo.mlp((features, {HIDDEN}, 2)), logit(probabilities[1])",
        "shap": shap.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "command": " ".join(sys.argv),
        "cases": cases,
    }
    c.write_json(args.json, doc)
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [r["features"] for r in cases]
        ax.plot(xs, [r["onnxgate"]["per_s"] for r in cases], "o-", label="onnxgate (batched)")
        ax.plot(xs, [r["row_by_row"]["per_s"] for r in cases], "s-", label="row by row")
        ax.set(xscale="log", yscale="log", xlabel="features", ylabel="explanations/s")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot)
        c.log(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
