"""Benchmark: predict latency with and without explanations running on the same gateway.

One ``onnxgate serve`` process (one worker, defaults: one explanation thread, the
global-importance sampler at 1 request/s) serves ``mlp_small`` (32 features -> 64 -> 64 ->
2) registered with a reference sample. The load generator (its own process) drives
ModelInfer closed-loop at ``--concurrency`` for ``--duration`` seconds, in ``--repeats``
alternating rounds: alone, then while this process keeps one Explain call of
``--explain-rows`` rows in flight at all times. Printed: medians of requests/s and p50/p99
of predict in both phases, the p99 ratio, and the explanations completed per second.

    PYTHONPATH=src python benchmarks/explain_load.py [--concurrency 32] [--duration 10]
        [--json benchmarks/results/explain_load.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

from gateway._proto import explain_pb2 as epb
from gateway._proto import explain_pb2_grpc as epb_grpc
from gateway.monitoring.reference import build_version_profiles, onnx_runner
from registry.registry import Registry

MODEL = "mlp_small"


def make_registry(directory: Path) -> tuple[str, Path]:
    url, artifacts = c.make_registry(directory)
    reg = Registry.open(url, artifacts)
    try:
        rec = reg.get_version(MODEL, "1")
        data = c.model_bytes()[MODEL]
        ref = np.random.default_rng(0).normal(size=(2000, 32))
        doc = build_version_profiles(rec.signature, ref, run=onnx_runner(data)).to_doc()
        reg.set_profile(MODEL, "1", doc, source="reference", actor="benchmarks")
    finally:
        reg.close()
    return url, artifacts


class ExplainLoop:
    """One Explain call in flight at a time, until stopped; counts completions."""

    def __init__(self, target: str, rows: int) -> None:
        x = np.random.default_rng(1).normal(size=(rows, 32))
        self.request = epb.ExplainRequest(model=MODEL, rows=x.reshape(-1).tolist(), shape=x.shape)
        self.request.output_index, self.request.has_output_index = 1, True
        self.channel = grpc.insecure_channel(target)
        self.stub = epb_grpc.ExplainStub(self.channel)
        self.done = 0
        self.errors = 0
        self.stop = threading.Event()
        self.pause = threading.Event()  # set: no new calls (idle is set once none runs)
        self.idle = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            if self.pause.is_set():
                self.idle.set()
                time.sleep(0.05)
                continue
            self.idle.clear()
            try:
                self.stub.Explain(self.request, timeout=120)
                self.done += 1
            except grpc.RpcError:
                self.errors += 1

    def __enter__(self) -> ExplainLoop:
        self.stub.Explain(self.request, timeout=300)  # first call imports shap: not measured
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(180)
        self.channel.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--explain-rows", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds of both phases")
    p.add_argument(
        "--processes", type=int, default=1, help="explain_processes of the gateway (0: threads)"
    )
    p.add_argument("--json", type=Path, default=c.RESULTS / "explain_load.json")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="onnxgate-explain-load-") as tmp:
        url, artifacts = make_registry(Path(tmp))
        port = c.free_port()
        argv = c.onnxgate_argv(url, artifacts, port, workers=1, batching=True)
        env = {"ONNXGATE_EXPLAIN_PROCESSES": str(args.processes)}
        with c.server("onnxgate", argv, port, [MODEL], env=env, log_dir=Path(tmp)) as target:

            def load() -> dict[str, Any]:
                result = c.run_loadgen(
                    target,
                    MODEL,
                    concurrency=args.concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                )
                return c.point(result)

            # Alternating phases, so that a change in the machine's other load (it is
            # shared) falls on both sides; medians over the repeats are reported.
            alone_runs, loaded_runs, rates = [], [], []
            with ExplainLoop(target, args.explain_rows) as loop:
                for i in range(args.repeats):
                    c.log(f"round {i + 1}/{args.repeats}: predict alone ...")
                    loop.pause.set()
                    loop.idle.wait(300)
                    alone_runs.append(load())
                    c.log(f"round {i + 1}/{args.repeats}: predict with explanations ...")
                    before, started = loop.done, time.monotonic()
                    loop.pause.clear()
                    loaded_runs.append(load())
                    rates.append((loop.done - before) / (time.monotonic() - started))
                errors = loop.errors

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return float(np.median([r[key] for r in runs]))

    summary = {
        phase: {k: median(runs, k) for k in ("rps", "p50_ms", "p99_ms")}
        for phase, runs in (("alone", alone_runs), ("with_explanations", loaded_runs))
    }
    ratio = summary["with_explanations"]["p99_ms"] / summary["alone"]["p99_ms"]
    rate = float(np.median(rates))
    rows = [
        [phase, f"{v['rps']:.0f}", f"{v['p50_ms']:.1f}", f"{v['p99_ms']:.1f}"]
        for phase, v in summary.items()
    ]
    c.print_table(rows, ["phase (median)", "predict req/s", "p50 ms", "p99 ms"])
    print(f"explanations: {rate:.2f} calls/s of {args.explain_rows} rows; errors {errors}")
    print(f"predict p99 ratio (with / alone): {ratio:.2f}")
    doc = {
        "benchmark": "explain_load",
        "machine": c.machine(),
        "command": " ".join(sys.argv),
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "repeats": args.repeats,
        "explain_rows": args.explain_rows,
        "explain_processes": args.processes,
        "summary": summary,
        "alone_runs": alone_runs,
        "with_explanations_runs": loaded_runs,
        "explanations_per_s": rates,
        "p99_ratio": ratio,
    }
    c.write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
