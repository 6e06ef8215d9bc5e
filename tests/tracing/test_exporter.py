"""The exporter alone against a real OTLP/HTTP receiver: retries, failures counted."""

from __future__ import annotations

import time

from otlp_receiver import OtlpReceiver
from shared import wait_for

from gateway.traces import RequestTrace, Tracing
from gateway.tracing.export import TraceExporter, traces_url

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _finished() -> RequestTrace:
    trace = RequestTrace("grpc", time.perf_counter(), TRACE, "00f067aa0ba902b7", True)
    trace.decoded = trace.routed = trace.answered = time.perf_counter()
    return trace


def test_a_refused_export_is_retried_and_then_delivered() -> None:
    with OtlpReceiver(refuse_first=2) as receiver:
        exporter = TraceExporter(traces_url(receiver.url), {"service.name": "t"}, poll_s=0.01)
        exporter.start()
        try:
            Tracing(exporter.offer).end(_finished(), "OK")
            spans = wait_for(lambda: receiver.of_trace(TRACE), timeout=20)
        finally:
            exporter.close()
    assert {s.name for s in spans} == {"onnxgate.infer", "decode", "route", "encode"}
    assert receiver.requests == 3 and exporter.exported == 4 and exporter.failed == 0


def test_an_unreachable_collector_loses_spans_counted_and_a_full_queue_drops() -> None:
    with OtlpReceiver() as receiver:
        url = traces_url(receiver.url)
    exporter = TraceExporter(url, {}, capacity=2, retries=1, poll_s=0.01)
    tracing = Tracing(exporter.offer)
    for _ in range(3):
        tracing.end(_finished(), "OK")
    assert exporter.dropped == 1  # the worker is not started: the queue holds two
    exporter.close()  # drains what is queued: one request, refused
    assert exporter.failed == 8 and exporter.exported == 0
