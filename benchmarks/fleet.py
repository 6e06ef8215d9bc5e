"""The fleet's cost, side by side in one run: throughput of 1 process vs 3 processes
(``--workers 3``) with fleet evidence on, and of recording predictions for labels (shared
through the registry so any process can join them) on vs off.

Every point serves ``mlp_small`` from one SQLite registry under a governor policy that
holds (no candidate), so predictions are recorded whenever requests carry an id
(``loadgen --ids``); without ids nothing is kept. Closed loop, one loadgen process.

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

# name, workers, fleet, request ids (recording)
POINTS = [
    ("1 process, fleet off", 1, False, False),
    ("1 process, fleet off, recording", 1, False, True),
    ("1 process, fleet on", 1, True, False),
    ("1 process, fleet on, recording", 1, True, True),
    ("3 workers, fleet on", 3, True, False),
    ("3 workers, fleet on, recording", 3, True, True),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short points")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, help="measured seconds per point")
    p.add_argument("--out", type=Path, default=c.RESULTS / "fleet.json")
    args = p.parse_args()
    duration = args.duration or (2.0 if args.quick else 10.0)
    warmup = 0.5 if args.quick else 2.0
    doc: dict[str, Any] = {"machine": c.machine(), "model": MODEL, "points": []}
    from registry.registry import Registry

    with tempfile.TemporaryDirectory(prefix="onnxgate-fleet-bench-") as tmp:
        url, artifacts = c.make_registry(Path(tmp))
        reg = Registry.open(url, artifacts)
        reg.governor.set_policy(MODEL, HOLD_POLICY, actor="benchmarks")
        reg.close()
        for name, workers, fleet, ids in POINTS:
            port = c.free_port()
            argv = c.onnxgate_argv(url, artifacts, port, workers=workers, batching=True)
            env = {"ONNXGATE_FLEET": "true" if fleet else "false", "ONNXGATE_LOG_LEVEL": "INFO"}
            marker = ("onnxgate serving on", workers)
            with c.server(name.replace(" ", "_").replace(",", ""), argv, port, [MODEL],
                          env=env, log_dir=Path(tmp), log_marker=marker) as target:  # fmt: skip
                extra = ["--samples", "4096", "--ids"] if ids else []
                result = c.run_loadgen(target, MODEL, concurrency=args.concurrency,
                                       duration=duration, warmup=warmup, extra=extra)  # fmt: skip
            pt = {"point": name, "workers": workers, "fleet": fleet, "recording": ids}
            doc["points"].append({**pt, **c.point(result)})
            c.log(f"{name}: {doc['points'][-1]['rps']} req/s")
    rows = [
        (pt["point"], pt["rps"], pt["p50_ms"], pt["p99_ms"], pt["errors"]) for pt in doc["points"]
    ]
    c.print_table(rows, ["point", "req/s", "p50 ms", "p99 ms", "errors"])
    c.write_json(args.out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
