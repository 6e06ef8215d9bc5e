"""Prometheus metrics: one ``GatewayMetrics`` owns its ``CollectorRegistry``, and one
:class:`VersionCounters` per (model, version) is the counter set every reader reads.

Label values are bounded: model, version, role, status code, tap and drop reason only,
never request ids. A version's counters are Prometheus children (pre-bound at load, so the
hot path pays no ``labels()`` lookup); Prometheus exports them, Triton's ModelStatistics
(:meth:`VersionCounters.statistics`) and the governor's evidence
(:meth:`VersionCounters.traffic`) read the very same children. The few Triton figures
Prometheus does not export (time spent failing, per-batch-size compute time, last
inference) live beside them in the same object. NOTE: children, not a custom collector,
are the storage because ``--workers N`` relies on prometheus_client's multiprocess files
to sum every worker's samples in the parent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "DeploymentCollector",
    "GatewayMetrics",
    "VersionCounters",
    "VersionStats",
    "VersionTraffic",
]

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
            "Successful ModelInfer latency inside the gateway, decode to result.",
            ["model", "version", "role"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inferences = Counter(
            "onnxgate_inference_rows",
            "Rows (first-dimension items) served successfully.",
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
        # Per pod (the sum of its workers): what an autoscaler scales on (deploy/kubernetes).
        self.inflight = Gauge(
            "onnxgate_inflight_requests",
            "ModelInfer calls admitted and not yet answered (queued or running).",
            registry=r,
            multiprocess_mode="livesum",
        )
        # 0 while the registry's database cannot be read (routes are the last known ones);
        # "livemin" under --workers: one worker that cannot reach it is enough to say so.
        self.registry_reachable = Gauge(
            "onnxgate_registry_reachable",
            "1 while the registry's database answers the routing poll, else 0.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.registry_reachable.set(1)
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
        self.tap_dropped = Counter(
            "onnxgate_tap_dropped",
            "Served requests not handed to the taps (monitor, shadow, feedback): queue full.",
            registry=r,
        )
        self.tap_errors = Counter(
            "onnxgate_tap_errors",
            "Records a tap failed on (the caller's response was not affected), by tap.",
            ["tap"],
            registry=r,
        )
        # The response cache (gateway.serving.cache), for the models that opt in.
        self.cache_hits = Counter(
            "onnxgate_response_cache_hits",
            "Requests answered from the response cache, by the version that served them.",
            ["model", "version"],
            registry=r,
        )
        self.cache_misses = Counter(
            "onnxgate_response_cache_misses",
            "Requests of a cached model that ran inference (not in the cache).",
            ["model", "version"],
            registry=r,
        )
        self.cache_evictions = Counter(
            "onnxgate_response_cache_evictions",
            "Entries the response cache dropped to stay within its size.",
            ["model"],
            registry=r,
        )
        self.cache_entries = Gauge(
            "onnxgate_response_cache_entries",
            "Entries in the response cache.",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self._versions: dict[tuple[str, str], VersionCounters] = {}

    def for_version(self, model: str, version: str) -> VersionCounters:
        """The one counter set of ``model`` ``version`` (made on first use, then kept)."""
        key = (model, version)
        counters = self._versions.get(key)
        if counters is None:
            counters = VersionCounters(self, model, version)
            self._versions[key] = counters
        return counters

    def versions_of(self, model: str) -> Mapping[str, VersionCounters]:
        """Every version of ``model`` that has a counter set, by version."""
        return MappingProxyType({v: c for (m, v), c in self._versions.items() if m == model})

    def models(self) -> set[str]:
        """Every model that has a counter set."""
        return {m for m, _ in list(self._versions)}

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)


@dataclass(frozen=True)
class VersionStats:
    """Triton's ModelStatistics figures of one version, read from its counter set."""

    success_count: int = 0
    success_ns: int = 0
    fail_count: int = 0
    fail_ns: int = 0
    queue_count: int = 0
    queue_ns: int = 0
    compute_count: int = 0
    compute_ns: int = 0
    inference_count: int = 0  # rows served
    execution_count: int = 0  # session.run calls
    last_inference_ms: int = 0
    batch_sizes: Mapping[int, tuple[int, int]] = field(default_factory=dict)  # rows -> (n, ns)


@dataclass(frozen=True)
class VersionTraffic:
    """Cumulative outcomes of one version over every role it has had: OK calls, calls by
    failing status code, and the success-latency histogram (bucket bounds, counts per
    bucket, not cumulative)."""

    ok: int
    errors: Mapping[str, int]
    bounds: tuple[float, ...]
    counts: tuple[int, ...]


class _Role:
    """Pre-bound children of one (model, version, role)."""

    __slots__ = ("errors", "latency", "ok")

    def __init__(self, metrics: GatewayMetrics, model: str, version: str, role: str) -> None:
        self.ok = metrics.requests.labels(model, version, role, "OK")
        self.latency = metrics.latency.labels(model, version, role)
        self.errors: dict[str, Any] = {}


