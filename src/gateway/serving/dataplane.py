"""The data plane: one inference from a decoded request to a served result, for every face.

Every transport (the gRPC servicer today; an HTTP face or an explain service tomorrow)
decodes its wire format into an :class:`~gateway.domain.InferRequest`, calls
:meth:`DataPlane.infer` and encodes the :class:`~gateway.domain.InferResult`. Nothing
here knows a wire format: no grpc, no protobuf; statuses are ``grpc.StatusCode`` *names*.

One call, in order:

1. admission: at most ``max_inflight`` calls at once, else ``RESOURCE_EXHAUSTED`` with a
   retry hint; ``UNAVAILABLE`` once :meth:`DataPlane.drain` began (SIGTERM);
   ``DEADLINE_EXCEEDED`` when the caller's deadline has already passed (a refusal: no
   version ran it, so none is blamed);
2. route (pin > routing key > weighted pick) to one loaded version, and admit it against
   ``max_inflight_per_model`` (when set) — counted per model, so one hot or slow model
   cannot take every slot of the process;
3. validate the inputs against its signature, which yields the row count, and check the
   requested outputs exist;
4. submit to the version's batcher with those rows and the caller's deadline — unless the
   model opted into the response cache and holds this version's answer to these inputs
   (:mod:`gateway.serving.cache`); a hit goes on to steps 5 and 6 like any answer;
5. account once, on the version's counter set (status, latency, rows);
6. hand a :class:`~gateway.serving.taps.TapRecord` to the tap queue (one enqueue; what
   the taps do never changes the result). While a tap wants every call (the prediction
   log), the record carries every field and a failure on a routed version is offered too.

A failure is accounted with its status name: a :class:`~gateway.errors.GatewayError` by
its code; a cancelled call as ``CANCELLED`` (``DEADLINE_EXCEEDED`` when the caller's
deadline has passed); anything else as ``INTERNAL``. Failures before a version was chosen
count as refusals (``onnxgate_rejected_requests_total``), with no version to blame.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from gateway.domain import InferRequest, InferResult, Tensors
from gateway.errors import (
    DeadlineExceeded,
    GatewayError,
    InferenceFailed,
    RefusedByModel,
    ResourceExhausted,
    Unavailable,
)
from gateway.limits import MAX_KEY_BYTES, check_text
from gateway.metrics import GatewayMetrics
from gateway.serving.cache import ResponseCache
from gateway.serving.caller import caller
from gateway.serving.catalog import Catalog, Served
from gateway.serving.routing import Route
from gateway.serving.taps import TapQueue, TapRecord
from gateway.traces import RequestTrace, Tracing
from registry.signature import Signature

__all__ = ["DataPlane"]


class DataPlane:
    """Route, validate, batch, account and tap one request; see the module docstring."""

    def __init__(
        self,
        catalog: Catalog,
        metrics: GatewayMetrics,
        *,
        max_inflight: int,
        max_inflight_per_model: int = 0,
        retry_after_s: float | None = None,
        taps: TapQueue | None = None,
        cache: ResponseCache | None = None,
        clock: Callable[[], float] = time.perf_counter,
        contracts: Callable[[str, str, Signature, Tensors], tuple[str, ...]] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        # Read by the faces: with it they make a RequestTrace per call (gateway.traces).
        self.tracing = tracing
        # data contracts (count / flag / reject, per model's policy): the flagged features
        self._contracts = contracts
        self._catalog = catalog
        self._metrics = metrics
        self._max_inflight = max_inflight
        self._per_model = max_inflight_per_model
        self._retry_after_s = retry_after_s
        self._taps = taps if taps is not None and taps.enabled else None
        self._clock = clock
        self._cache = cache if cache else None
        # The same queue, when a tap wants every call (the prediction log): full records,
        # failures too, and an id for a call without one.
        self._every_call = self._taps if self._taps is not None and self._taps.every_call else None
        self._inflight = 0
        # Calls in flight per model, only while the per-model bound is set; a model leaves
        # the dict at zero, so names of models gone from the catalog do not pile up.
        self._by_model: dict[str, int] = {}
        self._draining = False
        self._idle: asyncio.Event | None = None

    @property
    def inflight(self) -> int:
        """Calls admitted and not yet answered (queued in a batcher or running)."""
        return self._inflight

    def drain(self) -> None:
        """Refuse new calls with ``UNAVAILABLE`` from now on; those admitted still finish."""
        self._draining = True
        self._idle = asyncio.Event()
        if not self._inflight:
            self._idle.set()

    async def drained(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every admitted call to finish (after
        :meth:`drain`); True when none is left."""
        if self._idle is None:
            raise RuntimeError("drained() before drain()")
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def refused(self, code: str) -> None:
        """Count a call a transport refused before it reached the plane (e.g. undecodable)."""
        self._metrics.rejected.labels(code).inc()

    async def infer(
        self,
        request: InferRequest,
        routing_key: str | None,
        deadline: float | None,
        *,
        received: float | None = None,
        trace: RequestTrace | None = None,
    ) -> InferResult:
        """Serve ``request``; raise a :class:`GatewayError` naming the status otherwise.

        ``deadline`` is absolute, on ``time.monotonic()``; ``received`` is when the
        transport got the call (on the plane's clock, ``perf_counter`` by default), so that
        latency covers decoding too. ``trace`` (tracing or the prediction log on) gets the
        steps' stamps and travels with the tap record.
        """
        start = self._clock() if received is None else received
        if self._every_call is not None and not request.id:
            # The log keys records by id: a call without one gets one, returned with its answer.
            request.id = uuid.uuid4().hex
        if self._inflight >= self._max_inflight or self._draining:
            self._refuse_overload(None)
        if deadline is not None and deadline <= time.monotonic():
            # Nobody will read the answer: never routed, never run, and no version's failure.
            self.refused("DEADLINE_EXCEEDED")
            raise DeadlineExceeded("the client's deadline passed before the request could run")
        if routing_key is not None:
            check_text("routing key", routing_key, MAX_KEY_BYTES)
        self._inflight += 1
        self._metrics.inflight.set(self._inflight)
        served: Served | None = None
        route: Route | None = None
        counted: str | None = None  # the model whose per-model slot this call holds
        flagged: tuple[str, ...] = ()
        try:
            served, route = self._catalog.route(request.model, request.version, routing_key)
            if self._per_model:
                model = request.model
                held = self._by_model.get(model, 0)
                if held >= self._per_model:
                    self._refuse_overload(model)
                self._by_model[model] = held + 1
                counted = model
            loaded = served.loaded
            rows = loaded.validate(request.inputs)
            if self._contracts is not None:
                flagged = self._contracts(
                    request.model, route.version, loaded.signature, request.inputs
                )
            wanted = request.requested_outputs
            if wanted:
                loaded.check_outputs(wanted)
            if trace is not None:
                self._traced(trace, request, route)
            cache = None if self._cache is None else self._cache.for_model(request.model)
            if cache is None:
                outputs = await self._run(request, served, route, rows, deadline, trace)
            else:
                key = cache.key(route.version, request.inputs, wanted)
                hit = cache.get(key)
                if hit is None:
                    hit = await self._run(request, served, route, rows, deadline, trace)
                    cache.put(key, hit)
                elif trace is not None:
                    trace.cached = True
                outputs = hit
            if trace is not None:
                trace.answered = time.perf_counter()
        except GatewayError as exc:
            self._failed(exc.code, served, route, start, request, trace)
            raise
        except asyncio.CancelledError:
            late = deadline is not None and time.monotonic() >= deadline
            code = "DEADLINE_EXCEEDED" if late else "CANCELLED"
            self._failed(code, served, route, start, request, trace)
            raise
        except BaseException:
            self._failed("INTERNAL", served, route, start, request, trace)
            raise
        finally:
            self._inflight -= 1
            self._metrics.inflight.set(self._inflight)
            if counted is not None:
                self._release(counted)
            if self._draining and not self._inflight and self._idle is not None:
                self._idle.set()
        latency = self._clock() - start
        served.counters.succeeded(route.role, latency, rows)
        role = route.role
        if self._every_call is not None:
            self._every_call.offer(
                self._entry(request, served, route, "OK", latency, outputs, trace)
            )
        elif self._taps is not None:
            fields = (request.model, route.version, role, request.id, request.parameters,
                      request.inputs, outputs, loaded.signature)  # fmt: skip
            # NOTE: the keyword only when traced: it costs a NamedTuple about 0.5 us.
            record = TapRecord(*fields) if trace is None else TapRecord(*fields, trace=trace)
            self._taps.offer(record)
        if wanted:
            outputs = {name: outputs[name] for name in wanted}
        return InferResult(request.model, route.version, role, request.id, outputs, rows, flagged)

    @staticmethod
    def _traced(trace: RequestTrace, request: InferRequest, route: Route) -> None:
        trace.routed = time.perf_counter()
        trace.model, trace.version, trace.role = request.model, route.version, route.role
        trace.request_id = request.id

    async def _run(
        self,
        request: InferRequest,
        served: Served,
        route: Route,
        rows: int,
        deadline: float | None,
        trace: RequestTrace | None = None,
    ) -> Tensors:
        """The version's batcher runs the inputs. When it refuses them as values it cannot
        run (the caller's fault, as far as that version can tell) and the version is not the
        champion, the champion is asked to run them too: if it can, the failure is the
        candidate's own (``INTERNAL``, which its error-rate gate counts: a canary that
        breaks on inputs the champion serves is worse, not the caller); if it cannot either,
        the caller's values are at fault (``INVALID_ARGUMENT``)."""
        try:
            return await served.batcher.submit(
                request.inputs, rows=rows, deadline=deadline, trace=trace
            )
        except RefusedByModel as refused:
            champion = None if route.role == "champion" else self._champion(request.model)
            if champion is None or champion is served:
                raise
            try:
                await champion.batcher.submit(request.inputs, rows=rows, deadline=deadline)
            except GatewayError:
                raise refused from None  # the champion cannot run them either
            raise InferenceFailed(
                f"model {request.model} version {route.version} failed to run a request that "
                f"its champion (version {champion.version}) runs"
            ) from None

    def _champion(self, model: str) -> Served | None:
        try:
            return self._catalog.find(model, "")
        except GatewayError:
            return None

    def _refuse_overload(self, model: str | None) -> None:
        """Raise the refusal for a full process (``model`` None), a full model, or a drain.

        A full model raises inside the routed ``try``, so it is counted on the version it
        was routed to; the other two never reached one and count as refusals here."""
        if model is not None:
            raise ResourceExhausted(
                f"model {model} has {self._per_model} requests in flight; retry with backoff",
                retry_after_s=self._retry_after_s,
            )
        if self._draining:
            self.refused("UNAVAILABLE")
            raise Unavailable("gateway is shutting down; retry on another replica")
        self.refused("RESOURCE_EXHAUSTED")
        raise ResourceExhausted(
            f"gateway has {self._max_inflight} requests in flight; retry with backoff",
            retry_after_s=self._retry_after_s,
        )

    def _release(self, model: str) -> None:
        held = self._by_model[model] - 1
        if held:
            self._by_model[model] = held
        else:
            del self._by_model[model]

    def _failed(
        self,
        code: str,
        served: Served | None,
        route: Route | None,
        start: float,
        request: InferRequest,
        trace: RequestTrace | None,
    ) -> None:
        if served is None or route is None:
            self.refused(code)
            return
        latency = self._clock() - start
        served.counters.failed(route.role, code, latency)
        if self._every_call is not None:
            self._every_call.offer(self._entry(request, served, route, code, latency, {}, trace))

    def _entry(
        self,
        request: InferRequest,
        served: Served,
        route: Route,
        status: str,
        latency: float,
        outputs: Tensors,
        trace: RequestTrace | None,
    ) -> TapRecord:
        """The prediction log's record of one call (built only while the log is on)."""
        entry = self._catalog.entries().get(request.model)
        face, principal = caller.get()
        loaded = served.loaded
        return TapRecord(
            request.model,
            route.version,
            route.role,
            request.id,
            request.parameters,
            request.inputs,
            outputs,
            loaded.signature,
            status,
            int(latency * 1e6),
            time.time_ns() // 1000,
            0 if entry is None else entry.table.revision,
            loaded.sha256,
            face,
            principal,
            trace,
        )
