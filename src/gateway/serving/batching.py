"""Dynamic batcher for one model version: many small requests in, few large runs out.

The rule
--------
Requests wait in a FIFO queue. A worker task takes the first waiting request and keeps
adding the requests behind it, in order, until either

* the next request would push the batch past ``max_batch_size`` rows (it then leads the
  next batch; a request larger than ``max_batch_size`` runs alone), or
* ``max_delay_us`` has passed since the *first* request of the batch was enqueued, or
* no batch is running at all: then the batch goes at once with what is already queued.

Each input is concatenated along axis 0, the model runs once on an executor thread, and
every output is sliced back by row offsets, one future per request.

Why each choice
---------------
* An idle batcher never waits: at concurrency 1 waiting would add ``max_delay`` to every
  request for no gain. Batches still form under load, because requests that arrive while
  batches run queue up behind them (measured: p50 at concurrency 1 went from 2.0 ms with an
  unconditional delay to the unbatched figure).
* The delay counts from the first request's enqueue, not from when the worker woke: the
  promise to a client is "at most ``max_delay`` of waiting for company", and under load
  (every in-flight slot busy) a request that already waited goes out at once, with
  whatever queued behind it. Batches grow with load and latency stays bounded.
* ``max_inflight_batches`` (default 2): while one batch computes, the next is collected
  and concatenated, so the session never idles between batches. More than two only makes
  onnxruntime's intra-op threads fight for the same cores and adds latency; 1 is right
  for a session that already uses every core and a model where concatenation is free.
* Where a formed batch runs (inline on the loop when tiny, else on the executor, with the
  concatenation) and how its outputs are split is :mod:`gateway.serving.execution`'s
  business.
* Deadlines (absolute, in the injected clock's time base) and cancellations are checked
  when a batch is formed: a request nobody will read is never run. A request whose
  deadline has already passed at submit is refused without queueing.
* **No request can fail its neighbours.** A failed run of several requests is re-run one
  request at a time, so only the requests whose own values fail get an error, and the
  blame goes where it lies, the caller's values or the version (:mod:`.isolation`).
* ``max_queue`` bounds the requests waiting; beyond it ``submit`` raises
  :class:`ResourceExhausted` at once instead of queueing without limit. With batching
  disabled (fixed first dimension, or a rank-0 input), it bounds the runs in flight
  instead, and each request runs as is.
* ``submit`` takes the row count the caller's validation computed (else reads it).
* Queue, futures and the worker task are created lazily inside the running loop on the
  first ``submit`` (they bind to a loop); time comes from an injected monotonic clock so
  tests can move it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable

from gateway.domain import Tensors
from gateway.errors import (
    DeadlineExceeded,
    InferenceFailed,
    ResourceExhausted,
    Unavailable,
)
from gateway.serving.execution import (
    BatchObserver,
    BatchPolicy,
    NullBatchObserver,
    RunFn,
    Runner,
    rows_of,
)
from gateway.serving.isolation import Isolation
from gateway.serving.waiters import Waiter, abandon, deliver, drop_unwanted, stamp
from gateway.traces import RequestTrace

__all__ = [
    "BatchObserver",
    "BatchPolicy",
    "Batcher",
    "NullBatchObserver",
    "RunFn",
    "Tensors",
]

logger = logging.getLogger(__name__)


def _expire(arrival: asyncio.Future[bool]) -> None:
    if not arrival.done():
        arrival.set_result(False)


class Batcher:
    """Dynamic batcher in front of one blocking ``run`` function; see the module docstring."""

    def __init__(
        self,
        run: RunFn,
        policy: BatchPolicy,
        *,
        name: str,
        executor: concurrent.futures.Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
        observer: BatchObserver | None = None,
        max_inflight_batches: int = 2,
        cost: Callable[[int], float] | None = None,
        probe: Callable[[], Tensors] | None = None,
    ) -> None:
        if max_inflight_batches < 1:
            raise ValueError("max_inflight_batches must be at least 1")
        self._policy = policy
        self._name = name
        self._clock = clock
        self._observer: BatchObserver = observer if observer is not None else NullBatchObserver()
        self._max_inflight = max_inflight_batches
        self._delay_s = policy.max_delay_us / 1e6
        self._runner = Runner(
            run, name=name, executor=executor, inline_below_us=policy.inline_below_us, cost=cost
        )
        self._isolation = Isolation(name, self._runner.run, clock, probe)
        self._closing = False
        self._waiting = 0  # live requests in the queue (cancelled ones leave at once)
        self._pending: deque[Waiter] = deque()
        # NOTE: everything below binds to the event loop, so it is made on first submit.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._arrival: asyncio.Future[bool] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._direct: set[asyncio.Future[Tensors]] = set()
        self._traced = False  # set by the first traced submit; until then batches never look
        self._ids = itertools.count(1)  # batch ids, for traces

    @property
    def name(self) -> str:
        return self._name

    @property
    def policy(self) -> BatchPolicy:
        return self._policy

    @property
    def depth(self) -> int:
        """Requests waiting in the queue; with batching disabled, runs in flight."""
        return len(self._direct) if not self._policy.enabled else self._waiting

    async def submit(
        self,
        inputs: Tensors,
        *,
        rows: int | None = None,
        deadline: float | None = None,
        trace: RequestTrace | None = None,
    ) -> Tensors:
        """Run ``inputs`` (validated by the caller) as part of a batch and return its outputs.

        ``rows``: the row count the caller's validation computed (read from the first input
        when not given). ``deadline`` is absolute, in the clock's time base. Raises
        :class:`Unavailable` after :meth:`close`, :class:`ResourceExhausted` when full,
        :class:`DeadlineExceeded` when the deadline passes before the request runs and
        :class:`InferenceFailed` when the model's run raises; ``trace`` learns its batch.
        """
        if self._closing:
            raise Unavailable(f"model {self._name} is shutting down")
        loop = self._bind_loop()
        if rows is None:
            rows = rows_of(inputs)
        if trace is not None:
            self._traced = True
            trace.queued = time.perf_counter()
        if not self._policy.enabled:
            return await self._submit_direct(loop, inputs, rows, deadline, trace)
        now = self._admit(self._waiting, "queued", deadline)
        request = Waiter(inputs, rows, loop.create_future(), now, deadline, trace=trace)
        self._pending.append(request)
        self._waiting += 1
        self._observer.on_queue_depth(self._waiting)
        self._start_worker(loop)
        self._wake()
        try:
            return await request.future
        except asyncio.CancelledError:
            if request.queued:  # still in the queue: it leaves now, the worker skips it
                request.queued = False
                self._waiting -= 1
                self._observer.on_dropped("cancelled")
                self._observer.on_queue_depth(self._waiting)
            raise

    async def close(self) -> None:
        """Refuse new requests, finish the queued and in-flight ones, stop the worker."""
        self._closing = True
        self._wake()
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)
        while self._batches or self._direct:
            await asyncio.gather(*self._batches, *self._direct, return_exceptions=True)

    # -- loop-bound state ---------------------------------------------------------------

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._slots = asyncio.Semaphore(self._max_inflight)
        elif self._loop is not loop:
            raise RuntimeError(f"batcher {self._name} is bound to another event loop")
        return loop

    def _start_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work(), name=f"batcher:{self._name}")

    def _wake(self) -> None:
        arrival = self._arrival
        if arrival is not None and not arrival.done():
            arrival.set_result(True)

    async def _wait_for_arrival(self, timeout: float | None) -> bool:
        """True when a submit or close woke the worker, False after ``timeout`` seconds.
        NOTE: ``call_later``, not ``asyncio.timeout`` (runs per batch; that cost more)."""
        loop = self._loop
        assert loop is not None
        arrival = self._arrival = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _expire, arrival)
        try:
            return bool(await arrival)
        finally:
            self._arrival = None
            if timer is not None:
                timer.cancel()

    # -- batched path ---------------------------------------------------------------------

    async def _work(self) -> None:
        assert self._loop is not None and self._slots is not None
        while True:
            await self._slots.acquire()
            try:
                batch = await self._collect()
            except Exception:  # a bug, not a model failure: fail the waiters, don't hang them
                self._slots.release()
                logger.exception("batcher %s: worker stopped unexpectedly", self._name)
                self._fail_queued(f"model {self._name} is unavailable")
                return
            if not batch:  # closing and nothing left
                self._slots.release()
                return
            # _execute owns the slot from here and releases it when the run ends.
            task = self._loop.create_task(self._execute(batch))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _collect(self) -> list[Waiter]:
        """Wait for a first request, then gather company until full or its delay is over."""
        while not self._pending_head():
            if self._closing:
                return []
            await self._wait_for_arrival(None)
        # Waiting for company only pays while the model is busy: with no batch in flight the
        # first request goes at once with whatever is already queued (an idle gateway adds no
        # latency), and under load requests pile up behind the running batches anyway.
        idle = not self._batches
        due = self._pending[0].enqueued + (0.0 if idle else self._delay_s)
        max_rows = self._policy.max_batch_size
        batch: list[Waiter] = []
        rows = 0
        while True:
            while self._pending_head():
                request = self._pending[0]
                if batch and rows + request.rows > max_rows:
                    return batch
                self._pending.popleft()
                request.queued = False
                self._waiting -= 1
                batch.append(request)
                rows += request.rows
                if rows >= max_rows:
                    return batch
            remaining = due - self._clock()
            if remaining <= 0 or self._closing:
                return batch
            if not await self._wait_for_arrival(remaining):
                # NOTE: the sleep is on the loop's clock; once it ends the delay is over even
                # if an injected clock has not moved.
                return batch

    def _pending_head(self) -> bool:
        """Drop cancelled requests from the front; True when a live one is first."""
        pending = self._pending
        while pending and not pending[0].queued:
            pending.popleft()
        return bool(pending)

    async def _execute(self, batch: list[Waiter]) -> None:
        assert self._loop is not None and self._slots is not None
        try:
            formed = self._clock()
            batch = drop_unwanted(batch, formed, self._name, self._observer)
            self._observer.on_queue_depth(self._waiting)
            if not batch:
                return
            rows = sum(request.rows for request in batch)
            parts = [request.inputs for request in batch]
            outputs: Tensors | None = None
            error: Exception | None = None
            started = time.perf_counter() if self._traced else 0.0
            try:
                outputs = await self._runner.run(parts, rows)
            except Exception as exc:  # noqa: BLE001 - any failure of the run: blamed below
                error = exc
            if started:
                stamp([r.trace for r in batch], f"{self._name}#{next(self._ids)}", rows, started)
            wait_s = formed - batch[0].enqueued
            self._observer.on_batch(rows, len(batch), wait_s, self._clock() - formed)
            if outputs is None:
                assert error is not None
                await self._isolation.settle(batch, rows, error)
            else:
                self._isolation.known_good = parts[0]
                deliver(batch, rows, outputs, self._name)
        except asyncio.CancelledError:
            abandon(batch, f"model {self._name} is shutting down")
            raise
        finally:
            self._slots.release()

    def _fail_queued(self, message: str) -> None:
        while self._pending:
            request = self._pending.popleft()
            if request.queued and not request.future.done():
                request.future.set_exception(Unavailable(message))
            request.queued = False
        self._waiting = 0

    def _admit(self, depth: int, what: str, deadline: float | None) -> float:
        """Refuse at once when full or already late; otherwise return the clock's now."""
        if depth >= self._policy.max_queue:
            self._observer.on_dropped("queue_full")
            raise ResourceExhausted(
                f"model {self._name} has {self._policy.max_queue} requests {what}; retry later"
            )
        now = self._clock()
        if deadline is not None and deadline <= now:
            self._observer.on_dropped("deadline")
            raise DeadlineExceeded(f"deadline passed before model {self._name} could run")
        return now

    # -- unbatched path -------------------------------------------------------------------

    async def _submit_direct(
        self,
        loop: asyncio.AbstractEventLoop,
        inputs: Tensors,
        rows: int,
        deadline: float | None,
        trace: RequestTrace | None,
    ) -> Tensors:
        start = self._admit(len(self._direct), "in flight", deadline)
        started = 0.0 if trace is None else time.perf_counter()
        future: asyncio.Task[Tensors] | None = None
        try:
            if self._runner.inline(rows):
                # Tiny run: computed on the loop without suspending, so there is no slot to
                # hold and nothing for a cancellation to leave behind.
                outputs = await self._runner.run([inputs], rows)
            else:
                # NOTE: a task, shielded, so the slot is held until the thread finishes even
                # when the client goes away (cancelling an executor call does not stop it).
                future = loop.create_task(self._runner.run([inputs], rows))
                self._direct.add(future)
                future.add_done_callback(self._direct_done)
                self._observer.on_queue_depth(len(self._direct))
                outputs = await asyncio.shield(future)
        except Exception as exc:
            if await self._isolation.model_runs():
                self._isolation.refused(exc, 1)
                raise self._isolation.refusal(exc) from None
            logger.error(
                "model %s failed to run a batch of %d rows", self._name, rows, exc_info=exc
            )
            raise InferenceFailed(
                f"model {self._name} failed to run a batch of {rows} rows"
            ) from None
        finally:
            if future is None or future.done():  # not when only the client was cancelled
                self._observer.on_batch(rows, 1, 0.0, self._clock() - start)
            if trace is not None:
                stamp([trace], f"{self._name}#{next(self._ids)}", rows, started)
        self._isolation.known_good = inputs
        return outputs

    def _direct_done(self, future: asyncio.Future[Tensors]) -> None:
        self._direct.discard(future)
        if not future.cancelled():
            future.exception()  # mark retrieved: its waiter may have gone away
        self._observer.on_queue_depth(len(self._direct))
