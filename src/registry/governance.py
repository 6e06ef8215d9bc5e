"""The registry's governance API (``Registry.governance``): policy, validation, approvals,
lineage search, point-in-time history, audit export and retention.

Each operation is one transaction; writes lock and bump ``registry_state`` and append their
audit event in the same transaction as the change (see :mod:`registry.audit`). A refusal by
a governance rule is itself audited (``governance.refused``, in a transaction of its own,
since the refused one rolls back) and raised as :class:`PolicyViolation` naming the rule.
The rules that guard deployment changes run inside :class:`Registry`'s own write path, so
they hold for every writer; this module also provides the registration hook it calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from registry import profiles_store
from registry.approvals import add_approval
from registry.audit import AuditLog
from registry.deployment import Deployment
from registry.errors import NotFoundError, PolicyViolation
from registry.failpoints import hit
from registry.governance_policy import GovernancePolicy, load_policy, store_policy
from registry.history import PointInTime, audit_since, deployment_at
from registry.lifecycle import SERVING, Status, resting_status
from registry.lineage import Lineage, MetricFilter, apply_lineage, resolve_parent, search_statement
from registry.models import Approval, Model, ModelVersion, utcnow
from registry.records import (
    VersionRecord,
    current_deployment,
    find_model,
    find_version,
    version_record,
)
from registry.retention import ORPHAN, RetentionItem, plan_retention, purge_artifacts
from registry.signature import Signature, incompatibilities
from registry.signing import recheck
from registry.store import ArtifactStore
from registry.validation import Check, ValidationReport, complete_report, probe_artifact

__all__ = ["ApprovalRecord", "Governance", "record_registration"]

T = TypeVar("T")


@dataclass(frozen=True)
class ApprovalRecord:
    """One principal's approval of one version."""

    model: str
    version: str
    approver: str
    comment: str
    created_at: datetime


def record_registration(
    session: Session,
    model: Model,
    row: ModelVersion,
    *,
    probe: Sequence[Check],
    incompatible: Sequence[str],
    lineage: Lineage,
    first: bool,
) -> tuple[dict[str, Any], bool]:
    """Store lineage and the validation report on a new version row, inside the
    registration's transaction.

    Returns what to add to the ``version.register`` audit event, and whether the policy lets
    this version become the model's first champion on its own (no approvals required, and
    validation passed or not required).
    """
    policy = load_policy(session)
    lineage = replace(lineage, parent=resolve_parent(session, model.name, lineage.parent))
    apply_lineage(row, lineage)
    now = utcnow()
    report = complete_report(
        probe,
        at=now,
        incompatibilities=incompatible,
        policy=policy,
        description=row.description,
        owner=row.owner,
        lineage=lineage,
        has_profile=False,  # a new version's profile is stored after it (set_profile)
    )
    row.validation = report.to_dict()
    row.status = (Status.VALIDATED if report.passed else Status.REGISTERED).value
    row.status_changed_at = now
    audit: dict[str, Any] = {
        "lineage": lineage.to_dict(),
        "validation": report.to_dict(),
        "status": row.status,
    }
    bootstrap = policy.approvals_required == 0 and (report.passed or not policy.require_validation)
    if first and not bootstrap:
        rule = "approvals" if policy.approvals_required else "validation"
        audit["deployment"] = f"withheld by rule '{rule}': deploy it once the policy allows"
    return audit, first and bootstrap


def _deployment_or_none(session: Session, model: Model) -> Deployment | None:
    try:
        return current_deployment(session, model)
    except NotFoundError:  # a model whose first deployment was withheld by policy
        return None


