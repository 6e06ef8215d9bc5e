"""Applying a rollout policy's ``[start]`` rule (planned by :mod:`.autostart`).

Called by the governor loop for a model whose policy has ``[start] on`` set, in
``enforce`` mode, before deciding: when the plan says to start (or to move a shadow on
trial to canary), the change is written like an operator's (``change_deployment`` of
the operations core: the versions preloaded first, one registry transaction for the new
revision and its audit event, whose reason and ``details`` name the rule), and the loop
decides on the new candidate from its next evaluation on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gateway.governor.autostart import Start, plan_start
from gateway.governor.evidence import Evidence
from gateway.governor.rollout import RolloutPolicy
from gateway.registry_facade import AsyncRegistry, DeploymentTarget, SetArms
from registry.deployment import Deployment

__all__ = ["DeploymentChanges", "start_by_policy"]


class DeploymentChanges(Protocol):
    """The one way a deployment changes (:class:`gateway.operations.Deployments`): preload,
    one audited registry write, catalog re-sync. Injected so the governor stays below the
    operations core."""

    async def change_deployment(
        self,
        model: str,
        target: DeploymentTarget,
        *,
        actor: str,
        reason: str,
        expected_revision: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> object: ...


async def start_by_policy(
    registry: AsyncRegistry,
    changes: DeploymentChanges,
    dep: Deployment,
    policy: RolloutPolicy,
    rolled_back: frozenset[str],
    evidence: Mapping[str, Evidence],
    *,
    actor: str,
) -> Start | None:
    """Start what the plan says to start now, if anything; returns the change made."""
    records = await registry.list_versions(dep.model)
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
    await changes.change_deployment(
        dep.model,
        SetArms(list(change.arms), list(change.shadows)),
        actor=actor,
        reason=change.reason,
        expected_revision=dep.revision,
        details=details,
    )
    return change
