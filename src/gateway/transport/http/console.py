"""The operator console's routes (``/ui``): authenticate, ask the operations core, render.

Every page reads the *same* use cases the operator APIs serve (:mod:`gateway.operations`:
deployments, governance, the governor, drift and shadow reports), in process, and turns the
domain values they return into HTML (:mod:`gateway.console`); no protobuf, no gRPC context.
Who may look is decided by the same :class:`gateway.access.AccessPolicy` the gRPC role guard
asks: the console sees exactly what ``onnxgate`` shows that principal, is refused exactly
what it would be refused, and keeps no logic of its own.

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
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import console
from gateway.access import NO_TOKENS, AccessPolicy, Permission
from gateway.console import views
from gateway.console.layout import esc, page
from gateway.errors import GatewayError
from gateway.messages import short
from gateway.operations import Operations
from gateway.registry_facade import AsyncSessions
from gateway.transport.http.guard import (
    SECURITY_HEADERS,
    LoginThrottle,
    cross_site,
    retry_after_header,
)
from gateway.transport.http.status import HTTP_STATUS
from gateway.transport.status import status_for
from registry import errors as reg

__all__ = ["COOKIE", "ConsoleRoutes"]

log = logging.getLogger(__name__)

COOKIE = "onnxgate_console"
MAX_FORM_BYTES = 4096
AUDIT_ROWS = 200


class Refused(Exception):
    """The console's call was refused; carries the status name it maps to."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details

    @classmethod
    def of(cls, exc: Exception) -> Refused:
        """The refusal an operation's error means (the gRPC face's mapping)."""
        if not isinstance(exc, GatewayError | reg.RegistryError):
            log.error("unhandled error in the console", exc_info=exc)
        code, message = status_for(exc)
        return cls(code.name, message)


Page = Callable[[Request, str], Awaitable[str]]


class ConsoleRoutes:
    """The ``/ui`` routes over the operations core."""

    def __init__(
        self,
        *,
        operations: Operations,
        access: AccessPolicy,
        sessions: AsyncSessions,
        session_s: float = 8 * 3600.0,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self._ops = operations
        self._access = access
        self._sessions = sessions
        self._session_s = session_s
        self._throttle = throttle or LoginThrottle()

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

    def _principal(self, token: str) -> str:
        """The principal ``token`` names (Refused: none configured, or not this one)."""
        if not self._access.configured:
            raise Refused("UNAUTHENTICATED", NO_TOKENS)
        who = self._access.principal_for(token) if token else None
        if who is None:
            raise Refused("UNAUTHENTICATED", "invalid token")
        return who

    async def _whoami(self, token: str) -> str:
        """``principal (role)`` for ``token``, if it may read (the console's only need)."""
        return self._may_read(self._principal(token))

    def _may_read(self, who: str) -> str:
        verdict = self._access.decide(who, Permission.READ, "the console")
        if verdict.refusal is not None:
            raise Refused("PERMISSION_DENIED", verdict.refusal)
        return f"{who} ({verdict.role})"

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
            principal = self._principal(token.strip())
            self._may_read(principal)
        except Refused as exc:
            self._throttle.failed(client)
            return HTMLResponse(console.login_page(exc.details), 401)
        self._throttle.succeeded(client)
        session_id = await self._sessions.create(principal, self._session_s)
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
            await self._sessions.revoke(session_id)
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    async def _who(self, request: Request) -> str | None:
        """``principal (role)`` of this request (Refused when it may not read), from its own
        bearer header or its session; None when it has neither (the sign-in page)."""
        token = _bearer(request)
        if token is not None:
            return await self._whoami(token)
        session_id = request.cookies.get(COOKIE)
        if not session_id:
            return None
        principal = await self._sessions.principal_of(session_id)
        if principal is None:
            return None
        if principal not in set(self._access.tokens.values()):
            # The principal's token was taken out of the configuration: its sessions end.
            await self._sessions.revoke_principal(principal)
            return None
        return self._may_read(principal)

    def _page(self, build: Page) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            try:
                who = await self._who(request)
                if who is None:
                    return RedirectResponse("/ui/login", status_code=303)
                try:
                    return HTMLResponse(await build(request, who))
                except Exception as exc:
                    raise Refused.of(exc) from exc
            except Refused as exc:
                if exc.code == "UNAUTHENTICATED":
                    return HTMLResponse(console.login_page(exc.details), 401)
                status = HTTP_STATUS.get(exc.code, 500)
                body = f'<p class="error">{esc(exc.details)}</p>'
                return HTMLResponse(page(f"{status}: {exc.code}", body), status)

        return handler

    # -- pages --------------------------------------------------------------------------

    async def _models(self, request: Request, who: str) -> str:
        models = await self._ops.deployments.list_models()
        return console.models_page([views.model_doc(m) for m in models], who)

    async def _model(self, request: Request, who: str) -> str:
        model = _model_name(request)
        ops = self._ops
        view = await ops.deployments.deployment(model)
        history = await ops.deployments.history(model)
        approvals = await ops.governance.approvals(model)
        versions = await ops.deployments.versions(model)
        performance, note = None, ""
        try:
            answer = await ops.observations.performance(model, retired=True)
            performance = [
                views.performance_doc(
                    p.drift,
                    p.role,
                    p.quality.labelled if p.quality is not None else 0,
                    p.quality.correct if p.quality is not None else 0,
                    p.realised,
                )
                for p in answer
            ]
        except GatewayError as exc:  # monitoring off, or no traffic yet: the page says so
            if exc.code not in ("NOT_FOUND", "FAILED_PRECONDITION"):
                raise
            note = exc.message
        return console.model_page(
            model,
            views.deployment_doc(view.deployment, view.loaded),
            [views.version_doc(v) for v in versions],
            [views.approval_doc(a) for a in approvals],
            [views.history_doc(h) for h in history],
            who,
            performance,
            note,
        )

    async def _gov(self, request: Request, who: str) -> str:
        model = _model_name(request)
        status = await self._ops.governor.status(model)
        events = await self._ops.governance.audit(model, limit=AUDIT_ROWS)
        return console.governor_page(
            model, views.status_doc(status), [views.audit_doc(e) for e in events], who
        )

    async def _drift(self, request: Request, who: str) -> str:
        model = _model_name(request)
        try:
            answer = await self._ops.observations.drift(model, refresh=True)
        except GatewayError as exc:
            if exc.code not in ("NOT_FOUND", "FAILED_PRECONDITION"):
                raise
            return console.drift_page(model, None, who, note=exc.message)
        return console.drift_page(model, views.drift_doc(answer.versions), who)

    async def _shadows(self, request: Request, who: str) -> str:
        model = _model_name(request)
        answer = self._ops.observations.shadows(model)
        doc = views.shadow_doc(answer.comparisons, answer.dropped, answer.pending)
        return console.shadows_page(model, doc, who)

    async def _audit(self, request: Request, who: str) -> str:
        events, check = await asyncio.gather(
            self._ops.governance.audit(limit=AUDIT_ROWS), self._ops.governance.verify_audit()
        )
        verify = {"intact": check.intact, "problems": list(check.problems)}
        return console.audit_page([views.audit_doc(e) for e in events], verify, who)


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
