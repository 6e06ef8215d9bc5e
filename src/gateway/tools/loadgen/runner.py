"""Running a load: build the requests, run one client or several processes, summarize."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
from typing import Any

import numpy as np

from gateway.tools.loadgen.client import child_main, run_client
from gateway.tools.loadgen.report import print_progress, summarize
from gateway.tools.loadgen.requests import build_requests, fetch_metadata
from gateway.tools.loadgen.spec import LoadSpec, Record

__all__ = ["run", "run_processes"]


def run_processes(spec: LoadSpec, pool: list[bytes]) -> list[Record]:
    """``spec.procs`` spawned clients, started together; their records, or RuntimeError."""
    ctx = multiprocessing.get_context("spawn")  # NOTE: gRPC's core does not survive fork
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    start_at = ctx.Value("d", 0.0)
    shared = [
        (ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False)) for _ in range(spec.procs)
    ]
    procs = [
        ctx.Process(
            target=child_main, args=(spec, pool, i, d, e, ready, go, start_at, results), daemon=True
        )
        for i, (d, e) in enumerate(shared)
    ]
    for p in procs:
        p.start()
    records: list[Record] = []
    try:
        for _ in procs:
            ready.get(timeout=60)
        start = time.monotonic() + 0.05
        start_at.value = start
        go.set()
        end = start + spec.warmup_s + spec.duration_s
        last, last_t = 0, start
        while len(records) < len(procs) and time.monotonic() < end + spec.timeout_s + 10:
            try:
                _, rec, lat = results.get(timeout=1.0)
                rec.latencies = np.frombuffer(lat, dtype=np.float64).tolist()
                records.append(rec)
                continue
            except queue.Empty:
                pass
            if spec.progress:
                now, done = time.monotonic(), sum(d.value for d, _ in shared)
                print_progress(
                    now - start,
                    (done - last) / max(1e-9, now - last_t),
                    done,
                    sum(e.value for _, e in shared),
                )
                last, last_t = done, now
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
    if len(records) < len(procs):
        raise RuntimeError(f"only {len(records)} of {len(procs)} client processes reported")
    return records


def run(spec: LoadSpec) -> dict[str, Any]:
    """Run one load and return its summary (the ``--json`` document)."""
    pool = build_requests(spec, fetch_metadata(spec))
    if spec.procs == 1:
        records = [asyncio.run(run_client(spec, pool, 0, None, None, None, None))]
    else:
        records = run_processes(spec, pool)
    return summarize(spec, records)
