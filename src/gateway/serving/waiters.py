"""The requests waiting in a batcher, and how a formed batch settles their futures.

:mod:`gateway.serving.batching` decides which :class:`Waiter` runs with which; once a
batch is formed these drop the ones nobody will read (client gone, deadline passed),
hand each the rows of the outputs that are its own, or fail them, one exception object
per waiter (a shared one would pile up tracebacks).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from gateway.domain import Tensors
from gateway.errors import DeadlineExceeded, InferenceFailed, Unavailable
from gateway.serving.execution import BatchObserver, split_outputs
from gateway.traces import RequestTrace

__all__ = ["Waiter", "abandon", "deliver", "drop_unwanted", "fail", "stamp"]

# The batcher's logger: a batch's failures are logged under one name wherever they arise.
logger = logging.getLogger("gateway.serving.batching")


@dataclass(slots=True, eq=False)
class Waiter:
    """One submitted request: its inputs, rows and the future its caller awaits."""

    inputs: Tensors
    rows: int
    future: asyncio.Future[Tensors]
    enqueued: float
    deadline: float | None
    queued: bool = field(default=True)
    trace: RequestTrace | None = None  # tracing on: stamped with the batch it ran in


def drop_unwanted(
    batch: list[Waiter], now: float, name: str, observer: BatchObserver
) -> list[Waiter]:
    """Remove requests whose client went away or whose deadline passed."""
    keep: list[Waiter] = []
    for request in batch:
        if request.future.done():
            observer.on_dropped("cancelled")
        elif request.deadline is not None and request.deadline <= now:
            observer.on_dropped("deadline")
            request.future.set_exception(
                DeadlineExceeded(f"deadline passed before model {name} could run")
            )
        else:
            keep.append(request)
    return keep


def deliver(batch: list[Waiter], rows: int, outputs: Tensors, name: str) -> None:
    """Each request's rows of the batch's outputs (all fail when they cannot be split)."""
    parts = split_outputs(outputs, rows, [request.rows for request in batch])
    if parts is None:
        logger.error("model %s: outputs of a %d-row batch cannot be split", name, rows)
        fail(batch, rows, name)
        return
    for request, part in zip(batch, parts, strict=True):
        if not request.future.done():
            request.future.set_result(part)


def fail(batch: list[Waiter], rows: int, name: str) -> None:
    message = f"model {name} failed to run a batch of {rows} rows"
    for request in batch:
        if not request.future.done():
            # One exception object per waiter: a shared one would pile up tracebacks.
            request.future.set_exception(InferenceFailed(message))


def abandon(batch: list[Waiter], message: str) -> None:
    """The batch's run was cancelled (shutdown): its waiters get Unavailable."""
    for request in batch:
        if not request.future.done():
            request.future.set_exception(Unavailable(message))


def stamp(traces: list[RequestTrace | None], batch_id: str, rows: int, started: float) -> None:
    """Each traced request of a batch learns the batch it ran in (its run began at
    ``started``), before its future is settled, so its face finds the stamps."""
    ended = time.perf_counter()
    for trace in traces:
        if trace is not None:
            trace.batched(batch_id, len(traces), rows, started, started, ended)
