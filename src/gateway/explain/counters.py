"""Prometheus series of explanation work, on the gateway's one registry (additive: no
series of the data plane changes)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ExplainCounters"]

SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ExplainCounters:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "onnxgate_explain_requests",
            "Explain calls by model and status code.",
            ["model", "code"],
            registry=registry,
        )
        self.rows = Counter(
            "onnxgate_explain_rows",
            "Rows explained successfully (per prediction and the importance sampler).",
            ["model", "version", "source"],
            registry=registry,
        )
        self.seconds = Histogram(
            "onnxgate_explain_duration_seconds",
            "Time one explanation took on the explanation executor.",
            ["model", "version"],
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.pending = Gauge(
            "onnxgate_explain_pending",
            "Explanations queued or running on the explanation executor.",
            registry=registry,
        )
