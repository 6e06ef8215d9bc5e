"""The operator console's routes (``/ui``): authenticate, read the operator APIs, render.

Every page reads the *same* operator APIs the CLI calls (``AdminService``,
``GovernanceService``, ``GovernorService``, ``MonitoringService``), in process: the
servicer methods as the composition root wrapped them, role guard included, called with a
context that carries the console user's bearer token. So the console sees exactly what
``onnxgate`` shows that principal, is refused exactly what it would be refused, and keeps
no logic of its own; :mod:`gateway.console` turns the answers into HTML.

Sign-in: ``POST /ui/login`` with the token (a form) starts a server-side session
(:mod:`registry.console_sessions`: a random id, expiring after ``console_session_s``,
revoked at sign-out or when the principal's token leaves the configuration) and sets only
its id as an ``HttpOnly``, ``SameSite=Strict`` cookie scoped to ``/ui`` (``Secure`` over
TLS): the cookie is no credential anywhere else. Failed sign-ins are throttled per client,
and a sign-in posted from another site is refused (:mod:`.guard`); every console response
carries the security headers. An ``Authorization: Bearer`` header works too (scripts,
tests). Any role may look: the console offers no changes, so it needs only the ``read``
permission.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import console
from gateway._proto import admin_pb2, governance_pb2, governor_pb2, monitoring_pb2
from gateway.concurrency import run_blocking
from gateway.console.layout import esc, page
from gateway.messages import short
from gateway.transport.http.guard import (
    SECURITY_HEADERS,
    LoginThrottle,
    cross_site,
    retry_after_header,
)
from gateway.transport.http.status import HTTP_STATUS
from registry import Registry, VersionRecord

__all__ = ["COOKIE", "ConsoleRoutes"]

COOKIE = "onnxgate_console"
MAX_FORM_BYTES = 4096
AUDIT_ROWS = 200


class Refused(Exception):
    """An operator API refused the console's call; carries the status it named."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _InProcessContext:
    """What the wrapped servicer methods read from a gRPC context, for an in-process call."""

    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()
    ) -> None:
        # The same signature as grpc.aio's abort: grpc_errors passes retry hints as
        # trailing metadata, which a page has no use for.
        raise Refused(code, details)


def _doc(message: Message) -> dict[str, Any]:
    return MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _version_row(v: VersionRecord) -> dict[str, Any]:
    lineage = v.lineage
    return {
        "version": v.version,
        "status": v.status,
        "description": v.description,
        "owner": v.owner,
        "created_at": v.created_at.isoformat(),
        "validation": v.validation,
        "lineage": {
            "parent": lineage.parent,
            "training_data": lineage.training_data,
            "code_ref": lineage.code_ref,
            "license": lineage.license,
            "metrics": dict(lineage.metrics),
        },
    }


Page = Callable[[Request, str, str], Awaitable[str]]


