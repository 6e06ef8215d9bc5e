"""Benchmark: throughput cost of drift monitoring at full load.

Starts onnxgate (one worker, batching on, the small MLP) as a subprocess with monitoring
on and off (settings env ``ONNXGATE_MONITORING``), drives each with the same closed-loop
load (``loadgen.py`` in its own process, 64 concurrent callers by default) and prints
requests/s, p50/p99 and the throughput loss. Rounds alternate off/on so that a slow
drift of the machine does not favour one mode. With monitoring on, the gateway takes the
version's profile from its first full window and recomputes drift every
``--interval`` seconds, as in production; the monitor's own counters (enqueued/dropped) are
read from the metrics endpoint after each run.

    PYTHONPATH=src python benchmarks/monitoring.py [--duration 5] [--rounds 1]
        [--monitoring on|off|both] [--json PATH]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common as c

MODEL = "mlp_small"


def _metric(text: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return None if match is None else float(match.group(1))


def measure(
    mode: str, registry_url: str, artifacts: Path, args: argparse.Namespace, log_dir: Path
) -> dict[str, Any]:
    env = {
        "ONNXGATE_MONITORING": mode,
        "ONNXGATE_MONITOR_INTERVAL_S": str(args.interval),
        "ONNXGATE_LOG_LEVEL": "WARNING",
    }
    point, text = c.measure_onnxgate(
        f"onnxgate-monitoring-{mode}",
        (registry_url, artifacts),
        MODEL,
        env,
        log_dir,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
    )
    point["monitor_enqueued"] = _metric(text, "onnxgate_monitor_enqueued_total")
    point["monitor_dropped"] = _metric(text, "onnxgate_monitor_dropped_total")
    return point


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--monitoring", choices=("on", "off", "both"), default="both")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=1, help="off/on pairs")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--interval", type=float, default=10.0, help="monitor_interval_s")
    p.add_argument("--json", type=Path, default=c.RESULTS / "monitoring.json")
    args = p.parse_args(argv)
    modes = ("off", "on") if args.monitoring == "both" else (args.monitoring,)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="onnxgate-bench-monitoring-") as tmp:
        directory = Path(tmp)
        registry_url, artifacts = c.make_registry(directory)
        for n in range(args.rounds):
            for mode in modes if n % 2 == 0 else modes[::-1]:
                c.log(f"round {n + 1}: monitoring {mode}, {args.duration:g}s")
                runs[mode].append(measure(mode, registry_url, artifacts, args, directory))
    rows = []
    summary: dict[str, Any] = {}
    for mode, points in runs.items():
        summary[mode] = c.medians(points)
        rps, cpu = summary[mode]["rps_median"], summary[mode]["cpu_us_per_request_median"]
        last = points[-1]
        rows.append(
            (mode, f"{rps:.0f}", f"{cpu:.0f}", f"{last['p50_ms']:.2f}", f"{last['p99_ms']:.2f}",
             sum(last["errors"].values()), last["monitor_enqueued"], last["monitor_dropped"])
        )  # fmt: skip
    header = ("MONITORING", "RPS", "CPU_US/REQ", "P50_MS", "P99_MS", "ERRORS", "ENQUEUED")
    c.print_table(rows, (*header, "DROPPED"))
    if len(modes) == 2:
        on, off = summary["on"], summary["off"]
        loss = 1.0 - on["rps_median"] / off["rps_median"]
        extra_cpu = on["cpu_us_per_request_median"] / off["cpu_us_per_request_median"] - 1.0
        summary["throughput_loss"] = loss
        summary["extra_server_cpu_per_request"] = extra_cpu
        verdict = "meets" if loss < 0.10 else "MISSES"
        print(f"throughput loss with monitoring on: {100 * loss:.1f}% ({verdict} the < 10% target)")
        print(f"server CPU per request with monitoring on: {100 * extra_cpu:+.1f}%")
    c.write_json(
        args.json,
        {
            "benchmark": "monitoring",
            "model": MODEL,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "machine": c.machine(),
            **summary,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
