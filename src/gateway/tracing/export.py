"""Sending finished traces: one bounded queue, one thread, OTLP/HTTP.

:meth:`TraceExporter.offer` is what :class:`gateway.traces.Tracing` calls when a call, a
shadow run or a governor evaluation ends: one append on a bounded
:class:`~gateway.sidework.SideWork` queue (a full queue drops and counts). Its worker
thread wakes every ``poll_s``, writes the spans of everything queued into one OTLP export
request (:class:`~gateway.tracing.spans.SpanWriter`) and POSTs it as
``application/x-protobuf`` to the collector's ``/v1/traces`` (OTLP/HTTP), retrying what the
specification calls transient (429, 502, 503, 504, no connection) a few times with backoff.
Spans are made here, not on the event loop: the request path pays the stamps and one
enqueue.

Counted for Prometheus (:class:`TraceCollector`): ``onnxgate_trace_spans_total{outcome}``
(``exported`` / ``failed``: the receiver refused or stayed unreachable) and
``onnxgate_trace_dropped_total`` (traces the full queue turned away).
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.sidework import SideWork
from gateway.tracing.spans import SpanWriter

if TYPE_CHECKING:
    from gateway.traces import DecisionTrace, RequestTrace, ShadowRun

__all__ = ["TraceCollector", "TraceExporter", "post_otlp", "traces_url"]

log = logging.getLogger(__name__)

TRANSIENT = frozenset({429, 502, 503, 504})
"""OTLP/HTTP: statuses after which the same request is retried."""


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of ``endpoint``: as given when it ends in ``/v1/traces``,
    else the base URL the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` names, plus that path."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def post_otlp(url: str, body: bytes, timeout: float, headers: Mapping[str, str]) -> int:
    """POST one export request; the HTTP status (0: no connection)."""
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={**headers, "Content-Type": "application/x-protobuf"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


class TraceExporter:
    """See the module docstring."""

    def __init__(
        self,
        url: str,
        resource: dict[str, str],
        *,
        capacity: int = 4096,
        poll_s: float = 0.5,
        timeout_s: float = 10.0,
        retries: int = 3,
        headers: Mapping[str, str] | None = None,
        post: Callable[[str, bytes, float, Mapping[str, str]], int] = post_otlp,
        log_every_s: float = 60.0,
    ) -> None:
        self.url = url
        self._writer = SpanWriter(resource)
        self._post = post
        self._headers = dict(headers or {})  # NOTE: may hold credentials: never logged
        self._timeout_s = timeout_s
        self._retries = retries
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
        """Send what is queued, then stop the worker."""
        self._work.close(timeout)

    def _handle(self, items: list[RequestTrace | ShadowRun | DecisionTrace]) -> None:
        message, count = self._writer.request(items)
        body = message.SerializeToString()
        status = 0
        for attempt in range(self._retries):
            status = self._post(self.url, body, self._timeout_s, self._headers)
            if status not in TRANSIENT and status != 0:
                break
            if self._work.stopping or attempt == self._retries - 1:
                break
            time.sleep(0.5 * 2**attempt)
        if 200 <= status < 300:
            self.exported += count
            return
        self.failed += count
        now = time.monotonic()
        if now - self._last_log >= self._log_every_s:
            self._last_log = now
            log.warning(
                "OTLP trace export to %s failed (HTTP %s): %d spans lost so far",
                self.url,
                status or "no connection",
                self.failed,
            )


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
