"""The floor of Python gRPC cost: a grpc.aio ``ModelInfer`` server that does no inference.

It answers ``inference.GRPCInferenceService`` for the given ONNX models with a response
computed once at start (one real run on a one-row zero input, encoded by the gateway's own
converter), so each call costs exactly: receive, parse the request, build nothing, serialize
the fixed response, send. A gateway cannot be faster than this in the same runtime; the
comparison tells how much of onnxgate's time is its own work.

    python benchmarks/echo_server.py --port 9001 --model mlp_small=mlp_small.onnx
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import _floor as floor
import grpc
import numpy as np
import onnxruntime as ort
from _floor import Context

from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from gateway.transport import converters
from registry.datatypes import DATATYPE_TO_NUMPY
from registry.signature import Signature, signature_from_session


class EchoModel:
    """One model's metadata and its precomputed response."""

    def __init__(self, name: str, path: Path) -> None:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.signature: Signature = signature_from_session(session)
        feeds = {
            s.name: np.zeros(
                [1 if d == -1 else d for d in s.shape],
                dtype=DATATYPE_TO_NUMPY[s.datatype],
            )
            for s in self.signature.inputs
        }
        outputs = dict(
            zip([s.name for s in self.signature.outputs], session.run(None, feeds), strict=True)
        )
        self.response = converters.encode_infer_response(
            model=name, version="1", request_id="", outputs=outputs, parameters={"role": "champion"}
        )
        self.metadata = pb.ModelMetadataResponse(
            name=name,
            versions=["1"],
            platform="onnxruntime_onnx",
            inputs=converters.tensor_metadata(self.signature.inputs),
            outputs=converters.tensor_metadata(self.signature.outputs),
        )


class EchoServicer(floor.HealthAnswers, pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, models: dict[str, EchoModel]) -> None:
        self._models = models

    async def _model(self, name: str, context: Context) -> EchoModel:
        model = self._models.get(name)
        if model is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"model '{name}' is not known")
            raise AssertionError("unreachable")
        return model

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        return (await self._model(request.name, context)).metadata

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        # NOTE: the request is parsed (gRPC did it) and ignored: the floor, not a model.
        model = self._models.get(request.model_name)
        if model is None:
            return await self._model(request.model_name, context)  # type: ignore[return-value]
        return model.response


async def serve(port: int, models: dict[str, EchoModel]) -> None:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(EchoServicer(models), server)
    await floor.run_until_signalled(
        server, "echo_server", port, f"echo server on 127.0.0.1:{port}: {', '.join(models)}"
    )


def main() -> None:
    port, paths = floor.arguments(__doc__)
    asyncio.run(serve(port, {name: EchoModel(name, path) for name, path in paths.items()}))


if __name__ == "__main__":
    main()
