"""Benchmark: what tracing costs a call, in process, through the gRPC face's ModelInfer.

Each run builds a gateway over a throwaway registry with the small MLP and calls the
inference servicer's ``ModelInfer`` directly (decode, plane, batcher, encode; no network)
from 32 concurrent tasks, every request carrying a W3C ``traceparent``. Modes:

* ``off``: tracing and the prediction log off (no trace is made);
* ``on``: ``otel_endpoint`` set; spans are built and sent by OTLP/HTTP to a receiver that
  discards them, in a separate process (so only the gateway's own cost is measured);
* ``base``: ``off`` on another source tree (``--base DIR``, e.g. the commit before tracing,
  unpacked with ``git archive``): the cost of the hooks when tracing is off.

Every run is its own process (rounds alternate the modes); prints calls/s and process CPU
per call for each run, the medians, and writes them as JSON (``--json``).

    PYTHONPATH=src python benchmarks/tracing_plane.py [--rounds 4] [--requests 20000]
        [--base /tmp/base/src] [--modes off,on,base] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class _Context:
    """What ModelInfer reads of a grpc.aio context: metadata and the deadline."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("traceparent", TRACEPARENT),)

    def time_remaining(self) -> float | None:
        return None


async def _child(directory: Path, endpoint: str, requests: int) -> dict[str, float]:
    import numpy as np

    from gateway._proto import grpc_service_pb2 as pb
    from gateway.server import Gateway
    from gateway.settings import Settings

    url = f"sqlite:///{directory / 'registry.db'}"
    extra: dict[str, Any] = {"otel_endpoint": endpoint} if endpoint else {}
    settings = Settings(registry=url, artifact_dir=directory / "a", host="127.0.0.1", port=0,
                        metrics_port=-1, http_port=-1, monitoring=False, governor=False,
                        **extra)  # fmt: skip
    gateway = Gateway(settings)
    await gateway.start()
    x = np.random.default_rng(0).random((1, 32), dtype=np.float32)
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 32])
    request.raw_input_contents.append(x.tobytes())
    context: Any = _Context()
    servicer = gateway.inference

    async def calls(first: int) -> None:
        for _ in range(first, requests, 32):
            await servicer.ModelInfer(request, context)

    await asyncio.gather(*(calls(k) for k in range(32)))  # warm-up, then measured
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(calls(k) for k in range(32)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await gateway.stop()
    return {"calls_per_s": requests / wall, "cpu_us_per_call": 1e6 * cpu / requests}


def _run(mode: str, directory: Path, requests: int, base: str | None) -> dict[str, float]:
    src = base if mode == "base" else str(Path(__file__).resolve().parent.parent / "src")
    env = {**os.environ, "PYTHONPATH": src}
    receiver = None
    endpoint = ""
    try:
        if mode == "on":
            receiver = subprocess.Popen(
                [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True
            )
            assert receiver.stdout is not None
            endpoint = f"http://127.0.0.1:{receiver.stdout.readline().strip()}"
        child = [sys.executable, __file__, "--child", str(directory), endpoint, str(requests)]
        out = subprocess.run(child, env=env, check=True, capture_output=True, text=True)
        result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    finally:
        if receiver is not None:
            receiver.terminate()
            receiver.wait()


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, directory, endpoint, requests = sys.argv
        print(json.dumps(asyncio.run(_child(Path(directory), endpoint, int(requests)))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=4, help="rounds of every mode")
    p.add_argument("--requests", type=int, default=20_000, help="measured calls per run")
    p.add_argument("--base", help="src/ of the tree to compare 'off' with (mode base)")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--modes", default="off,on,base", help="comma-separated: off, on, base")
    args = p.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m != "base" or args.base]
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory(prefix="onnxgate-bench-tracing-") as tmp:
        directory = Path(tmp)
        from gateway.tools import modelzoo
        from registry.registry import Registry

        registry = Registry.open(f"sqlite:///{directory / 'registry.db'}", directory / "a")
        registry.register_version("m", modelzoo.mlp((32, 64, 64, 2)), actor="bench")
        registry.close()
        for n in range(args.rounds):
            for mode in modes if n % 2 == 0 else modes[::-1]:
                figures = _run(mode, directory, args.requests, args.base)
                results[mode].append(figures)
                print(f"round {n + 1} {mode}: {figures['calls_per_s']:,.0f} calls/s, "
                      f"{figures['cpu_us_per_call']:.1f} us CPU/call", flush=True)  # fmt: skip
    medians = {
        mode: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for mode, runs in results.items()
    }
    for mode, m in medians.items():
        rate, cpu = m["calls_per_s"], m["cpu_us_per_call"]
        print(f"median {mode}: {rate:,.0f} calls/s, {cpu:.1f} us CPU/call")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"runs": results, "medians": medians, "load": load}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
