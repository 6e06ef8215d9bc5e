"""The tap queue and the per-version counter set, without a server."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from gateway.metrics import GatewayMetrics
from gateway.serving.taps import TapQueue, TapRecord
from registry.signature import Signature


def _record(request_id: str = "r") -> TapRecord:
    x = {"x": np.zeros((1, 2), np.float32)}
    return TapRecord("m", "1", "champion", request_id, {}, x, {"y": x["x"]}, Signature((), ()))


def test_full_queue_drops_and_counts() -> None:
    metrics = GatewayMetrics()
    seen: list[str] = []
    queue = TapQueue({"t": lambda r: seen.append(r.request_id)}, capacity=2, metrics=metrics)
    for i in range(5):
        queue.offer(_record(str(i)))  # not started: nothing drains
    assert (queue.offered, queue.dropped) == (2, 3)
    assert metrics.registry.get_sample_value("onnxgate_tap_dropped_total") == 3
    assert queue.flush(5)  # drains in the caller when no worker runs
    assert seen == ["0", "1"]


def test_failing_tap_is_counted_logged_once_and_others_still_run(caplog) -> None:
    metrics = GatewayMetrics()
    seen: list[str] = []

    def boom(record: TapRecord) -> None:
        raise RuntimeError("secret payload 42")

    queue = TapQueue(
        {"boom": boom, "ok": lambda r: seen.append(r.request_id)},
        metrics=metrics,
        log_every_s=3600,
    )
    queue.start()
    try:
        with caplog.at_level(logging.ERROR, logger="gateway.serving.taps"):
            for i in range(3):
                queue.offer(_record(str(i)))
            assert queue.flush(5)
    finally:
        queue.close()
    assert seen == ["0", "1", "2"]
    assert metrics.registry.get_sample_value("onnxgate_tap_errors_total", {"tap": "boom"}) == 3
    logged = [r for r in caplog.records if "tap boom failed" in r.getMessage()]
    assert len(logged) == 1  # rate-limited


def test_settled_waits_for_the_worker() -> None:
    seen: list[str] = []
    queue = TapQueue({"t": lambda r: seen.append(r.request_id)}, poll_s=0.05)
    queue.start()
    try:

        async def offer_then_settle() -> bool:
            queue.offer(_record("a"))
            return await queue.settled(5)

        assert asyncio.run(offer_then_settle())
        assert seen == ["a"]
    finally:
        queue.close()


def test_no_taps_means_disabled() -> None:
    assert not TapQueue({}).enabled
    with pytest.raises(ValueError):
        TapQueue({"t": lambda r: None}, capacity=0)


def test_one_counter_set_feeds_prometheus_statistics_and_traffic() -> None:
    metrics = GatewayMetrics()
    counters = metrics.for_version("m", "1")
    assert metrics.for_version("m", "1") is counters
    counters.on_batch(rows=5, requests=2, queue_wait_s=0.001, compute_s=0.002)
    counters.succeeded("champion", 0.003, rows=2)
    counters.succeeded("champion", 0.004, rows=3)
    counters.failed("champion", "CANCELLED", 0.5)
    counters.failed("canary", "INTERNAL", 0.25)
    sample = metrics.registry.get_sample_value
    assert sample("onnxgate_inference_rows_total", {"model": "m", "version": "1"}) == 5
    labels = {"model": "m", "version": "1", "role": "champion", "code": "CANCELLED"}
    assert sample("onnxgate_requests_total", labels) == 1
    stats = counters.statistics()
    assert (stats.success_count, stats.fail_count, stats.inference_count) == (2, 2, 5)
    assert stats.success_ns == pytest.approx(7_000_000, rel=1e-6)
    assert stats.fail_ns == 750_000_000
    assert (stats.execution_count, stats.queue_count) == (1, 2)
    assert dict(stats.batch_sizes) == {5: (1, 2_000_000)}
    traffic = counters.traffic()
    assert traffic.ok == 2 and dict(traffic.errors) == {"CANCELLED": 1, "INTERNAL": 1}
    assert sum(traffic.counts) == 2 and traffic.bounds[-1] == float("inf")
    assert set(metrics.versions_of("m")) == {"1"}


def test_failed_calls_reach_only_the_every_call_taps() -> None:
    """One queue carries every call: failures go to the taps that asked for every call (the
    prediction log), never to the others (shadow, monitor, feedback)."""
    seen: dict[str, list[str]] = {"monitor": [], "log": []}
    queue = TapQueue(
        {"monitor": lambda r: seen["monitor"].append(r.request_id)},
        every_call={"log": lambda r: seen["log"].append(r.request_id)},
    )
    assert queue.enabled and queue.every_call
    queue.start()
    try:
        queue.offer(_record("ok"))
        queue.offer(_record("bad")._replace(status="INVALID_ARGUMENT"))
        assert queue.flush(10)
    finally:
        queue.close()
    assert seen == {"monitor": ["ok"], "log": ["ok", "bad"]}
    assert not TapQueue({"monitor": lambda r: None}).every_call
