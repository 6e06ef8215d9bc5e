"""Applying a rollout policy's ``[start]`` rule (planned by :mod:`.autostart`).

Called by the governor loop for a model whose policy has ``[start] on`` set, in
``enforce`` mode, before deciding: when the plan says to start (or to move a shadow on
trial to canary), the change is written like an operator's — the version preloaded first,
one registry transaction for the new revision and its audit event, whose reason and
``details`` name the rule — and the loop decides on the new candidate from its next
evaluation on.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from typing import Any, Protocol

from gateway.concurrency import run_blocking
from gateway.governor.autostart import Start, plan_start
from gateway.governor.evidence import Evidence
from gateway.governor.rollout import RolloutPolicy
from registry import Registry
from registry.deployment import Deployment

__all__ = ["start_by_policy"]


class _Routes(Protocol):
    async def preload(self, model: str, versions: Any) -> None: ...

    async def sync(self, *, force: bool = False) -> bool: ...


async def start_by_policy(
    registry: Registry,
    io: concurrent.futures.Executor,
    routes: _Routes,
    dep: Deployment,
    policy: RolloutPolicy,
    rolled_back: frozenset[str],
    evidence: Mapping[str, Evidence],
    *,
    actor: str,
) -> Start | None:
    """Start what the plan says to start now, if anything; returns the change made."""
    records = await run_blocking(io, registry.list_versions, dep.model)
    versions = [(r.version, r.status) for r in records]
    shadows = {v: e.shadow for v, e in evidence.items() if e.shadow is not None}
    plan = plan_start(policy, dep, versions, rolled_back, shadows)
    if plan is None or plan.start is None:
        return None
    change = plan.start
    details = {
        "rule": plan.rule,
        "start": dict(vars(policy.start)),
        "queue": list(plan.queue),
        # The shape of the governor's other decisions, so readers of the audit log
        # (``governor status``, tests) see starts among advances and promotions.
        "decision": {
            "kind": "start",
            "model": dep.model,
            "candidate": change.version,
            "mode": policy.mode.value,
            "reasons": [change.reason],
        },
    }
    await routes.preload(dep.model, [change.version])
    await run_blocking(
        io,
        registry.set_deployment,
        dep.model,
        list(change.arms),
        list(change.shadows),
        actor=actor,
        reason=change.reason,
        expected_revision=dep.revision,
        details=details,
    )
    await routes.sync()
    return change
