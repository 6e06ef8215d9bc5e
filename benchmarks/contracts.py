"""Benchmark: data contracts on the request path, ``[contract] mode`` off vs count vs reject.

Registers the benchmark model with a reference profile (standard-normal rows, so the
load's standard-normal inputs are inside the contract: the check runs, nothing is
refused), starts onnxgate (one worker, batching on) once per mode with the model's policy
saying ``mode = "off"``, ``"count"`` and ``"reject"`` (on valid rows: the check runs,
nothing is refused), drives each with the same closed-loop load (``--concurrency`` in
flight) and prints requests/s, p50/p99, the server's CPU per request (robust to other load
on the machine) and each mode's ratios to ``off``, side by side. Each round rotates the
order of the modes so drift favours none; the load average is printed with the figures.

    PYTHONPATH=src python benchmarks/contracts.py [--model mlp_small] [--duration 5]
        [--rounds 3] [--concurrency 64] [--modes off,count,reject] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import _common as c
import numpy as np


def prepare(registry_url: str, artifacts: Path, model: str) -> None:
    """The model's reference profile (for its contract)."""
    from gateway.monitoring.reference import build_version_profiles
    from registry.registry import Registry

    reg = Registry.open(registry_url, artifacts)
    try:
        rec = reg.get_version(model, "1")
        rows = np.random.default_rng(0).standard_normal((5000, c.MODELS[model][0]))
        doc = build_version_profiles(rec.signature, rows).to_doc()
        reg.set_profile(model, "1", doc, source="reference", actor="benchmarks")
    finally:
        reg.close()


def check_cost(model: str, calls: int = 20000) -> dict[str, float]:
    """CPU microseconds (``time.process_time``, so other load on the machine does not count
    as ours) of one request's contract check, in process: ``off`` and ``count`` on a valid
    one-row request of the model's shape, as the data plane calls it."""
    import time

    from gateway.monitoring.contract_guard import ContractGuard
    from gateway.monitoring.reference import build_version_profiles
    from registry.signature import signature_from_bytes

    signature = signature_from_bytes(c.model_bytes()[model])
    width = c.MODELS[model][0]
    rows = np.random.default_rng(0).standard_normal((5000, width))
    doc = build_version_profiles(signature, rows).to_doc()
    guard = ContractGuard(lambda m, v: (doc, "reference"))
    x = {"x": np.zeros((1, width), dtype=np.float32)}
    out: dict[str, float] = {}
    try:
        for mode in ("off", "count"):
            guard.configure({"m": _Policy(mode)})
            guard.check("m", "1", signature, x)
            while mode != "off" and not guard.ready("m", "1"):
                time.sleep(0.01)
            start = time.process_time()
            for _ in range(calls):
                guard.check("m", "1", signature, x)
            out[mode] = (time.process_time() - start) / calls * 1e6
    finally:
        guard.close()
    return out


class _Policy:
    def __init__(self, mode: str) -> None:
        self.mode, self.margin = mode, 0.1


def set_mode(registry_url: str, artifacts: Path, model: str, mode: str) -> None:
    from registry.registry import Registry

    reg = Registry.open(registry_url, artifacts)
    try:
        toml = f'[contract]\nmode = "{mode}"\n'
        reg.governor.set_policy(model, toml, actor="benchmarks")
    finally:
        reg.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(c.MODELS), default="mlp_small")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    p.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="covers the governor tick that configures the mode",
    )
    p.add_argument("--rounds", type=int, default=3, help="runs of every mode")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--modes", default="off,count,reject", help="comma-separated; off first")
    p.add_argument("--json", type=Path, default=c.RESULTS / "contracts.json")
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    if modes[0] != "off" or not set(modes) <= {"off", "count", "flag", "reject"}:
        p.error("--modes: off first, then some of count, flag, reject")
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    load_before = os.getloadavg()
    env = {"ONNXGATE_LOG_LEVEL": "WARNING", "ONNXGATE_MONITORING": "off"}
    with tempfile.TemporaryDirectory(prefix="onnxgate-bench-contracts-") as tmp:
        directory = Path(tmp)
        registry_url, artifacts = c.make_registry(directory)
        prepare(registry_url, artifacts, args.model)
        for n in range(args.rounds):
            for mode in modes[n % len(modes) :] + modes[: n % len(modes)]:
                c.log(f"round {n + 1}: contract {mode}, {args.model}, {args.duration:g}s")
                set_mode(registry_url, artifacts, args.model, mode)
                point, text = c.measure_onnxgate(
                    f"onnxgate-contracts-{mode}",
                    (registry_url, artifacts),
                    args.model,
                    env,
                    directory,
                    concurrency=args.concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                )
                point["violations"] = text.count("onnxgate_contract_violations_total{")
                runs[mode].append(point)
    rows, summary = [], {}
    for mode, points in runs.items():
        summary[mode] = c.medians(points)
        rps, cpu = summary[mode]["rps_median"], summary[mode]["cpu_us_per_request_median"]
        last = points[-1]
        rows.append(
            (mode, f"{rps:.0f}", f"{cpu:.0f}", f"{last['p50_ms']:.2f}", f"{last['p99_ms']:.2f}",
             sum(last["errors"].values()))
        )  # fmt: skip
    c.print_table(rows, ("CONTRACT", "RPS", "CPU_US/REQ", "P50_MS", "P99_MS", "ERRORS"))
    off = summary["off"]
    ratios = {
        mode: {
            "cpu_ratio": s["cpu_us_per_request_median"]
            / max(off["cpu_us_per_request_median"], 1e-9),
            "rps_ratio": s["rps_median"] / max(off["rps_median"], 1e-9),
        }
        for mode, s in summary.items()
        if mode != "off"
    }
    for mode, r in ratios.items():
        print(
            f"{mode}: server CPU per request x{r['cpu_ratio']:.3f} of off, "
            f"throughput x{r['rps_ratio']:.3f} of off"
        )
    check = check_cost(args.model)
    share = (check["count"] - check["off"]) / max(off["cpu_us_per_request_median"], 1e-9)
    print(
        f"the check alone (in process, CPU time): off {check['off']:.2f} us, count "
        f"{check['count']:.2f} us per request = {share:.2%} of off's server CPU per request"
    )
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    c.write_json(
        args.json,
        {
            "benchmark": "contracts",
            "model": args.model,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "machine": c.machine(),
            "rounds": args.rounds,
            "load_average": {"before": load_before, "after": load_after},
            "ratios": ratios,
            "check_cpu_us": check,
            "check_share_of_off_cpu": share,
            **summary,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
