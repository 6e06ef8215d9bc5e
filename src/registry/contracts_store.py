"""Versions' data contracts as operators edit them (table ``version_contract``).

Each edit is a new revision (1, 2, ...) kept with who, when and why, and audited in the same
transaction (action ``contract.set``, subject ``model:version``; the event records the
revision and the document's sha256, not the document). The newest revision is in force; a
version with none has the contract the gateway derives from its reference profile. The
registry treats the document as opaque JSON (:mod:`gateway.monitoring.contracts` owns it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from registry.audit import AuditLog
from registry.models import VersionContract, utcnow
from registry.profiles_store import digest
from registry.records import find_model, find_version

__all__ = ["ContractRecord", "ContractStore"]

MAX_REASON = 1024


@dataclass(frozen=True)
class ContractRecord:
    model: str
    version: str
    revision: int
    contract: dict[str, Any]
    reason: str
    created_at: datetime
    created_by: str


class ContractStore:
    """Revisions of versions' data contracts (see module docs)."""

    def __init__(self, reads: sessionmaker[Session], audit: AuditLog) -> None:
        self._reads = reads
        self._audit = audit

    def set(
        self, model: str, version: str, contract: Mapping[str, Any], *, actor: str, reason: str
    ) -> ContractRecord:
        """Store ``contract`` (validated by the caller) as the version's next revision."""
        if len(reason) > MAX_REASON:
            raise ValueError(f"reason: at most {MAX_REASON} characters")
        with self._audit.writing() as session:
            mv = find_version(session, find_model(session, model), version)
            latest = session.scalar(
                select(func.max(VersionContract.revision)).where(
                    VersionContract.version_id == mv.id
                )
            )
            row = VersionContract(
                version_id=mv.id,
                revision=(latest or 0) + 1,
                contract=dict(contract),
                reason=reason,
                created_at=utcnow(),
                created_by=actor,
            )
            session.add(row)
            sha, size = digest(contract)
            self._audit.append(
                session,
                actor=actor,
                action="contract.set",
                subject=f"{model}:{version}",
                before={"revision": latest} if latest else None,
                after={"revision": row.revision, "sha256": sha, "bytes": size},
                reason=reason,
            )
            session.flush()
            return _record(model, version, row)

    def get(self, model: str, version: str, revision: int = 0) -> ContractRecord | None:
        """The newest revision (or ``revision``); None when there is none."""
        with self._reads() as session, session.begin():
            mv = find_version(session, find_model(session, model), version)
            stmt = select(VersionContract).where(VersionContract.version_id == mv.id)
            if revision:
                stmt = stmt.where(VersionContract.revision == revision)
            row = session.scalar(stmt.order_by(VersionContract.revision.desc()).limit(1))
            return None if row is None else _record(model, version, row)

    def revisions(self, model: str, version: str) -> list[ContractRecord]:
        """Every revision, oldest first."""
        with self._reads() as session, session.begin():
            mv = find_version(session, find_model(session, model), version)
            rows = session.scalars(
                select(VersionContract)
                .where(VersionContract.version_id == mv.id)
                .order_by(VersionContract.revision)
            )
            return [_record(model, version, r) for r in rows]


def _record(model: str, version: str, row: VersionContract) -> ContractRecord:
    return ContractRecord(
        model, version, row.revision, dict(row.contract), row.reason, row.created_at,
        row.created_by,
    )  # fmt: skip
