"""The async face of the (synchronous, SQLAlchemy) registry: the one place async code calls it.

:class:`AsyncRegistry` is built once by the composition root over the registry and the I/O
executor; every coroutine that reads or writes the registry (the operations core, the catalog,
the governor loop, the servicers' reads) awaits one of its methods, each of which runs the
blocking call on that bounded executor (:func:`gateway.concurrency.run_blocking`). Nothing
else wraps registry calls in ``run_blocking``, and nothing else needs the I/O executor to
reach the registry (``tests/unit/test_registry_facade.py`` reads the code for the first).

A deployment write is one of four shapes (:data:`DeploymentTarget`); each maps to the
registry call whose audit action it has always had (``deployment.set``,
``deployment.promote``, ``deployment.rollback``).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.concurrency import run_blocking
from registry import (
    ApprovalRecord,
    AuditRecord,
    ContractRecord,
    DeploymentRecord,
    GovernancePolicy,
    ModelRecord,
    Registry,
    StateRecord,
    ValidationReport,
    VersionRecord,
)
from registry.deployment import Arm, Deployment, Role, Shadow

__all__ = [
    "AsyncContracts",
    "AsyncGovernance",
    "AsyncGovernorStore",
    "AsyncRegistry",
    "AsyncSessions",
    "DeploymentTarget",
    "Promote",
    "RollBack",
    "SetArms",
    "SetWeights",
]


@dataclass(frozen=True)
class SetArms:
    """Exactly these arms and shadows (``deployment.set``)."""

    arms: Sequence[Arm]
    shadows: Sequence[Shadow] = ()

    def versions(self) -> list[str]:
        return [a.version for a in self.arms] + [s.version for s in self.shadows]


@dataclass(frozen=True)
class SetWeights:
    """Serve exactly the versions weighted here (``deployment.set``)."""

    weights: Mapping[str, float]
    roles: Mapping[str, Role] | None = None

    def versions(self) -> list[str]:
        return list(self.weights)


@dataclass(frozen=True)
class Promote:
    """Make ``version`` champion (``deployment.promote``)."""

    version: str
    keep_old: bool = False

    def versions(self) -> list[str]:
        return [self.version]


@dataclass(frozen=True)
class RollBack:
    """Restore the previous revision's arms and shadows (``deployment.rollback``)."""


DeploymentTarget = SetArms | SetWeights | Promote | RollBack


class AsyncGovernorStore:
    """The governor's tables (policies, per-model state, the leader lease), awaited."""

    def __init__(self, registry: Registry, io: concurrent.futures.Executor) -> None:
        self._store = registry.governor
        self._io = io

    @property
    def blocking(self) -> Any:
        """The store itself, for code that runs on its own thread (the lease keeper)."""
        return self._store

    async def policies(self) -> dict[str, Any]:
        return await run_blocking(self._io, self._store.policies)

    async def get_policy(self, model: str, version: int | None = None) -> Any:
        return await run_blocking(self._io, self._store.get_policy, model, version)

    async def set_policy(
        self, model: str, toml: str, *, actor: str, reason: str, summary: Any
    ) -> Any:
        return await run_blocking(
            self._io, self._store.set_policy, model, toml, actor=actor, reason=reason,
            summary=summary,
        )  # fmt: skip

    async def get_state(self, model: str) -> StateRecord | None:
        return await run_blocking(self._io, self._store.get_state, model)

    async def save_state(
        self,
        model: str,
        state: Mapping[str, Any],
        *,
        last_decision: Mapping[str, Any] | None,
        next_evaluation_at: datetime | None,
    ) -> None:
        await run_blocking(
            self._io, self._store.save_state, model, state, last_decision=last_decision,
            next_evaluation_at=next_evaluation_at,
        )  # fmt: skip

    async def set_paused(self, model: str, paused: bool, *, actor: str, reason: str) -> StateRecord:
        return await run_blocking(
            self._io, self._store.set_paused, model, paused, actor=actor, reason=reason
        )

    async def approve(self, model: str, version: str, *, actor: str, reason: str) -> StateRecord:
        return await run_blocking(
            self._io, self._store.approve, model, version, actor=actor, reason=reason
        )

    async def clear_rolled_back(
        self, model: str, versions: Sequence[str], *, actor: str, reason: str
    ) -> StateRecord:
        return await run_blocking(
            self._io, self._store.clear_rolled_back, model, list(versions), actor=actor,
            reason=reason,
        )  # fmt: skip

    async def acquire(self, holder: str, ttl_s: float) -> bool:
        return await run_blocking(self._io, self._store.acquire, holder, ttl_s)

    async def release(self, holder: str) -> None:
        await run_blocking(self._io, self._store.release, holder)

    async def leader(self) -> tuple[str, datetime | None]:
        return await run_blocking(self._io, self._store.leader)


