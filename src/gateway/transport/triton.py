"""Triton's gRPC extensions beyond the OIP core, on top of :class:`InferenceServicer`.

The core methods (health, metadata, ModelInfer, config, statistics, index) stay in
:mod:`gateway.transport.inference`; this subclass adds what Triton's clients call besides:
``ModelStreamInfer`` (served by :class:`~gateway.transport.streaming.StreamInference`),
repository load/unload, system shared memory (:mod:`.shm`), and CUDA shared memory, which a
CPU gateway refuses in one line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc

from gateway._proto import grpc_service_pb2 as pb
from gateway.errors import InvalidArgument, Unimplemented
from gateway.serving.repository import RepositoryControl
from gateway.transport import shm_wire
from gateway.transport.auth import principal
from gateway.transport.inference import InferenceServicer
from gateway.transport.shm import SharedMemoryRegions
from gateway.transport.streaming import StreamInference

__all__ = [
    "CUDA_SHM_REFUSAL",
    "EXTENSIONS",
    "LOAD_OVERRIDES_REFUSAL",
    "PREDICT_METHODS",
    "REPOSITORY_METHODS",
    "TritonServicer",
]

Context = grpc.aio.ServicerContext[Any, Any]

CUDA_SHM_REFUSAL = (
    "CUDA shared memory is not supported: onnxgate runs models on CPU; "
    "send tensors in the request body instead"
)


LOAD_OVERRIDES_REFUSAL = (
    "repository load takes no config or files: onnxgate serves the model's registered "
    "deployment (register a version and deploy it to change what is served)"
)

EXTENSIONS = (
    "model_configuration",
    "statistics",
    "model_repository",
    "system_shared_memory",
)
"""Triton extensions this face serves (ServerMetadata lists them)."""

REPOSITORY_METHODS = ("RepositoryModelLoad", "RepositoryModelUnload")
"""Deployment changes: the server wraps these in the operator role guard."""

PREDICT_METHODS = (
    "ModelInfer",
    "ModelStreamInfer",
    "SystemSharedMemoryStatus",
    "SystemSharedMemoryRegister",
    "SystemSharedMemoryUnregister",
)
"""What a predict token guards, when predict tokens are configured."""


class TritonServicer(InferenceServicer):
    """``GRPCInferenceService`` with Triton's streaming and repository extensions."""

    def __init__(
        self,
        *args: Any,
        streams: StreamInference,
        repository: RepositoryControl,
        regions: SharedMemoryRegions,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._streams = streams
        self._repository = repository
        self._regions = regions

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        if not shm_wire.uses_regions(request):
            return await super().ModelInfer(request, context)
        owner = principal.get()
        targets = shm_wire.inputs_from_regions(request, self._regions, owner=owner)
        response = await super().ModelInfer(request, context)
        shm_wire.outputs_to_regions(response, targets, self._regions, owner=owner)
        return response

    async def SystemSharedMemoryStatus(
        self, request: pb.SystemSharedMemoryStatusRequest, context: Context
    ) -> pb.SystemSharedMemoryStatusResponse:
        response = pb.SystemSharedMemoryStatusResponse()
        for region in self._regions.status(request.name, owner=principal.get()):
            status = response.regions[region.name]
            status.name, status.key = region.name, region.key
            status.offset, status.byte_size = region.offset, region.byte_size
        return response

    async def SystemSharedMemoryRegister(
        self, request: pb.SystemSharedMemoryRegisterRequest, context: Context
    ) -> pb.SystemSharedMemoryRegisterResponse:
        self._regions.register(
            request.name, request.key, request.offset, request.byte_size, owner=principal.get()
        )
        return pb.SystemSharedMemoryRegisterResponse()

    async def SystemSharedMemoryUnregister(
        self, request: pb.SystemSharedMemoryUnregisterRequest, context: Context
    ) -> pb.SystemSharedMemoryUnregisterResponse:
        self._regions.unregister(request.name, owner=principal.get())
        return pb.SystemSharedMemoryUnregisterResponse()

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        response = await super().ServerMetadata(request, context)
        for extension in EXTENSIONS:
            if extension not in response.extensions:
                response.extensions.append(extension)
        return response

    # NOTE: a coroutine that writes with ``context.write`` (grpc.aio's reader/writer form),
    # not the async generator the stub's type expects: answers leave as they finish.
    async def ModelStreamInfer(  # type: ignore[override]
        self, request: AsyncIterator[pb.ModelInferRequest], context: Context
    ) -> None:
        await self._streams.serve(request, context)

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        _no_overrides(request.parameters)
        await self._repository.load(request.model_name, actor=principal.get())
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        await self._repository.unload(request.model_name, actor=principal.get())
        return pb.RepositoryModelUnloadResponse()

    async def CudaSharedMemoryStatus(
        self, request: pb.CudaSharedMemoryStatusRequest, context: Context
    ) -> pb.CudaSharedMemoryStatusResponse:
        raise Unimplemented(CUDA_SHM_REFUSAL)

    async def CudaSharedMemoryRegister(
        self, request: pb.CudaSharedMemoryRegisterRequest, context: Context
    ) -> pb.CudaSharedMemoryRegisterResponse:
        raise Unimplemented(CUDA_SHM_REFUSAL)

    async def CudaSharedMemoryUnregister(
        self, request: pb.CudaSharedMemoryUnregisterRequest, context: Context
    ) -> pb.CudaSharedMemoryUnregisterResponse:
        raise Unimplemented(CUDA_SHM_REFUSAL)


def _no_overrides(parameters: Mapping[str, pb.ModelRepositoryParameter]) -> None:
    """Refuse Triton's load-time ``config`` and ``file:`` overrides rather than ignore them."""
    if any(key != "unload_dependents" for key in parameters):
        raise InvalidArgument(LOAD_OVERRIDES_REFUSAL)
