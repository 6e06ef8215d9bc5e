"""Governor use cases: its status, pause and resume, rollout approvals, rollout policies.

They read and write the governor's tables in the registry, so they answer the same on every
gateway whichever one holds the governor lease. A change that should make the loop look
again at once (resume, approve, a new policy) calls ``on_change(model)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidArgument
from gateway.governor.rollout import RolloutPolicyError, parse_rollout_policy, policy_to_set
from gateway.operations.deployments import require
from gateway.registry_facade import AsyncRegistry
from registry import StateRecord, utcnow
from registry.errors import NotFoundError

__all__ = ["GovernorOps", "GovernorStatus", "PolicyView"]


@dataclass(frozen=True)
class PolicyView:
    """One stored rollout policy and what it means once parsed (``effective``)."""

    model: str
    version: int
    toml: str
    created_at: str
    actor: str
    effective: Mapping[str, Any]


@dataclass
class GovernorStatus:
    """Where the governor stands on one model (the ``governor status`` answer)."""

    model: str
    leader: str = ""
    mode: str = ""
    policy_version: int = 0
    steps: list[float] = field(default_factory=list)
    paused: bool = False
    candidate: str = ""
    step: int = 0
    consecutive_failures: int = 0
    rolled_back: list[str] = field(default_factory=list)
    approved: list[str] = field(default_factory=list)
    p_value: float = 0.0
    last_decision: str = ""
    reasons: list[str] = field(default_factory=list)
    gates: list[Mapping[str, Any]] = field(default_factory=list)
    """Each as the decision stored it: name, version, status, value (None: none), threshold,
    op, hard, detail."""
    last_evaluated_at: str = ""
    figures: Mapping[str, Any] | None = None
    """Per-version figures behind the last decision; None before the governor kept state."""
    next_evaluation_in_s: float = 0.0


def _view(model: str, rec: Any, effective: Mapping[str, Any]) -> PolicyView:
    return PolicyView(model, rec.version, rec.toml, rec.created_at.isoformat(), rec.actor,
                      effective)  # fmt: skip


class GovernorOps:
    """The governor's operator use cases over the registry facade."""

    def __init__(
        self, registry: AsyncRegistry, *, on_change: Callable[[str], None] | None = None
    ) -> None:
        self._registry = registry
        self._store = registry.governor
        self._on_change = on_change or (lambda _model: None)

    async def _status(self, model: str, record: StateRecord | None) -> GovernorStatus:
        try:
            policy_rec = await self._store.get_policy(model)
        except NotFoundError:
            policy_rec = None
        policy = parse_rollout_policy(policy_rec.toml) if policy_rec is not None else None
        holder, _ = await self._store.leader()
        out = GovernorStatus(model=model, leader=holder)
        if policy is not None and policy_rec is not None:
            out.mode = policy.mode.value
            out.policy_version = policy_rec.version
            out.steps = list(policy.canary.steps)
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
        out.rolled_back = list(record.rolled_back)
        out.approved = list(record.approved)
        out.p_value = float(state.get("p_value", 1.0))
        last = record.last_decision or {}
        decision = last.get("decision", {})
        out.last_decision = decision.get("kind", "")
        out.reasons = list(decision.get("reasons", []))
        out.gates = list(decision.get("gates", []))
        out.last_evaluated_at = last.get("at", "")
        out.figures = decision.get("figures", {})
        if record.next_evaluation_at is not None:
            wait = (record.next_evaluation_at - utcnow()).total_seconds()
            out.next_evaluation_in_s = max(0.0, wait)
        return out

    async def status(self, model: str) -> GovernorStatus:
        require(model=model)
        await self._registry.get_deployment(model)  # NOT_FOUND if unknown
        return await self._status(model, await self._store.get_state(model))

    async def pause(self, model: str, *, actor: str, reason: str) -> GovernorStatus:
        require(model=model)
        record = await self._store.set_paused(model, True, actor=actor, reason=reason)
        return await self._status(model, record)

    async def resume(
        self, model: str, *, actor: str, reason: str, clear_rolled_back: Sequence[str] = ()
    ) -> GovernorStatus:
        require(model=model)
        if clear_rolled_back:
            await self._store.clear_rolled_back(
                model, list(clear_rolled_back), actor=actor, reason=reason
            )
        record = await self._store.set_paused(model, False, actor=actor, reason=reason)
        self._on_change(model)
        return await self._status(model, record)

    async def approve(self, model: str, version: str, *, actor: str, reason: str) -> GovernorStatus:
        """Approve ``version``'s rollout (a policy that awaits approval goes on)."""
        require(model=model, version=version)
        await self._registry.get_version(model, version)
        record = await self._store.approve(model, version, actor=actor, reason=reason)
        self._on_change(model)
        return await self._status(model, record)

    async def set_policy(self, model: str, toml: str, *, actor: str, reason: str) -> PolicyView:
        require(model=model)
        try:
            policy = policy_to_set(toml)
        except RolloutPolicyError as exc:
            raise InvalidArgument(f"policy: {exc}") from None
        summary = policy.to_dict()
        rec = await self._store.set_policy(model, toml, actor=actor, reason=reason,
                                           summary=summary)  # fmt: skip
        self._on_change(model)
        return _view(model, rec, summary)

    async def get_policy(self, model: str, version: int | None = None) -> PolicyView:
        require(model=model)
        rec = await self._store.get_policy(model, version or None)
        return _view(model, rec, parse_rollout_policy(rec.toml).to_dict())
