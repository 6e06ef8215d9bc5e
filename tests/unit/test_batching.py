"""Unit tests for the dynamic batcher: no server, a real thread pool, an injectable clock."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from gateway.errors import (
    DeadlineExceeded,
    InferenceFailed,
    RefusedByModel,
    ResourceExhausted,
    Unavailable,
)
from gateway.serving.batching import Batcher, BatchPolicy, Tensors
from gateway.serving.execution import SLOW_STREAK

POISON = -1.0


def compute(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The unbatched reference: row-wise, so batching must not change any row's result."""
    result: np.ndarray[Any, Any] = x * 2 + x.sum(axis=1, keepdims=True)
    return result


class Model:
    """A trivial numpy model that records every batch it sees; can be gated and poisoned."""

    def __init__(self, *, gated: bool = False) -> None:
        self.batches: list[np.ndarray[Any, Any]] = []
        self.started = threading.Event()
        self.gate = threading.Event()
        if not gated:
            self.gate.set()

    def __call__(self, inputs: Tensors) -> Tensors:
        x = inputs["x"]
        self.batches.append(x.copy())
        self.started.set()
        assert self.gate.wait(5), "test forgot to open the gate"
        if (x == POISON).any():
            raise ValueError("poison row: secret payload 42")
        return {"y": compute(x)}

    @property
    def rows_seen(self) -> np.ndarray[Any, Any]:
        return np.concatenate(self.batches) if self.batches else np.empty((0, 2))


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[int, int, float, float]] = []
        self.depths: list[int] = []
        self.dropped: list[str] = []

    def on_batch(self, rows: int, requests: int, queue_wait_s: float, compute_s: float) -> None:
        self.batches.append((rows, requests, queue_wait_s, compute_s))

    def on_queue_depth(self, depth: int) -> None:
        self.depths.append(depth)

    def on_dropped(self, reason: str) -> None:
        self.dropped.append(reason)


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


def rows(start: int, n: int) -> Tensors:
    """``n`` rows of two features whose values identify the request."""
    return {"x": np.arange(start, start + 2 * n, dtype=np.float64).reshape(n, 2)}


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await asyncio.wait_for(coro_fn(), 5)

    asyncio.run(main())


async def wait_started(model: Model) -> None:
    await asyncio.get_running_loop().run_in_executor(None, model.started.wait, 5)


