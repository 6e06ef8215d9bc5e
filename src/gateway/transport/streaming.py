"""Triton's ``ModelStreamInfer``: many inferences over one bidirectional gRPC stream.

Every request read from the stream goes through :meth:`DataPlane.infer`, exactly like a
unary ``ModelInfer`` (routing, pinning, batching, admission, accounting, taps), and gets
exactly one ``ModelStreamInferResponse`` back: ``infer_response`` on success, or
``error_message`` (with ``infer_response`` carrying the model, version and id, so the
client can tell which request failed) when that one request could not be served. A bad
request never ends the stream.

Requests on one stream are served concurrently, in the order they finish, up to
:data:`STREAM_WINDOW` at a time: a slot is taken before the next request is read and given
back only once its response has been written. A client that sends without reading therefore
stops being read (gRPC flow control pushes back to it) instead of growing the server's
memory.

Bodies decode where unary ones do (:class:`~gateway.transport.decoding.Decoder`): a large
BYTES or typed-``contents`` request, or a large answer, is converted on a thread, so the
other requests of the stream (and of every other call) keep being answered meanwhile.

The stream's lifetime: a client that cancels (or whose deadline passes) cancels its
requests in flight; :meth:`StreamInference.drain` (SIGTERM) stops reading every stream,
lets the requests already read finish and be answered, then ends each stream with
``UNAVAILABLE`` so the client reconnects to another replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import grpc

from gateway._proto import grpc_service_pb2 as pb
from gateway.errors import GatewayError, Unavailable
from gateway.messages import cap_message
from gateway.serving.caller import caller
from gateway.serving.dataplane import DataPlane
from gateway.transport import oip
from gateway.transport.auth import principal
from gateway.transport.decoding import Decoder
from gateway.transport.inference import answer, metadata_value
from gateway.transport.status import INTERNAL_MESSAGE, status_for

__all__ = ["STREAM_WINDOW", "StreamInference"]

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

STREAM_WINDOW = 64
"""Requests of one stream in flight at once (read, not yet answered)."""

DRAINING_MESSAGE = "gateway is shutting down; reconnect the stream to another replica"


class _Stream:
    """One open stream: its window, its outbox, its routing key and deadline."""

    def __init__(
        self,
        owner: StreamInference,
        plane: DataPlane,
        decoder: Decoder,
        context: Context,
        window: int,
    ) -> None:
        self.owner = owner
        self.plane = plane
        self.decoder = decoder
        self.context = context
        self.slots = asyncio.Semaphore(window)
        # grpc.aio allows one write at a time per call: answers wait in the outbox, and the
        # task that finds no writer at work writes them all (no lock to queue on; answers of
        # one batch finish together).
        self.outbox: deque[pb.ModelStreamInferResponse] = deque()
        self.writing = False
        self.key = metadata_value(context, oip.ROUTING_KEY_HEADER)
        remaining = context.time_remaining()
        self.deadline = None if remaining is None else time.monotonic() + remaining

    async def serve(self, request: pb.ModelInferRequest) -> None:
        """Answer one request on the stream; its slot is given back once it is written."""
        # Counted here, not when read: a task cancelled before it starts never runs this.
        self.owner.held += 1
        try:
            response = await self._answer(request)
        except BaseException:
            self._written()
            raise
        self.outbox.append(response)
        if not self.writing:
            await self._write_all()

    async def _write_all(self) -> None:
        self.writing = True
        try:
            while self.outbox:
                try:
                    await self.context.write(self.outbox[0])
                finally:
                    self.outbox.popleft()
                    self._written()
        finally:
            self.writing = False
            # The stream is failing or cancelled: what is left will not be written.
            while self.outbox:
                self.outbox.popleft()
                self._written()

    def _written(self) -> None:
        self.owner.held -= 1
        self.slots.release()

    async def _answer(self, request: pb.ModelInferRequest) -> pb.ModelStreamInferResponse:
        received = time.perf_counter()
        try:
            response = await answer(
                self.plane,
                self.decoder,
                request,
                lambda _: self.key,
                self.deadline,
                received=received,
            )
        except GatewayError as exc:
            _, message = status_for(exc)
            return self._error(request, message)
        except Exception:
            log.exception("unhandled error serving a ModelStreamInfer request")
            return self._error(request, INTERNAL_MESSAGE)
        return pb.ModelStreamInferResponse(infer_response=response)

    @staticmethod
    def _error(request: pb.ModelInferRequest, message: str) -> pb.ModelStreamInferResponse:
        return pb.ModelStreamInferResponse(
            error_message=cap_message(message),
            infer_response=pb.ModelInferResponse(
                model_name=request.model_name,
                model_version=request.model_version,
                id=request.id,
            ),
        )


class StreamInference:
    """Serves ``ModelStreamInfer`` through the data plane; see the module docstring."""

    def __init__(
        self, plane: DataPlane, decoder: Decoder | None = None, *, window: int = STREAM_WINDOW
    ) -> None:
        self._plane = plane
        self._decoder = decoder or Decoder(thread_bytes=0, process_bytes=0)
        self._window = window
        self._readers: set[asyncio.Task[None]] = set()
        self._draining = False
        self.held = 0
        """Requests read from every stream and not yet answered (at most the window each)."""

    @property
    def open_streams(self) -> int:
        """Streams being read now."""
        return len(self._readers)

    def drain(self) -> None:
        """Stop reading every stream; requests already read are still answered."""
        self._draining = True
        for reader in self._readers:
            reader.cancel()

    async def serve(self, requests: AsyncIterator[pb.ModelInferRequest], context: Context) -> None:
        """The handler of one stream: read, serve each request concurrently, answer each."""
        if self._draining:
            raise _draining_error()
        stream = _Stream(self, self._plane, self._decoder, context, self._window)
        # Every request task copies this context: the prediction log sees who streamed.
        caller.set(("grpc", principal.get()))
        try:
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(self._read(requests, stream, group))
                self._readers.add(reader)
                reader.add_done_callback(self._readers.discard)
        except BaseExceptionGroup as failed:
            first = failed.exceptions[0]
            if isinstance(first, grpc.aio.AbortError):
                # An undecodable body: the parser already aborted the call with
                # INVALID_ARGUMENT (handlers.py); the status is sent, nothing to add.
                return
            raise first from None
        # Every request read was answered; the stream ends with OK unless we stopped it.
        if self._draining:
            raise _draining_error()

    @staticmethod
    async def _read(
        requests: AsyncIterator[pb.ModelInferRequest], stream: _Stream, group: asyncio.TaskGroup
    ) -> None:
        while True:
            await stream.slots.acquire()
            try:
                request = await anext(requests)
            except StopAsyncIteration:
                stream.slots.release()
                return
            except BaseException:
                stream.slots.release()
                raise
            group.create_task(stream.serve(request))


def _draining_error() -> GatewayError:
    return Unavailable(DRAINING_MESSAGE)