class ConsoleRoutes:
    """The ``/ui`` routes over the gateway's (wrapped) operator servicers."""

    def __init__(
        self,
        *,
        admin: Any,
        governance: Any,
        governor: Any,
        monitoring: Any,
        registry: Registry,
        io_executor: concurrent.futures.Executor,
        tokens: Mapping[str, str] | None = None,
        session_s: float = 8 * 3600.0,
        throttle: LoginThrottle | None = None,
    ) -> None:
        # principal -> a token of theirs: a session names its principal, never a token.
        self._token_of: dict[str, str] = {}
        for token, principal in (tokens or {}).items():
            self._token_of.setdefault(principal, token)
        self._session_s = session_s
        self._throttle = throttle or LoginThrottle()
        self._admin = admin
        self._governance = governance
        self._governor = governor
        self._monitoring = monitoring
        self._registry = registry
        self._io = io_executor

    def routes(self) -> list[BaseRoute]:
        routes = [
            Route("/ui", self.home, methods=["GET"]),
            Route("/ui/login", self.login_form, methods=["GET"]),
            Route("/ui/login", self.login, methods=["POST"]),
            Route("/ui/logout", self.logout, methods=["GET", "POST"]),
            Route("/ui/models", self._page(self._models), methods=["GET"]),
            Route("/ui/models/{model}", self._page(self._model), methods=["GET"]),
            Route("/ui/models/{model}/governor", self._page(self._gov), methods=["GET"]),
            Route("/ui/models/{model}/drift", self._page(self._drift), methods=["GET"]),
            Route("/ui/models/{model}/shadows", self._page(self._shadows), methods=["GET"]),
            Route("/ui/audit", self._page(self._audit), methods=["GET"]),
        ]
        return [Route(r.path, _secured(r.endpoint), methods=list(r.methods or ())) for r in routes]

    # -- authentication ---------------------------------------------------------------

    async def _call(self, servicer: Any, method: str, request: Message, token: str) -> Any:
        return await getattr(servicer, method)(request, _InProcessContext(token))

    async def _whoami(self, token: str) -> str:
        me = await self._call(self._governance, "WhoAmI", governance_pb2.WhoAmIRequest(), token)
        return f"{me.principal} ({me.role})"

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/ui/models", status_code=303)

    async def login_form(self, request: Request) -> Response:
        return HTMLResponse(console.login_page())

    async def login(self, request: Request) -> Response:
        if cross_site(request.headers, request.url.scheme, request.url.netloc):
            return HTMLResponse(console.login_page("sign in from the console's own page"), 403)
        client = request.client.host if request.client else ""
        wait = self._throttle.retry_after(client)
        if wait is not None:
            return HTMLResponse(
                console.login_page(f"too many failed sign-ins; try again in {wait:.0f} s"),
                429,
                headers={"Retry-After": retry_after_header(wait)},
            )
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return HTMLResponse(console.login_page("the form is too large"), 400)
        token = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
        try:
            principal = await self._principal(token.strip())
        except Refused as exc:
            self._throttle.failed(client)
            return HTMLResponse(console.login_page(exc.details), 401)
        self._throttle.succeeded(client)
        session_id = await run_blocking(
            self._io, self._registry.sessions.create, principal, self._session_s
        )
        response = RedirectResponse("/ui/models", status_code=303)
        response.set_cookie(
            COOKIE,
            session_id,
            max_age=int(self._session_s),
            httponly=True,
            samesite="strict",
            path="/ui",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request) -> Response:
        session_id = request.cookies.get(COOKIE)
        if session_id:
            await run_blocking(self._io, self._registry.sessions.revoke, session_id)
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    async def _principal(self, token: str) -> str:
        me = await self._call(self._governance, "WhoAmI", governance_pb2.WhoAmIRequest(), token)
        return str(me.principal)

    async def _token(self, request: Request) -> str | None:
        """The bearer token of this request: its own header, or its session's principal's."""
        header = _bearer(request)
        if header is not None:
            return header
        session_id = request.cookies.get(COOKIE)
        if not session_id:
            return None
        principal = await run_blocking(self._io, self._registry.sessions.principal_of, session_id)
        if principal is None:
            return None
        token = self._token_of.get(principal)
        if token is None:  # the principal's token was taken out of the configuration
            await run_blocking(self._io, self._registry.sessions.revoke_principal, principal)
        return token

    def _page(self, build: Page) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            token = await self._token(request)
            if token is None:
                return RedirectResponse("/ui/login", status_code=303)
            try:
                who = await self._whoami(token)
                return HTMLResponse(await build(request, token, who))
            except Refused as exc:
                if exc.code == grpc.StatusCode.UNAUTHENTICATED:
                    return HTMLResponse(console.login_page(exc.details), 401)
                status = HTTP_STATUS.get(exc.code.name, 500)
                body = f'<p class="error">{esc(exc.details)}</p>'
                return HTMLResponse(page(f"{status}: {exc.code.name}", body), status)

        return handler

    # -- pages --------------------------------------------------------------------------

    async def _models(self, request: Request, token: str, who: str) -> str:
        resp = await self._call(self._admin, "ListModels", admin_pb2.ListModelsRequest(), token)
        return console.models_page(_doc(resp).get("models", []), who)

    async def _model(self, request: Request, token: str, who: str) -> str:
        model = _model_name(request)
        dep = await self._call(
            self._admin, "GetDeployment", admin_pb2.GetDeploymentRequest(model=model), token
        )
        history = await self._call(
            self._admin, "ListHistory", admin_pb2.ListHistoryRequest(model=model), token
        )
        approvals = await self._call(
            self._governance,
            "ListApprovals",
            governance_pb2.ListApprovalsRequest(model=model),
            token,
        )
        # Version cards (lineage, validation) have no RPC of their own: read from the
        # registry's face, after the calls above authorised this principal to read.
        versions = await run_blocking(self._io, self._registry.list_versions, model)
        return console.model_page(
            model,
            _doc(dep.deployment),
            [_version_row(v) for v in versions],
            _doc(approvals).get("approvals", []),
            _doc(history).get("entries", []),
            who,
        )

    async def _gov(self, request: Request, token: str, who: str) -> str:
        model = _model_name(request)
        status = await self._call(
            self._governor, "GetStatus", governor_pb2.GetStatusRequest(model=model), token
        )
        audit = await self._call(
            self._governance,
            "ListAudit",
            governance_pb2.ListAuditRequest(subject=model, limit=AUDIT_ROWS),
            token,
        )
        return console.governor_page(model, _doc(status), _doc(audit).get("events", []), who)

    async def _drift(self, request: Request, token: str, who: str) -> str:
        model = _model_name(request)
        ask = monitoring_pb2.GetDriftRequest(model=model, refresh=True, include_histograms=True)
        try:
            resp = await self._call(self._monitoring, "GetDrift", ask, token)
        except Refused as exc:
            if exc.code not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                raise
            return console.drift_page(model, None, who, note=exc.details)
        return console.drift_page(model, _doc(resp), who)

    async def _shadows(self, request: Request, token: str, who: str) -> str:
        model = _model_name(request)
        ask = monitoring_pb2.GetShadowReportRequest(model=model)
        resp = await self._call(self._monitoring, "GetShadowReport", ask, token)
        return console.shadows_page(model, _doc(resp), who)

    async def _audit(self, request: Request, token: str, who: str) -> str:
        events, verify = await asyncio.gather(
            self._call(
                self._governance,
                "ListAudit",
                governance_pb2.ListAuditRequest(limit=AUDIT_ROWS),
                token,
            ),
            self._call(self._governance, "VerifyAudit", governance_pb2.VerifyAuditRequest(), token),
        )
        return console.audit_page(_doc(events).get("events", []), _doc(verify), who)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _secured(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[..., Any]:
    """``endpoint`` with the console's security headers on every response it gives."""

    async def handler(request: Request) -> Response:
        response = await endpoint(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    return handler


def _model_name(request: Request) -> str:
    return short(str(request.path_params["model"]), 256)
