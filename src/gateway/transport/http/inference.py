"""The Open Inference Protocol v2 over HTTP/REST (KServe's and Triton's ``/v2`` surface).

Thin like the gRPC servicer: decode the body (:mod:`.codec`), call the same
:meth:`gateway.serving.dataplane.DataPlane.infer`, encode; reads ask the same
:class:`gateway.serving.reads.Reads`. Routing follows the face rules of
:mod:`gateway.transport.oip`: a versioned path pins; otherwise a ``routing_key`` request
parameter, else an ``x-routing-key`` header, hashes to a version; otherwise the weighted
pick. With
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
from collections.abc import Mapping, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.errors import (
    DeadlineExceeded,
    GatewayError,
    InvalidArgument,
    MessageTooLarge,
    Unauthenticated,
    UnsupportedMediaType,
)
from gateway.serving.caller import caller
from gateway.serving.dataplane import DataPlane
from gateway.serving.reads import SERVER_NAME, Reads
from gateway.traces import RequestTrace
from gateway.transport import oip
from gateway.transport.auth import authenticate
from gateway.transport.decoding import Decoder
from gateway.transport.http import codec, regions
from gateway.transport.http.status import error_response
from gateway.transport.shm import SharedMemoryRegions
from gateway.transport.status import status_for
from registry.signature import TensorSpec

__all__ = ["InferenceRoutes", "bearer_principal"]

EXTENSIONS = (
    "binary_tensor_data",
    "model_configuration",
    "statistics",
    "model_repository",
    "system_shared_memory",
)


def bearer_principal(request: Request, tokens: Mapping[str, str]) -> str:
    """The principal of the request's ``Authorization: Bearer`` token (Unauthenticated else)."""
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthenticated("missing 'Authorization: Bearer <token>' header")
    return authenticate((("authorization", header),), tokens)


def _specs(specs: Sequence[TensorSpec]) -> list[dict[str, object]]:
    return [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in specs]


class InferenceRoutes:
    """The ``/v2`` routes over one data plane (and its read side)."""

    def __init__(
        self,
        reads: Reads,
        plane: DataPlane,
        *,
        predict_tokens: Mapping[str, str],
        max_body_bytes: int,
        decoder: Decoder | None = None,
        regions: SharedMemoryRegions | None = None,
    ) -> None:
        self._reads = reads
        self._regions = regions or SharedMemoryRegions()
        self._plane = plane
        self._decoder = decoder or Decoder(thread_bytes=0, process_bytes=0)
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
        ready = self._reads.ready()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(
            {"name": SERVER_NAME, "version": self._reads.version, "extensions": list(EXTENSIONS)}
        )

    async def model_metadata(self, request: Request) -> Response:
        model, version = _names(request)
        try:
            meta = self._reads.model_metadata(model, version)
        except GatewayError as exc:
            return error_response(exc)
        return JSONResponse(
            {
                "name": meta.name,
                "versions": list(meta.versions),
                "platform": meta.platform,
                "inputs": _specs(meta.inputs),
                "outputs": _specs(meta.outputs),
            }
        )

    async def model_ready(self, request: Request) -> Response:
        model, version = _names(request)
        if not self._reads.model_ready(model, version):
            return JSONResponse({"name": model, "ready": False}, status_code=503)
        return JSONResponse({"name": model, "ready": True})

    async def infer(self, request: Request) -> Response:
        received = time.perf_counter()
        tracing = self._plane.tracing
        if tracing is None:  # tracing and the prediction log off: no trace at all
            return await self._infer(request, received, None)
        trace = tracing.begin("http", received, request.headers.get)
        response = await self._infer(request, received, trace)
        if trace is not None:
            tracing.end(trace, trace.status)
        return response

    async def _infer(
        self, request: Request, received: float, trace: RequestTrace | None
    ) -> Response:
        model, version = _names(request)
        try:
            who = bearer_principal(request, self._tokens) if self._tokens else "anonymous"
        except GatewayError as exc:
            return _refused(exc, trace)
        try:
            _check_content_type(request.headers.get("content-type"))
            body = await self._body(request)
            header_length = request.headers.get(codec.HEADER_LENGTH)
            json_bytes = len(body) if header_length is None else _int_or(header_length, len(body))
            where = self._decoder.where(json_bytes=json_bytes, other_bytes=len(body) - json_bytes)
            decoded = await self._decoder.run(
                where, codec.decode_infer, model, version, body, header_length
            )
            if decoded.input_windows or decoded.output_windows:
                decoded = regions.read_inputs(decoded, self._regions, owner=who)
            deadline = _deadline(decoded.request.parameters, received)
        except GatewayError as exc:
            oip.refused(self._plane, exc)
            return _refused(exc, trace)
        req = decoded.request
        if trace is not None:
            trace.decoded = time.perf_counter()
            trace.model = req.model
        key = oip.routing_key(req, request.headers.get)
        caller.set(("http", who))  # this call's own task: no reset needed
        try:
            result = await self._plane.infer(req, key, deadline, received=received, trace=trace)
            written = regions.write_outputs(result, decoded, self._regions, owner=who)
            work = codec.output_work(result, decoded)
            where = self._decoder.where(json_bytes=work, other_bytes=work)
            content, json_length = await self._decoder.run(
                where,
                codec.encode_infer,
                result,
                decoded,
                oip.response_parameters(result),
                written,
            )
        except Exception as exc:  # noqa: BLE001 - error_response logs the unexpected
            return _refused(exc, trace)
        if json_length is None:
            return Response(content, media_type="application/json")
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(json_length)},
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


JSON_TYPES = ("application/json", "application/octet-stream", "application/vnd.onnxgate")
"""Media types an infer body may declare: JSON, or the binary extension's body (which
tritonclient sends as octet-stream). Anything else (a browser form's
``text/plain``/``multipart/form-data``/``application/x-www-form-urlencoded``, which a
cross-site page may POST without a preflight) is refused with 415."""


def _check_content_type(value: str | None) -> None:
    if value is None:
        # NOTE: curl -d and most clients send a type; a missing one is no browser's simple
        # request (those always carry one), so it is accepted as JSON.
        return
    media = value.split(";", 1)[0].strip().lower()
    if media not in JSON_TYPES and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"header Content-Type: {media[:64]!r} is not accepted; send application/json "
            "(or application/octet-stream with the binary tensor extension)"
        )


TIMEOUT_PARAM = "timeout"
"""Triton's request parameter: the client's deadline, in microseconds from receipt."""


def _deadline(parameters: Mapping[str, object], received: float) -> float | None:
    """The absolute deadline (``time.monotonic()``) a ``timeout`` parameter sets, if any."""
    timeout = parameters.get(TIMEOUT_PARAM)
    if timeout is None:
        return None
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0:
        raise InvalidArgument("parameters.'timeout': must be microseconds (an integer >= 0)")
    deadline = time.monotonic() - (time.perf_counter() - received) + timeout / 1e6
    if deadline <= time.monotonic():
        raise DeadlineExceeded("the request's timeout passed before it could run")
    return deadline


def _refused(exc: BaseException, trace: RequestTrace | None) -> Response:
    """The error response for ``exc``; a traced call keeps its status name."""
    if trace is not None:
        trace.status = status_for(exc)[0].name
    return error_response(exc)


def _int_or(text: str, default: int) -> int:
    return int(text) if text.isdigit() else default


def _names(request: Request) -> tuple[str, str]:
    params = request.path_params
    return str(params["model"]), str(params.get("version", ""))
