"""Benchmark: vectorised drift statistics against a per-feature scipy loop.

Times :func:`gateway.monitoring.drift.compute_drift` (median of repeats, after one warm-up call)
and a
loop over features calling ``scipy.stats.ks_2samp(method="asymp")``,
``scipy.stats.wasserstein_distance``, ``scipy.spatial.distance.jensenshannon`` and a
straightforward PSI on the same data, for a profile whose KS/Wasserstein sample is bounded
(10,000 rows, the default) and for one that keeps the full reference.

``ks_2samp(method="asymp")`` computes its p-value with ``scipy.stats.kstwo``; the
vectorised default uses the limiting Kolmogorov distribution instead, and
``ks_method="kstwo"`` reproduces scipy (both are timed).

    PYTHONPATH=src python benchmarks/drift.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

# NOTE: one BLAS thread, so both sides are single-threaded: scipy's wasserstein_distance
# calls a BLAS dot whose worker threads otherwise spin and inflate the loop's CPU time.
# Set before numpy is imported; an explicit environment setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import scipy  # noqa: E402
from scipy import stats  # noqa: E402
from scipy.spatial.distance import jensenshannon  # noqa: E402

from gateway.monitoring.drift import DriftReport, compute_drift  # noqa: E402
from gateway.monitoring.profiles import Profile, build_profile  # noqa: E402

FloatArray = npt.NDArray[np.float64]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median_ms(fn: Callable[[], object], repeats: int) -> dict[str, Any]:
    """Median wall and CPU (process) milliseconds; CPU time is less sensitive to other load."""
    fn()  # warm-up: page faults of the large temporaries, scipy's lazy imports
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - start_cpu) * 1e3)
        wall.append((time.perf_counter() - start) * 1e3)
    return {
        "wall_ms": statistics.median(wall),
        "cpu_ms": statistics.median(cpu),
        "wall_times_ms": wall,
        "cpu_times_ms": cpu,
    }


def make_data(
    features: int, ref_rows: int, window_rows: int, seed: int
) -> tuple[FloatArray, FloatArray]:
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.5, 5.0, features)
    centres = rng.uniform(-10, 10, features)
    ref = rng.normal(size=(ref_rows, features)) * scales + centres
    window = rng.normal(size=(window_rows, features)) * scales + centres
    drifted = rng.choice(features, size=max(1, features // 10), replace=False)
    window[:, drifted] += 0.5 * scales[drifted]
    return ref, window


def scipy_loop(profile: Profile, window: FloatArray) -> dict[str, FloatArray]:
    """The same statistics, one feature at a time, with scipy (the baseline)."""
    n = profile.n_features
    out = {k: np.empty(n) for k in ("ks_stat", "ks_p", "wasserstein", "js", "psi")}
    for f in range(n):
        ref, cur = profile.sample[:, f], window[:, f]
        ks = stats.ks_2samp(ref, cur, method="asymp")
        out["ks_stat"][f], out["ks_p"][f] = ks.statistic, ks.pvalue
        out["wasserstein"][f] = stats.wasserstein_distance(ref, cur)
        k = int(profile.n_bins[f])
        ref_counts = profile.ref_counts[f, :k]
        counts = np.bincount(np.searchsorted(profile.edges[f, 1:k], cur), minlength=k)
        out["js"][f] = jensenshannon(ref_counts, counts, base=2)
        p = np.maximum(ref_counts / ref_counts.sum(), 1e-4)
        q = np.maximum(counts / counts.sum(), 1e-4)
        out["psi"][f] = float(np.sum((q - p) * np.log(q / p)))
    return out


def max_diff(report: DriftReport, loop: dict[str, FloatArray]) -> dict[str, float]:
    return {k: float(np.max(np.abs(getattr(report, k) - v))) for k, v in loop.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--ref-rows", type=int, default=100_000)
    parser.add_argument("--window-rows", type=int, default=10_000)
    parser.add_argument("--max-sample", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--loop-repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/drift.json"))
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repeat (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.features, args.ref_rows, args.window_rows = 8, 3_000, 500
        args.max_sample, args.repeats, args.loop_repeats = 1_000, 1, 1

    log(f"data: {args.features} features, {args.ref_rows} reference rows, "
        f"{args.window_rows} window rows")  # fmt: skip
    ref, window = make_data(args.features, args.ref_rows, args.window_rows, args.seed)
    names = [f"f{i}" for i in range(args.features)]
    rows: list[dict[str, Any]] = []
    for label, max_sample in (("bounded", args.max_sample), ("full", args.ref_rows)):
        log(f"[{label}] building profile (sample <= {max_sample} rows)")
        start = time.perf_counter()
        profile = build_profile(ref, names, max_sample=max_sample, seed=args.seed)
        build_ms = (time.perf_counter() - start) * 1e3
        row: dict[str, Any] = {
            "case": label,
            "sample_rows": int(profile.sample.shape[0]),
            "profile_build_ms": build_ms,
        }
        for method in ("kolmogorov", "kstwo"):
            log(f"[{label}] compute_drift(ks_method={method!r}) x {args.repeats}")
            row[f"vectorised_{method}"] = median_ms(
                partial(compute_drift, profile, window, ks_method=method), args.repeats
            )
        log(f"[{label}] scipy loop x {args.loop_repeats}")
        loop = row["scipy_loop"] = median_ms(
            partial(scipy_loop, profile, window), args.loop_repeats
        )
        for method in ("kolmogorov", "kstwo"):
            vec = row[f"vectorised_{method}"]
            row[f"speedup_{method}"] = loop["wall_ms"] / vec["wall_ms"]
            row[f"speedup_{method}_cpu"] = loop["cpu_ms"] / vec["cpu_ms"]
        report = compute_drift(profile, window, ks_method="kstwo")
        row["max_abs_diff_vs_scipy"] = max_diff(report, scipy_loop(profile, window))
        row["drifted_features"] = report.features
        rows.append(row)

    header = (
        f"{'case':<8} {'sample':>7} {'clock':>5} {'vec (ms)':>9} {'vec kstwo':>10} "
        f"{'scipy loop':>11} {'speed-up':>9} {'(kstwo)':>8} {'max |diff|':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        for clock in ("wall", "cpu"):
            suffix = "" if clock == "wall" else "_cpu"
            print(
                f"{r['case']:<8} {r['sample_rows']:>7} {clock:>5} "
                f"{r['vectorised_kolmogorov'][clock + '_ms']:>9.1f} "
                f"{r['vectorised_kstwo'][clock + '_ms']:>10.1f} "
                f"{r['scipy_loop'][clock + '_ms']:>11.1f} "
                f"{r['speedup_kolmogorov' + suffix]:>8.1f}x {r['speedup_kstwo' + suffix]:>7.1f}x "
                f"{max(r['max_abs_diff_vs_scipy'].values()):>11.1e}"
            )
    result = {
        "benchmark": "drift",
        "features": args.features,
        "ref_rows": args.ref_rows,
        "window_rows": args.window_rows,
        "repeats": args.repeats,
        "loop_repeats": args.loop_repeats,
        "quick": args.quick,
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(),
            "blas_threads": os.environ["OPENBLAS_NUM_THREADS"],
        },
        "results": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
