"""How long one large request stalls every other client (issue 21: "no stall over 50 ms").

A gateway serves ``mlp_small`` to a probe: one gRPC caller and one HTTP caller, each sending
its next small request as soon as the last returns. Then, from a separate process (so the
driver's own GIL does not blur the figure), one large request goes in:

* ``json-60MB``: a 60 MB JSON body (750,000 rows of 4 floats) over HTTP;
* ``bytes-12MB``: a gRPC request of 3 million empty BYTES elements (12 MB).

Reported per case, for the gateway with off-loop decoding (``offloop``, the default) and
with every decode inline (``inline``: ``decode_thread_bytes = decode_process_bytes = 0``,
the behaviour before), side by side in one run: how long the large request took, and the
probe's worst gap while it was in flight (the longest any other client waited), beside the
probe's median before it.

    python benchmarks/stall.py [--json benchmarks/results/stall.json] [--plot stall.png]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc

CASES = ("json-60MB", "bytes-12MB")


def _write_bodies(directory: Path) -> dict[str, Path]:
    rows = 750_000
    x = np.random.default_rng(0).random((rows, 4)).round(6).astype(np.float32)
    doc = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4], "data": x.tolist()}]}
    json_path = directory / "big.json"
    json_path.write_bytes(json.dumps(doc).encode())
    count = 3_000_000
    req = pb.ModelInferRequest(model_name="text")
    req.inputs.add(name="x", datatype="BYTES", shape=[count // 3, 3])
    req.raw_input_contents.append(b"\x00\x00\x00\x00" * count)
    bytes_path = directory / "big.pb"
    bytes_path.write_bytes(req.SerializeToString())
    return {"json-60MB": json_path, "bytes-12MB": bytes_path}


def _send(case: str, path: str, target: str, url: str) -> None:
    """In its own process: send one large request, print the seconds it took and its status."""
    start = time.perf_counter()
    if case.startswith("json"):
        response = httpx.post(
            f"{url}/v2/models/lin/infer",
            content=Path(path).read_bytes(),
            headers={"content-type": "application/json"},
            timeout=300,
        )
        status = str(response.status_code)
    else:
        req = pb.ModelInferRequest.FromString(Path(path).read_bytes())
        options = [("grpc.max_send_message_length", 64 << 20)] + [
            ("grpc.max_receive_message_length", 64 << 20)
        ]
        with grpc.insecure_channel(target, options=options) as channel:
            try:
                pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(req, timeout=300)
                status = "OK"
            except grpc.RpcError as exc:
                status = exc.code().name
    print(json.dumps({"seconds": time.perf_counter() - start, "status": status}))


async def _probe(target: str, url: str, stop: asyncio.Event) -> list[tuple[float, float]]:
    """(finish time, latency) of every probe call, gRPC and HTTP callers interleaved."""
    x = np.zeros((1, 32), np.float32).tobytes()
    req = pb.ModelInferRequest(model_name="mlp_small")
    req.inputs.add(name="x", datatype="FP32", shape=[1, 32])
    req.raw_input_contents.append(x)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 32], "data": [0.0] * 32}]}
    samples: list[tuple[float, float]] = []

    async def grpc_caller() -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            while not stop.is_set():
                start = time.perf_counter()
                await stub.ModelInfer(req, timeout=60)
                now = time.perf_counter()
                samples.append((now, now - start))

    async def http_caller() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            while not stop.is_set():
                start = time.perf_counter()
                (await client.post("/v2/models/mlp_small/infer", json=body)).raise_for_status()
                now = time.perf_counter()
                samples.append((now, now - start))

    await asyncio.gather(grpc_caller(), http_caller())
    return samples


async def _case(case: str, body: Path, target: str, url: str) -> dict[str, Any]:
    stop = asyncio.Event()
    probe = asyncio.get_running_loop().create_task(_probe(target, url, stop))
    await asyncio.sleep(2.0)  # the probe's baseline
    sent = time.perf_counter()
    argv = [common.PYTHON, __file__, "--send", case, str(body), target, url]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    done = time.perf_counter()
    await asyncio.sleep(1.0)
    stop.set()
    samples = await probe
    result = json.loads(out)
    before = [lat for t, lat in samples if t < sent]
    # A probe call that was in flight at any moment while the large request was.
    during = [lat for t, lat in samples if t > sent and t - lat < done]
    return {
        "case": case,
        "large_request_s": round(result["seconds"], 3),
        "large_request_status": result["status"],
        "probe_median_before_ms": round(1000 * float(np.median(before)), 2),
        "probe_worst_during_ms": round(1000 * max(during, default=0.0), 1),
        "probe_calls_during": len(during),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=common.RESULTS / "stall.json")
    parser.add_argument("--plot", type=Path, help="bar chart of the worst stalls (PNG)")
    parser.add_argument("--send", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        _send(*args.send)
        return 0
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="onnxgate-stall-") as tmp:
        directory = Path(tmp)
        common.log("writing the large bodies (60 MB JSON, 12 MB BYTES)")
        bodies = _write_bodies(directory)
        url_, artifacts = common.make_registry(directory)
        from gateway.tools import modelzoo
        from registry.registry import Registry

        reg = Registry.open(url_, artifacts)
        reg.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="benchmarks")
        reg.register_version("text", modelzoo.identity("BYTES"), actor="benchmarks")
        reg.close()
        for mode, env in (
            ("offloop", {}),
            ("inline", {"ONNXGATE_DECODE_THREAD_BYTES": "0", "ONNXGATE_DECODE_PROCESS_BYTES": "0"}),
        ):
            port, http_port = common.free_port(), common.free_port()
            argv = common.onnxgate_argv(url_, artifacts, port, workers=1, batching=True)
            argv[argv.index("--http-port") + 1] = str(http_port)
            with common.server(
                f"onnxgate-{mode}", argv, port, ["mlp_small", "lin", "text"], env=env,
                log_dir=directory,
            ) as target:  # fmt: skip
                url = f"http://127.0.0.1:{http_port}"
                for case in CASES:
                    common.log(f"{mode}: {case}")
                    row = asyncio.run(_case(case, bodies[case], target, url))
                    rows.append({"mode": mode, **row})
    header = list(rows[0])
    common.print_table([[row[h] for h in header] for row in rows], header)
    common.write_json(args.json, {"machine": common.machine(), "rows": rows})
    if args.plot:
        _plot(rows, args.plot)
    return 0


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = [f"{r['case']}\n{r['mode']}" for r in rows]
    ax.bar(labels, [r["probe_worst_during_ms"] for r in rows], color="#4c72b0")
    ax.axhline(50, color="#c44e52", linestyle="--", label="50 ms goal")
    ax.set_ylabel("worst wait of another client (ms)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
