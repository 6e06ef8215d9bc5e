"""Sending finished traces: one bounded queue, one thread, OTLP/HTTP.

:meth:`TraceExporter.offer` is what :class:`gateway.traces.Tracing` calls when a call, a
shadow run or a governor evaluation ends: one append on a bounded
:class:`~gateway.sidework.SideWork` queue (a full queue drops and counts). Its worker
thread wakes every ``poll_s``, makes the spans of everything queued
(:class:`~gateway.tracing.spans.SpanMaker`) and sends them in one OTLP/HTTP request
(``opentelemetry-exporter-otlp-proto-http``, which retries a refused request with backoff
within its timeout). Spans are made here, not on the event loop: the request path pays the
stamps and one enqueue.

Counted for Prometheus (:class:`TraceCollector`): ``onnxgate_trace_spans_total{outcome}``
(``exported`` / ``failed``: the receiver refused or was unreachable) and
``onnxgate_trace_dropped_total`` (traces the full queue turned away).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.sidework import SideWork
from gateway.tracing.spans import SpanMaker, service_resource

if TYPE_CHECKING:
    from gateway.traces import DecisionTrace, RequestTrace, ShadowRun

__all__ = ["TraceCollector", "TraceExporter", "traces_url"]

log = logging.getLogger(__name__)


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of ``endpoint``: as given when it ends in ``/v1/traces``,
    else the base URL the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` names, plus that path."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class TraceExporter:
    """See the module docstring."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        capacity: int = 4096,
        poll_s: float = 0.5,
        log_every_s: float = 60.0,
    ) -> None:
        self._exporter = exporter
        self._maker = SpanMaker(service_resource())
        # Offered from the loop (faces, governor) and from shadow threads: locked offers.
        self._work: SideWork[RequestTrace | ShadowRun | DecisionTrace] = SideWork(
            "onnxgate-traces", self._handle, capacity=capacity, poll_s=poll_s, threadsafe=True
        )
        self.offer = self._work.offer
        self.flush = self._work.flush
        self.exported = 0  # spans, worker thread only
        self.failed = 0
        self._log_every_s = log_every_s
        self._last_log = -log_every_s

    @property
    def dropped(self) -> int:
        return self._work.dropped

    def start(self) -> None:
        self._work.start()

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, then stop the worker and the exporter."""
        self._work.close(timeout)
        self._exporter.shutdown()

    def _handle(self, items: Sequence[RequestTrace | ShadowRun | DecisionTrace]) -> None:
        spans: list[ReadableSpan] = []
        for item in items:
            spans.extend(self._maker.spans(item))
        try:
            result = self._exporter.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
            log.debug("trace export raised", exc_info=True)
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
            return
        self.failed += len(spans)
        now = time.monotonic()
        if now - self._last_log >= self._log_every_s:
            self._last_log = now
            log.warning("OTLP trace export failed: %d spans lost so far", self.failed)


class TraceCollector(Collector):
    """The exporter's counters, read at scrape time (see the module docstring)."""

    def __init__(self, exporter: TraceExporter) -> None:
        self._exporter = exporter

    def collect(self) -> Iterable[Metric]:
        spans = CounterMetricFamily(
            "onnxgate_trace_spans", "Spans sent by OTLP (exported) or lost (failed).",
            labels=["outcome"],
        )  # fmt: skip
        spans.add_metric(["exported"], self._exporter.exported)
        spans.add_metric(["failed"], self._exporter.failed)
        yield spans
        yield CounterMetricFamily(
            "onnxgate_trace_dropped",
            "Finished traces the full trace queue turned away (never sent).",
            value=self._exporter.dropped,
        )
