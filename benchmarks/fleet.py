"""The fleet's cost, side by side in one run: throughput of 1 process vs 3 processes
(``--workers 3``) with fleet evidence on, and of recording predictions for labels (shared
through the registry so any process can join them) on vs off.

Every point serves ``mlp_small`` from one SQLite registry under a governor policy that
holds (no candidate), so predictions are recorded whenever requests carry an id
(``loadgen --ids``, 4096 distinct ids); without ids nothing is kept. Closed loop, one
loadgen process; the median of ``--rounds`` runs per point.

    python benchmarks/fleet.py [--quick] [--out benchmarks/results/fleet.json]

NOTE: on a 2-core machine 3 workers share 2 cores with the load generator: the 1 vs 3
comparison then measures contention, not scaling. Run it on more cores for scaling.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import _common as c

MODEL = "mlp_small"
HOLD_POLICY = "[canary]\nsteps = [50]\n"  # a policy (predictions recorded), nothing to ramp

# name, workers, fleet. On each server recording is off (no request ids) and on (ids),
# alternated for ``--rounds`` rounds: the on/off pair shares one server, so the machine's
# drift between servers does not enter that comparison.
SERVERS = [
    ("1 process, fleet off", 1, False),
    ("1 process, fleet on", 1, True),
    ("3 workers, fleet on", 3, True),
]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short points")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, help="measured seconds per run")
    p.add_argument("--rounds", type=int, default=3, help="off/on pairs per server")
    p.add_argument("--out", type=Path, default=c.RESULTS / "fleet.json")
    args = p.parse_args()
    duration = args.duration or (2.0 if args.quick else 6.0)
    warmup = 0.5 if args.quick else 2.0
    doc: dict[str, Any] = {"machine": c.machine(), "model": MODEL, "points": []}
    from registry.registry import Registry

    with tempfile.TemporaryDirectory(prefix="onnxgate-fleet-bench-") as tmp:
        url, artifacts = c.make_registry(Path(tmp))
        reg = Registry.open(url, artifacts)
        reg.governor.set_policy(MODEL, HOLD_POLICY, actor="benchmarks")
        reg.close()
        for name, workers, fleet in SERVERS:
            port = c.free_port()
            argv = c.onnxgate_argv(url, artifacts, port, workers=workers, batching=True)
            env = {"ONNXGATE_FLEET": "true" if fleet else "false", "ONNXGATE_LOG_LEVEL": "INFO"}
            marker = ("onnxgate serving on", workers)
            runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
            with c.server(name.replace(" ", "_").replace(",", ""), argv, port, [MODEL],
                          env=env, log_dir=Path(tmp), log_marker=marker) as target:  # fmt: skip
                for _ in range(args.rounds):
                    for ids in (False, True):
                        extra = ["--samples", "4096", "--ids"] if ids else []
                        result = c.run_loadgen(
                            target, MODEL, concurrency=args.concurrency, duration=duration,
                            warmup=warmup, extra=extra,
                        )  # fmt: skip
                        runs[ids].append(c.point(result))
            for ids in (False, True):
                rps = [r["rps"] for r in runs[ids]]
                doc["points"].append({
                    "point": name + (", recording" if ids else ""), "workers": workers,
                    "fleet": fleet, "recording": ids, "rps_median": _median(rps), "rps": rps,
                    "p99_ms_median": round(_median([r["p99_ms"] for r in runs[ids]]), 1),
                    "errors": [r["errors"] for r in runs[ids] if r["errors"]],
                })  # fmt: skip
                c.log(f"{doc['points'][-1]['point']}: {rps} req/s")
            off, on = (doc["points"][-2]["rps_median"], doc["points"][-1]["rps_median"])
            doc["points"][-1]["recording_cost_pct"] = round(100 * (off - on) / off, 1)
    rows = [
        (pt["point"], pt["rps_median"], " ".join(f"{r:g}" for r in pt["rps"]),
         pt["p99_ms_median"], pt.get("recording_cost_pct", ""))
        for pt in doc["points"]
    ]  # fmt: skip
    c.print_table(rows, ["point", "req/s (median)", "runs", "p99 ms", "recording cost %"])
    c.write_json(args.out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