class Governance:
    """Governance operations over one registry database and artifact store."""

    def __init__(self, reads: sessionmaker[Session], audit: AuditLog, store: ArtifactStore) -> None:
        self._reads = reads
        self._audit = audit
        self._store = store

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._reads() as session, session.begin():
            yield session

    def _guarded(self, fn: Callable[[], T], *, actor: str, action: str, subject: str) -> T:
        """Run ``fn``; if a rule refuses it, audit the refusal, then re-raise."""
        try:
            return fn()
        except PolicyViolation as exc:
            with self._audit.writing() as session:
                self._audit.append(
                    session,
                    actor=actor,
                    action="governance.refused",
                    subject=subject,
                    after={"rule": exc.rule, "attempted": action},
                    reason=exc.message,
                )
            raise

    # -- policy ---------------------------------------------------------------------

    def policy(self) -> GovernancePolicy:
        with self._reading() as session:
            return load_policy(session)

    def set_policy(
        self, policy: GovernancePolicy, *, actor: str, reason: str = ""
    ) -> GovernancePolicy:
        """Replace the registry's policy (audited ``policy.set`` with before and after)."""
        with self._audit.writing() as session:
            previous = store_policy(session, policy, actor)
            self._audit.append(
                session,
                actor=actor,
                action="policy.set",
                subject="policy",
                before=previous.to_dict(),
                after=policy.to_dict(),
                reason=reason,
            )
        return policy

    # -- validation and lifecycle ---------------------------------------------------

    def validate(self, model: str, version: str, *, actor: str) -> ValidationReport:
        """Re-run validation (e.g. after a profile was stored or the policy changed)."""
        with self._reading() as session:
            sha = find_version(session, find_model(session, model), version).sha256
        probe = probe_artifact(self._store.read(sha))  # slow: outside the write lock
        with self._audit.writing() as session:
            m = find_model(session, model)
            row = find_version(session, m, version)
            policy = load_policy(session)
            problems: list[str] = []
            deployed = _deployment_or_none(session, m)
            champion = deployed.champion.version if deployed and deployed.arms else None
            if champion is not None and champion != version:
                champion_sig = Signature.from_dict(find_version(session, m, champion).signature)
                problems = incompatibilities(champion_sig, Signature.from_dict(row.signature))
            report = complete_report(
                probe,
                at=utcnow(),
                incompatibilities=problems,
                policy=policy,
                description=row.description,
                owner=row.owner,
                lineage=version_record(model, row).lineage,
                has_profile=profiles_store.read_profile(session, row) is not None,
            )
            before = row.status
            row.validation = report.to_dict()
            if row.status in (Status.REGISTERED, Status.VALIDATED, Status.APPROVED):
                status = resting_status(session, row, policy.approvals_required).value
                if status != row.status:
                    row.status, row.status_changed_at = status, report.at
            self._audit.append(
                session,
                actor=actor,
                action="version.validate",
                subject=f"{model}:{version}",
                before={"status": before},
                after={"status": row.status, "validation": report.to_dict()},
            )
        return report

    def retire(self, model: str, version: str, *, actor: str, reason: str = "") -> VersionRecord:
        """Retire a version that serves nowhere (so retention may delete it later)."""

        def run() -> VersionRecord:
            with self._audit.writing() as session:
                m = find_model(session, model)
                row = find_version(session, m, version)
                deployed = _deployment_or_none(session, m)
                serving = deployed is not None and version in deployed.versions()
                if serving or row.status in SERVING:
                    raise PolicyViolation(
                        "lifecycle", f"{model}:{version} is serving; take it out of traffic first"
                    )
                if row.status in (Status.RETIRED, Status.DELETED):
                    raise PolicyViolation("lifecycle", f"{model}:{version} is already {row.status}")
                before = row.status
                row.status, row.status_changed_at = Status.RETIRED.value, utcnow()
                self._audit.append(
                    session,
                    actor=actor,
                    action="version.retire",
                    subject=f"{model}:{version}",
                    before={"status": before},
                    after={"status": row.status},
                    reason=reason,
                )
                session.flush()
                return version_record(model, row)

        return self._guarded(
            run, actor=actor, action="version.retire", subject=f"{model}:{version}"
        )

    # -- approvals ------------------------------------------------------------------

    def approve(
        self, model: str, version: str, *, approver: str, comment: str = ""
    ) -> ApprovalRecord:
        """Record ``approver``'s approval (four-eyes, distinct approvers, validated only)."""

        def run() -> ApprovalRecord:
            with self._audit.writing() as session:
                m = find_model(session, model)
                row = find_version(session, m, version)
                policy = load_policy(session)
                if policy.signing_required:
                    tags = {t.key: t.value for t in row.tag_rows}
                    recheck(tags, policy, self._store.read, row.sha256)
                now = utcnow()
                count, before, after = add_approval(
                    session, m, row, approver=approver, comment=comment, policy=policy, now=now
                )
                self._audit.append(
                    session,
                    actor=approver,
                    action="version.approve",
                    subject=f"{model}:{version}",
                    before={"status": before, "approvals": count - 1},
                    after={
                        "status": after,
                        "approvals": count,
                        "required": policy.approvals_required,
                    },
                    reason=comment,
                )
            return ApprovalRecord(model, version, approver, comment, now)

        return self._guarded(
            run, actor=approver, action="version.approve", subject=f"{model}:{version}"
        )

    def approvals(self, model: str, version: str | None = None) -> list[ApprovalRecord]:
        """Approvals of one version, or of every version of ``model``, oldest first."""
        with self._reading() as session:
            m = find_model(session, model)
            stmt = (
                select(ModelVersion.version, Approval)
                .join(Approval, Approval.version_id == ModelVersion.id)
                .where(ModelVersion.model_id == m.id)
                .order_by(Approval.id)
            )
            if version is not None:
                stmt = stmt.where(ModelVersion.id == find_version(session, m, version).id)
            rows = session.execute(stmt).all()
            return [
                ApprovalRecord(model, row[0], row[1].approver, row[1].comment, row[1].created_at)
                for row in rows
            ]

    # -- lineage search, history, audit ---------------------------------------------

    def search(
        self,
        *,
        model: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
        metrics: Sequence[MetricFilter] = (),
        status: str | None = None,
        license: str | None = None,
    ) -> list[VersionRecord]:
        """Versions matching every filter, by model name then registration order."""
        stmt = search_statement(
            model=model, tags=tags, metrics=metrics, status=status, license=license
        )
        with self._reading() as session:
            return [version_record(name, row) for name, row in session.execute(stmt)]

    def deployment_at(self, model: str, at: datetime) -> PointInTime:
        """The deployment of ``model`` in force at ``at``."""
        with self._reading() as session:
            return deployment_at(session, model, at)

    def audit_export(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Audit events in chain order with their hashes, for export (JSON lines)."""
        with self._reading() as session:
            return audit_since(session, since, until)

    # -- retention ------------------------------------------------------------------

    def retention(
        self, *, apply: bool, actor: str, now: datetime | None = None
    ) -> list[RetentionItem]:
        """Plan retention (``apply`` False: a dry run that changes nothing) or carry it out."""
        now = now or utcnow()
        if not apply:
            with self._reading() as session:
                return plan_retention(session, load_policy(session), self._store, now)
        with self._audit.writing() as session:
            items = plan_retention(session, load_policy(session), self._store, now)
            for item in items:
                if item.action == "sweep" and item.model == ORPHAN:
                    self._audit.append(
                        session,
                        actor=actor,
                        action="artifact.sweep",
                        subject=f"artifact:{item.sha256}",
                        before={"sha256": item.sha256},
                        after={"artifact": "delete"},
                        reason=f"retention: {item.reason}",
                    )
                    continue
                if item.action != "delete":
                    continue
                row = find_version(session, find_model(session, item.model), item.version)
                row.status, row.status_changed_at = Status.DELETED.value, now
                self._audit.append(
                    session,
                    actor=actor,
                    action="version.delete",
                    subject=f"{item.model}:{item.version}",
                    before={"status": Status.RETIRED.value, "sha256": item.sha256},
                    after={"status": Status.DELETED.value, "artifact": item.artifact},
                    reason=f"retention: {item.reason}",
                )
            session.flush()
            # Still holding the write lock: no registration of the same bytes can interleave.
            purge_artifacts(self._store, items)
            swept = self._store.sweep_temporaries()
            if swept:
                self._audit.append(
                    session, actor=actor, action="artifact.sweep", subject=ORPHAN,
                    after={"temporary_files": swept},
                    reason="partial writes a crash left behind (older than an hour)",
                )  # fmt: skip
            hit("retention.after_purge")
        hit("retention.after_commit")
        return items
