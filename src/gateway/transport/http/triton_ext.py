"""Triton's HTTP extensions: statistics, configuration, repository index and load/unload.

Each route calls the gRPC servicer's method *as the server wrapped it* (status mapping,
role guard and audit included), in process, with a context carrying the request's
``Authorization`` header, and writes the answer as Triton's JSON. So both faces give the
same answers and refuse the same callers, and no rule lives here twice. CUDA shared memory
is refused in one line (a CPU gateway has no device memory to share).

Routes::

    GET  /v2/models/stats                               every model's statistics
    GET  /v2/models/{m}[/versions/{v}]/stats            one model's (or version's)
    GET  /v2/models/{m}[/versions/{v}]/config           Triton's model configuration
    POST /v2/repository/index                           [{name, version, state, reason}]
    POST /v2/repository/models/{m}/load                 operator role: serve its deployment
    POST /v2/repository/models/{m}/unload               operator role: stop serving it here
    GET  /v2/systemsharedmemory[/region/{r}]/status     [{name, key, offset, byte_size}]
    POST /v2/systemsharedmemory/region/{r}/register     {key, offset, byte_size}
    POST /v2/systemsharedmemory[/region/{r}]/unregister one region, or every one
    *    /v2/cudasharedmemory/...                       501, one line
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway._proto import grpc_service_pb2 as pb
from gateway.transport.http.status import HTTP_STATUS
from gateway.transport.triton import CUDA_SHM_REFUSAL, LOAD_OVERRIDES_REFUSAL

__all__ = ["TritonRoutes", "plain"]

Method = Callable[[Any, Any], Awaitable[Any]]


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _InProcessContext:
    """What the wrapped servicer methods read from a gRPC context, for one HTTP request."""

    def __init__(self, request: Request) -> None:
        header = request.headers.get("authorization")
        self._metadata = () if header is None else (("authorization", header),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()
    ) -> None:
        raise _Refused(code, details)


def plain(message: Message) -> dict[str, Any]:
    """A message as Triton's HTTP JSON: every field, numbers as numbers, enums by name."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            out[field.name] = [plain(v) for v in value] if field.is_repeated else plain(value)
        elif field.enum_type is not None:
            names = field.enum_type.values_by_number
            out[field.name] = (
                [names[v].name for v in value] if field.is_repeated else names[value].name
            )
        else:
            out[field.name] = list(value) if field.is_repeated else value
    return out


