"""Composition root: build every collaborator from :class:`Settings`, start, drain, stop.

Nothing else in the package constructs collaborators or holds module-level state; tests
build a :class:`Gateway` on ``127.0.0.1:0`` and talk to the port it reports.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Mapping
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2

from gateway.concurrency import run_blocking
from gateway.explain.assembly import build_explanations
from gateway.fleet import FleetCollector, FleetNode
from gateway.fleet.changes import ChangeWatcher
from gateway.governor.collector import GovernorMetrics
from gateway.governor.feedback import FeedbackStore
from gateway.governor.loop import Governor, default_holder
from gateway.governor.sources import (
    EvidenceSource,
    FeedbackEvidence,
    MetricsEvidence,
    MonitorEvidence,
)
from gateway.metrics import DeploymentCollector, GatewayMetrics
from gateway.monitoring.collector import MonitoringCollector
from gateway.monitoring.contract_guard import ContractCollector, ContractGuard
from gateway.monitoring.monitor import Monitor, MonitorConfig
from gateway.monitoring.performance_metrics import PerformanceCollector
from gateway.monitoring.shadow import ShadowScorer
from gateway.serving.cache import ResponseCache
from gateway.serving.catalog import Catalog
from gateway.serving.dataplane import DataPlane
from gateway.serving.taps import Tap, TapQueue
from gateway.settings import Settings, listen_error
from gateway.transport.admin import AdminServicer
from gateway.transport.explain import ExplainServicer
from gateway.transport.governance import GovernanceServicer
from gateway.transport.governor import GovernorServicer
from gateway.transport.grpc_server import (
    INFERENCE_SERVICE,
    build_grpc_server,
    server_credentials,
)
from gateway.transport.http import ConsoleRoutes, HttpServer, InferenceRoutes, build_app
from gateway.transport.inference import InferenceServicer
from gateway.transport.metrics_http import start_metrics_server
from gateway.transport.monitoring import MonitoringServicer
from registry import Registry, open_registry, supports_notify

__all__ = ["REGISTRY_HEALTH", "Gateway"]

log = logging.getLogger(__name__)

REGISTRY_HEALTH = "onnxgate.registry"
"""Health service name that is NOT_SERVING while the registry's database is unreachable."""


