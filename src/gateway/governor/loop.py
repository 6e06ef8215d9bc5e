"""The governor loop: every interval, snapshot each governed model, decide, and apply.

Per tick (``governor_interval_s``):

1. read the policies in force; models without one are left alone (and without any
   policy the loop does no database write at all);
2. take or renew the leader lease (:mod:`registry.governor_store`): only the holder
   evaluates, so one governor acts at a time however many gateways share the registry;
3. for each model due (its policy's ``canary.interval_s`` has passed): build a
   :class:`~gateway.governor.evidence.Snapshot` from the deployment and the evidence sources,
   windowed -- traffic since the current canary step began, labels since the candidate
   appeared -- and call the pure :func:`~gateway.governor.decide.decide`;
4. apply it by mode:

   * ``enforce``: advance/promote/rollback through the registry like an operator change
     (versions preloaded first; one transaction writes the new revision and an audit event
     whose ``details`` hold the decision, its gates and the figures), then re-sync the
     catalog; other gateways converge by polling. An ``await_approval`` and a hold that
     changed something (a soft failure counted, a new candidate) are audited as
     ``governor.decision``; other holds are not, to keep the log readable;
   * ``dry-run``: every decision is audited as ``governor.decision``; traffic never moves;
   * ``paused`` (policy, or ``onnxgate governor pause``): nothing is evaluated.

5. save the state (step, failures, rolled-back versions, last decision) to the registry,
   so ``governor status`` works on every gateway and a new leader continues from it.

A rollback restores the last good deployment: the newest earlier revision in which the
candidate had no traffic (or, failing that, the current arms without it).

Windows (:mod:`gateway.governor.evidence_windows`) live in the leader's memory and, with
a :class:`WindowStore` (the fleet's, see :mod:`gateway.fleet`), in the registry too, keyed
by (model, candidate, step): a new leader continues the step in progress from the stored
baseline instead of restarting it.
With a fleet the evidence source is the merge of every process's published evidence.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from gateway.concurrency import run_blocking
from gateway.governor.decide import Decision, DecisionKind, GovernorState, decide
from gateway.governor.evidence import Evidence, Snapshot, VersionSnapshot, candidate_of
from gateway.governor.evidence_windows import CANDIDATE_WINDOW, Window, WindowStore, windowed
from gateway.governor.feedback import FeedbackStore
from gateway.governor.lease import LeaseKeeper
from gateway.governor.rollout import (
    ContractPolicy,
    Mode,
    RolloutPolicy,
    RolloutPolicyError,
    parse_rollout_policy,
)
from gateway.governor.sources import EvidenceSource
from gateway.governor.starter import DeploymentChanges, start_by_policy
from gateway.registry_facade import AsyncRegistry, Promote, SetArms, SetWeights
from gateway.traces import DecisionTrace, Tracing
from registry import utcnow
from registry.deployment import Deployment, Role
from registry.errors import NotFoundError, RegistryUnavailable

__all__ = ["ACTOR", "Governor", "default_holder", "restore_target"]

log = logging.getLogger(__name__)

ACTOR = "governor"
_CHANGES = (DecisionKind.ADVANCE, DecisionKind.PROMOTE, DecisionKind.ROLLBACK)


def default_holder() -> str:
    """This process's name on the leader lease: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def restore_target(history: Sequence[Deployment], current: Deployment, bad: str) -> Deployment:
    """The deployment a rollback of ``bad`` restores (see the module docstring)."""
    for dep in reversed(history):
        if dep.revision >= current.revision:
            continue
        arm = dep.arm(bad)
        if (arm is None or arm.weight == 0) and any(a.weight > 0 for a in dep.arms):
            return dep
    arms = [a for a in current.arms if a.version != bad]
    freed = sum(a.weight for a in current.arms if a.version == bad)
    arms = [replace(a, weight=a.weight + freed) if a.role is Role.CHAMPION else a for a in arms]
    return Deployment(current.model, current.revision, tuple(arms), current.shadows)