class AsyncGovernance:
    """Governance rules: sign-off approvals, the policy, validation, retirement."""

    def __init__(self, registry: Registry, io: concurrent.futures.Executor) -> None:
        self._gov = registry.governance
        self._io = io

    async def approve(
        self, model: str, version: str, *, approver: str, comment: str
    ) -> ApprovalRecord:
        return await run_blocking(
            self._io, self._gov.approve, model, version, approver=approver, comment=comment
        )

    async def approvals(self, model: str, version: str | None = None) -> list[ApprovalRecord]:
        return await run_blocking(self._io, self._gov.approvals, model, version)

    async def policy(self) -> GovernancePolicy:
        return await run_blocking(self._io, self._gov.policy)

    async def set_policy(
        self, policy: GovernancePolicy, *, actor: str, reason: str
    ) -> GovernancePolicy:
        return await run_blocking(
            self._io, self._gov.set_policy, policy, actor=actor, reason=reason
        )

    async def validate(self, model: str, version: str, *, actor: str) -> ValidationReport:
        return await run_blocking(self._io, self._gov.validate, model, version, actor=actor)

    async def retire(self, model: str, version: str, *, actor: str, reason: str) -> VersionRecord:
        return await run_blocking(
            self._io, self._gov.retire, model, version, actor=actor, reason=reason
        )

    async def deployment_at(self, model: str, at: datetime) -> Any:
        return await run_blocking(self._io, self._gov.deployment_at, model, at)


class AsyncSessions:
    """Console sign-in sessions (registry.console_sessions), awaited."""

    def __init__(self, registry: Registry, io: concurrent.futures.Executor) -> None:
        self._store = registry.sessions
        self._io = io

    async def create(self, principal: str, ttl_s: float) -> str:
        return await run_blocking(self._io, self._store.create, principal, ttl_s)

    async def principal_of(self, session_id: str) -> str | None:
        return await run_blocking(self._io, self._store.principal_of, session_id)

    async def revoke(self, session_id: str) -> bool:
        return await run_blocking(self._io, self._store.revoke, session_id)

    async def revoke_principal(self, principal: str) -> int:
        return await run_blocking(self._io, self._store.revoke_principal, principal)


class AsyncContracts:
    """Revisions of versions' data contracts (registry.contracts_store), awaited."""

    def __init__(self, registry: Registry, io: concurrent.futures.Executor) -> None:
        self._store = registry.contracts
        self._io = io

    async def get(self, model: str, version: str, revision: int = 0) -> ContractRecord | None:
        return await run_blocking(self._io, self._store.get, model, version, revision)

    async def set(
        self, model: str, version: str, contract: Mapping[str, Any], *, actor: str, reason: str
    ) -> ContractRecord:
        return await run_blocking(
            self._io, self._store.set, model, version, contract, actor=actor, reason=reason
        )


class AsyncRegistry:
    """Every registry call async code makes, each run on the I/O executor."""

    def __init__(self, registry: Registry, io: concurrent.futures.Executor) -> None:
        self._reg = registry
        self._io = io
        self.governor = AsyncGovernorStore(registry, io)
        self.governance = AsyncGovernance(registry, io)
        self.sessions = AsyncSessions(registry, io)
        self.contracts = AsyncContracts(registry, io)

    # -- reads --------------------------------------------------------------------------------

    async def list_models(self) -> list[ModelRecord]:
        return await run_blocking(self._io, self._reg.list_models)

    async def list_versions(self, model: str) -> list[VersionRecord]:
        return await run_blocking(self._io, self._reg.list_versions, model)

    async def get_profile(self, model: str, version: str) -> tuple[dict[str, Any], str] | None:
        return await run_blocking(self._io, self._reg.get_profile, model, version)

    async def get_version(self, model: str, version: str | None = None) -> VersionRecord:
        return await run_blocking(self._io, self._reg.get_version, model, version)

    async def read_artifact(self, model: str, version: str) -> bytes:
        return await run_blocking(self._io, self._reg.read_artifact, model, version)

    async def get_deployment(self, model: str) -> Deployment:
        return await run_blocking(self._io, self._reg.get_deployment, model)

    async def deployments(self) -> dict[str, Deployment]:
        return await run_blocking(self._io, self._reg.deployments)

    async def history(self, model: str) -> list[DeploymentRecord]:
        return await run_blocking(self._io, self._reg.history, model)

    async def change_counter(self) -> int:
        return await run_blocking(self._io, self._reg.change_counter)

    async def audit_events(self, subject: str | None = None) -> list[AuditRecord]:
        return await run_blocking(self._io, self._reg.audit_events, subject)

    async def verify_audit_chain(self) -> list[str]:
        return await run_blocking(self._io, self._reg.verify_audit_chain)

    # -- writes -------------------------------------------------------------------------------

    async def record_audit(
        self, *, actor: str, action: str, subject: str, after: Any = None, reason: str = ""
    ) -> None:
        await run_blocking(
            self._io, self._reg.record_audit, actor=actor, action=action, subject=subject,
            after=after, reason=reason,
        )  # fmt: skip

    async def write_deployment(
        self,
        model: str,
        target: DeploymentTarget,
        *,
        actor: str,
        reason: str,
        expected_revision: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """One registry transaction: the new revision and its audit event."""
        reg, io = self._reg, self._io
        if isinstance(target, SetArms):
            return await run_blocking(
                io, reg.set_deployment, model, list(target.arms), list(target.shadows),
                actor=actor, reason=reason, expected_revision=expected_revision, details=details,
            )  # fmt: skip
        if isinstance(target, SetWeights):
            return await run_blocking(
                io, reg.set_weights, model, dict(target.weights), target.roles,
                actor=actor, reason=reason, expected_revision=expected_revision, details=details,
            )  # fmt: skip
        if isinstance(target, Promote):
            # Fenced like every governor write: a leader paused past its lease, whose
            # successor changed the deployment meanwhile, gets StaleRevision, not a promote.
            return await run_blocking(
                io, reg.promote, model, target.version, actor=actor, reason=reason,
                keep_old=target.keep_old, expected_revision=expected_revision, details=details,
            )  # fmt: skip
        return await run_blocking(io, reg.rollback, model, actor=actor, reason=reason)
