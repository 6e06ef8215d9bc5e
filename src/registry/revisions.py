"""Writing a model's next deployment revision, and reading its history.

Every traffic change (set, reweight, promote, roll back; from the admin API, the CLI or the
governor) goes through :func:`write_revision`: in one write transaction it checks the
expected revision, derives the next deployment, validates it, applies the governance rules
(:func:`registry.approvals.check_deployment`), moves version statuses and appends the audit
event. A governance refusal is itself audited (``governance.refused``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from registry.approvals import check_deployment
from registry.audit import AuditLog
from registry.deployment import Deployment, validate_deployment
from registry.errors import InvalidDeployment, PolicyViolation, StaleRevision
from registry.failpoints import hit
from registry.governance_policy import load_policy
from registry.lifecycle import apply_deployment_statuses
from registry.models import DeploymentRevision, Model, utcnow
from registry.records import (
    DeploymentRecord,
    add_revision,
    current_deployment,
    deployment_of,
    deployment_or_none,
    find_model,
    find_version,
)

__all__ = ["Build", "deployment_history", "previous_revision", "write_revision"]

Build = Callable[[Session, Model, Deployment], Deployment]
"""Derives the next deployment from the current one, inside the write transaction."""


def write_revision(
    reads: sessionmaker[Session],
    audit: AuditLog,
    model: str,
    build: Build,
    *,
    action: str,
    actor: str,
    reason: str,
    expected_revision: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> Deployment:
    """Write the next deployment revision that ``build`` derives from the current one.

    ``details`` (e.g. the governor's decision, gates and figures) go into the audit
    event's ``after`` under "details", in the same transaction.
    """
    based_on = expected_revision
    try:
        with audit.writing() as session:
            row = find_model(session, model)
            # Revision 0, no arms: a model whose first deployment the policy withheld.
            current = deployment_or_none(session, row) or Deployment(model, 0, ())
            based_on = current.revision if based_on is None else based_on
            if current.revision != based_on:
                raise StaleRevision(model, based_on, current.revision)
            derived = build(session, row, current)
            new = Deployment(model, current.revision + 1, derived.arms, derived.shadows)
            validate_deployment(new.arms, new.shadows)
            for name in sorted(new.versions()):
                find_version(session, row, name)
            # Governance rules hold for every writer (admin API, CLI, governor).
            check_deployment(session, row, current, new, load_policy(session))
            add_revision(session, row, new, actor, reason)
            changes = apply_deployment_statuses(session, row, current, new, utcnow())
            audit.append(
                session,
                actor=actor,
                action=action,
                subject=model,
                before=current.to_dict(),
                after={
                    **new.to_dict(),
                    **({"status_changes": changes} if changes else {}),
                    **({"details": dict(details)} if details else {}),
                },
                reason=reason,
            )
            session.flush()
            hit("deployment.before_commit")
        hit("deployment.after_commit")
    except PolicyViolation as exc:
        after = {"rule": exc.rule, "attempted": action}
        with audit.writing() as session:  # the refusal is audited in its own transaction
            audit.append(
                session,
                actor=actor,
                action="governance.refused",
                subject=model,
                after=after,
                reason=exc.message,
            )
        raise
    except IntegrityError as exc:
        # Backstop for the unique (model_id, revision): another writer got there first.
        # Any other integrity failure (the revision did not move) is not ours to rename.
        with reads() as session, session.begin():
            actual = current_deployment(session, find_model(session, model)).revision
        if based_on is None or actual == based_on:
            raise
        raise StaleRevision(model, based_on, actual) from exc
    return new


def previous_revision(model: str) -> Build:
    """The build of a rollback: the arms and shadows of the revision before the current."""

    def build(session: Session, row: Model, current: Deployment) -> Deployment:
        previous = session.scalar(
            select(DeploymentRevision).where(
                DeploymentRevision.model_id == row.id,
                DeploymentRevision.revision == current.revision - 1,
            )
        )
        if previous is None:
            raise InvalidDeployment(
                f"model {model!r} has no revision before {current.revision} to roll back to"
            )
        return deployment_of(model, previous)

    return build


def deployment_history(session: Session, model: str) -> list[DeploymentRecord]:
    """Every deployment revision of ``model``, oldest first."""
    row = find_model(session, model)
    rows = session.scalars(
        select(DeploymentRevision)
        .where(DeploymentRevision.model_id == row.id)
        .order_by(DeploymentRevision.revision)
    ).all()
    return [
        DeploymentRecord(deployment_of(model, r), r.actor, r.reason, r.created_at) for r in rows
    ]
