"""How one batch of a version runs: the batching policy, the metrics hook, and the runner
that decides between the event loop and the executor.

The seam with :mod:`gateway.serving.batching`: the batcher decides *which* requests run
together and *when*; this module decides *where* a formed batch runs and *how* (one
concatenation, one ``run``). The unbatched path of a batcher uses the same runner.

Where a run goes
----------------
A run predicted (by the version's cost model, measured at load) to take less than
``inline_below_us`` runs on the event loop thread itself: for a model that computes a
batch in microseconds, the hop to an executor thread and back costs more CPU than the
inference. If such a run turns out ten times slower than the bound (input-dependent cost),
the runner stops inlining for good. Everything else runs on the executor, and so does the
concatenation: for large tensors (images) it is a memcpy of megabytes and must not stall
the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gateway.concurrency import run_blocking
from gateway.domain import Tensors

__all__ = [
    "EXECUTOR_RUNS",
    "SLOW_STREAK",
    "BatchObserver",
    "BatchPolicy",
    "NullBatchObserver",
    "RunFn",
    "Runner",
    "rows_of",
    "run_concatenated",
    "split_outputs",
]

logger = logging.getLogger(__name__)

EXECUTOR_RUNS = 2
"""Executor threads one version may hold at once (a batcher keeps at most two batches in
flight anyway; this bounds the unbatched path the same way). The pool has more
(``inference_threads``), so a slow version leaves threads to the others."""

SLOW_STREAK = 3
"""Inline runs in a row over ten times the bound before a model leaves the event loop."""

RunFn = Callable[[Tensors], Tensors]
"""A blocking call (``InferenceSession.run`` wrapped); always run on an executor thread."""


@dataclass(frozen=True)
class BatchPolicy:
    """How one version batches; ``enabled=False`` for models with a fixed first dimension."""

    enabled: bool = True
    max_batch_size: int = 64
    max_delay_us: int = 500
    max_queue: int = 1024
    # Runs predicted to take less than this run on the event loop thread itself (see the
    # module docstring). 0 always uses the executor.
    inline_below_us: int = 100

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if self.max_delay_us < 0:
            raise ValueError("max_delay_us must not be negative")
        if self.max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        if self.inline_below_us < 0:
            raise ValueError("inline_below_us must not be negative")


class BatchObserver(Protocol):
    """Metrics hook: the gateway wires its per-version counters to it; the batcher only
    calls it."""

    def on_batch(self, rows: int, requests: int, queue_wait_s: float, compute_s: float) -> None:
        """A batch ran (successfully or not); ``queue_wait_s`` is its oldest request's wait."""

    def on_queue_depth(self, depth: int) -> None:
        """Requests now waiting (in flight, when batching is disabled)."""

    def on_dropped(self, reason: str) -> None:
        """A request left without running: ``queue_full``, ``deadline`` or ``cancelled``."""


class NullBatchObserver:
    """The default observer: records nothing."""

    def on_batch(self, rows: int, requests: int, queue_wait_s: float, compute_s: float) -> None:
        pass

    def on_queue_depth(self, depth: int) -> None:
        pass

    def on_dropped(self, reason: str) -> None:
        pass


def rows_of(inputs: Tensors) -> int:
    """Rows of a request: its first input's first dimension; 1 for a rank-0 (scalar) input,
    which has nothing to batch on and runs as is."""
    first = next(iter(inputs.values()))
    return int(first.shape[0]) if first.ndim else 1


def run_concatenated(run: RunFn, parts: list[Tensors]) -> Tensors:
    """Concatenate the parts along axis 0 (one part runs as is), then run once."""
    if len(parts) == 1:
        return run(parts[0])
    merged = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    return run(merged)


def split_outputs(outputs: Tensors, rows: int, counts: list[int]) -> list[Tensors] | None:
    """Slice a batch's outputs back into one part per request (``counts`` rows each).

    Slices are views, so splitting stays on the loop and the parts share the run's buffer.
    None when an output has no batch dimension of ``rows`` rows (it cannot be split).
    """
    if len(counts) == 1:
        return [outputs]
    if any(value.ndim == 0 or value.shape[0] != rows for value in outputs.values()):
        return None
    parts: list[Tensors] = []
    start = 0
    for count in counts:
        stop = start + count
        parts.append({key: value[start:stop] for key, value in outputs.items()})
        start = stop
    return parts


class Runner:
    """Runs formed batches of one version, inline or on the executor (module docstring).

    NOTE: the cost model comes from the caller (measured at load, on an idle thread);
    timing runs here would not do: a run on the executor is billed for the wait to get the
    GIL back from a busy loop, which made every small model look slow. Inline runs are
    checked on the loop thread's *CPU* clock (``time.thread_time``), not the wall clock:
    ``session.run`` releases the GIL, and getting it back from the tap worker or a shadow
    thread can take a switch interval (5 ms), and another process can hold the core; on a
    busy 2-core box three such waits in a row happened within seconds of load and sent a
    5 us model to the executor for good (about a third of its throughput gone). Waiting
    costs no CPU time; computing does. A run slow by the wall clock makes the following
    runs timed on the CPU clock, and :data:`SLOW_STREAK` of those slow in a row send the
    model to the executor for good.
    """

    def __init__(
        self,
        run: RunFn,
        *,
        name: str,
        executor: concurrent.futures.Executor | None,
        inline_below_us: int,
        cost: Callable[[int], float] | None,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self._run = run
        self._cpu_clock = cpu_clock
        self._name = name
        self._executor = executor
        self._inline_s = inline_below_us / 1e6
        self._cost = cost
        self._slow = 0  # consecutive inline runs over the bound (event loop thread only)
        self._suspect = False  # the last run was slow by the wall clock: check CPU time
        self._executor_runs = asyncio.Semaphore(EXECUTOR_RUNS)

    def inline(self, rows: int) -> bool:
        """True when a run of ``rows`` rows is predicted cheap enough for the loop."""
        return self._cost is not None and self._cost(rows) < self._inline_s

    async def run(self, parts: list[Tensors], rows: int) -> Tensors:
        """Run one batch inline when it is predicted to be tiny, else on the executor."""
        if not self.inline(rows):
            # A version holds at most EXECUTOR_RUNS threads of the shared pool: a model whose
            # runs take seconds (queued unbatched requests each wanted a thread) must not
            # take every thread and stall the other models behind it.
            async with self._executor_runs:
                return await run_blocking(self._executor, run_concatenated, self._run, parts)
        # The wall clock first (cheap: a vDSO read); only once it says "slow" are the next
        # runs timed on the CPU clock (a system call, ~1 us here), to tell waiting from work.
        clock = self._cpu_clock if self._suspect else time.perf_counter
        start = clock()
        outputs = run_concatenated(self._run, parts)
        took = clock() - start
        if took <= 10 * self._inline_s:
            self._slow = 0
            self._suspect = False
            return outputs
        if not self._suspect:
            self._suspect = True
            return outputs
        self._slow += 1
        if self._slow >= SLOW_STREAK:
            logger.warning(
                "model %s: %d inline runs in a row took over %.0f us of CPU (the last %.0f us); "
                "using the executor from now",
                self._name,
                self._slow,
                10 * self._inline_s * 1e6,
                took * 1e6,
            )
            self._cost = None
        return outputs
