"""Thin servicer for ``onnxgate.governor.v1.GovernorService``: feedback, status, control.

``Feedback`` joins delayed labels into this gateway's feedback store (send them to the
gateway that served the predictions: each keeps its own record). The other methods read
and write the governor's tables in the registry, so they answer the same on every gateway
whichever one holds the governor lease.

Authentication is applied around these methods by :meth:`GovernorServicer.add_to_server`:
operator methods go through the server's role guard, like every admin service (the
permission each needs is looked up in :data:`gateway.access.METHOD_PERMISSIONS`; a method not
listed there needs ``administer``); ``Feedback`` is authenticated like ``ModelInfer``
(predict tokens when there are any, else open).
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc

from gateway._proto import governor_pb2 as pb
from gateway._proto import governor_pb2_grpc as pb_grpc
from gateway.concurrency import run_blocking
from gateway.errors import InvalidArgument
from gateway.governor.feedback import FeedbackStore, LabelOutcome, unknown_hint
from gateway.governor.rollout import RolloutPolicyError, parse_rollout_policy, policy_to_set
from gateway.transport.auth import principal, requires_token
from gateway.transport.handlers import add_service
from gateway.transport.status import grpc_errors
from registry import Registry, StateRecord, utcnow
from registry.errors import NotFoundError

__all__ = ["GOVERNOR_SERVICE", "GovernorServicer", "MAX_FEEDBACK_ITEMS"]

Context = grpc.aio.ServicerContext[Any, Any]
_SERVICE = pb.DESCRIPTOR.services_by_name["GovernorService"]
GOVERNOR_SERVICE = _SERVICE.full_name
METHODS = tuple(m.name for m in _SERVICE.methods)
MAX_FEEDBACK_ITEMS = 10_000  # per call; the CLI sends files in batches of this size


def _gate(d: Mapping[str, Any]) -> pb.Gate:
    value = d.get("value")
    return pb.Gate(
        name=d["name"],
        version=d["version"],
        status=d["status"],
        has_value=value is not None,
        value=float(value) if value is not None else 0.0,
        threshold=float(d["threshold"]),
        op=d["op"],
        hard=bool(d["hard"]),
        detail=d.get("detail", ""),
    )


class GovernorServicer(pb_grpc.GovernorServiceServicer):
    def __init__(
        self,
        registry: Registry,
        feedback: FeedbackStore,
        *,
        io_executor: concurrent.futures.Executor,
        on_change: Callable[[str], None] | None = None,
        settle: Callable[[], Awaitable[object]] | None = None,
        resolve: Callable[[str, list[str]], Awaitable[object]] | None = None,
    ) -> None:
        self._registry = registry
        self._store = registry.governor
        self._feedback = feedback
        self._io = io_executor
        self._on_change = on_change or (lambda _model: None)
        # Predictions reach the feedback store through the tap queue: a label sent right
        # after its prediction waits (briefly) for the queue to settle, so it is joined.
        self._settle = settle
        # With a fleet: fetch predictions other processes made, so their labels join here.
        self._resolve = resolve

    def add_to_server(
        self,
        server: grpc.aio.Server,
        *,
        guard: Callable[[Any], Any],
        predict_tokens: Mapping[str, str],
    ) -> str:
        """Wrap every method, register, and return the service name.

        ``guard`` wraps an operator method (authentication, roles, error mapping: the one
        the server gives every admin service); ``Feedback`` gets ModelInfer's treatment
        instead (predict tokens when there are any, else open).
        """
        for name in METHODS:
            method = getattr(self, name)
            if name != "Feedback":
                setattr(self, name, guard(method))
            elif predict_tokens:
                setattr(self, name, grpc_errors(requires_token(predict_tokens)(method)))
            else:
                setattr(self, name, grpc_errors(method))
        return add_service(server, self, pb, "GovernorService")

    @staticmethod
    def _model(model: str) -> str:
        if not model:
            raise InvalidArgument("model is required")
        return model

    async def Feedback(self, request: pb.FeedbackRequest, context: Context) -> pb.FeedbackResponse:
        model = self._model(request.model)
        if len(request.items) > MAX_FEEDBACK_ITEMS:
            raise InvalidArgument(
                f"items: at most {MAX_FEEDBACK_ITEMS} per call, got {len(request.items)}"
            )
        if self._settle is not None:
            await self._settle()
        if self._resolve is not None:
            await self._resolve(model, [item.id for item in request.items])
        counts = dict.fromkeys(LabelOutcome, 0)
        for item in request.items:
            outcome = self._feedback.add_label(
                model,
                item.id,
                row=item.row,
                label=item.label or None,
                value=item.value if item.HasField("value") else None,
            )
            counts[outcome] += 1
        return pb.FeedbackResponse(
            joined=counts[LabelOutcome.JOINED],
            unknown=counts[LabelOutcome.UNKNOWN],
            expired=counts[LabelOutcome.EXPIRED],
            duplicate=counts[LabelOutcome.DUPLICATE],
            invalid=counts[LabelOutcome.INVALID],
            hint=unknown_hint(counts[LabelOutcome.UNKNOWN], fleet=self._resolve is not None),
        )

    def _status(self, model: str, record: StateRecord | None) -> pb.StatusResponse:
        try:
            policy_rec = self._store.get_policy(model)
        except NotFoundError:
            policy_rec = None
        policy = parse_rollout_policy(policy_rec.toml) if policy_rec is not None else None
        holder, _ = self._store.leader()
        out = pb.StatusResponse(model=model, leader=holder)
        if policy is not None and policy_rec is not None:
            out.mode = policy.mode.value
            out.policy_version = policy_rec.version
            out.steps.extend(policy.canary.steps)
        if record is None:
            return out
        state = record.state
        out.paused = record.paused
        out.candidate = state.get("candidate") or ""
        out.step = int(state.get("step", -1)) + 1
        if out.candidate in record.rolled_back:
            # NOTE: the state keeps the rolled-back version until the next candidate appears;
            # it is no longer being ramped, so it is not "the candidate at step N".
            out.candidate, out.step = "", 0
        out.consecutive_failures = int(state.get("consecutive_failures", 0))
        out.rolled_back.extend(record.rolled_back)
        out.approved.extend(record.approved)
        out.p_value = float(state.get("p_value", 1.0))
        last = record.last_decision or {}
        decision = last.get("decision", {})
        out.last_decision = decision.get("kind", "")
        out.reasons.extend(decision.get("reasons", []))
        out.gates.extend(_gate(g) for g in decision.get("gates", []))
        out.last_evaluated_at = last.get("at", "")
        out.figures_json = json.dumps(decision.get("figures", {}), sort_keys=True)
        if record.next_evaluation_at is not None:
            wait = (record.next_evaluation_at - utcnow()).total_seconds()
            out.next_evaluation_in_s = max(0.0, wait)
        return out

    async def _respond(self, model: str, record: StateRecord | None) -> pb.StatusResponse:
        return await run_blocking(self._io, self._status, model, record)

    async def GetStatus(self, request: pb.GetStatusRequest, context: Context) -> pb.StatusResponse:
        model = self._model(request.model)
        await run_blocking(self._io, self._registry.get_deployment, model)  # NOT_FOUND if unknown
        record = await run_blocking(self._io, self._store.get_state, model)
        return await self._respond(model, record)

    async def Pause(self, request: pb.PauseRequest, context: Context) -> pb.StatusResponse:
        model = self._model(request.model)
        record = await run_blocking(
            self._io,
            self._store.set_paused,
            model,
            True,
            actor=principal.get(),
            reason=request.reason,
        )
        return await self._respond(model, record)

    async def Resume(self, request: pb.ResumeRequest, context: Context) -> pb.StatusResponse:
        model = self._model(request.model)
        actor = principal.get()
        if request.clear_rolled_back:
            await run_blocking(
                self._io,
                self._store.clear_rolled_back,
                model,
                list(request.clear_rolled_back),
                actor=actor,
                reason=request.reason,
            )
        record = await run_blocking(
            self._io, self._store.set_paused, model, False, actor=actor, reason=request.reason
        )
        self._on_change(model)
        return await self._respond(model, record)

    async def Approve(self, request: pb.ApproveRequest, context: Context) -> pb.StatusResponse:
        model = self._model(request.model)
        if not request.version:
            raise InvalidArgument("version is required")
        await run_blocking(self._io, self._registry.get_version, model, request.version)
        record = await run_blocking(
            self._io,
            self._store.approve,
            model,
            request.version,
            actor=principal.get(),
            reason=request.reason,
        )
        self._on_change(model)
        return await self._respond(model, record)

    async def SetPolicy(self, request: pb.SetPolicyRequest, context: Context) -> pb.PolicyResponse:
        model = self._model(request.model)
        try:
            policy = policy_to_set(request.toml)
        except RolloutPolicyError as exc:
            raise InvalidArgument(f"policy: {exc}") from None
        rec = await run_blocking(
            self._io,
            self._store.set_policy,
            model,
            request.toml,
            actor=principal.get(),
            reason=request.reason,
            summary=policy.to_dict(),
        )
        self._on_change(model)
        return pb.PolicyResponse(
            model=model,
            version=rec.version,
            toml=rec.toml,
            created_at=rec.created_at.isoformat(),
            actor=rec.actor,
            effective_json=json.dumps(policy.to_dict(), sort_keys=True),
        )

    async def GetPolicy(self, request: pb.GetPolicyRequest, context: Context) -> pb.PolicyResponse:
        model = self._model(request.model)
        rec = await run_blocking(self._io, self._store.get_policy, model, request.version or None)
        return pb.PolicyResponse(
            model=model,
            version=rec.version,
            toml=rec.toml,
            created_at=rec.created_at.isoformat(),
            actor=rec.actor,
            effective_json=json.dumps(parse_rollout_policy(rec.toml).to_dict(), sort_keys=True),
        )