def test_batches_never_exceed_max_rows_and_results_match_unbatched(
    executor: ThreadPoolExecutor,
) -> None:
    model = Model()
    recorder = Recorder()
    policy = BatchPolicy(max_batch_size=8, max_delay_us=20_000)
    batcher = Batcher(model, policy, name="m:1", executor=executor, observer=recorder)

    async def main() -> None:
        requests = [rows(100 * i, 3) for i in range(10)]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        for request, result in zip(requests, results, strict=True):
            np.testing.assert_array_equal(result["y"], compute(request["x"]))
        await batcher.close()

    run(main)
    assert all(len(batch) <= 8 for batch in model.batches)
    assert sum(len(batch) for batch in model.batches) == 30
    assert len(model.batches) < 10  # some batching happened
    assert [(r, n) for r, n, _, _ in recorder.batches] == [
        (len(b), len(b) // 3) for b in model.batches
    ]
    assert recorder.dropped == []


def test_outputs_are_views_of_one_batch_buffer(executor: ThreadPoolExecutor) -> None:
    batcher = Batcher(Model(), BatchPolicy(max_delay_us=20_000), name="m", executor=executor)

    async def main() -> None:
        a, b = await asyncio.gather(batcher.submit(rows(0, 2)), batcher.submit(rows(10, 3)))
        assert a["y"].shape == (2, 2) and b["y"].shape == (3, 2)
        assert a["y"].base is not None and a["y"].base is b["y"].base

    run(main)


def test_request_larger_than_max_batch_runs_alone(executor: ThreadPoolExecutor) -> None:
    model = Model()
    batcher = Batcher(model, BatchPolicy(max_batch_size=4), name="m", executor=executor)

    async def main() -> None:
        big, small = await asyncio.gather(batcher.submit(rows(0, 6)), batcher.submit(rows(50, 1)))
        np.testing.assert_array_equal(big["y"], compute(rows(0, 6)["x"]))
        np.testing.assert_array_equal(small["y"], compute(rows(50, 1)["x"]))

    run(main)
    assert [len(b) for b in model.batches] == [6, 1]


def test_idle_batcher_sends_a_lone_request_at_once(executor: ThreadPoolExecutor) -> None:
    model = Model()
    batcher = Batcher(model, BatchPolicy(max_delay_us=2_000_000), name="m", executor=executor)

    async def main() -> None:
        start = time.monotonic()
        await batcher.submit(rows(0, 1))
        assert time.monotonic() - start < 0.5  # far below the 2 s delay

    run(main)
    assert [len(b) for b in model.batches] == [1]


def test_while_busy_a_request_waits_about_max_delay_for_company(
    executor: ThreadPoolExecutor,
) -> None:
    model = Model(gated=True)
    policy = BatchPolicy(max_delay_us=50_000)
    batcher = Batcher(model, policy, name="m", executor=executor, max_inflight_batches=2)

    async def main() -> None:
        first = asyncio.ensure_future(batcher.submit(rows(0, 1)))
        await wait_started(model)  # one batch is now running (blocked on the gate)
        start = time.monotonic()
        second = asyncio.ensure_future(batcher.submit(rows(10, 1)))
        await asyncio.sleep(0.01)
        third = asyncio.ensure_future(batcher.submit(rows(20, 1)))
        await asyncio.sleep(0.005)
        model.gate.set()  # the busy spell ends; the second batch's delay was already set
        await asyncio.gather(first, second, third)
        elapsed = time.monotonic() - start
        assert 0.045 <= elapsed < 1.0

    run(main)
    # The second request waited for company and left with the third.
    assert [len(b) for b in model.batches] == [1, 2]


def test_full_batch_goes_without_waiting_for_delay(executor: ThreadPoolExecutor) -> None:
    model = Model()
    policy = BatchPolicy(max_batch_size=8, max_delay_us=10_000_000)
    batcher = Batcher(model, policy, name="m", executor=executor)

    async def main() -> None:
        start = time.monotonic()
        await asyncio.gather(batcher.submit(rows(0, 4)), batcher.submit(rows(10, 4)))
        assert time.monotonic() - start < 1.0

    run(main)
    assert [len(b) for b in model.batches] == [8]


def test_a_poisoned_batch_fails_only_the_guilty_request(
    executor: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    model = Model()
    policy = BatchPolicy(max_batch_size=4, max_delay_us=20_000)
    batcher = Batcher(model, policy, name="m:1", executor=executor)
    poison = {"x": np.full((2, 2), POISON)}

    async def main() -> None:
        # All four queue before the worker's first step: [good, poison] | [good, good].
        results = await asyncio.gather(
            batcher.submit(rows(0, 2)),
            batcher.submit(poison),
            batcher.submit(rows(10, 2)),
            batcher.submit(rows(20, 2)),
            return_exceptions=True,
        )
        failed = results[1]
        assert isinstance(failed, RefusedByModel), failed
        assert failed.code == "INVALID_ARGUMENT"
        assert failed.message == (
            "inputs: model m:1 cannot run this request's values (ValueError); "
            "it runs other requests"
        )
        assert "poison" not in failed.message and failed.__cause__ is None
        for ok, start in zip([results[0], *results[2:]], (0, 10, 20), strict=True):
            assert isinstance(ok, dict), ok
            np.testing.assert_array_equal(ok["y"], compute(rows(start, 2)["x"]))
        after = await batcher.submit(rows(30, 1))
        np.testing.assert_array_equal(after["y"], compute(rows(30, 1)["x"]))
        # Alone at an idle batcher, the model's last good input says whose fault it is.
        alone = await asyncio.gather(batcher.submit(poison), return_exceptions=True)
        assert isinstance(alone[0], RefusedByModel)

    with caplog.at_level(logging.WARNING, logger="gateway.serving.batching"):
        run(main)
    # One warning a minute, never a traceback: the callers' data is not the model's fault.
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "cannot run" in record.getMessage() and "poison row" not in record.getMessage()


def test_a_broken_model_fails_every_request_as_its_own_failure(
    executor: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(inputs: Tensors) -> Tensors:
        raise RuntimeError("session lost its device")

    policy = BatchPolicy(max_batch_size=4, max_delay_us=20_000)
    probe_runs = []

    def probe() -> Tensors:
        probe_runs.append(1)
        return rows(0, 1)

    batcher = Batcher(broken, policy, name="m:1", executor=executor, probe=probe)

    async def main() -> None:
        results = await asyncio.gather(
            batcher.submit(rows(0, 2)), batcher.submit(rows(10, 2)), return_exceptions=True
        )
        for failed in results:
            assert isinstance(failed, InferenceFailed), failed
            assert failed.code == "INTERNAL"
            assert failed.message == "model m:1 failed to run a batch of 4 rows"
        assert results[0] is not results[1]

    with caplog.at_level(logging.ERROR, logger="gateway.serving.batching"):
        run(main)
    assert probe_runs  # the synthetic sample was tried before blaming the model
    [record] = caplog.records
    assert record.exc_info is not None and "lost its device" in str(record.exc_info[1])


def test_a_request_failing_alone_is_the_callers_when_the_sample_runs(
    executor: ThreadPoolExecutor,
) -> None:
    model = Model()
    batcher = Batcher(
        model,
        BatchPolicy(max_batch_size=4, max_delay_us=0),
        name="m:1",
        executor=executor,
        probe=lambda: rows(0, 1),
    )

    async def main() -> None:
        with pytest.raises(RefusedByModel):
            await batcher.submit({"x": np.full((1, 2), POISON)})

    run(main)


def test_expired_request_is_dropped_and_never_run(executor: ThreadPoolExecutor) -> None:
    model = Model(gated=True)
    clock = FakeClock(100.0)
    recorder = Recorder()
    policy = BatchPolicy(max_delay_us=1_000)
    batcher = Batcher(
        model,
        policy,
        name="m",
        executor=executor,
        clock=clock,
        observer=recorder,
        max_inflight_batches=1,
    )

    async def main() -> None:
        try:
            first = asyncio.create_task(batcher.submit(rows(0, 1)))
            await wait_started(model)  # occupies the only in-flight slot
            late = asyncio.create_task(batcher.submit(rows(10, 1), deadline=101.0))
            fine = asyncio.create_task(batcher.submit(rows(20, 1), deadline=200.0))
            await asyncio.sleep(0.01)
            clock.now = 150.0  # past `late`'s deadline before its batch forms
        finally:
            model.gate.set()
        await first
        with pytest.raises(DeadlineExceeded):
            await late
        await fine
        with pytest.raises(DeadlineExceeded):  # already past at submit: refused at once
            await batcher.submit(rows(30, 1), deadline=149.0)

    run(main)
    seen = model.rows_seen
    assert not np.isin(rows(10, 1)["x"], seen).any()
    assert not np.isin(rows(30, 1)["x"], seen).any()
    assert recorder.dropped == ["deadline", "deadline"]


def test_cancelled_request_is_never_run(executor: ThreadPoolExecutor) -> None:
    model = Model(gated=True)
    recorder = Recorder()
    batcher = Batcher(
        model,
        BatchPolicy(max_delay_us=1_000),
        name="m",
        executor=executor,
        observer=recorder,
        max_inflight_batches=1,
    )

    async def main() -> None:
        try:
            first = asyncio.create_task(batcher.submit(rows(0, 1)))
            await wait_started(model)
            gone = asyncio.create_task(batcher.submit(rows(10, 1)))
            await asyncio.sleep(0)
            assert batcher.depth == 1
            gone.cancel()
            await asyncio.gather(gone, return_exceptions=True)
            assert gone.cancelled() and batcher.depth == 0
        finally:
            model.gate.set()
        await first
        await batcher.submit(rows(20, 1))
        await batcher.close()

    run(main)
    assert not np.isin(rows(10, 1)["x"], model.rows_seen).any()
    assert len(model.batches) == 2
    assert recorder.dropped == ["cancelled"]


def test_queue_full_is_refused_at_once(executor: ThreadPoolExecutor) -> None:
    model = Model(gated=True)
    recorder = Recorder()
    policy = BatchPolicy(max_queue=2, max_delay_us=1_000)
    batcher = Batcher(
        model, policy, name="m", executor=executor, observer=recorder, max_inflight_batches=1
    )

    async def main() -> None:
        try:
            first = asyncio.create_task(batcher.submit(rows(0, 1)))
            await wait_started(model)
            queued = [asyncio.create_task(batcher.submit(rows(10 * i, 1))) for i in (1, 2)]
            await asyncio.sleep(0)
            assert batcher.depth == 2
            with pytest.raises(ResourceExhausted):
                await batcher.submit(rows(30, 1))
        finally:
            model.gate.set()
        await asyncio.gather(first, *queued)

    run(main)
    assert recorder.dropped == ["queue_full"]


def test_disabled_batching_runs_each_request_alone(executor: ThreadPoolExecutor) -> None:
    model = Model()
    recorder = Recorder()
    policy = BatchPolicy(enabled=False)
    batcher = Batcher(model, policy, name="m", executor=executor, observer=recorder)

    async def main() -> None:
        requests = [rows(10 * i, 2) for i in range(4)]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        for request, result in zip(requests, results, strict=True):
            np.testing.assert_array_equal(result["y"], compute(request["x"]))
        # The model ran the others: the poisoned request is the caller's error.
        with pytest.raises(RefusedByModel):
            await batcher.submit({"x": np.full((1, 2), POISON)})

    run(main)
    # The last one is the health check: the last good request's input, run again.
    assert [len(b) for b in model.batches] == [2, 2, 2, 2, 1, 2]
    assert [(r, n) for r, n, _, _ in recorder.batches] == [(2, 1)] * 4 + [(1, 1)]


def test_disabled_batching_limits_in_flight(executor: ThreadPoolExecutor) -> None:
    model = Model(gated=True)
    batcher = Batcher(model, BatchPolicy(enabled=False, max_queue=1), name="m", executor=executor)

    async def main() -> None:
        try:
            first = asyncio.create_task(batcher.submit(rows(0, 1)))
            await wait_started(model)
            assert batcher.depth == 1
            with pytest.raises(ResourceExhausted):
                await batcher.submit(rows(10, 1))
        finally:
            model.gate.set()
        await first
        await batcher.close()
        assert batcher.depth == 0

    run(main)


def test_observer_sees_batches_and_depth(executor: ThreadPoolExecutor) -> None:
    clock = FakeClock(5.0)
    recorder = Recorder()
    batcher = Batcher(
        Model(),
        BatchPolicy(max_batch_size=16, max_delay_us=1_000),
        name="m",
        executor=executor,
        clock=clock,
        observer=recorder,
    )

    async def main() -> None:
        await asyncio.gather(*(batcher.submit(rows(10 * i, 2)) for i in range(3)))

    run(main)
    assert [(r, n) for r, n, _, _ in recorder.batches] == [(6, 3)]
    assert recorder.batches[0][2:] == (0.0, 0.0)  # frozen clock: no wait, no compute time
    assert recorder.depths[:3] == [1, 2, 3] and recorder.depths[-1] == 0


def test_close_drains_then_refuses(executor: ThreadPoolExecutor) -> None:
    model = Model(gated=True)
    policy = BatchPolicy(max_batch_size=2, max_delay_us=1_000)
    batcher = Batcher(model, policy, name="m", executor=executor, max_inflight_batches=1)

    async def main() -> None:
        try:
            tasks = [asyncio.create_task(batcher.submit(rows(10 * i, 1))) for i in range(5)]
            await wait_started(model)
            closing = asyncio.create_task(batcher.close())
            await asyncio.sleep(0)
            with pytest.raises(Unavailable):
                await batcher.submit(rows(99, 1))
        finally:
            model.gate.set()
        await closing
        assert all(t.done() and t.exception() is None for t in tasks)
        assert batcher.depth == 0

    run(main)
    assert sum(len(b) for b in model.batches) == 5


def test_worker_is_created_lazily_and_bound_to_one_loop(executor: ThreadPoolExecutor) -> None:
    batcher = Batcher(Model(), BatchPolicy(max_delay_us=0), name="m", executor=executor)

    async def once() -> None:
        await batcher.submit(rows(0, 1))

    run(once)  # constructed outside any loop; first use binds it
    with pytest.raises(RuntimeError, match="another event loop"):
        run(once)


def test_idle_worker_does_not_spin(executor: ThreadPoolExecutor) -> None:
    calls = 0

    def counting_clock() -> float:
        nonlocal calls
        calls += 1
        return time.monotonic()

    batcher = Batcher(
        Model(), BatchPolicy(max_delay_us=0), name="m", executor=executor, clock=counting_clock
    )

    async def main() -> None:
        await batcher.submit(rows(0, 1))
        before = calls
        await asyncio.sleep(0.05)
        assert calls == before
        await batcher.close()

    run(main)


def test_outputs_without_batch_axis_fail_the_batch(executor: ThreadPoolExecutor) -> None:
    def summed(inputs: Tensors) -> Tensors:
        return {"total": np.asarray(inputs["x"].sum())}

    batcher = Batcher(summed, BatchPolicy(max_delay_us=20_000), name="m", executor=executor)

    async def main() -> None:
        results = await asyncio.gather(
            batcher.submit(rows(0, 1)), batcher.submit(rows(10, 1)), return_exceptions=True
        )
        assert all(isinstance(r, InferenceFailed) for r in results)

    run(main)


def _threaded_model(delay_s: float = 0.0) -> tuple[Callable[[Tensors], Tensors], list[int]]:
    threads: list[int] = []

    def run(inputs: Tensors) -> Tensors:
        threads.append(threading.get_ident())
        if delay_s:  # computing, not sleeping: inline runs are timed on the CPU clock
            until = time.thread_time() + delay_s
            while time.thread_time() < until:
                pass
        return {"y": compute(inputs["x"])}

    return run, threads


def test_runs_predicted_tiny_go_inline_others_to_the_executor(
    executor: ThreadPoolExecutor,
) -> None:
    policy = BatchPolicy(inline_below_us=100)
    cases = {
        "tiny": (lambda rows: 2e-6 * rows, True),  # 2 us per row: 8 us for 4 rows
        "slow": (lambda rows: 0.002, False),
        "unmeasured": (None, False),
    }

    async def main() -> None:
        loop_thread = threading.get_ident()
        for name, (cost, inline) in cases.items():
            run_fn, threads = _threaded_model()
            batcher = Batcher(run_fn, policy, name=name, executor=executor, cost=cost)
            for i in range(4):
                out = await batcher.submit(rows(i, 4))
                np.testing.assert_array_equal(out["y"], compute(rows(i, 4)["x"]))
            assert [t == loop_thread for t in threads] == [inline] * 4, name

    run(main)


def test_inline_disabled_or_unbatched_paths_respect_the_bound(executor: ThreadPoolExecutor) -> None:
    async def main() -> None:
        loop_thread = threading.get_ident()
        off_fn, off_threads = _threaded_model()
        off = Batcher(
            off_fn,
            BatchPolicy(inline_below_us=0),
            name="off",
            executor=executor,
            cost=lambda rows: 1e-9,
        )
        direct_fn, direct_threads = _threaded_model()
        direct = Batcher(
            direct_fn,
            BatchPolicy(enabled=False),
            name="direct",
            executor=executor,
            cost=lambda rows: 1e-6,
        )
        for i in range(3):
            await off.submit(rows(i, 1))
            await direct.submit(rows(i, 1))
        assert loop_thread not in off_threads
        assert direct_threads == [loop_thread] * 3

    run(main)


def test_inline_run_slower_than_predicted_falls_back_to_the_executor(
    executor: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    run_fn, threads = _threaded_model(delay_s=0.005)  # 5 ms, predicted 1 us
    batcher = Batcher(
        run_fn,
        BatchPolicy(inline_below_us=100),
        name="liar",
        executor=executor,
        cost=lambda rows: 1e-6,
    )

    async def main() -> None:
        loop_thread = threading.get_ident()
        for i in range(SLOW_STREAK + 3):
            await batcher.submit(rows(i, 1))
        on_loop = [t == loop_thread for t in threads]
        # The first slow run (wall clock) only starts CPU timing; then a streak decides.
        assert on_loop == [True] * (SLOW_STREAK + 1) + [False, False]

    with caplog.at_level("WARNING", logger="gateway.serving"):
        run(main)
    assert "using the executor from now" in caplog.text


def test_one_slow_inline_run_is_a_hiccup_not_a_verdict(executor: ThreadPoolExecutor) -> None:
    """A tiny model whose run once computes for long stays inline: only a streak of slow
    runs moves it to the executor."""
    slow = {0, 2, 4}  # never SLOW_STREAK in a row
    calls: list[int] = []

    def run_fn(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(threading.get_ident())
        if len(calls) - 1 in slow:
            until = time.thread_time() + 0.005
            while time.thread_time() < until:
                pass
        return {"y": inputs["x"] * 2}

    batcher = Batcher(
        run_fn, BatchPolicy(inline_below_us=100), name="hiccup", executor=executor,
        cost=lambda rows: 1e-6,
    )  # fmt: skip

    async def main() -> None:
        loop_thread = threading.get_ident()
        for i in range(8):
            await batcher.submit(rows(i, 1))
        assert calls == [loop_thread] * 8

    run(main)


def test_waiting_during_an_inline_run_is_not_counted_as_its_cost(
    executor: ThreadPoolExecutor,
) -> None:
    """Waiting (for the GIL, for a core another process holds) costs no CPU time: a tiny
    model whose every run is delayed that way stays on the loop."""

    def run_fn(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(0.005)  # released the GIL and waited, as session.run can
        return {"y": inputs["x"] * 2}

    calls: list[int] = []
    batcher = Batcher(
        lambda inputs: (calls.append(threading.get_ident()), run_fn(inputs))[1],
        BatchPolicy(inline_below_us=100), name="waits", executor=executor,
        cost=lambda rows: 1e-6,
    )  # fmt: skip

    async def main() -> None:
        loop_thread = threading.get_ident()
        for i in range(SLOW_STREAK + 3):
            await batcher.submit(rows(i, 1))
        assert calls == [loop_thread] * (SLOW_STREAK + 3)

    run(main)
