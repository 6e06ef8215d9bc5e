"""Physical limits, to read every other benchmark against.

1. Raw onnxruntime, in process, no gRPC: rows/s of ``InferenceSession.run`` at batch 1, 2,
   4, ..., 512 for the small and the large MLP, with the session options onnxgate uses
   (all cores intra-op, full graph optimisation). Nothing served can beat this.
2. The echo floor: ``echo_server.py`` (a grpc.aio ModelInfer that returns a precomputed
   response, no inference) under the same load generator as the real servers. No Python
   gRPC server doing per-request work can beat this.

    python benchmarks/ceiling.py [--quick] [--out benchmarks/results/ceiling.json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c
import numpy as np
import onnxruntime as ort


def onnxruntime_rows_per_s(
    data: bytes, batches: list[int], seconds: float, max_calls: int
) -> list[dict[str, Any]]:
    """Time ``session.run`` per batch size for about ``seconds`` (at most ``max_calls``)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        x = rng.standard_normal((batch, int(inp.shape[1]))).astype(np.float32)
        feeds = {inp.name: x}
        for _ in range(3):  # first runs allocate
            session.run(None, feeds)
        calls, start = 0, time.perf_counter()
        while calls < max_calls:
            session.run(None, feeds)
            calls += 1
            if calls % 8 == 0 and time.perf_counter() - start >= seconds:
                break
        elapsed = time.perf_counter() - start
        rows.append(
            {
                "batch": batch,
                "calls_per_s": round(calls / elapsed, 1),
                "rows_per_s": round(calls * batch / elapsed, 1),
                "us_per_call": round(1e6 * elapsed / calls, 2),
            }
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short points, fewer of them")
    p.add_argument("--duration", type=float, help="seconds per echo load point")
    p.add_argument("--out", type=Path, default=c.RESULTS / "ceiling.json")
    args = p.parse_args()
    duration = args.duration or (1.0 if args.quick else 5.0)
    warmup = 0.3 if args.quick else 1.0
    batches = [2**i for i in range(10)]  # 1 .. 512
    models = c.model_bytes()

    doc: dict[str, Any] = {"machine": c.machine(), "onnxruntime": {}, "echo": []}
    for name, data in models.items():
        c.log(f"onnxruntime in process: {name}")
        doc["onnxruntime"][name] = onnxruntime_rows_per_s(
            data, batches, seconds=0.05 if args.quick else 0.5, max_calls=200_000
        )

    points = [("mlp_small", n) for n in ([64] if args.quick else [1, 8, 64])]
    points.append(("mlp_large", 64))
    with tempfile.TemporaryDirectory(prefix="onnxgate-ceiling-") as tmp:
        paths = c.write_models(Path(tmp) / "models")
        port = c.free_port()
        with c.server("echo", c.echo_argv(paths, port), port, list(paths), log_dir=Path(tmp)) as t:
            for model, conc in points:
                c.log(f"echo floor: {model} c={conc} for {duration:g}s")
                result = c.run_loadgen(t, model, concurrency=conc, duration=duration, warmup=warmup)
                doc["echo"].append({"model": model, "concurrency": conc, **c.point(result)})

    print("raw onnxruntime, in process (rows/s)")
    c.print_table(
        [
            (b, *(f"{doc['onnxruntime'][m][i]['rows_per_s']:,.0f}" for m in models))
            for i, b in enumerate(batches)
        ],
        ("batch", *models),
    )
    print("\necho floor (grpc.aio, no inference), loadgen in its own process")
    c.print_table(
        [
            (e["model"], e["concurrency"], f"{e['rps']:,.0f}", f"{e['p99_ms']:.2f}")
            for e in doc["echo"]
        ],
        ("model", "concurrency", "req/s", "p99 ms"),
    )
    c.write_json(args.out, doc)


if __name__ == "__main__":
    main()
