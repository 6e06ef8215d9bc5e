"""Trace context of one call: W3C ``traceparent`` in, timestamps along the way, ids out.

Tracing (the ``otel`` extra, :mod:`gateway.tracing`) is built off the request path: a face
that has a :class:`Tracing` makes one :class:`RequestTrace` per call, from the caller's
``traceparent``/``tracestate`` (gRPC metadata or HTTP headers), and each step stamps a
``perf_counter`` reading on it — decoded, routed, queued, its batch formed, computed,
answered, encoded. When the face is done it hands the trace to :meth:`Tracing.end`, which
offers it to the exporter's bounded queue; the spans (OTLP protobuf messages) are made
from the stamps on the exporter's thread. Nothing here imports opentelemetry.

One trace per request, so a batch shared by many requests appears in each request's trace
as its own ``batch`` span (with ``compute`` under it) carrying the batch's id, size and
rows: a trace viewer shows the whole path of one request without following links.

With no :class:`Tracing` (tracing off and the prediction log off) a face makes no trace and
the data plane and batcher see ``None``: one ``is None`` test per call.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "DecisionTrace",
    "RequestTrace",
    "ShadowRun",
    "TraceExport",
    "Tracing",
    "Worker",
    "parse_traceparent",
]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_HEX = frozenset("0123456789abcdef")
_MAX_TRACESTATE = 512  # W3C: 32 members; a longer header is dropped, not echoed


def _hex(text: str, size: int) -> bool:
    return len(text) == size and set(text) <= _HEX and text != "0" * size


def parse_traceparent(value: str | None) -> tuple[str, str, bool] | None:
    """``(trace_id, parent_span_id, sampled)`` of a W3C ``traceparent``, or None when it is
    absent or malformed (the W3C rule: then start a new trace, never fail the call)."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, trace_id, span_id, flags = parts[0], parts[1], parts[2], parts[3]
    if version == "00" and len(parts) != 4:
        return None
    if not (_hex(trace_id, 32) and _hex(span_id, 16)) or len(flags) != 2 or set(flags) - _HEX:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


def new_trace_id() -> str:
    return f"{random.getrandbits(128):032x}"


def new_span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


class RequestTrace:
    """One call's trace context and the ``perf_counter`` stamps of its steps (0.0: not
    reached). ``span_id`` is the id of the gateway's server span, made up front so that work
    done later for this call (a shadow run) can name it as its parent."""

    __slots__ = (
        "answered",
        "batch_id",
        "batch_requests",
        "batch_rows",
        "cached",
        "computed",
        "computing",
        "decoded",
        "encoded",
        "face",
        "formed",
        "model",
        "parent_id",
        "queued",
        "received",
        "request_id",
        "role",
        "routed",
        "sampled",
        "span_id",
        "status",
        "trace_id",
        "tracestate",
        "version",
        "wall_ns",
    )

    def __init__(
        self, face: str, received: float, trace_id: str, parent_id: str, sampled: bool
    ) -> None:
        self.face = face
        self.trace_id = trace_id
        self.parent_id = parent_id  # the caller's span ("" when the trace starts here)
        self.sampled = sampled
        self.tracestate = ""
        self.span_id = new_span_id()
        # One wall-clock reading anchors the perf_counter stamps (spans want epoch ns).
        self.wall_ns = time.time_ns() - int((time.perf_counter() - received) * 1e9)
        self.received = received
        self.decoded = self.routed = self.queued = self.formed = 0.0
        self.computing = self.computed = self.answered = self.encoded = 0.0
        self.batch_id = ""
        self.batch_requests = self.batch_rows = 0
        self.cached = False
        self.model = self.version = self.role = self.request_id = ""
        self.status = "OK"

    def ns(self, stamp: float) -> int:
        """A ``perf_counter`` stamp as nanoseconds since the epoch."""
        return self.wall_ns + int((stamp - self.received) * 1e9)

    def batched(
        self, batch_id: str, requests: int, rows: int, formed: float, start: float, end: float
    ) -> None:
        """Stamp the batch this call ran in (called by the batcher, once per traced call)."""
        self.batch_id = batch_id
        self.batch_requests = requests
        self.batch_rows = rows
        self.formed = formed
        self.computing = start
        self.computed = end


class ShadowRun:
    """A shadow version's run of a traced call's inputs (a child of its server span)."""

    __slots__ = ("end", "ok", "start", "trace", "version")

    def __init__(self, trace: RequestTrace, version: str, start: float, end: float, ok: bool):
        self.trace = trace
        self.version = version
        self.start = start
        self.end = end
        self.ok = ok


class DecisionTrace:
    """One governor evaluation: a trace of its own, whose id the audit event carries."""

    __slots__ = ("end_ns", "kind", "model", "span_id", "start_ns", "trace_id")

    def __init__(self, model: str) -> None:
        self.model = model
        self.trace_id = new_trace_id()
        self.span_id = new_span_id()
        self.start_ns = time.time_ns()
        self.end_ns = 0
        self.kind = ""


TraceExport = Callable[[RequestTrace | ShadowRun | DecisionTrace], object]
"""Where finished traces go (the exporter's bounded queue: never blocks)."""


class Worker(Protocol):
    """The exporter's thread, started and stopped with the gateway."""

    def start(self) -> None: ...

    def close(self, timeout: float = 10.0) -> None: ...


class Tracing:
    """What a face, the batcher, the shadow scorer and the governor ask to trace.

    ``export`` None: trace ids only (the prediction log keeps the caller's trace id while
    nothing is exported); ``worker``: what sends the exported traces."""

    def __init__(self, export: TraceExport | None, worker: Worker | None = None) -> None:
        self.export = export
        self._worker = worker

    def start(self) -> None:
        if self._worker is not None:
            self._worker.start()

    def close(self) -> None:
        """Send what is queued and stop the exporter."""
        if self._worker is not None:
            self._worker.close()

    def begin(
        self, face: str, received: float, header: Callable[[str], str | None]
    ) -> RequestTrace | None:
        """The trace of a call received at ``received``; ``header(name)`` reads its metadata.
        None when nothing exports and the caller sent no trace context: the prediction log
        alone needs only a client's trace id, and the stamps would cost every call."""
        parent = parse_traceparent(header(TRACEPARENT))
        if parent is None:
            if self.export is None:
                return None
            trace = RequestTrace(face, received, new_trace_id(), "", True)
        else:
            trace = RequestTrace(face, received, *parent)
            state = header(TRACESTATE)
            if state and len(state) <= _MAX_TRACESTATE:
                trace.tracestate = state
        return trace

    def end(self, trace: RequestTrace, status: str) -> None:
        """The face answered (or failed with ``status``): export the trace if sampled."""
        trace.encoded = time.perf_counter()
        trace.status = status
        if self.export is not None and trace.sampled:
            self.export(trace)

    def shadow(self, trace: RequestTrace, version: str, start: float, end: float, ok: bool) -> None:
        if self.export is not None and trace.sampled:
            self.export(ShadowRun(trace, version, start, end, ok))

    def decision(self, model: str) -> DecisionTrace | None:
        """A trace for one governor evaluation of ``model`` (None when nothing exports)."""
        return None if self.export is None else DecisionTrace(model)

    def decided(self, trace: DecisionTrace, kind: str) -> None:
        trace.end_ns = time.time_ns()
        trace.kind = kind
        if self.export is not None:
            self.export(trace)
