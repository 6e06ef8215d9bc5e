"""Thin servicer for ``inference.GRPCInferenceService`` (Open Inference Protocol v2).

Each method converts protobuf to domain objects, asks the data plane, converts back:
reads go to :class:`gateway.serving.reads.Reads`, ``ModelInfer`` (the hot path) is decode
(``np.frombuffer``), the face rules of :mod:`gateway.transport.oip` (routing key from the
parameters or metadata, refusal counting, deadline),
:meth:`gateway.serving.dataplane.DataPlane.infer`, encode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from gateway.serving.caller import caller
from gateway.serving.dataplane import DataPlane
from gateway.serving.reads import SERVER_NAME, ModelConfig, Reads
from gateway.traces import RequestTrace
from gateway.transport import converters, oip
from gateway.transport.auth import principal
from gateway.transport.decoding import Decoder
from gateway.transport.status import status_for
from registry.signature import TensorSpec

__all__ = ["InferenceServicer", "answer", "metadata_value"]

Context = grpc.aio.ServicerContext[Any, Any]
EXTENSIONS = ("model_configuration", "statistics")


def _metadata(specs: Sequence[TensorSpec]) -> list[pb.ModelMetadataResponse.TensorMetadata]:
    return [
        pb.ModelMetadataResponse.TensorMetadata(name=s.name, datatype=s.datatype, shape=s.shape)
        for s in specs
    ]


def _config(c: ModelConfig) -> pb.ModelConfig:
    config = pb.ModelConfig(
        name=c.name, platform=c.platform, backend=c.backend, max_batch_size=c.max_batch_size
    )
    for spec in c.inputs:
        config.input.add(
            name=spec.name, data_type=converters.DATATYPE_TO_CONFIG[spec.datatype],
            dims=c.dims(spec),
        )  # fmt: skip
    for spec in c.outputs:
        config.output.add(
            name=spec.name, data_type=converters.DATATYPE_TO_CONFIG[spec.datatype],
            dims=c.dims(spec),
        )  # fmt: skip
    return config


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, reads: Reads, plane: DataPlane, decoder: Decoder | None = None) -> None:
        self._reads = reads
        self._plane = plane
        self._decoder = decoder or Decoder(thread_bytes=0, process_bytes=0)

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._reads.ready())

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=self._reads.version, extensions=list(EXTENSIONS)
        )

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self._reads.model_ready(request.name, request.version))

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        meta = self._reads.model_metadata(request.name, request.version)
        return pb.ModelMetadataResponse(
            name=meta.name,
            versions=meta.versions,
            platform=meta.platform,
            inputs=_metadata(meta.inputs),
            outputs=_metadata(meta.outputs),
        )

    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: Context
    ) -> pb.ModelConfigResponse:
        config = self._reads.model_config(request.name, request.version)
        return pb.ModelConfigResponse(config=_config(config))

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Context
    ) -> pb.ModelStatisticsResponse:
        response = pb.ModelStatisticsResponse()
        for s in self._reads.statistics(request.name, request.version):
            converters.fill_statistics(response.model_stats.add(), s.model, s.version, s.stats)
        return response

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Context
    ) -> pb.RepositoryIndexResponse:
        response = pb.RepositoryIndexResponse()
        for e in self._reads.repository_index(ready_only=request.ready):
            response.models.add(name=e.name, version=e.version, state=e.state, reason=e.reason)
        return response

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        received = time.perf_counter()
        tracing = self._plane.tracing  # None: tracing and the prediction log off, no trace
        trace = (
            None
            if tracing is None
            else tracing.begin("grpc", received, lambda name: metadata_value(context, name))
        )
        caller.set(("grpc", principal.get()))  # this call's own task: no reset needed
        try:
            return await answer(
                self._plane,
                self._decoder,
                request,
                lambda name: metadata_value(context, name),
                oip.deadline(context.time_remaining()),
                received=received,
                trace=trace,
            )
        except BaseException as exc:
            if trace is not None:
                trace.status = status_for(exc)[0].name
            raise
        finally:
            # NOTE: a try costs nothing until it catches (3.11), so untraced calls pay the
            # two tests only.
            if trace is not None and tracing is not None:
                tracing.end(trace, trace.status)


async def answer(
    plane: DataPlane,
    decoder: Decoder,
    request: pb.ModelInferRequest,
    header: Callable[[str], str | None],
    deadline: float | None,
    *,
    received: float,
    trace: RequestTrace | None = None,
) -> pb.ModelInferResponse:
    """One ``ModelInferRequest`` through the plane: decode (refusals counted), routing key
    (``header`` reads the call's metadata), infer, encode; unary and streamed calls alike.
    Decoding and encoding run where ``decoder`` says (inline, a thread or its process)."""
    where = decoder.where(other_bytes=converters.python_work(request))
    if where == "inline":
        req = oip.decoded(plane, converters.decode_infer_request, request)
    else:
        req = await oip.decoded_off_loop(
            plane, decoder, where, converters.decode_infer_request, request
        )
    if trace is not None:
        trace.decoded = time.perf_counter()
        trace.model = req.model
    key = oip.routing_key(req, header)
    result = await plane.infer(req, key, deadline, received=received, trace=trace)
    where = decoder.where(other_bytes=converters.output_work(result.outputs))
    return await decoder.run(
        where,
        converters.encode_infer_response,
        model=result.model,
        version=result.version,
        request_id=result.request_id,
        outputs=result.outputs,
        parameters=oip.response_parameters(result),
    )


def metadata_value(context: Context, name: str) -> str | None:
    """The call's metadata value for ``name`` (the first), or None."""
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return value.decode() if isinstance(value, bytes) else value
    return None
