"""Governance use cases: sign-off approvals, the governance policy, lifecycle, the audit log.

The rules live in the registry (:mod:`registry.governance`); these functions check what the
caller must give, pass the acting principal through, and return the registry's records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.operations.deployments import require
from gateway.registry_facade import AsyncRegistry
from registry import (
    ApprovalRecord,
    AuditRecord,
    GovernancePolicy,
    ValidationReport,
    VersionRecord,
)

__all__ = ["AuditCheck", "Governance"]


@dataclass(frozen=True)
class AuditCheck:
    """The audit log's hash chain: intact, or the problems found."""

    intact: bool
    problems: Sequence[str]


class Governance:
    """Approvals, the governance policy, validation, retirement and the audit log."""

    def __init__(self, registry: AsyncRegistry) -> None:
        self._registry = registry
        self._gov = registry.governance

    async def approve(
        self, model: str, version: str, *, approver: str, comment: str
    ) -> ApprovalRecord:
        require(model=model, version=version)
        return await self._gov.approve(model, version, approver=approver, comment=comment)

    async def approvals(self, model: str, version: str | None = None) -> list[ApprovalRecord]:
        require(model=model)
        return await self._gov.approvals(model, version or None)

    async def policy(self) -> GovernancePolicy:
        return await self._gov.policy()

    async def set_policy(
        self, policy: GovernancePolicy, *, actor: str, reason: str
    ) -> GovernancePolicy:
        return await self._gov.set_policy(policy, actor=actor, reason=reason)

    async def validate(self, model: str, version: str, *, actor: str) -> ValidationReport:
        require(model=model, version=version)
        return await self._gov.validate(model, version, actor=actor)

    async def retire(self, model: str, version: str, *, actor: str, reason: str) -> VersionRecord:
        require(model=model, version=version)
        return await self._gov.retire(model, version, actor=actor, reason=reason)

    async def audit(
        self, subject: str | None = None, *, since: datetime | None = None, limit: int = 0
    ) -> list[AuditRecord]:
        """Audit events, oldest first; the most recent ``limit`` when it is positive."""
        events = await self._registry.audit_events(subject or None)
        if since is not None:
            events = [e for e in events if e.at >= since]
        return events[-limit:] if limit > 0 else events

    async def verify_audit(self) -> AuditCheck:
        problems = await self._registry.verify_audit_chain()
        return AuditCheck(not problems, problems)

    async def deployment_at(self, model: str, at: datetime) -> Any:
        """The deployment record in force at ``at`` and until when (``registry``'s
        ``PointInTime``)."""
        return await self._gov.deployment_at(model, at)
