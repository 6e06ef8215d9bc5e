"""Answers about the past: what served at time T, and the audit log since a time.

Deployment revisions are never updated or deleted, so the revision in force at T is the
highest one created at or before T. Every revision is also an audit event (hash-chained),
so an answer here can be checked against ``onnxgate audit verify``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.errors import NotFoundError
from registry.models import AuditEvent, DeploymentRevision
from registry.records import DeploymentRecord, deployment_of, find_model

__all__ = ["PointInTime", "audit_since", "deployment_at", "parse_instant"]


@dataclass(frozen=True)
class PointInTime:
    """The deployment in force at ``at``: the revision, and when it stopped being current."""

    at: datetime
    record: DeploymentRecord
    until: datetime | None  # None: still current


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant ("2026-03-03T10:00Z", "2026-03-03"); naive means UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-03-03T10:00Z or 2026-03-03)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def deployment_at(session: Session, model: str, at: datetime) -> PointInTime:
    """The deployment of ``model`` that was current at ``at``."""
    row = find_model(session, model)
    found = session.scalar(
        select(DeploymentRevision)
        .where(DeploymentRevision.model_id == row.id, DeploymentRevision.created_at <= at)
        .order_by(DeploymentRevision.revision.desc())
        .limit(1)
    )
    if found is None:
        first = session.scalar(
            select(DeploymentRevision.created_at)
            .where(DeploymentRevision.model_id == row.id)
            .order_by(DeploymentRevision.revision)
            .limit(1)
        )
        since = "it has never been deployed" if first is None else f"first at {first.isoformat()}"
        raise NotFoundError(f"model {model!r} had no deployment at {at.isoformat()} ({since})")
    until = session.scalar(
        select(DeploymentRevision.created_at).where(
            DeploymentRevision.model_id == row.id,
            DeploymentRevision.revision == found.revision + 1,
        )
    )
    record = DeploymentRecord(
        deployment_of(model, found), found.actor, found.reason, found.created_at
    )
    return PointInTime(at=at, record=record, until=until)


def audit_since(
    session: Session, since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """Audit events with ``since <= at < until``, in chain order, as exported: the hashed
    fields plus ``prev_hash`` and ``hash``, so a reader can re-verify the chain offline
    (sha256(prev_hash + canonical JSON of the hashed fields) == hash)."""
    stmt = select(AuditEvent).order_by(AuditEvent.seq)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    return [
        {**r.hashed_fields(), "prev_hash": r.prev_hash, "hash": r.hash}
        for r in session.scalars(stmt.execution_options(yield_per=500))
    ]
