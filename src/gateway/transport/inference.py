"""Thin servicer for ``inference.GRPCInferenceService`` (Open Inference Protocol v2).

Each method converts protobuf to domain objects, calls the catalog/runtime, converts back.
ModelInfer is the hot path: decode (``np.frombuffer``), route, validate, batch, encode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc

import gateway
from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from gateway.domain import InferRequest, Tensors
from gateway.errors import GatewayError, NotFound, ResourceExhausted
from gateway.metrics import GatewayMetrics
from gateway.serving.catalog import Catalog, Served
from gateway.serving.routing import Route
from gateway.transport import converters

__all__ = ["InferenceServicer", "InferObserver"]

Context = grpc.aio.ServicerContext[Any, Any]
InferObserver = Callable[[InferRequest, Served, Route, Tensors], None]
"""Called after a successful response is built; must only enqueue (monitoring, shadows)."""

ROUTING_KEY_PARAM = "routing_key"
ROUTING_KEY_METADATA = "x-routing-key"
PLATFORM = "onnxruntime_onnx"


def _routing_key(req: InferRequest, context: Context) -> str | None:
    key = req.parameters.get(ROUTING_KEY_PARAM)
    if key is not None and key != "":
        return str(key)
    for name, value in context.invocation_metadata() or ():
        if name == ROUTING_KEY_METADATA:
            return value.decode() if isinstance(value, bytes) else value
    return None


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(
        self,
        catalog: Catalog,
        metrics: GatewayMetrics,
        *,
        max_inflight: int,
        observers: tuple[InferObserver, ...] = (),
    ) -> None:
        self._catalog = catalog
        self._metrics = metrics
        self._max_inflight = max_inflight
        self._inflight = 0
        self.observers = observers

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._catalog.ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name="onnxgate",
            version=gateway.__version__,
            extensions=["model_configuration", "statistics"],
        )

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        try:
            self._catalog.find(request.name, request.version)
        except NotFound:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        served = self._catalog.find(request.name, request.version)
        entry = self._catalog.entry(request.name)
        versions = sorted(entry.served) if entry is not None else [served.version]
        sig = served.loaded.signature
        return pb.ModelMetadataResponse(
            name=request.name,
            versions=versions,
            platform=PLATFORM,
            inputs=converters.tensor_metadata(sig.inputs),
            outputs=converters.tensor_metadata(sig.outputs),
        )

    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: Context
    ) -> pb.ModelConfigResponse:
        served = self._catalog.find(request.name, request.version)
        policy = served.batcher.policy
        max_batch = policy.max_batch_size if policy.enabled else 0
        config = converters.model_config(request.name, served.loaded.signature, max_batch)
        return pb.ModelConfigResponse(config=config)

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Context
    ) -> pb.ModelStatisticsResponse:
        entries = self._catalog.entries()
        if request.name and request.name not in entries:
            raise NotFound(f"model '{request.name}' is not known to this gateway")
        response = pb.ModelStatisticsResponse()
        for model, entry in sorted(entries.items()):
            if request.name and model != request.name:
                continue
            for version, served in sorted(entry.served.items()):
                if request.version and version != request.version:
                    continue
                converters.fill_statistics(
                    response.model_stats.add(), model, version, served.loaded.stats
                )
        if request.version and not response.model_stats:
            raise NotFound(f"model '{request.name}' version '{request.version}' is not loaded")
        return response

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Context
    ) -> pb.RepositoryIndexResponse:
        response = pb.RepositoryIndexResponse()
        for model, entry in sorted(self._catalog.entries().items()):
            versions = {a.version for a in entry.table.arms} | {
                s.version for s in entry.table.shadows
            }
            for version in sorted(versions | set(entry.served)):
                ready = version in entry.served
                if request.ready and not ready:
                    continue
                response.models.add(
                    name=model,
                    version=version,
                    state="READY" if ready else "UNAVAILABLE",
                    reason="" if ready else "not loaded",
                )
        return response

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        start = time.perf_counter()
        if self._inflight >= self._max_inflight:
            self._metrics.rejected.labels("RESOURCE_EXHAUSTED").inc()
            raise ResourceExhausted(
                f"gateway has {self._max_inflight} requests in flight; retry with backoff"
            )
        self._inflight += 1
        route: Route | None = None
        served: Served | None = None
        try:
            req = converters.decode_infer_request(request)
            # A pinned version ignores keys: skip reading the call's metadata.
            key = None if req.version else _routing_key(req, context)
            served, route = self._catalog.route(req.model, req.version, key)
            loaded = served.loaded
            loaded.validate(req.inputs)
            if req.requested_outputs:
                loaded.check_outputs(req.requested_outputs)
            remaining = context.time_remaining()
            deadline = None if remaining is None else time.monotonic() + remaining
            outputs = await served.batcher.submit(req.inputs, deadline=deadline)
            if req.requested_outputs:
                outputs = {name: outputs[name] for name in req.requested_outputs}
            response = converters.encode_infer_response(
                model=req.model,
                version=route.version,
                request_id=req.id,
                outputs=outputs,
                parameters={"role": route.role},
            )
        except GatewayError as exc:
            self._record_failure(grpc.StatusCode[exc.code], served, route, start)
            raise
        except BaseException:
            self._record_failure(grpc.StatusCode.INTERNAL, served, route, start)
            raise
        finally:
            self._inflight -= 1
        elapsed = time.perf_counter() - start
        rm = self._metrics.for_request(req.model, route.version, route.role)
        rm.ok.inc()
        rm.latency.observe(elapsed)
        stats = loaded.stats
        stats.success_count += 1
        stats.success_ns += int(elapsed * 1e9)
        for observer in self.observers:
            observer(req, served, route, outputs)
        return response

    def _record_failure(
        self, code: grpc.StatusCode, served: Served | None, route: Route | None, start: float
    ) -> None:
        if served is None or route is None:
            self._metrics.rejected.labels(code.name).inc()
            return
        self._metrics.for_request(served.loaded.model, route.version, route.role).error(code.name)
        stats = served.loaded.stats
        stats.fail_count += 1
        stats.fail_ns += int((time.perf_counter() - start) * 1e9)