class VersionCounters:
    """The counter set of one (model, version); see the module docstring.

    Written on the event loop thread only (the data plane and the version's batcher), so
    the plain ints beside the children need no lock; readers on other threads may see a
    request counted in one figure and not yet in another, never a torn number.
    It is the version's :class:`gateway.serving.batching.BatchObserver` too.
    """

    def __init__(self, metrics: GatewayMetrics, model: str, version: str) -> None:
        self.model = model
        self.version = version
        self._metrics = metrics
        self._roles: dict[str, _Role] = {}
        self._rows = metrics.inferences.labels(model, version)
        self._size = metrics.batch_size.labels(model, version)
        self._wait = metrics.queue_wait.labels(model, version)
        self._compute = metrics.compute.labels(model, version)
        self._depth = metrics.queue_depth.labels(model, version)
        # Triton-only figures, with no Prometheus series of their own.
        self._fail_ns = 0
        self._queued = 0
        self._batches: dict[int, list[int]] = {}  # rows -> [runs, compute ns]
        self._last_ms = 0

    def _role(self, role: str) -> _Role:
        counters = self._roles.get(role)
        if counters is None:
            counters = self._roles[role] = _Role(self._metrics, self.model, self.version, role)
        return counters

    # -- writers (event loop) ---------------------------------------------------------------

    def succeeded(self, role: str, elapsed_s: float, rows: int) -> None:
        """One request served: its latency and the rows it returned."""
        counters = self._role(role)
        counters.ok.inc()
        counters.latency.observe(elapsed_s)
        self._rows.inc(rows)

    def failed(self, role: str, code: str, elapsed_s: float) -> None:
        """One routed request that ended with status ``code`` (a ``grpc.StatusCode`` name)."""
        counters = self._role(role)
        child = counters.errors.get(code)
        if child is None:
            child = counters.errors[code] = self._metrics.requests.labels(
                self.model, self.version, role, code
            )
        child.inc()
        self._fail_ns += int(elapsed_s * 1e9)

    def on_batch(self, rows: int, requests: int, queue_wait_s: float, compute_s: float) -> None:
        self._size.observe(rows)
        self._wait.observe(queue_wait_s)
        self._compute.observe(compute_s)
        self._queued += requests
        entry = self._batches.get(rows)
        if entry is None:
            entry = self._batches[rows] = [0, 0]
        entry[0] += 1
        entry[1] += int(compute_s * 1e9)
        self._last_ms = int(time.time() * 1000)

    def on_queue_depth(self, depth: int) -> None:
        self._depth.set(depth)

    def on_dropped(self, reason: str) -> None:
        self._metrics.dropped.labels(self.model, self.version, reason).inc()

    # -- readers (any thread, not the hot path) -------------------------------------------

    def statistics(self) -> VersionStats:
        """Triton's figures, from the same children Prometheus exports."""
        ok = fail = 0
        success_s = 0.0
        for counters in list(self._roles.values()):
            ok += int(_value(counters.ok, "_total"))
            success_s += _value(counters.latency, "_sum")
            fail += sum(int(_value(c, "_total")) for c in list(counters.errors.values()))
        runs = int(_value(self._compute, "_count"))
        return VersionStats(
            success_count=ok,
            success_ns=int(success_s * 1e9),
            fail_count=fail,
            fail_ns=self._fail_ns,
            queue_count=self._queued,
            queue_ns=int(_value(self._wait, "_sum") * 1e9),
            compute_count=runs,
            compute_ns=int(_value(self._compute, "_sum") * 1e9),
            inference_count=int(_value(self._rows, "_total")),
            execution_count=runs,
            last_inference_ms=self._last_ms,
            batch_sizes=MappingProxyType({k: (v[0], v[1]) for k, v in self._batches.items()}),
        )

    def traffic(self) -> VersionTraffic:
        """Outcomes summed over roles, for the governor's evidence."""
        ok = 0
        errors: dict[str, int] = {}
        cumulative: dict[float, int] = {}
        for counters in list(self._roles.values()):
            ok += int(_value(counters.ok, "_total"))
            for code, child in list(counters.errors.items()):
                errors[code] = errors.get(code, 0) + int(_value(child, "_total"))
            for name, labels, value in _samples(counters.latency):
                if name.endswith("_bucket"):
                    le = float(labels["le"])
                    cumulative[le] = cumulative.get(le, 0) + int(value)
        bounds = tuple(sorted(cumulative))
        counts, previous = [], 0
        for bound in bounds:
            counts.append(cumulative[bound] - previous)
            previous = cumulative[bound]
        return VersionTraffic(ok, MappingProxyType(errors), bounds, tuple(counts))


def _samples(child: Any) -> Iterable[tuple[str, Mapping[str, str], float]]:
    for metric in child.collect():
        for sample in metric.samples:
            yield sample.name, sample.labels, sample.value


def _value(child: Any, suffix: str) -> float:
    """One sample of a bound child (``_total``, ``_sum``, ``_count``); 0 when absent."""
    for name, _labels, value in _samples(child):
        if name.endswith(suffix):
            return value
    return 0.0


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
