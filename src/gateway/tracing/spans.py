"""Finished traces as OpenTelemetry spans, made on the exporter's thread.

One call is one server span (``onnxgate.infer``, a child of the caller's span when it sent
a ``traceparent``) with a child per step it reached::

    onnxgate.infer            received -> encoded         face, model, version, role, status
      decode                  received -> decoded
      route                   decoded  -> routed          admission, route, validation
      queue                   queued   -> batch formed    (the batcher's queue)
      batch                   formed   -> answered        batch id, requests, rows
        compute               the batch's run (concatenate, session.run)
      encode                  answered -> encoded
      shadow                  a shadow version's run of the same inputs (later)

A batch serves many calls; each of their traces holds its own ``batch``/``compute`` spans
with the same ``onnxgate.batch.id``, rather than one span linked from many traces, so one
trace shows a call's whole path. A governor evaluation is a trace of its own
(``onnxgate.governor.decision``), whose id its audit event carries.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from gateway.traces import DecisionTrace, RequestTrace, ShadowRun, new_span_id

__all__ = ["SpanMaker", "service_resource"]

_SCOPE = InstrumentationScope("onnxgate")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def service_resource() -> Resource:
    """The resource of every span: ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` as
    the SDK reads them, ``service.name`` onnxgate when they name none."""
    resource = Resource.create()
    name = str(resource.attributes.get("service.name", ""))
    if not name or name.startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "onnxgate"}))
    return resource


class SpanMaker:
    """Makes the spans of one finished trace (see the module docstring)."""

    def __init__(self, resource: Resource) -> None:
        self._resource = resource

    def spans(self, item: RequestTrace | ShadowRun | DecisionTrace) -> list[ReadableSpan]:
        if isinstance(item, RequestTrace):
            return self._request(item)
        if isinstance(item, ShadowRun):
            return [self._shadow(item)]
        return [self._decision(item)]

    def _context(self, trace_id: str, span_id: str, state: str = "") -> SpanContext:
        return SpanContext(
            int(trace_id, 16),
            int(span_id, 16),
            is_remote=False,
            trace_flags=_SAMPLED,
            trace_state=TraceState.from_header([state]) if state else TraceState(),
        )

    def _span(
        self,
        name: str,
        trace: RequestTrace,
        parent: SpanContext,
        start: float,
        end: float,
        attributes: dict[str, Any] | None = None,
        status: Status | None = None,
    ) -> ReadableSpan:
        return ReadableSpan(
            name,
            self._context(trace.trace_id, new_span_id(), trace.tracestate),
            parent,
            self._resource,
            attributes or {},
            kind=SpanKind.INTERNAL,
            status=status or Status(StatusCode.UNSET),
            start_time=trace.ns(start),
            end_time=trace.ns(max(start, end)),
            instrumentation_scope=_SCOPE,
        )

    def _request(self, t: RequestTrace) -> list[ReadableSpan]:
        root = self._context(t.trace_id, t.span_id, t.tracestate)
        caller = (
            None
            if not t.parent_id
            else SpanContext(int(t.trace_id, 16), int(t.parent_id, 16), True, _SAMPLED)
        )
        attributes: dict[str, Any] = {
            "onnxgate.face": t.face,
            "onnxgate.model": t.model,
            "onnxgate.version": t.version,
            "onnxgate.role": t.role,
            "onnxgate.request_id": t.request_id,
            "onnxgate.status": t.status,
            "rpc.system": "grpc" if t.face == "grpc" else "http",
        }
        if t.cached:
            attributes["onnxgate.cache_hit"] = True
        ok = t.status == "OK"
        spans = [
            ReadableSpan(
                "onnxgate.infer",
                root,
                caller,
                self._resource,
                attributes,
                kind=SpanKind.SERVER,
                status=Status(StatusCode.OK if ok else StatusCode.ERROR, None if ok else t.status),
                start_time=t.wall_ns,
                end_time=t.ns(t.encoded),
                instrumentation_scope=_SCOPE,
            )
        ]
        decoded = t.decoded or t.received
        if t.decoded:
            spans.append(self._span("decode", t, root, t.received, t.decoded))
        if t.routed:
            spans.append(self._span("route", t, root, decoded, t.routed))
        if t.formed:
            spans.append(self._span("queue", t, root, t.queued, t.formed))
            batch_end = t.answered or t.computed
            batch = self._span("batch", t, root, t.formed, batch_end, {
                "onnxgate.batch.id": t.batch_id,
                "onnxgate.batch.requests": t.batch_requests,
                "onnxgate.batch.rows": t.batch_rows,
            })  # fmt: skip
            spans.append(batch)
            assert batch.context is not None
            spans.append(self._span("compute", t, batch.context, t.computing,
                                    t.computed, {"onnxgate.batch.id": t.batch_id}))  # fmt: skip
        if t.answered:
            spans.append(self._span("encode", t, root, t.answered, t.encoded))
        return spans

    def _shadow(self, run: ShadowRun) -> ReadableSpan:
        t = run.trace
        parent = self._context(t.trace_id, t.span_id, t.tracestate)
        attributes = {
            "onnxgate.model": t.model,
            "onnxgate.version": run.version,
            "onnxgate.served_version": t.version,
        }
        failed = None if run.ok else Status(StatusCode.ERROR, "shadow run failed")
        return self._span("shadow", t, parent, run.start, run.end, attributes, failed)

    def _decision(self, d: DecisionTrace) -> ReadableSpan:
        return ReadableSpan(
            "onnxgate.governor.decision",
            self._context(d.trace_id, d.span_id),
            None,
            self._resource,
            {"onnxgate.model": d.model, "onnxgate.decision": d.kind},
            kind=SpanKind.INTERNAL,
            start_time=d.start_ns,
            end_time=max(d.start_ns, d.end_ns),
            instrumentation_scope=_SCOPE,
        )