class Gateway:
    """One gateway process: gRPC server, catalog, registry watcher, metrics endpoint."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: Registry | None = None,
        metrics: GatewayMetrics | None = None,
        taps: Mapping[str, Tap] | None = None,
    ) -> None:
        self.settings = settings
        # Refuses (SchemaOutdated: "run `onnxgate db upgrade`") a schema older than ours.
        self.registry = registry or open_registry(settings.registry, settings.artifact_dir)
        self._owns_registry = registry is None
        self.metrics = metrics or GatewayMetrics()
        self._inference_pool = concurrent.futures.ThreadPoolExecutor(
            settings.effective_inference_threads, thread_name_prefix="onnxgate-infer"
        )
        self._io_pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="onnxgate-io")
        self.catalog = Catalog(
            self.registry,
            settings,
            self.metrics,
            inference_executor=self._inference_pool,
            io_executor=self._io_pool,
        )
        self.metrics.add_collector(DeploymentCollector(self.catalog.deployment_snapshot))
        # Drift monitor and shadow scorer: taps that only enqueue (see serving/taps.py).
        versions = self.catalog.loaded_versions
        self.monitor = (
            Monitor(MonitorConfig.from_settings(settings), self.registry, versions=versions)
            if settings.monitoring
            else None
        )
        self.shadow = ShadowScorer(
            self.catalog.shadows,
            queue_size=settings.shadow_queue,
            threads=settings.shadow_threads,
            feed=None if self.monitor is None else self.monitor.offer,
            versions=versions,
        )
        self.metrics.add_collector(
            MonitoringCollector(
                None if self.monitor is None else self.monitor.snapshot,
                self.shadow.snapshot,
                top_k=settings.monitor_top_k,
            )
        )
        if self.monitor is not None:
            self.metrics.add_collector(PerformanceCollector(self.monitor.snapshot))
        watchers: dict[str, Tap] = {"shadow": self.shadow.observe}
        if self.monitor is not None:
            watchers["monitor"] = self.monitor.observe
        # Governor: predictions kept for delayed labels (recorded only for models with a
        # policy), evidence sources, and the loop that moves traffic (started in start()).
        self.feedback = FeedbackStore(
            max_records=settings.feedback_records,
            ttl_s=settings.feedback_ttl_s,
            keep_inputs=settings.explain_keep_inputs,
        )
        watchers["feedback"] = self.feedback.observe
        # Explanations: the Explain RPC's own executor, the global-importance sampler tap.
        self.explanations = build_explanations(
            settings,
            self.catalog,
            self.registry,
            self.metrics,
            lookup=self.feedback.inputs_of,
            settle=self._settle_taps,
        )
        watchers.update(self.explanations.taps())
        self.taps = TapQueue(
            {**watchers, **(taps or {})}, capacity=settings.tap_queue, metrics=self.metrics
        )
        self.plane = DataPlane(
            self.catalog,
            self.metrics,
            max_inflight=settings.max_inflight,
            max_inflight_per_model=settings.max_inflight_per_model,
            retry_after_s=settings.retry_after_ms / 1000,
            taps=self.taps,
            cache=ResponseCache(settings.response_cache_sizes, self.metrics),
            contracts=(contracts := ContractGuard(self.registry.get_profile)).check,
        )
        self.contracts = contracts
        self.metrics.add_collector(ContractCollector(contracts))
        governor_metrics = GovernorMetrics(self.metrics)
        drift = None if self.monitor is None else self.monitor.snapshot
        local: list[EvidenceSource] = [
            MetricsEvidence(self.metrics),
            FeedbackEvidence(self.feedback),
            MonitorEvidence(drift, self.shadow.snapshot),
        ]
        holder = default_holder()
        # With a fleet the governor judges every process's published evidence (gateway.fleet).
        self.fleet = self._fleet(holder, local) if settings.fleet else None
        self.governor = Governor(
            self.registry,
            self.catalog,
            self.feedback,
            # Importance drift is judged on this process's own sample, fleet or not.
            [*(local if self.fleet is None else [self.fleet]), *self.explanations.evidence()],
            io_executor=self._io_pool,
            holder=holder,
            tick_s=settings.governor_interval_s,
            on_decision=governor_metrics.on_decision,
            windows=self.fleet,
        )
        governor_metrics.attach(self.governor, self.feedback)
        self.governor.on_contracts = contracts.configure
        self.governor_api = GovernorServicer(
            self.registry,
            self.feedback,
            io_executor=self._io_pool,
            on_change=self.governor.evaluate_now,
            settle=self.taps.settled,
            resolve=None if self.fleet is None else self.fleet.resolve,
        )
        self._governor_task: asyncio.Task[None] | None = None
        self.inference = InferenceServicer(self.catalog, self.plane)
        self.admin = AdminServicer(self.registry, self.catalog, io_executor=self._io_pool)
        self.monitoring = MonitoringServicer(
            self.monitor, self.shadow, io_executor=self._io_pool, settle=self.taps.settled,
            role_of=self._role_of, quality=self.feedback.quality,
        )  # fmt: skip
        self.governance = GovernanceServicer(self.registry, io_executor=self._io_pool)
        self.explain = ExplainServicer(
            self.explanations.explainer,
            default_timeout_s=settings.explain_deadline_s,
            importance=self.explanations.snapshot,
        )
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self.metrics_port = 0
        self._metrics_server: Any = None
        self.http: HttpServer | None = None
        self.http_port = 0  # the bound HTTP port once started (settings.http_port may be 0)
        self._stop_watch = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._fleet_task: asyncio.Task[None] | None = None
        self.changes: ChangeWatcher | None = None
        if self.fleet is not None and supports_notify(settings.registry):
            self.changes = ChangeWatcher(settings.registry, self.catalog.sync)

    def _role_of(self, model: str, version: str) -> str:
        entry = self.catalog.entry(model)
        return "" if entry is None else entry.table.role_of(version)

    def _fleet(self, holder: str, local: list[EvidenceSource]) -> FleetNode:
        s = self.settings
        node = FleetNode(self.registry, local, self.feedback, self.metrics, process=holder,
                         publish_s=s.fleet_publish_s, lease_s=s.fleet_lease_s,
                         outbox=s.fleet_outbox, ttl_s=s.feedback_ttl_s)  # fmt: skip
        self.metrics.add_collector(FleetCollector(node))
        return node

    async def _settle_taps(self) -> bool:
        return await self.taps.settled()

    def _build_server(self) -> grpc.aio.Server:
        return build_grpc_server(
            self.settings,
            inference=self.inference,
            admin=self.admin,
            monitoring=self.monitoring,
            governance=self.governance,
            governor=self.governor_api,
            explain=self.explain,
            health=self.health,
        )

    async def start(self) -> int:
        """Load every deployed version, then listen. Health turns SERVING only after that."""
        await self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.catalog.sync(force=True)
        self.server = self._build_server()
        address = f"{self.settings.host}:{self.settings.port}"
        creds = server_credentials(self.settings)
        try:
            if creds is None:
                self.port = self.server.add_insecure_port(address)
            else:
                self.port = self.server.add_secure_port(address, creds)
        except RuntimeError:  # grpc's "Failed to bind to address"
            self.port = 0
        if self.port == 0:
            raise listen_error("gRPC", address, "port")
        await self.server.start()
        try:
            self._start_metrics_endpoint()
        except OSError as exc:
            where = f"{self.settings.host}:{self.settings.metrics_port}"
            raise listen_error("metrics", where, "metrics_port", exc.strerror) from None
        try:
            await self._start_http()
        except OSError as exc:
            where = f"{self.settings.host}:{self.settings.http_port}"
            raise listen_error("HTTP", where, "http_port", exc.strerror) from None
        self.taps.start()
        self.explanations.start()
        if self.monitor is not None:
            self.monitor.start()
        self._watch_task = asyncio.get_running_loop().create_task(
            self.catalog.watch(self._stop_watch, self._registry_health)
        )
        if self.changes is not None:
            self.changes.start(asyncio.get_running_loop())
        if self.fleet is not None:
            self._fleet_task = asyncio.get_running_loop().create_task(
                self.fleet.run(self._stop_watch)
            )
        if self.settings.governor:
            self._governor_task = asyncio.get_running_loop().create_task(
                self.governor.run(self._stop_watch)
            )
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(INFERENCE_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        metrics = f"/metrics on :{self.metrics_port}" if self._metrics_server else "no /metrics"
        await self.health.set(REGISTRY_HEALTH, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "onnxgate serving on %s:%d (%s, %s); models: %s",
            self.settings.host,
            self.port,
            f"HTTP :{self.http_port}" if self.settings.http_port >= 0 else "no HTTP",
            metrics,
            ", ".join(sorted(self.catalog.entries())) or "none yet",
        )
        if not self.settings.admin_tokens:
            log.warning(
                "no admin token configured: every admin call (traffic, promote, rollback, "
                "shadow, policy, governor) will be refused; set ONNXGATE_ADMIN_TOKEN"
            )
        return self.port

    async def _registry_health(self, reachable: bool) -> None:
        # Inference keeps serving the last routes, so "" stays SERVING; this service name
        # tells readiness probes and operators that changes cannot be made just now.
        status = health_pb2.HealthCheckResponse
        await self.health.set(REGISTRY_HEALTH, status.SERVING if reachable else status.NOT_SERVING)

    async def _start_http(self) -> None:
        """OIP v2 over HTTP, on this loop, through the same data plane as gRPC."""
        s = self.settings
        if s.http_port < 0:
            return
        inference = InferenceRoutes(
            self.catalog,
            self.plane,
            predict_tokens=s.predict_tokens,
            max_body_bytes=s.max_message_bytes,
        )
        # The console reads the operator servicers as _build_server wrapped them (role guard).
        console = ConsoleRoutes(
            admin=self.admin,
            governance=self.governance,
            governor=self.governor_api,
            monitoring=self.monitoring,
            registry=self.registry,
            io_executor=self._io_pool,
        )
        tls = (
            None
            if s.tls_cert is None or s.tls_key is None
            else (s.tls_cert, s.tls_key, s.tls_client_ca)
        )
        self.http = HttpServer(
            build_app([*inference.routes(), *console.routes()]),
            s.host,
            s.http_port,
            reuse_port=s.workers > 1,
            grace_s=s.grace_s,
            tls=tls,
        )
        self.http_port = await self.http.start()

    def _start_metrics_endpoint(self) -> None:
        if self.settings.metrics_port < 0:
            return
        self._metrics_server, self.metrics_port = start_metrics_server(
            self.metrics.registry, self.settings.host, self.settings.metrics_port
        )

    async def stop(self, grace: float | None = None) -> None:
        """Drain, then release everything: health NOT_SERVING; new ModelInfer calls get
        UNAVAILABLE (retryable, unlike CANCELLED); the calls already admitted, queued or
        running, get up to ``grace`` seconds (``grace_s``) to finish; then the gRPC server
        stops, with what is left of the deadline for calls still being answered.

        NOTE: the listener stays open while draining. Stopping the gRPC server first (as
        before) had its core cancel calls it had received but not yet handed to Python,
        and with 8 clients sending, those came back CANCELLED, which clients do not retry.
        """
        grace = self.settings.grace_s if grace is None else grace
        deadline = time.monotonic() + grace
        await self.health.enter_graceful_shutdown()
        self.plane.drain()
        if not await self.plane.drained(grace):
            log.warning(
                "drain deadline (%.1fs) passed with %d requests in flight; they are cancelled",
                grace,
                self.plane.inflight,
            )
        self._stop_watch.set()
        if self._watch_task is not None:
            await self._watch_task
        if self._governor_task is not None:
            await self._governor_task
        if self.http is not None:
            await self.http.stop()
        if self._fleet_task is not None:
            await self._fleet_task
        if self.changes is not None:
            await run_blocking(self._io_pool, self.changes.close)  # joins its thread
        if self.server is not None:
            await self.server.stop(max(0.0, deadline - time.monotonic()))
        self.taps.close()
        self.shadow.close()
        self.contracts.close()
        self.explanations.close()
        if self.monitor is not None:
            self.monitor.close()
        await self.catalog.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        self._inference_pool.shutdown(wait=True)
        self._io_pool.shutdown(wait=True)
        if self._owns_registry:
            self.registry.close()

    async def wait(self) -> None:
        if self.server is not None:
            await self.server.wait_for_termination()
