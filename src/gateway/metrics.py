"""Prometheus metrics: one ``GatewayMetrics`` owns its ``CollectorRegistry``.

Label values are bounded: model, version, role and status code only, never request ids.
Per-request children are cached so the hot path pays one dict lookup, not ``labels()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["BatchMetrics", "GatewayMetrics", "RequestMetrics"]

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class GatewayMetrics:
    """Every metric the gateway exports, registered on one explicit registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "onnxgate_requests",
            "ModelInfer calls by served version, role and gRPC status code.",
            ["model", "version", "role", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "onnxgate_request_duration_seconds",
            "ModelInfer latency inside the gateway, decode to encode.",
            ["model", "version", "role"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inferences = Counter(
            "onnxgate_inference_rows",
            "Rows (first-dimension items) inferred.",
            ["model", "version"],
            registry=r,
        )
        self.batch_size = Histogram(
            "onnxgate_batch_size_rows",
            "Rows per onnxruntime run.",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "onnxgate_queue_wait_seconds",
            "Time a batch's first request waited in the batcher queue.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.compute = Histogram(
            "onnxgate_compute_seconds",
            "onnxruntime run time per batch.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "onnxgate_queue_depth",
            "Requests waiting in the batcher queue.",
            ["model", "version"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.dropped = Counter(
            "onnxgate_batcher_dropped",
            "Requests the batcher dropped before running them, by reason.",
            ["model", "version", "reason"],
            registry=r,
        )
        self.load_failures = Counter(
            "onnxgate_load_failures",
            "Versions that failed to load or warm up and so received no traffic.",
            ["model", "version"],
            registry=r,
        )
        self.rejected = Counter(
            "onnxgate_rejected_requests",
            "Requests refused before routing (bad input, unknown model, overload), by code.",
            ["code"],
            registry=r,
        )
        self._request_children: dict[tuple[str, str, str], RequestMetrics] = {}

    def for_request(self, model: str, version: str, role: str) -> RequestMetrics:
        key = (model, version, role)
        child = self._request_children.get(key)
        if child is None:
            child = RequestMetrics(self, model, version, role)
            self._request_children[key] = child
        return child

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)


class RequestMetrics:
    """Pre-bound children for one (model, version, role): ok/latency on the hot path."""

    __slots__ = ("_metrics", "_labels", "ok", "latency", "rows")

    def __init__(self, metrics: GatewayMetrics, model: str, version: str, role: str) -> None:
        self._metrics = metrics
        self._labels = (model, version, role)
        self.ok = metrics.requests.labels(model, version, role, "OK")
        self.latency = metrics.latency.labels(model, version, role)
        self.rows = metrics.inferences.labels(model, version)

    def error(self, code: str) -> None:
        self._metrics.requests.labels(*self._labels, code).inc()


class BatchMetrics:
    """A :class:`gateway.serving.batching.BatchObserver` feeding Prometheus and Triton
    statistics."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        model: str,
        version: str,
        on_batch: Callable[[int, int, float, float], None] | None = None,
    ) -> None:
        self._metrics = metrics
        self._labels = (model, version)
        self._size = metrics.batch_size.labels(model, version)
        self._wait = metrics.queue_wait.labels(model, version)
        self._compute = metrics.compute.labels(model, version)
        self._depth = metrics.queue_depth.labels(model, version)
        self._on_batch = on_batch

    def on_batch(self, rows: int, requests: int, queue_wait_s: float, compute_s: float) -> None:
        self._size.observe(rows)
        self._wait.observe(queue_wait_s)
        self._compute.observe(compute_s)
        if self._on_batch is not None:
            self._on_batch(rows, requests, queue_wait_s, compute_s)

    def on_queue_depth(self, depth: int) -> None:
        self._depth.set(depth)

    def on_dropped(self, reason: str) -> None:
        self._metrics.dropped.labels(*self._labels, reason).inc()


class DeploymentCollector(Collector):
    """Scrape-time view of routing: weights, revision and loaded versions per model.

    Reads whatever snapshot function it is given at scrape time, so nothing on the request
    path updates these gauges.
    """

    def __init__(
        self,
        snapshot: Callable[[], Iterable[tuple[str, int, list[tuple[str, str, float]], list[str]]]],
    ) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        weight = GaugeMetricFamily(
            "onnxgate_deployment_weight",
            "Normalised traffic weight of each deployed version.",
            labels=["model", "version", "role"],
        )
        revision = GaugeMetricFamily(
            "onnxgate_routing_revision", "Deployment revision being routed.", labels=["model"]
        )
        loaded = GaugeMetricFamily(
            "onnxgate_loaded_versions", "Versions held in memory.", labels=["model"]
        )
        for model, rev, arms, versions in self._snapshot():
            revision.add_metric([model], rev)
            loaded.add_metric([model], len(versions))
            total = sum(w for _, _, w in arms) or 1.0
            for version, role, w in arms:
                weight.add_metric([model, version, role], w / total)
        yield weight
        yield revision
        yield loaded
