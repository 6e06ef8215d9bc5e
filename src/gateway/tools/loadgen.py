"""Load generator for the Open Inference Protocol: ``onnxgate bench`` and ``benchmarks/``.

It speaks ``inference.GRPCInferenceService/ModelInfer`` over ``grpc.aio`` to any server of
that protocol (onnxgate, the echo floor, MLServer, Triton) and measures it:

* **closed loop** (``--concurrency N``): N callers, each sends its next request as soon as
  the previous one returns; throughput is what the server sustains at N in flight.
* **open loop** (``--rate R``): arrivals at R per second, Poisson or uniform, whatever the
  server does; latency counts from the *scheduled* send time (no coordinated omission),
  an arrival finding ``--concurrency`` calls already outstanding is dropped, one sent more
  than ``LATE_S`` after its time is late (the generator could not keep up).

Requests are built once, before the clock starts: inputs come from ModelMetadata (random
values of the right datatype and shape, ``--rows`` rows each) or from ``.npy`` files, and
are serialized to bytes so a call costs the generator no protobuf work. With ``--keys K``
each request carries a ``routing_key`` parameter drawn from a pool of K keys.

``--procs P`` runs P client processes (each with ``--connections`` channels) started
together and merged at the end, so the generator is not what saturates. Only requests
started after ``--warmup`` count; RPS counts responses that arrive inside the window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import random
import struct
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from registry.datatypes import DATATYPE_TO_NUMPY, DATATYPES

__all__ = ["LoadSpec", "add_arguments", "build_requests", "main", "run", "spec_from_args"]

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
LATE_S = 0.002  # open loop: a send this much after its scheduled time counts as late
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass(frozen=True)
class LoadSpec:
    """One load run. ``rate`` None: closed loop at ``concurrency``; else open loop."""

    target: str
    model: str
    version: str = ""
    concurrency: int = 64  # closed loop: callers; open loop: most calls outstanding
    rate: float | None = None
    arrival: str = "poisson"  # or "uniform"
    duration_s: float = 10.0
    warmup_s: float = 1.0
    rows: int = 1
    samples: int = 16  # distinct prebuilt requests (before routing keys)
    inputs: tuple[tuple[str, str], ...] = ()  # (input name or "", path.npy)
    keys: int = 0
    contents: str = "raw"  # "typed" puts values in contents.* (for servers without raw)
    procs: int = 1
    connections: int = 0  # per process; 0: min(concurrency, 8)
    timeout_s: float = 30.0
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.procs < 1 or self.rows < 1 or self.samples < 1:
            raise ValueError("concurrency, procs, rows and samples must be >= 1")
        if self.duration_s <= 0 or self.warmup_s < 0:
            raise ValueError("duration must be > 0 and warmup >= 0")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be > 0")
        if self.arrival not in ("poisson", "uniform") or self.contents not in ("raw", "typed"):
            raise ValueError("arrival is poisson|uniform, contents is raw|typed")

    @property
    def mode(self) -> str:
        return "closed" if self.rate is None else "open"

    @property
    def connections_per_proc(self) -> int:
        # NOTE: several connections, because SO_REUSEPORT spreads *connections* over the
        # gateway's workers; one connection would load one worker only.
        return self.connections or min(self.concurrency, 8)


# -- requests ---------------------------------------------------------------------------------


def _random_values(datatype: str, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
    dtype = DATATYPE_TO_NUMPY[datatype]
    if datatype == "BYTES":
        return np.array([f"s{v}" for v in rng.integers(0, 1000, size=shape).ravel()], dtype=object)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(0, 10, size=shape).astype(dtype)


def _encode(arr: Any, datatype: str) -> bytes:
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in arr.ravel())
    return np.ascontiguousarray(arr).tobytes()


def _file_arrays(spec: LoadSpec, names: Sequence[str]) -> dict[str, Any]:
    arrays: dict[str, Any] = {}
    for name, path in spec.inputs:
        if not name:
            if len(names) != 1:
                raise ValueError(f"model has inputs {list(names)}: pass NAME=FILE.npy for each")
            name = names[0]
        arrays[name] = np.load(path, allow_pickle=False)
    missing = set(names) - set(arrays)
    if missing:
        raise ValueError(f"no .npy file for input(s) {sorted(missing)}")
    return arrays


def build_requests(spec: LoadSpec, metadata: Any) -> list[bytes]:
    """Serialized ModelInferRequests: ``samples`` inputs x ``keys`` routing keys (if any)."""
    from gateway._proto import grpc_service_pb2 as pb

    rng = np.random.default_rng(spec.seed)
    names = [t.name for t in metadata.inputs]
    files = _file_arrays(spec, names) if spec.inputs else {}
    samples = []
    for i in range(spec.samples):
        tensors = []
        for t in metadata.inputs:
            dims = tuple(int(d) for d in t.shape)
            if t.name in files:
                src = files[t.name]
                start = (i * spec.rows) % max(1, src.shape[0])
                arr = np.take(src, range(start, start + spec.rows), axis=0, mode="wrap")
                want = DATATYPE_TO_NUMPY[t.datatype]
                if arr.dtype != want and np.can_cast(arr.dtype, want, casting="same_kind"):
                    arr = arr.astype(want)  # .npy files are often float64; the model says FP32
            else:
                shape = tuple(
                    spec.rows if (j == 0 and d == -1) else max(d, 1) for j, d in enumerate(dims)
                )
                arr = _random_values(t.datatype, shape, rng)
            tensors.append((t.name, t.datatype, arr))
        samples.append(tensors)
    keys: list[str | None] = [f"key-{k}" for k in range(spec.keys)] or [None]
    out: list[bytes] = []
    for k, key in enumerate(keys):
        # Every key gets its own sample set only when that stays small; else key k, sample k.
        chosen = samples if len(keys) * len(samples) <= 4096 else [samples[k % len(samples)]]
        for tensors in chosen:
            req = pb.ModelInferRequest(model_name=spec.model, model_version=spec.version)
            if key is not None:
                req.parameters["routing_key"].string_param = key
            for name, datatype, arr in tensors:
                t = req.inputs.add(name=name, datatype=datatype, shape=arr.shape)
                field = DATATYPES[datatype].contents
                if spec.contents == "raw":
                    req.raw_input_contents.append(_encode(arr, datatype))
                elif field is None:
                    raise ValueError(f"input '{name}': {datatype} can only be sent raw")
                else:
                    values = arr.ravel().tolist()
                    if datatype == "BYTES":
                        values = [str(v).encode() for v in values]
                    getattr(t.contents, field).extend(values)
            out.append(req.SerializeToString())
    return out


def fetch_metadata(spec: LoadSpec, timeout: float = 10.0) -> Any:
    from gateway._proto import grpc_service_pb2 as pb
    from gateway._proto import grpc_service_pb2_grpc as pb_grpc

    with grpc.insecure_channel(spec.target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        req = pb.ModelMetadataRequest(name=spec.model, version=spec.version)
        return stub.ModelMetadata(req, timeout=timeout)


# -- one client process -----------------------------------------------------------------------


@dataclass
class _Record:
    """What one process saw inside the measurement window."""

    latencies: list[float] = field(default_factory=list)  # seconds, requests started in window
    codes: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    ok_in_window: int = 0  # successful responses that arrived before the window closed
    done: int = 0  # every completion, warm-up included (progress line)
    errors: int = 0
    sent: int = 0
    dropped: int = 0
    late: int = 0
    cpu_s: float = 0.0  # this client process's CPU time over the run, all threads
    wall_s: float = 0.0


class _Shared:
    """Progress counters a parent can read: multiprocessing values, or plain ints."""

    def __init__(self, done: Any = None, errors: Any = None) -> None:
        self.done = done
        self.errors = errors


def _channels(spec: LoadSpec) -> list[grpc.aio.Channel]:
    # A local subchannel pool: without it, channels to one target share one connection.
    opts = [("grpc.use_local_subchannel_pool", 1)]
    return [
        grpc.aio.insecure_channel(spec.target, options=opts)
        for _ in range(spec.connections_per_proc)
    ]


def _infer_call(channel: grpc.aio.Channel) -> Any:
    from gateway._proto import grpc_service_pb2 as pb

    # request_serializer=None: the prebuilt bytes go out as they are.
    return channel.unary_unary(
        MODEL_INFER, request_serializer=None, response_deserializer=pb.ModelInferResponse.FromString
    )


async def _one(
    call: Any, req: bytes, rec: _Record, t0: float, window: tuple[float, float], timeout: float
) -> None:
    try:
        resp = await call(req, timeout=timeout)
        code, version = "OK", resp.model_version
    except grpc.aio.AioRpcError as exc:
        code, version = exc.code().name, None
    except Exception:  # noqa: BLE001 - the generator reports, it does not crash mid-run
        code, version = "CLIENT_ERROR", None
    t1 = time.monotonic()
    rec.done += 1
    if code != "OK":
        rec.errors += 1
    if t0 >= window[0]:
        rec.latencies.append(t1 - t0)
        rec.codes[code] += 1
        if version is not None:
            rec.versions[version] += 1
        if code == "OK" and t1 <= window[1]:
            rec.ok_in_window += 1


async def _closed(
    spec: LoadSpec,
    calls: list[Any],
    pool: list[bytes],
    rec: _Record,
    start: float,
    rng: random.Random,
    share: int,
) -> None:
    window = (start + spec.warmup_s, start + spec.warmup_s + spec.duration_s)

    async def caller(call: Any) -> None:
        while (t0 := time.monotonic()) < window[1]:
            await _one(call, rng.choice(pool), rec, t0, window, spec.timeout_s)

    await asyncio.gather(*(caller(calls[i % len(calls)]) for i in range(share)))


async def _open(
    spec: LoadSpec,
    calls: list[Any],
    pool: list[bytes],
    rec: _Record,
    start: float,
    rng: random.Random,
    share: int,
) -> None:
    assert spec.rate is not None
    window = (start + spec.warmup_s, start + spec.warmup_s + spec.duration_s)
    rate = spec.rate / spec.procs
    cap = share
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    scheduled, n = start, 0
    while scheduled < window[1]:
        now = time.monotonic()
        while scheduled <= now and scheduled < window[1]:
            counted = scheduled >= window[0]
            rec.sent += counted
            if len(tasks) >= cap:
                rec.dropped += counted
            else:
                rec.late += counted and now - scheduled > LATE_S
                # Latency counts from the scheduled time: lateness is the server's doing too.
                task = loop.create_task(
                    _one(
                        calls[n % len(calls)],
                        rng.choice(pool),
                        rec,
                        scheduled,
                        window,
                        spec.timeout_s,
                    )
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            gap = rng.expovariate(rate) if spec.arrival == "poisson" else 1.0 / rate
            scheduled += gap
        await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
    if tasks:
        await asyncio.wait(tasks, timeout=spec.timeout_s)


async def _progress(
    rec: _Record, shared: _Shared | None, start: float, end: float, printer: bool
) -> None:
    """Copy counters for the parent (several processes) or print the line (one process)."""
    last, last_t = 0, start
    while True:
        await asyncio.sleep(0.25 if shared is not None else 1.0)
        if shared is not None:
            shared.done.value, shared.errors.value = rec.done, rec.errors
        elif printer:
            now = time.monotonic()
            _print_progress(
                now - start, (rec.done - last) / max(1e-9, now - last_t), rec.done, rec.errors
            )
            last, last_t = rec.done, now
        if time.monotonic() > end:
            return


def _print_progress(elapsed: float, rate: float, done: int, errors: int) -> None:
    print(
        f"[loadgen] {elapsed:5.1f}s  {rate:9,.0f} req/s  done {done:,}  errors {errors:,}",
        file=sys.stderr,
        flush=True,
    )


async def _client(
    spec: LoadSpec,
    pool: list[bytes],
    index: int,
    shared: _Shared | None,
    ready: Any,
    go: Any,
    start_at: Any,
) -> _Record:
    channels = _channels(spec)
    try:
        for ch in channels:
            await asyncio.wait_for(ch.channel_ready(), timeout=10)
        calls = [_infer_call(ch) for ch in channels]
        if ready is not None:  # several processes: start together, at the parent's time
            ready.put(index)
            await asyncio.get_running_loop().run_in_executor(None, go.wait, 60)
            start = start_at.value
        else:
            start = time.monotonic()
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        rec = _Record()
        cpu0 = time.process_time()
        rng = random.Random(spec.seed * 1009 + index)
        end = start + spec.warmup_s + spec.duration_s
        progress = asyncio.get_running_loop().create_task(
            _progress(rec, shared, start, end, spec.progress)
        )
        # This process's part of the concurrency (the first ones take the remainder).
        share = max(1, spec.concurrency // spec.procs + (index < spec.concurrency % spec.procs))
        body = _closed if spec.mode == "closed" else _open
        await body(spec, calls, pool, rec, start, rng, share)
        rec.cpu_s, rec.wall_s = time.process_time() - cpu0, time.monotonic() - start
        progress.cancel()
        return rec
    finally:
        for ch in channels:
            await ch.close()


def _child(
    spec: LoadSpec,
    pool: list[bytes],
    index: int,
    done: Any,
    errors: Any,
    ready: Any,
    go: Any,
    start_at: Any,
    results: Any,
) -> None:
    rec = asyncio.run(_client(spec, pool, index, _Shared(done, errors), ready, go, start_at))
    # Latencies travel as one float64 buffer, not a pickled list of floats.
    lat = np.asarray(rec.latencies, dtype=np.float64).tobytes()
    rec.latencies = []
    results.put((index, rec, lat))


# -- orchestration ------------------------------------------------------------------------------


def _run_procs(spec: LoadSpec, pool: list[bytes]) -> list[_Record]:
    ctx = multiprocessing.get_context("spawn")  # NOTE: gRPC's core does not survive fork
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    start_at = ctx.Value("d", 0.0)
    shared = [
        (ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False)) for _ in range(spec.procs)
    ]
    procs = [
        ctx.Process(
            target=_child, args=(spec, pool, i, d, e, ready, go, start_at, results), daemon=True
        )
        for i, (d, e) in enumerate(shared)
    ]
    for p in procs:
        p.start()
    records: list[_Record] = []
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
                _print_progress(
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


def _summary(spec: LoadSpec, records: list[_Record]) -> dict[str, Any]:
    lat_ms = np.concatenate([np.asarray(r.latencies, dtype=np.float64) for r in records]) * 1e3
    codes: Counter[str] = sum((r.codes for r in records), Counter())
    versions: Counter[str] = sum((r.versions for r in records), Counter())
    ok_in_window = sum(r.ok_in_window for r in records)
    ok = codes.get("OK", 0)
    latency = {"mean": float(lat_ms.mean()) if lat_ms.size else None}
    for q in PERCENTILES:
        latency[f"p{q:g}"] = float(np.percentile(lat_ms, q)) if lat_ms.size else None
    latency["max"] = float(lat_ms.max()) if lat_ms.size else None
    spec_d = asdict(spec)
    spec_d.pop("progress")
    out: dict[str, Any] = {
        "spec": spec_d,
        "mode": spec.mode,
        "requests": int(lat_ms.size),
        "ok": ok,
        # Successful responses that arrived inside the measured window, per second.
        "rps": ok_in_window / spec.duration_s,
        "rows_per_s": ok_in_window * spec.rows / spec.duration_s,
        "errors": {k: v for k, v in sorted(codes.items()) if k != "OK"},
        "latency_ms": latency,
        "versions": dict(sorted(versions.items())),
        # Cores the generator itself used: near 1 per process means it may be the limit.
        "client_cpu_cores": sum(r.cpu_s for r in records)
        / max(1e-9, max(r.wall_s for r in records)),
    }
    if spec.mode == "open":
        sent = sum(r.sent for r in records)
        out["open_loop"] = {
            "target_rate": spec.rate,
            "achieved_rate": (sent - sum(r.dropped for r in records)) / spec.duration_s,
            "sent": sent,
            "dropped": sum(r.dropped for r in records),
            "late": sum(r.late for r in records),
        }
    return out


def run(spec: LoadSpec) -> dict[str, Any]:
    """Run one load and return its summary (the ``--json`` document)."""
    pool = build_requests(spec, fetch_metadata(spec))
    if spec.procs == 1:
        records = [asyncio.run(_client(spec, pool, 0, None, None, None, None))]
    else:
        records = _run_procs(spec, pool)
    return _summary(spec, records)


def format_summary(result: dict[str, Any]) -> str:
    s, lat = result["spec"], result["latency_ms"]
    what = f"c={s['concurrency']}" if result["mode"] == "closed" else f"rate={s['rate']:g}/s"
    lines = [
        f"{s['target']} {s['model']} {result['mode']} {what} rows={s['rows']} procs={s['procs']}",
        f"  {result['rps']:,.0f} req/s ({result['rows_per_s']:,.0f} rows/s), "
        f"{result['requests']:,} requests",
    ]
    if lat["p50"] is not None:
        pct = "  ".join(f"p{q:g} {lat[f'p{q:g}']:.2f}" for q in PERCENTILES)
        lines.append(f"  latency ms: {pct}  max {lat['max']:.2f}")
    if result["errors"]:
        lines.append(f"  errors: {result['errors']}")
    lines.append(f"  served versions: {result['versions']}")
    lines.append(f"  generator used {result['client_cpu_cores']:.2f} CPU cores")
    if "open_loop" in result:
        o = result["open_loop"]
        lines.append(
            f"  achieved {o['achieved_rate']:,.0f}/s of {o['target_rate']:g}; "
            f"dropped {o['dropped']:,}, late {o['late']:,}"
        )
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The load flags, shared by ``onnxgate bench`` and ``benchmarks/loadgen.py``."""
    target = os.environ.get("ONNXGATE_TARGET", "127.0.0.1:8001")
    p.add_argument("--target", default=target, help="HOST:PORT (env ONNXGATE_TARGET)")
    p.add_argument("--model", required=True)
    p.add_argument("--model-version", default="", help="pin a version (default: routed)")
    p.add_argument("--concurrency", type=int, default=64, help="callers (open loop: cap in flight)")
    p.add_argument("--rate", type=float, help="open loop: target requests/s")
    p.add_argument("--arrival", choices=("poisson", "uniform"), default="poisson")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds not measured")
    p.add_argument("--rows", type=int, default=1, help="batch rows per request")
    p.add_argument("--samples", type=int, default=16, help="distinct prebuilt inputs")
    p.add_argument("--input", action="append", default=[], metavar="[NAME=]FILE.npy")
    p.add_argument("--keys", type=int, default=0, help="routing keys in the pool (0: none)")
    p.add_argument("--contents", choices=("raw", "typed"), default="raw")
    p.add_argument("--procs", type=int, default=1, help="client processes")
    p.add_argument("--connections", type=int, default=0, help="per process (0: min(c, 8))")
    p.add_argument("--timeout", type=float, default=30.0, help="per-call deadline, seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--json", metavar="PATH", help="write the summary as JSON")


def spec_from_args(args: argparse.Namespace) -> LoadSpec:
    inputs = tuple((name, path) for name, _, path in (i.rpartition("=") for i in args.input))
    return LoadSpec(
        target=args.target,
        model=args.model,
        version=args.model_version,
        concurrency=args.concurrency,
        rate=args.rate,
        arrival=args.arrival,
        duration_s=args.duration,
        warmup_s=args.warmup,
        rows=args.rows,
        samples=args.samples,
        inputs=inputs,
        keys=args.keys,
        contents=args.contents,
        procs=args.procs,
        connections=args.connections,
        timeout_s=args.timeout,
        seed=args.seed,
        progress=not args.quiet,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run, print the summary, write ``--json``; exit 0, 1 if no request succeeded, 2 on
    bad arguments."""
    try:
        spec = spec_from_args(args)
    except ValueError as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    result = run(spec)
    print(format_summary(result))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="loadgen", description=__doc__.split("\n")[0])
    add_arguments(p)
    return run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
