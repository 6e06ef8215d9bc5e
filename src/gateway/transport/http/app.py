"""The HTTP application: every route of the HTTP face in one Starlette app.

Routes come from their owners (the ``/v2`` inference routes, the console's ``/ui``); this
module only assembles them and makes sure that whatever no route answers still leaves as
``{"error": ...}`` with the right status, never as an HTML page or a traceback.

``POST /v2/models/{m}[/versions/{v}]/infer``, the hot path, is recognised by splitting the
path once and handed straight to its handler; every other request goes through Starlette's
router (its error middleware, exception middleware, a regex match per route and two more
wrappers per call cost more CPU than the rest of a small JSON inference). The handler is the
same either way and turns every error into ``{"error": ...}`` itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from gateway.transport.http.compression import CompressionMiddleware
from gateway.transport.http.status import error_response

__all__ = ["build_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = Callable[[Request], Awaitable[Response]]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path[:200]}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path[:200]}"
    else:
        message = str(exc.detail)
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def infer_path_params(path: str) -> dict[str, str] | None:
    """The path parameters of an infer path (as the ``{model}``/``{version}`` routes would
    give them), or None for any other path."""
    parts = path.split("/")
    if parts[-1] != "infer" or len(parts) not in (5, 7) or parts[1:3] != ["v2", "models"]:
        return None
    if len(parts) == 5:
        return {"model": parts[3]} if parts[3] else None
    if parts[4] != "versions" or not parts[3] or not parts[5]:
        return None
    return {"model": parts[3], "version": parts[5]}


class _InferFirst:
    """Serves infer calls with ``infer``, hands everything else to ``app``."""

    def __init__(self, app: App, infer: Handler) -> None:
        self._app = app
        self._infer = infer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = (
            infer_path_params(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if params is None:
            await self._app(scope, receive, send)
            return
        scope["path_params"] = params
        try:
            response = await self._infer(Request(scope, receive))
        except Exception as exc:  # noqa: BLE001 - logged there; the caller gets a 500 line
            response = error_response(exc)
        await response(scope, receive, send)


def build_app(
    routes: Sequence[BaseRoute],
    *,
    max_body_bytes: int | None = None,
    infer: Handler | None = None,
) -> App:
    """The app; with ``max_body_bytes``, gzip/deflate both ways (:mod:`.compression`); with
    ``infer``, the infer paths go straight to it (see the module docstring)."""
    app: App = Starlette(routes=list(routes), exception_handlers={HTTPException: _http_error})
    if infer is not None:
        app = _InferFirst(app, infer)
    if max_body_bytes is not None:
        app = CompressionMiddleware(app, max_body_bytes=max_body_bytes)
    return app
