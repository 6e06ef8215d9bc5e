"""The HTTP application: every route of the HTTP face in one Starlette app.

Routes come from their owners (the ``/v2`` inference routes, the console's ``/ui``); this
module only assembles them and makes sure that whatever no route answers still leaves as
``{"error": ...}`` with the right status, never as an HTML page or a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from gateway.transport.http.compression import CompressionMiddleware

__all__ = ["build_app"]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path[:200]}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path[:200]}"
    else:
        message = str(exc.detail)
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def build_app(routes: Sequence[BaseRoute], *, max_body_bytes: int | None = None) -> Starlette:
    """The app; with ``max_body_bytes``, gzip/deflate both ways (:mod:`.compression`)."""
    middleware = (
        []
        if max_body_bytes is None
        else [Middleware(CompressionMiddleware, max_body_bytes=max_body_bytes)]
    )
    return Starlette(
        routes=list(routes),
        middleware=middleware,
        exception_handlers={HTTPException: _http_error},
    )
