"""A closed-loop HTTP load for the Open Inference Protocol's REST face (JSON or binary).

``concurrency`` callers on one aiohttp session, each sending when its previous call
returns; bodies are built once before the clock starts. Prints one JSON summary in the
shape :func:`_common.point` reads (rps, latency percentiles, errors, client CPU).

    python benchmarks/http_load.py --url http://127.0.0.1:8000 --model mlp_small \\
        --features 32 --encoding binary --concurrency 64 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import aiohttp
import numpy as np


def _bodies(features: int, encoding: str, samples: int = 64) -> list[tuple[bytes, dict[str, str]]]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(samples):
        x = rng.standard_normal((1, features)).astype(np.float32)
        if encoding == "json":
            doc = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, features],
                               "data": x.reshape(-1).tolist()}]}  # fmt: skip
            out.append((json.dumps(doc).encode(), {"Content-Type": "application/json"}))
        else:
            blob = x.tobytes()
            doc = {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, features],
                            "parameters": {"binary_data_size": len(blob)}}],
                "parameters": {"binary_data_output": True},
            }  # fmt: skip
            header = json.dumps(doc).encode()
            headers = {
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(len(header)),
            }
            out.append((header + blob, headers))
    return out


async def _run(args: argparse.Namespace) -> dict[str, object]:
    url = f"{args.url}/v2/models/{args.model}/infer"
    bodies = _bodies(args.features, args.encoding)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    start = time.perf_counter() + args.warmup
    stop = start + args.duration
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def caller(n: int) -> None:
            i = n
            while True:
                sent = time.perf_counter()
                if sent >= stop:
                    return
                body, headers = bodies[i % len(bodies)]
                i += 1
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    ok = resp.status == 200
                done = time.perf_counter()
                if sent >= start and done <= stop:
                    if ok:
                        latencies.append(done - sent)
                    else:
                        errors[str(resp.status)] = errors.get(str(resp.status), 0) + 1

        cpu0 = time.process_time()
        await asyncio.gather(*(caller(n) for n in range(args.concurrency)))
        cpu = time.process_time() - cpu0
    lat_ms = np.asarray(latencies) * 1000 if latencies else np.asarray([float("nan")])
    return {
        "rps": len(latencies) / args.duration,
        "requests": len(latencies) + sum(errors.values()),
        "errors": errors,
        "latency_ms": {
            f"p{q}": round(float(np.percentile(lat_ms, q)), 3) for q in (50, 90, 99, 99.9)
        },
        "client_cpu_cores": cpu / (args.duration + args.warmup),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--features", type=int, required=True)
    p.add_argument("--encoding", choices=("json", "binary"), default="json")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    args = p.parse_args()
    result = asyncio.run(_run(args))
    result["pid"] = os.getpid()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
