"""Retention: which retired versions the policy lets go, and deleting them.

Only a version whose status is ``retired`` (and which the current deployment does not
reference) is ever a candidate: serving versions, approved versions waiting to serve and
versions never deployed are kept whatever their age. A candidate is kept while it was
retired less than ``retention_days`` ago *or* is among its model's last
``retention_keep_last`` retired versions; otherwise it is deleted:

* its row becomes a tombstone (status ``deleted``; metadata, lineage and approvals stay, so
  the audit trail and model cards still resolve), with a ``version.delete`` audit event;
* its artifact bytes are overwritten and removed (:meth:`ArtifactStore.delete`) — unless
  another version that is not deleted has the same content (the store is content-addressed),
  in which case the bytes stay and the event says which version keeps them.
* bytes no version names at all (a registration killed after storing them, before its
  commit) are swept too, each with an ``artifact.sweep`` audit event;

Deletion runs inside the registry's write transaction, before commit, so no registration
of the same bytes can slip in between the "nobody else uses these bytes" check and the
delete. A crash after the bytes went but before commit leaves a retired version without
bytes, which the next run deletes; bytes left behind by a tombstone are swept.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.governance_policy import GovernancePolicy
from registry.lifecycle import Status
from registry.models import Model, ModelVersion
from registry.records import current_deployments
from registry.signing import BUNDLE_TAG
from registry.store import ArtifactStore

__all__ = ["ORPHAN", "RetentionItem", "plan_retention", "purge_artifacts"]

_DAY_S = 86_400.0
ORPHAN = "-"
ORPHAN_REASON = "artifact bytes no version names (a registration interrupted before commit)"


@dataclass(frozen=True)
class RetentionItem:
    """The decision about one retired (or already deleted) version."""

    model: str
    version: str
    sha256: str
    retired_at: datetime | None
    action: str  # "keep" | "delete" | "sweep" (a tombstone's or nobody's leftover bytes)
    reason: str
    artifact: str = ""  # what happens to the bytes: "delete", "keep (shared with m:3)", ...

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "sha256": self.sha256,
            "retired_at": None if self.retired_at is None else self.retired_at.isoformat(),
            "action": self.action,
            "reason": self.reason,
            "artifact": self.artifact,
        }


def _keep_reason(policy: GovernancePolicy, age_days: float, rank: int) -> tuple[bool, str]:
    if not policy.retention_enabled:
        return True, "no retention policy set"
    days, last = policy.retention_days, policy.retention_keep_last
    if days is not None and age_days < days:
        return True, f"retired {age_days:.1f} days ago; policy keeps {days:g} days"
    if last is not None and rank < last:
        return True, f"one of the last {last} retired versions of its model"
    rules = []
    if days is not None:
        rules.append(f"{days:g} days")
    if last is not None:
        rules.append(f"the last {last}")
    return False, f"retired {age_days:.1f} days ago; policy keeps {' / '.join(rules)}"


def plan_retention(
    session: Session, policy: GovernancePolicy, store: ArtifactStore, now: datetime
) -> list[RetentionItem]:
    """Decide about every retired version, and every tombstone whose bytes remain."""
    rows = session.execute(
        select(Model.name, ModelVersion)
        .join(Model, Model.id == ModelVersion.model_id)
        .order_by(Model.name, ModelVersion.id)
    ).all()
    deployed = {m: d.versions() for m, d in current_deployments(session).items()}
    retired: dict[str, list[ModelVersion]] = defaultdict(list)
    for name, row in rows:
        if row.status == Status.RETIRED and row.version not in deployed.get(name, ()):
            retired[name].append(row)
    decisions: list[tuple[str, ModelVersion, bool, str]] = []
    for name, versions in retired.items():
        newest_first = sorted(
            versions, key=lambda r: (r.status_changed_at or r.created_at, r.id), reverse=True
        )
        for rank, row in enumerate(newest_first):
            age = (now - (row.status_changed_at or row.created_at)).total_seconds() / _DAY_S
            keep, reason = _keep_reason(policy, age, rank)
            decisions.append((name, row, keep, reason))
    going = {id(row) for _, row, keep, _ in decisions if not keep}
    # Who still needs each content hash once this run's deletions are done.
    users: dict[str, list[str]] = defaultdict(list)
    for name, row in rows:
        if row.status != Status.DELETED and id(row) not in going:
            users[row.sha256].append(f"{name}:{row.version}")
    items = []
    for name, row, keep, reason in sorted(decisions, key=lambda d: (d[0], d[1].id)):
        if keep:
            artifact = "keep"
        elif users[row.sha256]:
            artifact = f"keep (shared with {', '.join(sorted(users[row.sha256]))})"
        else:
            artifact = "delete"
        items.append(
            RetentionItem(
                name,
                row.version,
                row.sha256,
                row.status_changed_at,
                "keep" if keep else "delete",
                reason,
                artifact,
            )
        )
    for name, row in rows:
        if row.status == Status.DELETED and not users[row.sha256] and store.exists(row.sha256):
            items.append(
                RetentionItem(
                    name,
                    row.version,
                    row.sha256,
                    row.status_changed_at,
                    "sweep",
                    "deleted version whose artifact bytes remain",
                    "delete",
                )
            )
    # Bytes no row names: a registration killed between storing them and committing.
    # NOTE: safe under the write lock: a registration that stored these bytes and waits
    # for the lock stores them again once it holds it (registry.registration).
    named = {row.sha256 for _, row in rows}
    # Signature bundles live in the store too, named by their versions' lineage tags.
    named |= {t.value for _, row in rows for t in row.tag_rows if t.key.endswith(BUNDLE_TAG)}
    for sha in store.shas():
        if sha not in named:
            items.append(RetentionItem(ORPHAN, ORPHAN, sha, None, "sweep", ORPHAN_REASON, "delete"))
    return items


def purge_artifacts(store: ArtifactStore, items: list[RetentionItem]) -> None:
    """Overwrite and remove the bytes the plan says go (each hash once)."""
    for sha in sorted({i.sha256 for i in items if i.artifact == "delete"}):
        store.delete(sha)
