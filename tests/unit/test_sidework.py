"""The one side-work mechanism (gateway.sidework) and the consumers built on it."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime

import pytest

from gateway.fleet.node import Outbox
from gateway.sidework import SideWork
from registry import PredictionRow


def test_full_queue_drops_and_counts_and_drain_keeps_order() -> None:
    seen: list[int] = []
    drops: list[int] = []
    work: SideWork[int] = SideWork("t", seen.extend, capacity=3, on_drop=lambda: drops.append(1))
    assert [work.offer(i) for i in range(5)] == [True, True, True, False, False]
    assert (work.offered, work.dropped, work.depth, len(drops)) == (3, 2, 3, 2)
    assert work.drain() == 3 and seen == [0, 1, 2] and work.handled == 3
    with pytest.raises(ValueError):
        SideWork("t", seen.extend, capacity=0)


def test_worker_handles_what_is_offered_and_close_drains_the_rest() -> None:
    seen: list[int] = []
    work: SideWork[int] = SideWork("t", seen.extend, capacity=100, poll_s=0.01)
    work.start()
    try:
        for i in range(10):
            work.offer(i)
        assert work.flush(5)
        assert seen == list(range(10))

        async def settle() -> bool:
            work.offer(10)
            return await work.settled(5)

        assert asyncio.run(settle()) and seen[-1] == 10
    finally:
        work.close()
    work.offer(11)  # no worker any more: close drained, a later flush drains here
    assert work.flush(1) and seen[-1] == 11


def test_a_failing_cycle_is_logged_and_the_worker_goes_on(caplog) -> None:
    calls: list[int] = []
    handled = threading.Event()

    def handle(items: list[int]) -> None:
        calls.append(len(items))
        if len(calls) == 1:
            raise RuntimeError("boom")
        handled.set()

    work: SideWork[int] = SideWork("t", handle, capacity=10, poll_s=0.01, wake_on_offer=True)
    work.start()
    try:
        work.offer(1)
        assert work.flush(5)
        work.offer(2)
        assert handled.wait(5)
    finally:
        work.close()
    assert any("side work t failed" in r.getMessage() for r in caplog.records)


def test_threadsafe_offers_from_many_threads_count_exactly() -> None:
    work: SideWork[int] = SideWork("t", lambda items: None, capacity=1000, threadsafe=True)

    def offer_many() -> None:
        for i in range(300):
            work.offer(i)

    threads = [threading.Thread(target=offer_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (work.offered, work.dropped) == (1000, 200)


def test_outbox_drops_an_unencodable_prediction_alone() -> None:
    written: list[PredictionRow] = []

    def write(rows: list[PredictionRow]) -> int:
        written.extend(rows)
        return len(rows)

    outbox = Outbox(2, write)
    outbox.put("m", "a", "1", [1.0], [])
    outbox.put("m", "b", "1", [object()], [])  # type: ignore[list-item]
    outbox.put("m", "c", "1", [2.0], [])  # the outbox is full: dropped
    assert outbox.publish() == 2
    assert [r.request_id for r in written] == ["a"]
    assert isinstance(written[0].recorded_at, datetime)
    assert (outbox.shared, outbox.dropped) == (1, 2)