class TritonRoutes:
    """The extension routes over the (wrapped) ``GRPCInferenceService`` servicer."""

    def __init__(self, inference: Any, wrap: Callable[[str, Any], Any]) -> None:
        # NOTE: wrappers are applied at registration, never on the instance: the HTTP face
        # wraps each method as the gRPC server does (grpc_server.inference_wrapper), so
        # load/unload need the operator role and stats/config the same as on gRPC.
        self._inference = inference
        self._wrap = wrap

    def routes(self) -> list[BaseRoute]:
        """Routes to put *before* the ``/v2/models/{m}`` ones (``stats`` is not a model)."""
        routes: list[BaseRoute] = [
            Route("/v2/models/stats", self.statistics, methods=["GET"]),
            Route("/v2/repository/index", self.index, methods=["POST"]),
            Route("/v2/repository/models/{model}/load", self.load, methods=["POST"]),
            Route("/v2/repository/models/{model}/unload", self.unload, methods=["POST"]),
            Route("/v2/cudasharedmemory{rest:path}", self.cuda, methods=["GET", "POST"]),
            Route(f"{_SHM}/region/{{region}}/register", self.shm_register, methods=["POST"]),
        ]
        for prefix in (_SHM, f"{_SHM}/region/{{region}}"):
            routes += [
                Route(prefix + "/status", self.shm_status, methods=["GET"]),
                Route(prefix + "/unregister", self.shm_unregister, methods=["POST"]),
            ]
        for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
            routes += [
                Route(prefix + "/stats", self.statistics, methods=["GET"]),
                Route(prefix + "/config", self.config, methods=["GET"]),
            ]
        return routes

    async def _call(self, name: str, message: Message, request: Request) -> Message | Response:
        method: Method = self._wrap(name, getattr(self._inference, name))
        try:
            answer: Message = await method(message, _InProcessContext(request))
        except _Refused as refused:
            status = HTTP_STATUS.get(refused.code.name, 500)
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return JSONResponse({"error": refused.details}, status_code=status, headers=headers)
        return answer

    async def statistics(self, request: Request) -> Response:
        model, version = _names(request)
        answer = await self._call(
            "ModelStatistics", pb.ModelStatisticsRequest(name=model, version=version), request
        )
        return answer if isinstance(answer, Response) else JSONResponse(plain(answer))

    async def config(self, request: Request) -> Response:
        model, version = _names(request)
        answer = await self._call(
            "ModelConfig", pb.ModelConfigRequest(name=model, version=version), request
        )
        if isinstance(answer, Response):
            return answer
        assert isinstance(answer, pb.ModelConfigResponse)
        return JSONResponse(plain(answer.config))

    async def index(self, request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        ready = bool(body.get("ready", False))
        answer = await self._call(
            "RepositoryIndex", pb.RepositoryIndexRequest(ready=ready), request
        )
        if isinstance(answer, Response):
            return answer
        assert isinstance(answer, pb.RepositoryIndexResponse)
        return JSONResponse([plain(m) for m in answer.models])

    async def load(self, request: Request) -> Response:
        model = str(request.path_params["model"])
        message = pb.RepositoryModelLoadRequest(model_name=model)
        return await self._change("RepositoryModelLoad", message, request)

    async def unload(self, request: Request) -> Response:
        model = str(request.path_params["model"])
        message = pb.RepositoryModelUnloadRequest(model_name=model)
        return await self._change("RepositoryModelUnload", message, request)

    async def _change(self, name: str, message: Message, request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        parameters = body.get("parameters") or {}
        if not isinstance(parameters, dict) or any(k != "unload_dependents" for k in parameters):
            return JSONResponse({"error": LOAD_OVERRIDES_REFUSAL}, status_code=400)
        answer = await self._call(name, message, request)
        return answer if isinstance(answer, Response) else Response(status_code=200)

    async def shm_status(self, request: Request) -> Response:
        message = pb.SystemSharedMemoryStatusRequest(name=_region(request))
        answer = await self._call("SystemSharedMemoryStatus", message, request)
        if isinstance(answer, Response):
            return answer
        assert isinstance(answer, pb.SystemSharedMemoryStatusResponse)
        return JSONResponse([plain(r) for r in answer.regions.values()])

    async def shm_register(self, request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        key, offset, size = body.get("key"), body.get("offset", 0), body.get("byte_size", -1)
        problem = "key must be a string" if not isinstance(key, str) else None
        for field, value in (("offset", offset), ("byte_size", size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                problem = problem or f"{field} must be a byte count"
        if problem is not None:
            return JSONResponse({"error": problem}, status_code=400)
        message = pb.SystemSharedMemoryRegisterRequest(
            name=_region(request), key=str(key), offset=int(offset), byte_size=int(size)
        )
        answer = await self._call("SystemSharedMemoryRegister", message, request)
        return answer if isinstance(answer, Response) else Response(status_code=200)

    async def shm_unregister(self, request: Request) -> Response:
        message = pb.SystemSharedMemoryUnregisterRequest(name=_region(request))
        answer = await self._call("SystemSharedMemoryUnregister", message, request)
        return answer if isinstance(answer, Response) else Response(status_code=200)

    async def cuda(self, request: Request) -> Response:
        return JSONResponse({"error": CUDA_SHM_REFUSAL}, status_code=501)


_SHM = "/v2/systemsharedmemory"


def _region(request: Request) -> str:
    return str(request.path_params.get("region", ""))


def _names(request: Request) -> tuple[str, str]:
    params = request.path_params
    return str(params.get("model", "")), str(params.get("version", ""))


async def _json_body(request: Request) -> dict[str, Any] | Response:
    """An optional JSON object body (Triton's load/unload/index bodies carry options)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return JSONResponse({"error": "the request body is not valid JSON"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "the request body must be a JSON object"}, status_code=400)
    return body
