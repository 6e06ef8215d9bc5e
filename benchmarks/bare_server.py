"""The bare server: grpc.aio + onnxruntime per request, the same V2 protocol, nothing else.

``ModelInfer`` reads ``raw_input_contents`` with ``np.frombuffer``, runs the model's
``InferenceSession`` on the event loop (one call per request: no batching, routing,
validation, metrics, monitoring or taps), and answers ``raw_output_contents``. It is what
a minimal hand-written server does, so onnxgate / bare is what onnxgate's features cost.
``ModelStreamInfer`` does the same per request read from a bidirectional stream, one at a
time per stream (read, run, write): the bare streaming ceiling.

Only the generated messages are imported from the gateway, here and in ``_floor.py`` (no
converters, no settings; not even the ``_grpc`` stubs, which refuse a grpcio older than the
grpcio-tools that wrote them: the handlers are registered by hand), so the same file runs
with other grpcio releases:

    PYTHONPATH=src python benchmarks/bare_server.py --port 9001 --model mlp_small=mlp_small.onnx
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import _floor as floor
import grpc
import numpy as np
import onnxruntime as ort
from _floor import Context

from gateway._proto import grpc_service_pb2 as pb

# The ONNX element types the benchmark models use, by OIP datatype name.
_NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
_OIP = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(int64)": "INT64"}


class BareModel:
    def __init__(self, name: str, path: Path) -> None:
        options = ort.SessionOptions()
        # Same split as onnxgate's default: one core left to the event loop.
        options.intra_op_num_threads = max(1, (os.cpu_count() or 1) - 1)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.name = name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.output_types = {o.name: _OIP[o.type] for o in self.session.get_outputs()}
        self.metadata = pb.ModelMetadataResponse(
            name=name,
            versions=["1"],
            platform="onnxruntime_onnx",
            inputs=[
                pb.ModelMetadataResponse.TensorMetadata(
                    name=i.name,
                    datatype=_OIP[i.type],
                    shape=[d if isinstance(d, int) else -1 for d in i.shape],
                )
                for i in self.session.get_inputs()
            ],
        )


class BareServicer(floor.HealthAnswers):
    def __init__(self, models: dict[str, BareModel]) -> None:
        self._models = models

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        model = self._models.get(request.name)
        if model is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"model '{request.name}' is not known")
        assert model is not None
        return model.metadata

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        model = self._models.get(request.model_name)
        if model is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown model")
        assert model is not None
        return self._infer(model, request)

    async def ModelStreamInfer(
        self, requests: AsyncIterator[pb.ModelInferRequest], context: Context
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        async for request in requests:
            model = self._models.get(request.model_name)
            if model is None:
                yield pb.ModelStreamInferResponse(error_message="unknown model")
                continue
            yield pb.ModelStreamInferResponse(infer_response=self._infer(model, request))

    @staticmethod
    def _infer(model: BareModel, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        feeds = {
            t.name: np.frombuffer(raw, dtype=_NUMPY[t.datatype]).reshape(tuple(t.shape))
            for t, raw in zip(request.inputs, request.raw_input_contents, strict=True)
        }
        results = model.session.run(model.output_names, feeds)
        response = pb.ModelInferResponse(model_name=model.name, model_version="1", id=request.id)
        for name, arr in zip(model.output_names, results, strict=True):
            response.outputs.add(name=name, datatype=model.output_types[name], shape=arr.shape)
            response.raw_output_contents.append(arr.tobytes())
        return response


async def serve(port: int, models: dict[str, BareModel]) -> None:
    server = grpc.aio.server()
    servicer = BareServicer(models)
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=getattr(pb, f"{name}Request").FromString,
            response_serializer=getattr(pb, f"{name}Response").SerializeToString,
        )
        for name in ("ServerLive", "ServerReady", "ModelReady", "ModelMetadata", "ModelInfer")
    }
    handlers["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(
        servicer.ModelStreamInfer,
        request_deserializer=pb.ModelInferRequest.FromString,
        response_serializer=pb.ModelStreamInferResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("inference.GRPCInferenceService", handlers),)
    )
    await floor.run_until_signalled(
        server, "bare_server", port, f"bare server (grpcio {grpc.__version__}) on 127.0.0.1:{port}"
    )


def main() -> None:
    port, paths = floor.arguments(__doc__)
    asyncio.run(serve(port, {name: BareModel(name, path) for name, path in paths.items()}))


if __name__ == "__main__":
    main()
