"""A version's lifecycle, kept in its ``status`` column.

::

    registered ──validation passes──► validated ──enough approvals──► approved
         │                                 │                             │
         └──────────── deployed (policy permitting) ─────────────────────┘
                                          ▼
                      champion | challenger | canary | shadow   (its serving role)
                                          │ leaves every arm and shadow
                                          ▼
                                       retired ──retention──► deleted (tombstone)

A retired version may serve again (a rollback); a deleted one never. Serving statuses
follow the deployment: every deployment change re-derives them in the same transaction and
records the transitions in its audit event (``after["status_changes"]``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.deployment import Deployment
from registry.models import Approval, Model, ModelVersion

__all__ = [
    "SERVING",
    "Status",
    "apply_deployment_statuses",
    "approval_count",
    "resting_status",
    "serving_roles",
]


class Status(StrEnum):
    REGISTERED = "registered"
    VALIDATED = "validated"
    APPROVED = "approved"
    CHAMPION = "champion"
    CHALLENGER = "challenger"
    CANARY = "canary"
    SHADOW = "shadow"
    RETIRED = "retired"
    DELETED = "deleted"


SERVING = frozenset({Status.CHAMPION, Status.CHALLENGER, Status.CANARY, Status.SHADOW})
"""Statuses of a version that the current deployment routes to (or mirrors)."""


def serving_roles(dep: Deployment) -> dict[str, Status]:
    """version -> serving status in ``dep`` (arms by role, then shadows)."""
    roles = {a.version: Status(a.role.value) for a in dep.arms}
    roles.update({s.version: Status.SHADOW for s in dep.shadows})
    return roles


def approval_count(session: Session, row: ModelVersion) -> int:
    """Distinct approvers of a version ((version, approver) is unique)."""
    count = session.scalar(select(func.count()).where(Approval.version_id == row.id))
    return int(count or 0)


def resting_status(session: Session, row: ModelVersion, approvals_required: int) -> Status:
    """The status of a version that serves nowhere and was never retired."""
    if approval_count(session, row) >= max(1, approvals_required):
        return Status.APPROVED
    validation = row.validation or {}
    return Status.VALIDATED if validation.get("passed") else Status.REGISTERED


def apply_deployment_statuses(
    session: Session, model: Model, current: Deployment, new: Deployment, now: datetime
) -> dict[str, list[str]]:
    """Re-derive the statuses the change from ``current`` to ``new`` touches.

    Returns version -> [old status, new status] for the versions that changed.
    """
    old_roles, new_roles = serving_roles(current), serving_roles(new)
    names = sorted(set(old_roles) | set(new_roles))
    if not names:
        return {}
    rows = session.scalars(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version.in_(names)
        )
    ).all()
    changes: dict[str, list[str]] = {}
    for row in sorted(rows, key=lambda r: r.version):
        target = new_roles.get(row.version, Status.RETIRED)
        if row.status == Status.DELETED or row.status == target:
            continue
        changes[row.version] = [row.status, target.value]
        row.status = target.value
        row.status_changed_at = now
    return changes
