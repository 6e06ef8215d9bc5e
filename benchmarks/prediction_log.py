"""Benchmark: the prediction log's cost, log off vs on (100 % sampled, inputs kept), in one run.

Starts onnxgate (one worker, batching on) as a subprocess with the log off and on
(``ONNXGATE_PREDICTION_LOG=file:DIR``), drives each with the same closed-loop load
(``loadgen.py`` in its own process), and prints requests/s, p50/p99, server CPU per
request, the records written and dropped (read from the metrics endpoint), and the bytes
per record on disk once the server stopped (SIGTERM flushes and closes its files). Rounds
alternate off/on so that a drifting machine favours neither.

    PYTHONPATH=src python benchmarks/prediction_log.py [--model mlp_small] [--duration 5]
        [--rounds 2] [--concurrency 64] [--sample 1.0] [--no-inputs] [--json PATH]
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path
from typing import Any

import _common as c


def _total(text: str, name: str, labels: str = "") -> float:
    """Sum of the samples of ``name`` whose labels contain ``labels``, in a metrics page."""
    pattern = rf"^{re.escape(name)}(?:{{([^}}]*)}})? (\S+)$"
    return sum(float(v) for lab, v in re.findall(pattern, text, re.M) if labels in (lab or ""))


def measure(
    mode: str, n: int, registry: tuple[str, Path], args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    env = {"ONNXGATE_LOG_LEVEL": "WARNING", "ONNXGATE_MONITORING": "off"}
    log_dir = work / f"log-{mode}-{n}"
    if mode == "on":
        env["ONNXGATE_PREDICTION_LOG"] = f"file:{log_dir}"
        env["ONNXGATE_PREDICTION_LOG_SAMPLE"] = str(args.sample)
        env["ONNXGATE_PREDICTION_LOG_INPUTS"] = "false" if args.no_inputs else "true"
    point, text = c.measure_onnxgate(
        f"onnxgate-log-{mode}",
        registry,
        args.model,
        env,
        work,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
    )
    if mode == "on":
        import pyarrow.parquet as pq

        files = list(log_dir.rglob("*.parquet"))
        records = sum(pq.read_metadata(f).num_rows for f in files)
        size = sum(f.stat().st_size for f in files)
        point["records_on_disk"] = records
        point["bytes_per_record"] = round(size / max(records, 1), 1)
        point["dropped"] = _total(text, "onnxgate_prediction_log_records_total", "dropped")
        point["queue_dropped"] = _total(text, "onnxgate_tap_dropped_total")
    return point


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(c.MODELS), default="mlp_small")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=2, help="off/on pairs")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--sample", type=float, default=1.0, help="prediction_log_sample when on")
    p.add_argument("--no-inputs", action="store_true", help="prediction_log_inputs = false")
    p.add_argument("--json", type=Path, default=c.RESULTS / "prediction_log.json")
    args = p.parse_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="onnxgate-bench-log-") as tmp:
        work = Path(tmp)
        registry = c.make_registry(work)
        for n in range(args.rounds):
            for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
                c.log(f"round {n + 1}: log {mode}, {args.model}, {args.duration:g}s")
                runs[mode].append(measure(mode, n, registry, args, work))
    rows, summary = [], {}
    for mode, points in runs.items():
        summary[mode] = c.medians(points)
        rps, p99 = summary[mode]["rps_median"], summary[mode]["p99_ms_median"]
        cpu = summary[mode]["cpu_us_per_request_median"]
        last = points[-1]
        rows.append(
            (mode, f"{rps:.0f}", f"{p99:.2f}", f"{cpu:.0f}", sum(last["errors"].values()),
             last.get("records_on_disk", "-"), last.get("bytes_per_record", "-"),
             last.get("dropped", "-"), last.get("queue_dropped", "-"))
        )  # fmt: skip
    header = ("LOG", "RPS", "P99_MS", "CPU_US/REQ", "ERRORS", "RECORDS", "BYTES/REC",
              "DROPPED", "QUEUE_DROPPED")  # fmt: skip
    c.print_table(rows, header)
    cost = 1 - summary["on"]["rps_median"] / max(summary["off"]["rps_median"], 1e-9)
    p99_ratio = summary["on"]["p99_ms_median"] / max(summary["off"]["p99_ms_median"], 1e-9)
    print(f"throughput cost of the log: {100 * cost:.1f} % (p99 x{p99_ratio:.2f} of off)")
    c.write_json(
        args.json,
        {"benchmark": "prediction_log", "model": args.model, "concurrency": args.concurrency,
         "duration_s": args.duration, "machine": c.machine(), "throughput_cost": cost,
         "p99_ratio": p99_ratio, **summary},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
