"""Benchmark: the response cache on a repeated-input load, cache off vs on, in one run.

Starts onnxgate (one worker, batching on) as a subprocess with the response cache off and
on (settings env ``ONNXGATE_RESPONSE_CACHE=MODEL=ENTRIES``), drives each with the same
closed-loop load (``loadgen.py`` in its own process) whose requests cycle through
``--samples`` distinct prebuilt inputs — so with the cache on, every request after the
first few is a hit — and prints requests/s, p50/p99, and the cache's hits and misses read
from the metrics endpoint. Rounds alternate off/on so a drifting machine favours neither.

    PYTHONPATH=src python benchmarks/cache.py [--model mlp_large] [--duration 5]
        [--rounds 1] [--samples 16] [--json PATH]
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path
from typing import Any

import _common as c


def _total(text: str, name: str) -> float:
    """Sum of every sample of ``name`` (all label sets) in a Prometheus text page."""
    return sum(
        float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    )


def measure(
    mode: str, registry_url: str, artifacts: Path, args: argparse.Namespace, log_dir: Path
) -> dict[str, Any]:
    env = {"ONNXGATE_LOG_LEVEL": "WARNING", "ONNXGATE_MONITORING": "off"}
    if mode == "on":
        env["ONNXGATE_RESPONSE_CACHE"] = f"{args.model}={args.entries}"
    point, text = c.measure_onnxgate(
        f"onnxgate-cache-{mode}",
        (registry_url, artifacts),
        args.model,
        env,
        log_dir,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        extra=["--samples", str(args.samples)],
    )
    point["cache_hits"] = _total(text, "onnxgate_response_cache_hits_total")
    point["cache_misses"] = _total(text, "onnxgate_response_cache_misses_total")
    return point


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(c.MODELS), default="mlp_large")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=1, help="off/on pairs")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--samples", type=int, default=16, help="distinct inputs the load repeats")
    p.add_argument("--entries", type=int, default=1024, help="cache entries for the model")
    p.add_argument("--json", type=Path, default=c.RESULTS / "cache.json")
    args = p.parse_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="onnxgate-bench-cache-") as tmp:
        directory = Path(tmp)
        registry_url, artifacts = c.make_registry(directory)
        for n in range(args.rounds):
            for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
                c.log(f"round {n + 1}: cache {mode}, {args.model}, {args.duration:g}s")
                runs[mode].append(measure(mode, registry_url, artifacts, args, directory))
    rows, summary = [], {}
    for mode, points in runs.items():
        summary[mode] = c.medians(points)
        rps, cpu = summary[mode]["rps_median"], summary[mode]["cpu_us_per_request_median"]
        last = points[-1]
        hits, misses = last["cache_hits"], last["cache_misses"]
        rate = f"{hits / (hits + misses):.3f}" if hits + misses else "-"
        rows.append(
            (mode, f"{rps:.0f}", f"{cpu:.0f}", f"{last['p50_ms']:.2f}", f"{last['p99_ms']:.2f}",
             sum(last["errors"].values()), int(hits), int(misses), rate)
        )  # fmt: skip
    header = (
        "CACHE",
        "RPS",
        "CPU_US/REQ",
        "P50_MS",
        "P99_MS",
        "ERRORS",
        "HITS",
        "MISSES",
        "HIT_RATE",
    )
    c.print_table(rows, header)
    speedup = summary["on"]["rps_median"] / max(summary["off"]["rps_median"], 1e-9)
    cpu_ratio = summary["on"]["cpu_us_per_request_median"] / max(
        summary["off"]["cpu_us_per_request_median"], 1e-9
    )
    print(f"throughput with the cache on: x{speedup:.2f} of off ({args.samples} distinct inputs)")
    print(f"server CPU per request with the cache on: x{cpu_ratio:.2f} of off")
    c.write_json(
        args.json,
        {
            "benchmark": "cache",
            "model": args.model,
            "samples": args.samples,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "machine": c.machine(),
            "speedup": speedup,
            "cpu_ratio": cpu_ratio,
            **summary,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
