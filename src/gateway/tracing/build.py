"""Build tracing from settings: ``otel_endpoint`` turns on export, the prediction log ids.

* ``otel_endpoint`` set: a :class:`~gateway.traces.Tracing` whose finished traces go to a
  :class:`~gateway.tracing.export.TraceExporter` (OTLP/HTTP), counters registered;
* only the prediction log on: a :class:`~gateway.traces.Tracing` without export, so the
  faces still read the caller's ``traceparent`` and the log keeps its trace id;
* neither: None, and opentelemetry is never imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.traces import Tracing

if TYPE_CHECKING:
    from gateway.metrics import GatewayMetrics
    from gateway.sections import TracingSettings

__all__ = ["build_tracing"]


def build_tracing(
    section: TracingSettings, prediction_log: bool, metrics: GatewayMetrics | None = None
) -> Tracing | None:
    """The tracing ``section`` asks for (None: no trace is made at all)."""
    if not section.otel_endpoint:
        return Tracing(None) if prediction_log else None
    # NOTE: imported here so that a gateway without tracing (and the otel extra) never
    # loads opentelemetry.
    try:
        from gateway.tracing.export import TraceCollector, TraceExporter, traces_url
        from gateway.tracing.spans import service_attributes
    except ImportError as exc:
        raise RuntimeError(
            f"otel_endpoint needs the otel extra (pip install 'onnxgate[otel]'): {exc}"
        ) from exc
    exporter = TraceExporter(
        traces_url(section.otel_endpoint),
        service_attributes(),
        capacity=section.otel_queue,
        headers=section.otel_header_map,
    )
    if metrics is not None:
        metrics.add_collector(TraceCollector(exporter))
    return Tracing(exporter.offer, exporter)
