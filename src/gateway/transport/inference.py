"""Thin servicer for ``inference.GRPCInferenceService`` (Open Inference Protocol v2).

Each method converts protobuf to domain objects, calls the core, converts back. ModelInfer
is the hot path: decode (``np.frombuffer``), the routing key from the request's parameters
or metadata, :meth:`gateway.serving.dataplane.DataPlane.infer`, encode.
"""

from __future__ import annotations

import time
from typing import Any

import grpc

import gateway
from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from gateway.domain import InferRequest
from gateway.errors import GatewayError, NotFound
from gateway.serving.caller import caller
from gateway.serving.catalog import Catalog
from gateway.serving.dataplane import DataPlane
from gateway.transport import converters
from gateway.transport.auth import principal

__all__ = ["InferenceServicer"]

Context = grpc.aio.ServicerContext[Any, Any]

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
    def __init__(self, catalog: Catalog, plane: DataPlane) -> None:
        self._catalog = catalog
        self._plane = plane

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
                    response.model_stats.add(), model, version, served.counters.statistics()
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
        received = time.perf_counter()
        try:
            req = converters.decode_infer_request(request)
        except GatewayError as exc:
            self._plane.refused(exc.code)
            raise
        # A pinned version ignores keys: skip reading the call's metadata.
        key = None if req.version else _routing_key(req, context)
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        caller.set(("grpc", principal.get()))  # this call's own task: no reset needed
        result = await self._plane.infer(req, key, deadline, received=received)
        return converters.encode_infer_response(
            model=result.model,
            version=result.version,
            request_id=result.request_id,
            outputs=result.outputs,
            parameters={"role": result.role},
        )
