"""One client process: channels, the closed and open loops, and what it saw.

``run_client`` runs in the calling process (``procs`` 1) or, through ``child_main``, in
each spawned process, started together at the parent's time.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import time
from collections.abc import Sequence
from typing import Any, overload

import grpc
import numpy as np

from gateway.tools.loadgen.report import print_progress
from gateway.tools.loadgen.spec import LATE_S, MODEL_INFER, LoadSpec, Record
from gateway.tools.loadgen.streaming import stream_closed

__all__ = ["Shared", "child_main", "run_client"]


class Shared:
    """Progress counters a parent can read: multiprocessing values, or plain ints."""

    def __init__(self, done: Any = None, errors: Any = None) -> None:
        self.done = done
        self.errors = errors


def _channels(spec: LoadSpec) -> list[grpc.aio.Channel]:
    # A local subchannel pool: without it, channels to one target share one connection.
    opts = [("grpc.use_local_subchannel_pool", 1)]
    if spec.tls is None:
        return [
            grpc.aio.insecure_channel(spec.target, options=opts)
            for _ in range(spec.connections_per_proc)
        ]
    ca, cert, key = spec.tls
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    return [
        grpc.aio.secure_channel(spec.target, creds, options=opts)
        for _ in range(spec.connections_per_proc)
    ]


def _infer_call(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> Any:
    from gateway._proto import grpc_service_pb2 as pb

    # request_serializer=None: the prebuilt bytes go out as they are.
    call: Any = channel.unary_unary(
        MODEL_INFER, request_serializer=None, response_deserializer=pb.ModelInferResponse.FromString
    )
    return functools.partial(call, metadata=metadata) if metadata else call


async def _one(
    call: Any, req: bytes, rec: Record, t0: float, window: tuple[float, float], timeout: float
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
    pool: Sequence[bytes],
    rec: Record,
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
    pool: Sequence[bytes],
    rec: Record,
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
    rec: Record, shared: Shared | None, start: float, end: float, printer: bool
) -> None:
    """Copy counters for the parent (several processes) or print the line (one process)."""
    last, last_t = 0, start
    while True:
        await asyncio.sleep(0.25 if shared is not None else 1.0)
        if shared is not None:
            shared.done.value, shared.errors.value = rec.done, rec.errors
        elif printer:
            now = time.monotonic()
            print_progress(
                now - start, (rec.done - last) / max(1e-9, now - last_t), rec.done, rec.errors
            )
            last, last_t = rec.done, now
        if time.monotonic() > end:
            return


class _UniqueIds(Sequence[bytes]):
    """The pool, each pick given an id never sent before (``--unique-ids``): a soak of what
    a gateway keeps per request id. Appended as a second ``id`` field (number 3): protobuf
    takes the last occurrence, so prebuilt requests need no re-encoding."""

    def __init__(self, pool: list[bytes], prefix: str) -> None:
        self._pool = pool
        self._prefix = prefix
        self._count = itertools.count()

    def __len__(self) -> int:
        return len(self._pool)

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            return self._pool[index]
        rid = f"{self._prefix}{next(self._count)}".encode()
        return self._pool[index] + b"\x1a" + bytes([len(rid)]) + rid


async def run_client(
    spec: LoadSpec,
    pool: list[bytes],
    index: int,
    shared: Shared | None,
    ready: Any,
    go: Any,
    start_at: Any,
) -> Record:
    """Run the loop of ``spec.mode`` in this process; ``ready``/``go``/``start_at`` are the
    parent's start barrier when there are several processes (all None when alone)."""
    channels = _channels(spec)
    try:
        for ch in channels:
            await asyncio.wait_for(ch.channel_ready(), timeout=10)
        calls = [_infer_call(ch, spec.metadata) for ch in channels]
        if ready is not None:  # several processes: start together, at the parent's time
            ready.put(index)
            await asyncio.get_running_loop().run_in_executor(None, go.wait, 60)
            start = start_at.value
        else:
            start = time.monotonic()
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        rec = Record()
        cpu0 = time.process_time()
        rng = random.Random(spec.seed * 1009 + index)
        end = start + spec.warmup_s + spec.duration_s
        progress = asyncio.get_running_loop().create_task(
            _progress(rec, shared, start, end, spec.progress)
        )
        # This process's part of the concurrency (the first ones take the remainder).
        share = max(1, spec.concurrency // spec.procs + (index < spec.concurrency % spec.procs))
        picks: Sequence[bytes] = (
            _UniqueIds(pool, f"u{spec.seed}-{index}-") if spec.unique_ids else pool
        )
        if spec.stream:
            await stream_closed(spec, channels, picks, rec, start, rng, share)
        else:
            body = _closed if spec.mode == "closed" else _open
            await body(spec, calls, picks, rec, start, rng, share)
        rec.cpu_s, rec.wall_s = time.process_time() - cpu0, time.monotonic() - start
        progress.cancel()
        return rec
    finally:
        for ch in channels:
            await ch.close()


def child_main(
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
    """A spawned process's entry point: run one client and put its record on ``results``."""
    rec = asyncio.run(run_client(spec, pool, index, Shared(done, errors), ready, go, start_at))
    # Latencies travel as one float64 buffer, not a pickled list of floats.
    lat = np.asarray(rec.latencies, dtype=np.float64).tobytes()
    rec.latencies = []
    results.put((index, rec, lat))
