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

import grpc
from grpc_health.v1 import health, health_pb2

from gateway.concurrency import run_blocking
from gateway.explain.assembly import build_explanations
from gateway.fleet.changes import ChangeWatcher
from gateway.governing import build_governing
from gateway.governor.feedback import FeedbackStore
from gateway.governor.realised import RealisedHistory
from gateway.metrics import DeploymentCollector, GatewayMetrics
from gateway.monitoring.assembly import build_watching
from gateway.operations import (
    Contracts,
    Deployments,
    Governance,
    GovernorOps,
    Labels,
    Observations,
    Operations,
)
from gateway.predictionlog.build import build_prediction_log, log_history
from gateway.registry_facade import AsyncRegistry
from gateway.serving.cache import ResponseCache
from gateway.serving.catalog import Catalog
from gateway.serving.dataplane import DataPlane
from gateway.serving.reads import Reads
from gateway.serving.repository import RepositoryControl
from gateway.serving.taps import Tap, TapQueue
from gateway.settings import Settings
from gateway.tracing.build import build_tracing
from gateway.transport.admin import AdminServicer
from gateway.transport.decoding import Decoder
from gateway.transport.explain import ExplainServicer
from gateway.transport.faces import Face, GrpcFace, HttpFace, MetricsFace
from gateway.transport.governance import GovernanceServicer
from gateway.transport.governor import GovernorServicer
from gateway.transport.grpc_server import (
    INFERENCE_SERVICE,
    build_grpc_server,
    server_credentials,
)
from gateway.transport.http import HttpServer
from gateway.transport.http.assembly import http_server
from gateway.transport.monitoring import MonitoringServicer
from gateway.transport.shm import SharedMemoryRegions
from gateway.transport.streaming import StreamInference
from gateway.transport.triton import TritonServicer
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
        self.registry = registry or open_registry(
            settings.registry, settings.artifact_dir, settings.artifact_store
        )
        self._owns_registry = registry is None
        self.metrics = metrics or GatewayMetrics()
        self._inference_pool = concurrent.futures.ThreadPoolExecutor(
            settings.effective_inference_threads, thread_name_prefix="onnxgate-infer"
        )
        self._io_pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="onnxgate-io")
        # The one async face of the registry: everything on the event loop reaches it here.
        self.registry_io = AsyncRegistry(self.registry, self._io_pool)
        self.catalog = Catalog(
            self.registry_io,
            settings.serving,
            self.metrics,
            inference_executor=self._inference_pool,
            io_executor=self._io_pool,
        )
        self.metrics.add_collector(DeploymentCollector(self.catalog.deployment_snapshot))
        self.tracing = build_tracing(settings.tracing, bool(settings.prediction_log), self.metrics)
        # The prediction log (off unless set): a tap of every call, failures included, and
        # of every shadow answer (role shadow).
        self.prediction_log = build_prediction_log(settings, self.registry, self.metrics)
        # Drift monitor, shadow scorer, data contracts: taps that only enqueue (serving/taps.py).
        watching = build_watching(
            settings, self.registry, self.catalog, self.metrics, self.tracing, self.prediction_log
        )
        self.monitor, self.shadow = watching.monitor, watching.shadow
        self.contracts = watching.contracts
        watchers: dict[str, Tap] = {"shadow": self.shadow.observe}
        if self.monitor is not None:
            watchers["monitor"] = self.monitor.observe
        # Governor: predictions kept for delayed labels (recorded only for models with a
        # policy), evidence sources, and the loop that moves traffic (started in start()).
        self.feedback = FeedbackStore(
            max_records=settings.feedback_records,
            max_bytes=settings.feedback_max_bytes,
            ttl_s=settings.feedback_ttl_s,
            keep_inputs=settings.explain_keep_inputs,
            settle=self._settle_taps,
            # Realised accuracy over time at the pace the monitor re-estimates it.
            history=RealisedHistory(bucket_s=settings.monitor_interval_s),
        )
        watchers["feedback"] = self.feedback.observe
        # The label join, and the same settled lookup by request id for Explain, falling
        # back to the prediction log's files (any gateway of a fleet, after the join window).
        # With a fleet, labels resolve predictions other members made and join once.
        labels = Labels(self.feedback, settle=self._settle_taps, fleet=lambda: self.fleet,
                        history=log_history(settings, self._io_pool))  # fmt: skip
        # Explanations: the Explain RPC's own executor, the global-importance sampler tap.
        self.explanations = build_explanations(
            settings.explain,
            self.catalog,
            self.registry,
            self.metrics,
            lookup=labels.recorded_inputs,
        )
        watchers.update(self.explanations.taps())
        every_call = {} if self.prediction_log is None else {"prediction_log": self.prediction_log}
        self.taps = TapQueue(
            {**watchers, **(taps or {})},
            every_call=every_call,
            capacity=settings.tap_queue,
            metrics=self.metrics,
        )
        self.plane = DataPlane(
            self.catalog,
            self.metrics,
            max_inflight=settings.max_inflight,
            max_inflight_per_model=settings.max_inflight_per_model,
            retry_after_s=settings.retry_after_ms / 1000,
            taps=self.taps,
            cache=ResponseCache(settings.response_cache_sizes, self.metrics),
            contracts=self.contracts.check,
            tracing=self.tracing,
        )
        deployments = Deployments(self.registry_io, self.catalog)
        # The governor: evidence sources, with a fleet the fleet node (gateway.fleet), the loop.
        governing = build_governing(
            settings,
            self.registry,
            self.registry_io,
            self.metrics,
            deployments=deployments,
            feedback=self.feedback,
            watching=watching,
            explanations=self.explanations,
            io_executor=self._io_pool,
            tracing=self.tracing,
        )
        self.governor, self.fleet = governing.governor, governing.fleet
        contract_source = governing.contract_source
        # Every operator and governor use case, once; servicers and the console call these.
        self.operations = Operations(
            deployments=deployments,
            governance=Governance(self.registry_io),
            governor=GovernorOps(self.registry_io, on_change=self.governor.evaluate_now),
            labels=labels,
            observations=Observations(
                self.monitor,
                self.shadow,
                io_executor=self._io_pool,
                settle=self.taps.settled,
                role_of=self._role_of,
                quality=self.feedback.quality,
                # contract counts beside drift: the fleet's sums, or this process's
                contracts=(contract_source if self.fleet is None else self.fleet).evidence,
                contract_mode=self.contracts.mode,
                fleet=self.fleet is not None,
                realised=self.feedback.realised,
            ),
            contracts=Contracts(self.registry_io, self.contracts.margin),
        )
        ops = self.operations
        self.governor_api = GovernorServicer(ops.governor, ops.labels)
        self.reads = Reads(self.catalog)  # the plane's read side (ready, metadata, stats...)
        # Costly bodies decode off the event loop (BYTES on a thread, large JSON in a process).
        self.decoder = Decoder(
            thread_bytes=settings.decode_thread_bytes, process_bytes=settings.decode_process_bytes
        )
        self.streams = StreamInference(self.plane, self.decoder)
        self.repository = RepositoryControl(self.registry_io, self.catalog)
        self.regions = SharedMemoryRegions()
        self.inference = TritonServicer(self.reads, self.plane, self.decoder, streams=self.streams,
            repository=self.repository, regions=self.regions)  # fmt: skip
        self.admin = AdminServicer(ops.deployments)
        self.monitoring = MonitoringServicer(ops.observations)
        self.governance = GovernanceServicer(ops.governance, ops.contracts)
        self.explain = ExplainServicer(
            self.explanations.explainer,
            default_timeout_s=settings.explain_deadline_s,
            importance=self.explanations.snapshot,
        )
        self.health = health.aio.HealthServicer()
        # The faces, started in this order once the catalog is loaded, stopped in reverse.
        address = f"{settings.host}:{settings.port}"
        self._grpc = GrpcFace(self._build_server, address, server_credentials(settings))
        self._metrics_face = MetricsFace(
            self.metrics.registry, settings.host, settings.metrics_port
        )
        self._http = HttpFace(self._http_server, settings.host, settings.http_port)
        self.faces: list[Face] = [self._grpc]
        self.faces += [self._metrics_face] if settings.metrics_port >= 0 else []
        self.faces += [self._http] if settings.http_port >= 0 else []
        self.metrics_elsewhere = ""  # who serves /metrics when this process does not
        self._stop_watch = asyncio.Event()  # stops the registry watch, fleet and governor
        self._loops: list[asyncio.Task[None]] = []
        self.changes: ChangeWatcher | None = None
        if self.fleet is not None and supports_notify(settings.registry):
            self.changes = ChangeWatcher(settings.registry, self.catalog.sync)

    def _role_of(self, model: str, version: str) -> str:
        entry = self.catalog.entry(model)
        return "" if entry is None else entry.table.role_of(version)

    @property
    def port(self) -> int:
        """The bound gRPC port once started (``settings.port`` may be 0)."""
        return self._grpc.port

    @property
    def http_port(self) -> int:
        return self._http.port

    @property
    def http(self) -> HttpServer | None:
        return self._http.server

    @property
    def metrics_port(self) -> int:
        return self._metrics_face.port

    @property
    def server(self) -> grpc.aio.Server | None:
        return self._grpc.server

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
        for face in self.faces:
            await face.start()
        self.taps.start()
        if self.tracing is not None:
            self.tracing.start()
        if self.prediction_log is not None:
            self.prediction_log.start()
        self.explanations.start()
        if self.monitor is not None:
            self.monitor.start()
        loop, stop = asyncio.get_running_loop(), self._stop_watch
        self._loops.append(loop.create_task(self.catalog.watch(stop, self._registry_health)))
        if self.changes is not None:
            self.changes.start(loop)
        if self.fleet is not None:
            self._loops.append(loop.create_task(self.fleet.run(stop)))
        if self.settings.governor:
            self._loops.append(loop.create_task(self.governor.run(stop)))
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(INFERENCE_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        metrics = (
            f"/metrics on :{self.metrics_port}"
            if self.metrics_port
            else self.metrics_elsewhere or "no /metrics"
        )
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
        self.metrics.registry_reachable.set(1 if reachable else 0)
        status = health_pb2.HealthCheckResponse
        await self.health.set(REGISTRY_HEALTH, status.SERVING if reachable else status.NOT_SERVING)

    def _http_server(self) -> HttpServer:
        return http_server(
            self.settings, reads=self.reads, plane=self.plane, decoder=self.decoder,
            operations=self.operations, sessions=self.registry_io.sessions,
            inference=self.inference, regions=self.regions,
        )  # fmt: skip

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
        self.streams.drain()
        if not await self.plane.drained(grace):
            log.warning(
                "drain deadline (%.1fs) passed with %d requests in flight; they are cancelled",
                grace,
                self.plane.inflight,
            )
        self._stop_watch.set()
        for task in self._loops:
            await task
        if self.changes is not None:
            await run_blocking(self._io_pool, self.changes.close)  # joins its thread
        for face in reversed(self.faces):
            await face.stop(deadline)
        self.decoder.close()
        self.regions.close()
        self.taps.close()
        if self.prediction_log is not None:  # flushes and closes its files (SIGTERM too)
            await run_blocking(self._io_pool, self.prediction_log.close)
        self.shadow.close()
        if self.tracing is not None:  # after the shadow runs: their spans go too
            await run_blocking(self._io_pool, self.tracing.close)
        self.contracts.close()
        self.explanations.close()
        if self.monitor is not None:
            self.monitor.close()
        await self.catalog.close()
        self._inference_pool.shutdown(wait=True)
        self._io_pool.shutdown(wait=True)
        if self._owns_registry:
            self.registry.close()

    async def wait(self) -> None:
        if self.server is not None:
            await self.server.wait_for_termination()
