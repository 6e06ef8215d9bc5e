"""The closed loop over ``ModelStreamInfer``: one bidirectional stream per connection.

Each caller writes a request on its connection's stream and waits for the answer carrying
its id (answers arrive in the order they finish, not the order sent); a reader task per
stream hands each answer to its caller. Ids are set on the prebuilt bytes by appending
the ``id`` field (protobuf keeps the last value of a repeated scalar field), so no request
is re-serialised on the hot path.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import Any

import grpc

from gateway.tools.loadgen.spec import LoadSpec, Record

__all__ = ["MODEL_STREAM_INFER", "stream_closed"]

MODEL_STREAM_INFER = "/inference.GRPCInferenceService/ModelStreamInfer"
_ID_TAG = b"\x1a"  # field 3 (id), wire type 2 (length-delimited)


def _with_id(body: bytes, request_id: str) -> bytes:
    raw = request_id.encode()
    return body + _ID_TAG + bytes([len(raw)]) + raw  # ids stay under 128 bytes


class _Stream:
    """One open stream: serialised writes, and the callers waiting for their answers."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float) -> None:
        from gateway._proto import grpc_service_pb2 as pb

        method: Any = channel.stream_stream(
            MODEL_STREAM_INFER,
            request_serializer=None,
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )
        self.call: Any = method(timeout=timeout)
        self.waiting: dict[str, asyncio.Future[tuple[str, str]]] = {}
        self.writing = asyncio.Lock()

    async def read(self) -> None:
        """Hand every answer to its caller ("OK" or "STREAM_ERROR"); at the end, fail the rest."""
        code = "CANCELLED"
        try:
            while True:
                response = await self.call.read()
                if response is grpc.aio.EOF:
                    break
                waiter = self.waiting.pop(response.infer_response.id, None)
                if waiter is not None and not waiter.done():
                    answer = response.infer_response
                    if response.error_message:
                        waiter.set_result(("STREAM_ERROR", ""))
                    else:
                        waiter.set_result(("OK", answer.model_version))
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        for waiter in self.waiting.values():
            if not waiter.done():
                waiter.set_result((code, ""))

    async def infer(self, body: bytes, request_id: str) -> tuple[str, str]:
        """Send one request; its status name and the version that answered."""
        waiter: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = waiter
        async with self.writing:
            await self.call.write(_with_id(body, request_id))
        return await waiter


async def stream_closed(
    spec: LoadSpec,
    channels: list[grpc.aio.Channel],
    pool: Sequence[bytes],
    rec: Record,
    start: float,
    rng: random.Random,
    share: int,
) -> None:
    """The closed loop at ``share`` callers, spread over one stream per channel."""
    window = (start + spec.warmup_s, start + spec.warmup_s + spec.duration_s)
    streams = [_Stream(ch, spec.warmup_s + spec.duration_s + spec.timeout_s) for ch in channels]
    readers = [asyncio.get_running_loop().create_task(s.read()) for s in streams]

    async def caller(index: int, stream: _Stream) -> None:
        n = 0
        while (t0 := time.monotonic()) < window[1]:
            n += 1
            code, version = await stream.infer(rng.choice(pool), f"{index}-{n}")
            t1 = time.monotonic()
            rec.done += 1
            if code != "OK":
                rec.errors += 1
            if t0 >= window[0]:
                rec.latencies.append(t1 - t0)
                rec.codes[code] += 1
                if version:
                    rec.versions[version] += 1
                if code == "OK" and t1 <= window[1]:
                    rec.ok_in_window += 1
            if code not in ("OK", "STREAM_ERROR"):
                return  # the stream ended: this caller has nowhere to send

    await asyncio.gather(*(caller(i, streams[i % len(streams)]) for i in range(share)))
    for stream in streams:
        await stream.call.done_writing()
    await asyncio.gather(*readers)
