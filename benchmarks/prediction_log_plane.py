"""Benchmark: the prediction log's cost on the data plane alone (no transport), in process.

Builds a gateway over a throwaway registry with the small MLP, then calls
``DataPlane.infer`` directly from 32 concurrent tasks for ``--requests`` calls, with the
log off and on (100 % sampled, inputs kept, Parquet in a temporary directory), rounds
alternating; prints requests/s and process CPU per request for each run and the medians.
Without gRPC in the way this isolates what the log adds: the record on the request path
and the worker thread's conversion, which competes with the event loop for the GIL.

    PYTHONPATH=src python benchmarks/prediction_log_plane.py [--rounds 4] [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gateway.domain import InferRequest
from gateway.server import Gateway
from gateway.settings import Settings
from gateway.tools import modelzoo
from registry.registry import Registry


async def _run(directory: Path, on: bool, requests: int) -> tuple[float, float]:
    url = f"sqlite:///{directory / 'registry.db'}"
    extra: dict[str, Any] = {"prediction_log": (f"file:{directory / 'log'}",)} if on else {}
    settings = Settings(registry=url, artifact_dir=directory / "a", host="127.0.0.1", port=0,
                        metrics_port=-1, http_port=-1, monitoring=False, governor=False,
                        **extra)  # fmt: skip
    gateway = Gateway(settings)
    await gateway.start()
    served = next(iter(gateway.catalog.entries()["m"].served.values()))
    name = served.loaded.signature.inputs[0].name
    x = {name: np.random.default_rng(0).random((1, 32), dtype=np.float32)}

    async def calls(first: int) -> None:
        for i in range(first, requests, 32):
            await gateway.plane.infer(InferRequest("m", "", f"id{i}", x), None, None)

    await asyncio.gather(*(calls(k) for k in range(32)))  # warm-up, then measured
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(calls(k) for k in range(32)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await gateway.stop()
    return requests / wall, 1e6 * cpu / requests


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=4, help="off/on pairs")
    p.add_argument("--requests", type=int, default=20_000, help="measured calls per run")
    args = p.parse_args(argv)
    results: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="onnxgate-bench-plane-") as tmp:
        directory = Path(tmp)
        registry = Registry.open(f"sqlite:///{directory / 'registry.db'}", directory / "a")
        registry.register_version("m", modelzoo.mlp((32, 64, 64, 2)), actor="bench")
        registry.close()
        for n in range(args.rounds):
            for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
                rps, cpu = asyncio.run(_run(directory, mode == "on", args.requests))
                results[mode].append((rps, cpu))
                print(f"round {n + 1} log {mode}: {rps:,.0f} calls/s, {cpu:.1f} us CPU/call")
    for mode, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"median log {mode}: {rps:,.0f} calls/s, {cpu:.1f} us CPU/call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