class Governor:
    """Runs the loop for one gateway; see the module docstring."""

    def __init__(
        self,
        registry: AsyncRegistry,
        changes: DeploymentChanges,
        feedback: FeedbackStore,
        sources: Sequence[EvidenceSource],
        *,
        io_executor: concurrent.futures.Executor,
        holder: str,
        tick_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_decision: Callable[[Decision], None] | None = None,
        windows: WindowStore | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._tracing = tracing  # each evaluation a trace; its id in the audit event
        self._registry = registry
        self._store = registry.governor
        self._changes = changes
        self._feedback = feedback
        self.sources = list(sources)
        # Set by the gateway: every tick hands it each policy's [contract] (data contracts).
        self.on_contracts: Callable[[Mapping[str, ContractPolicy]], None] | None = None
        self._io = io_executor  # the fleet's window store only (not the registry's tables)
        self.holder = holder
        self.tick_s = tick_s
        self._clock = clock
        self._on_decision = on_decision
        self._stored = windows
        self._parsed: dict[tuple[str, int], RolloutPolicy] = {}
        self._windows: dict[str, Window] = {}
        self._due: dict[str, float] = {}
        self.is_leader = False
        self._keeper: LeaseKeeper | None = None  # renews the lease between ticks
        self.last: dict[str, Decision] = {}

    # -- the loop -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set; a failing tick is logged and the loop goes on."""
        outage = False
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                    outage = False
                except RegistryUnavailable as exc:
                    # Nothing to decide without the registry; one line per outage, not per tick.
                    if not outage:
                        log.warning("governor idle: %s", exc)
                    outage = True
                except Exception:  # the governor must never stop serving
                    log.exception("governor tick failed")
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.tick_s)
                except TimeoutError:
                    pass
        finally:
            if self._keeper is not None:
                await run_blocking(self._io, self._keeper.stop)
            if self.is_leader:
                await self._store.release(self.holder)
                self.is_leader = False

    def evaluate_now(self, model: str | None = None) -> None:
        """Make ``model`` (or every model) due at the next tick (after resume or a policy)."""
        if model is None:
            self._due.clear()
        else:
            self._due.pop(model, None)

    async def tick(self) -> list[Decision]:
        """One pass over every governed model; returns the decisions made."""
        records = await self._store.policies()
        policies: dict[str, tuple[int, RolloutPolicy]] = {}
        for model, rec in records.items():
            policy = self._parse(model, rec.version, rec.toml)
            if policy is not None:
                policies[model] = (rec.version, policy)
        for model in self._feedback.configured() - policies.keys():
            self._feedback.configure(model, None)
        for model, (_, policy) in policies.items():
            self._feedback.configure(model, policy.feedback)
        if self.on_contracts is not None:
            self.on_contracts({model: policy.contract for model, (_, policy) in policies.items()})
        if not policies or (self._stored is not None and not self._stored.ready()):
            return []  # (a fleet member leads only once it has read the fleet's evidence)
        ttl = max(3 * self.tick_s, 2.0)
        self.is_leader = await self._store.acquire(self.holder, ttl)
        if self.is_leader and (self._keeper is None or not self._keeper.alive):
            self._keeper = LeaseKeeper(self._store.blocking, self.holder, ttl)
        if not self.is_leader:
            self._windows.clear()  # evidence windows are only meaningful for the leader
            return []
        decisions = []
        now = self._clock()
        for model, (version, policy) in sorted(policies.items()):
            if now < self._due.get(model, 0.0):
                continue
            self._due[model] = now + policy.canary.interval_s
            try:
                decision = await self._evaluate(model, version, policy)
            except NotFoundError:
                continue  # a policy for a model with no deployment yet
            except RegistryUnavailable:
                raise  # not this model's trouble: the tick stops (see run)
            except Exception:  # one model's trouble must not stop the others
                log.exception("governor: evaluating %s failed", model)
                continue
            if decision is not None:
                decisions.append(decision)
        return decisions

    def _parse(self, model: str, version: int, toml: str) -> RolloutPolicy | None:
        key = (model, version)
        if key not in self._parsed:
            try:
                self._parsed[key] = parse_rollout_policy(toml)
            except RolloutPolicyError as exc:
                log.error("governor: policy %d of %s is invalid (%s); ignored", version, model, exc)
                return None
        return self._parsed[key]

    # -- one model ------------------------------------------------------------------------------

    def _collect(self, model: str, dep: Deployment) -> dict[str, Evidence]:
        versions = sorted(dep.versions())
        merged = {v: Evidence() for v in versions}
        for source in self.sources:
            for version, ev in source.evidence(model, versions).items():
                if version in merged:
                    merged[version] = merged[version].merged(ev)
        return merged

    def _snapshot(
        self, dep: Deployment, evidence: Mapping[str, Evidence], window: Window | None
    ) -> Snapshot:
        total = sum(a.weight for a in dep.arms) or 1.0
        versions: dict[str, VersionSnapshot] = {}
        for arm in dep.arms:
            versions[arm.version] = VersionSnapshot(
                arm.version, arm.role.value, 100 * arm.weight / total
            )
        for shadow in dep.shadows:
            versions[shadow.version] = VersionSnapshot(shadow.version, "shadow", 0.0)
        for v, vs in versions.items():
            ev = evidence.get(v, Evidence())
            if window is not None:
                ev = windowed(ev, window.since_step.get(v), window.since_candidate.get(v))
            versions[v] = replace(vs, evidence=ev)
        return Snapshot(dep.model, dep.revision, versions)

    async def _evaluate(
        self, model: str, policy_version: int, policy: RolloutPolicy
    ) -> Decision | None:
        record = await self._store.get_state(model)
        state = GovernorState.from_dict(record.state) if record is not None else GovernorState()
        mode = Mode.PAUSED if record is not None and record.paused else policy.mode
        if mode is Mode.PAUSED:
            return None
        # The evaluation's own trace (tracing on): its span covers evidence to saved state.
        trace = None if self._tracing is None else self._tracing.decision(model)
        dep = await self._registry.get_deployment(model)
        evidence = self._collect(model, dep)
        if policy.start.on and mode is Mode.ENFORCE:  # rollout by policy: [start]
            args = (dep, policy, state.rolled_back, evidence)
            if await start_by_policy(self._registry, self._changes, *args, actor=ACTOR):
                return None  # decide on the new candidate at its next evaluation
        cand = candidate_of(self._snapshot(dep, evidence, None))
        window = self._windows.get(model)
        if window is None or window.candidate != cand:
            window = await self._open_window(model, cand, state.step, evidence)
            self._windows[model] = window
        snapshot = self._snapshot(dep, evidence, window)
        approved = frozenset(record.approved) if record is not None else frozenset()
        snapshot = replace(snapshot, approved=approved)
        decision = decide(replace(policy, mode=mode), snapshot, state)
        # ``holder`` names the lease holder that decided: the audit log shows which member
        # made each decision, and the revision it was fenced on is ``decision.revision``.
        details = {
            "decision": decision.to_dict(),
            "policy_version": policy_version,
            "holder": self.holder,
        }
        if trace is not None:
            details["trace_id"] = trace.trace_id
        if mode is Mode.ENFORCE and decision.kind in _CHANGES:
            try:
                await self._apply(dep, decision, details)
            except Exception as exc:  # noqa: BLE001
                # Refused (a concurrent operator change, a governance rule, a version that
                # fails to load): decide again next interval from what is deployed then;
                # the state is not advanced.
                log.warning("governor: %s on %s not applied: %s", decision.kind, model, exc)
                self._traced(trace, decision)
                return decision
            if decision.kind is not DecisionKind.ADVANCE and self._stored is not None:
                await run_blocking(self._io, self._stored.clear, model, cand or "")
        elif self._worth_auditing(mode, decision, state):
            await self._registry.record_audit(
                actor=ACTOR,
                action="governor.decision",
                subject=model,
                after=details,
                reason=decision.summary(),
            )
        if decision.state.step != window.step:
            window.step = decision.state.step
            window.since_step = dict(evidence)
            final = decision.kind in (DecisionKind.PROMOTE, DecisionKind.ROLLBACK)
            if self._stored is not None and cand is not None and not final:
                step = decision.state.step
                await run_blocking(self._io, self._stored.save, model, cand, step, evidence, True)
        next_at = utcnow() + timedelta(seconds=policy.canary.interval_s)
        last = {**details, "at": utcnow().isoformat()}
        await self._store.save_state(
            model,
            decision.state.to_dict(),
            last_decision=last,
            next_evaluation_at=next_at,
        )
        self.last[model] = decision
        if self._on_decision is not None:
            self._on_decision(decision)
        self._traced(trace, decision)
        return decision

    def _traced(self, trace: DecisionTrace | None, decision: Decision) -> None:
        if trace is not None and self._tracing is not None:
            self._tracing.decided(trace, decision.kind.value)

    async def _open_window(
        self, model: str, cand: str | None, step: int, evidence: dict[str, Evidence]
    ) -> Window:
        """A new window from now, or the stored one a previous leader started."""
        if self._stored is None or cand is None:
            return Window(cand, step, dict(evidence), dict(evidence))
        save = self._stored.save
        since_cand = await run_blocking(self._io, save, model, cand, CANDIDATE_WINDOW,
                                        evidence, False)  # fmt: skip
        since_step = await run_blocking(self._io, save, model, cand, step, evidence, False)
        return Window(cand, step, since_cand, since_step)

    @staticmethod
    def _worth_auditing(mode: Mode, decision: Decision, before: GovernorState) -> bool:
        if decision.candidate is None:
            return False
        if mode is Mode.DRY_RUN:
            return True
        if decision.kind is DecisionKind.AWAIT_APPROVAL:
            return before.last_decision != DecisionKind.AWAIT_APPROVAL.value
        after = decision.state
        return (after.candidate, after.consecutive_failures, after.step) != (
            before.candidate,
            before.consecutive_failures,
            before.step,
        )

    async def _apply(self, dep: Deployment, decision: Decision, details: dict[str, Any]) -> None:
        model, cand, reason = dep.model, decision.candidate, decision.summary()
        assert cand is not None  # changes always concern a candidate
        change = self._changes.change_deployment
        if decision.kind is DecisionKind.ADVANCE:
            assert decision.weights is not None
            target = SetWeights(dict(decision.weights))
            await change(model, target, actor=ACTOR, reason=reason,
                         expected_revision=dep.revision, details=details)  # fmt: skip
        elif decision.kind is DecisionKind.PROMOTE:
            await change(model, Promote(cand), actor=ACTOR, reason=reason,
                         expected_revision=dep.revision, details=details)  # fmt: skip
        else:
            history = await self._registry.history(model)
            restored = restore_target([h.deployment for h in history], dep, cand)
            target_arms = SetArms(list(restored.arms), list(restored.shadows))
            await change(model, target_arms, actor=ACTOR, reason=reason,
                         expected_revision=dep.revision, details=details)  # fmt: skip
        log.info("%s", reason)
