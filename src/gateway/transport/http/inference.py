"""The Open Inference Protocol v2 over HTTP/REST (KServe's and Triton's ``/v2`` surface).

Thin like the gRPC servicer: decode the body (:mod:`.codec`), call the same
:meth:`gateway.serving.dataplane.DataPlane.infer`, encode. Routing follows the gRPC rules:
a versioned path pins; otherwise a ``routing_key`` request parameter, else an
``x-routing-key`` header, hashes to a version; otherwise the weighted pick. With
``predict_tokens`` configured, ``infer`` needs ``Authorization: Bearer <token>`` exactly as
``ModelInfer`` does.

Routes::

    GET  /v2/health/live                           200
    GET  /v2/health/ready                          200 once models are loaded, else 503
    GET  /v2                                       server metadata
    GET  /v2/models/{m}[/versions/{v}]             model metadata
    GET  /v2/models/{m}[/versions/{v}]/ready       200 ready, 503 not (body says which)
    POST /v2/models/{m}[/versions/{v}]/infer       JSON or binary tensors
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import gateway
from gateway.errors import GatewayError, MessageTooLarge, NotFound, Unauthenticated
from gateway.serving.caller import caller
from gateway.serving.catalog import Catalog
from gateway.serving.dataplane import DataPlane
from gateway.transport.auth import authenticate
from gateway.transport.http import codec
from gateway.transport.http.status import error_response
from registry.signature import TensorSpec

__all__ = ["InferenceRoutes", "bearer_principal"]

ROUTING_KEY_PARAM = "routing_key"
ROUTING_KEY_HEADER = "x-routing-key"
PLATFORM = "onnxruntime_onnx"
EXTENSIONS = ("binary_tensor_data",)


def bearer_principal(request: Request, tokens: Mapping[str, str]) -> str:
    """The principal of the request's ``Authorization: Bearer`` token (Unauthenticated else)."""
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthenticated("missing 'Authorization: Bearer <token>' header")
    return authenticate((("authorization", header),), tokens)


def _specs(specs: tuple[TensorSpec, ...]) -> list[dict[str, object]]:
    return [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in specs]


class InferenceRoutes:
    """The ``/v2`` routes over one catalog and data plane."""

    def __init__(
        self,
        catalog: Catalog,
        plane: DataPlane,
        *,
        predict_tokens: Mapping[str, str],
        max_body_bytes: int,
    ) -> None:
        self._catalog = catalog
        self._plane = plane
        self._tokens = predict_tokens
        self._max_body = max_body_bytes

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/v2/health/live", self.live, methods=["GET"]),
            Route("/v2/health/ready", self.ready, methods=["GET"]),
            Route("/v2", self.server_metadata, methods=["GET"]),
        ]
        for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
            routes += [
                Route(prefix, self.model_metadata, methods=["GET"]),
                Route(prefix + "/ready", self.model_ready, methods=["GET"]),
                Route(prefix + "/infer", self.infer, methods=["POST"]),
            ]
        return routes

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self._catalog.ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(
            {"name": "onnxgate", "version": gateway.__version__, "extensions": list(EXTENSIONS)}
        )

    async def model_metadata(self, request: Request) -> Response:
        model, version = _names(request)
        try:
            served = self._catalog.find(model, version)
        except GatewayError as exc:
            return error_response(exc)
        entry = self._catalog.entry(model)
        versions = sorted(entry.served) if entry is not None else [served.version]
        sig = served.loaded.signature
        return JSONResponse(
            {
                "name": model,
                "versions": versions,
                "platform": PLATFORM,
                "inputs": _specs(sig.inputs),
                "outputs": _specs(sig.outputs),
            }
        )

    async def model_ready(self, request: Request) -> Response:
        model, version = _names(request)
        try:
            self._catalog.find(model, version)
        except NotFound:
            return JSONResponse({"name": model, "ready": False}, status_code=503)
        return JSONResponse({"name": model, "ready": True})

    async def infer(self, request: Request) -> Response:
        received = time.perf_counter()
        model, version = _names(request)
        try:
            who = bearer_principal(request, self._tokens) if self._tokens else "anonymous"
        except GatewayError as exc:
            return error_response(exc)
        try:
            body = await self._body(request)
            decoded = codec.decode_infer(
                model, version, body, request.headers.get(codec.HEADER_LENGTH)
            )
        except GatewayError as exc:
            self._plane.refused(exc.code)
            return error_response(exc)
        req = decoded.request
        key = None if version else _routing_key(req.parameters, request)
        caller.set(("http", who))  # this call's own task: no reset needed
        try:
            result = await self._plane.infer(req, key, None, received=received)
            content, header_length = codec.encode_infer(result, decoded, {"role": result.role})
        except Exception as exc:
            return error_response(exc)
        if header_length is None:
            return Response(content, media_type="application/json")
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(header_length)},
        )

    async def _body(self, request: Request) -> bytes:
        """The body, refused before it is read when it is larger than the message limit."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            raise MessageTooLarge(self._too_large(int(declared)))
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body:
                raise MessageTooLarge(self._too_large(size))
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, size: int) -> str:
        return f"request body of {size:,} bytes exceeds max_message_bytes ({self._max_body:,})"


def _names(request: Request) -> tuple[str, str]:
    params = request.path_params
    return str(params["model"]), str(params.get("version", ""))


def _routing_key(parameters: Mapping[str, object], request: Request) -> str | None:
    key = parameters.get(ROUTING_KEY_PARAM)
    if key is not None and key != "":
        return str(key)
    return request.headers.get(ROUTING_KEY_HEADER)
