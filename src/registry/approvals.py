"""Approvals, and the rules a deployment change must pass before it is written.

Rules (each refusal is a :class:`PolicyViolation` whose message names its rule):

``four-eyes``           an approver cannot approve a version they registered
``distinct-approvers``  one principal approves a version once; approvals are counted by
                        distinct principal
``validation``          only a version whose last validation passed can be approved, and
                        with ``require_validation`` only such a version can start serving
``lifecycle``           a deleted version can neither be approved nor serve
``approvals``           with ``approvals_required`` = N > 0, a version with fewer than N
                        approvals may not become champion nor take more than
                        ``unapproved_max_share`` of the traffic

The deployment rules run inside the registry's write transaction (:meth:`Registry._change`),
so every writer — admin API, CLI, the governor — is held to them, and they judge only what a
change *adds*: a version's first appearance, a new champion, a share that grows past the
limit. Lowering an unapproved version's share, or removing it, is always allowed.
"""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.deployment import Deployment
from registry.errors import PermissionRefused, PolicyViolation
from registry.governance_policy import GovernancePolicy
from registry.lifecycle import Status, approval_count, resting_status
from registry.models import Approval, Model, ModelVersion

__all__ = ["add_approval", "check_deployment", "same_principal"]

# Shares are compared with a little slack so 5.0000000001% is not "more than 5%".
_EPS = 1e-9


def same_principal(a: str, b: str) -> bool:
    """Whether two actor names denote one person.

    NOTE: the CLI records local registrations as "cli:<os user>" while the admin API records
    token principals bare; four-eyes must see "cli:alice" and "alice" as one person.
    """

    def norm(name: str) -> str:
        return name.strip().lower().removeprefix("cli:")

    return bool(a.strip()) and norm(a) == norm(b)


def add_approval(
    session: Session,
    model: Model,
    row: ModelVersion,
    *,
    approver: str,
    comment: str,
    policy: GovernancePolicy,
    now: datetime,
) -> tuple[int, str, str]:
    """Record ``approver``'s approval; returns (approvals now, old status, new status)."""
    subject = f"{model.name}:{row.version}"
    if not approver.strip():
        raise PermissionRefused("four-eyes", "an approval needs a named approver")
    if row.status == Status.DELETED:
        raise PolicyViolation("lifecycle", f"{subject} is deleted and cannot be approved")
    if same_principal(row.created_by, approver):
        raise PermissionRefused(
            "four-eyes",
            f"{approver!r} registered {subject} and cannot approve it; another approver must",
        )
    if not (row.validation or {}).get("passed"):
        failed = [c["name"] for c in (row.validation or {}).get("checks", []) if not c["passed"]]
        why = f"failed checks: {', '.join(failed)}" if failed else "it was never validated"
        raise PolicyViolation(
            "validation", f"{subject} has not passed validation ({why}); re-validate it first"
        )
    already = session.scalar(
        select(Approval.id).where(Approval.version_id == row.id, Approval.approver == approver)
    )
    if already is not None:
        raise PolicyViolation(
            "distinct-approvers",
            f"{approver!r} already approved {subject}; approvals count distinct principals",
        )
    session.add(Approval(version_id=row.id, approver=approver, comment=comment, created_at=now))
    session.flush()
    count = approval_count(session, row)
    before = row.status
    if row.status in (Status.REGISTERED, Status.VALIDATED):
        status = resting_status(session, row, policy.approvals_required)
        if status != row.status:
            row.status = status.value
            row.status_changed_at = now
    return count, before, row.status


def _shares(dep: Deployment) -> dict[str, float]:
    total = math.fsum(a.weight for a in dep.arms)
    if not total > 0:
        return {a.version: 0.0 for a in dep.arms}
    return {a.version: a.weight / total for a in dep.arms}


def check_deployment(
    session: Session,
    model: Model,
    current: Deployment,
    new: Deployment,
    policy: GovernancePolicy,
) -> None:
    """Raise :class:`PolicyViolation` unless ``policy`` allows going from ``current`` to
    ``new``; runs in the write transaction, after the deployment itself validated."""
    names = sorted(new.versions())
    rows = {
        r.version: r
        for r in session.scalars(
            select(ModelVersion).where(
                ModelVersion.model_id == model.id, ModelVersion.version.in_(names)
            )
        )
    }
    before = current.versions()
    for name in names:
        row = rows[name]
        if row.status == Status.DELETED:
            raise PolicyViolation(
                "lifecycle", f"version {name!r} of model {model.name!r} is deleted and cannot serve"
            )
        if policy.require_validation and name not in before:
            if not (row.validation or {}).get("passed"):
                raise PolicyViolation(
                    "validation",
                    f"version {name!r} of model {model.name!r} has not passed validation "
                    "and the policy requires it before serving",
                )
    if policy.approvals_required <= 0:
        return
    old_shares, new_shares = _shares(current), _shares(new)
    old_champion = current.champion.version if current.arms else None
    limit = policy.unapproved_max_share
    for arm in new.arms:
        share = new_shares[arm.version]
        grows = share > limit + _EPS and share > old_shares.get(arm.version, 0.0) + _EPS
        crowned = arm.role.value == Status.CHAMPION and arm.version != old_champion
        if not (grows or crowned):
            continue
        have = approval_count(session, rows[arm.version])
        if have >= policy.approvals_required:
            continue
        wanted = "become champion" if crowned else f"take {100 * share:.1f}% of traffic"
        raise PolicyViolation(
            "approvals",
            f"version {arm.version!r} of model {model.name!r} has {have} of "
            f"{policy.approvals_required} required approval(s) and cannot {wanted}; "
            f"unapproved versions may take at most {100 * limit:g}% and never be champion",
        )
