"""What a load run reports: the progress line, the summary document and its text form."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import asdict
from typing import Any

import numpy as np

from gateway.tools.loadgen.spec import PERCENTILES, LoadSpec, Record

__all__ = ["format_summary", "print_progress", "summarize"]


def print_progress(elapsed: float, rate: float, done: int, errors: int) -> None:
    """The ``[loadgen]`` progress line, on stderr."""
    print(
        f"[loadgen] {elapsed:5.1f}s  {rate:9,.0f} req/s  done {done:,}  errors {errors:,}",
        file=sys.stderr,
        flush=True,
    )


def summarize(spec: LoadSpec, records: list[Record]) -> dict[str, Any]:
    """Merge the processes' records into the summary document (``--json``)."""
    lat_ms = np.concatenate([np.asarray(r.latencies, dtype=np.float64) for r in records]) * 1e3
    codes: Counter[str] = sum((r.codes for r in records), Counter())
    versions: Counter[str] = sum((r.versions for r in records), Counter())
    ok_in_window = sum(r.ok_in_window for r in records)
    ok = codes.get("OK", 0)
    latency = {"mean": float(lat_ms.mean()) if lat_ms.size else None}
    for q in PERCENTILES:
        latency[f"p{q:g}"] = float(np.percentile(lat_ms, q)) if lat_ms.size else None
    latency["max"] = float(lat_ms.max()) if lat_ms.size else None
    spec_d = asdict(spec)
    spec_d.pop("progress")
    # Never the token or the PEM material in a file: only whether they were used.
    spec_d["metadata"] = [name for name, _ in spec.metadata]
    spec_d["tls"] = spec.tls is not None
    out: dict[str, Any] = {
        "spec": spec_d,
        "mode": spec.mode,
        "requests": int(lat_ms.size),
        "ok": ok,
        # Successful responses that arrived inside the measured window, per second.
        "rps": ok_in_window / spec.duration_s,
        "rows_per_s": ok_in_window * spec.rows / spec.duration_s,
        "errors": {k: v for k, v in sorted(codes.items()) if k != "OK"},
        "latency_ms": latency,
        "versions": dict(sorted(versions.items())),
        # Cores the generator itself used: near 1 per process means it may be the limit.
        "client_cpu_cores": sum(r.cpu_s for r in records)
        / max(1e-9, max(r.wall_s for r in records)),
    }
    if spec.mode == "open":
        sent = sum(r.sent for r in records)
        out["open_loop"] = {
            "target_rate": spec.rate,
            "achieved_rate": (sent - sum(r.dropped for r in records)) / spec.duration_s,
            "sent": sent,
            "dropped": sum(r.dropped for r in records),
            "late": sum(r.late for r in records),
        }
    return out


def format_summary(result: dict[str, Any]) -> str:
    """The summary as a few lines of text for people."""
    s, lat = result["spec"], result["latency_ms"]
    what = f"c={s['concurrency']}" if result["mode"] == "closed" else f"rate={s['rate']:g}/s"
    lines = [
        f"{s['target']} {s['model']} {result['mode']} {what} rows={s['rows']} procs={s['procs']}",
        f"  {result['rps']:,.0f} req/s ({result['rows_per_s']:,.0f} rows/s), "
        f"{result['requests']:,} requests",
    ]
    if lat["p50"] is not None:
        pct = "  ".join(f"p{q:g} {lat[f'p{q:g}']:.2f}" for q in PERCENTILES)
        lines.append(f"  latency ms: {pct}  max {lat['max']:.2f}")
    if result["errors"]:
        lines.append(f"  errors: {result['errors']}")
    lines.append(f"  served versions: {result['versions']}")
    lines.append(f"  generator used {result['client_cpu_cores']:.2f} CPU cores")
    if "open_loop" in result:
        o = result["open_loop"]
        lines.append(
            f"  achieved {o['achieved_rate']:,.0f}/s of {o['target_rate']:g}; "
            f"dropped {o['dropped']:,}, late {o['late']:,}"
        )
    return "\n".join(lines)
