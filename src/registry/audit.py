"""The registry's append-only, hash-chained audit log, and the write transaction it rides in.

Each event's hash is sha256(previous hash + canonical JSON of its fields), so editing or
deleting a row breaks the chain. The ``registry_state`` row, which every write transaction
locks and bumps first, also holds the chain's head (last seq and hash): appending needs no
extra query, concurrent writers cannot fork the chain, and truncating the log shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from registry.models import (
    GENESIS_HASH,
    STATE_ROW_ID,
    AuditEvent,
    RegistryState,
    audit_hash,
    canonical_json,
    utcnow,
)

__all__ = ["AuditLog", "AuditRecord"]


@dataclass(frozen=True)
class AuditRecord:
    """One audit event as read back."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    before: Any
    after: Any
    reason: str
    hash: str


def _json_value(value: Any) -> Any:
    # Store exactly what is hashed: what JSON round-trips to (tuples become lists, ...).
    try:
        return json.loads(canonical_json(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit payload is not JSON-serialisable: {exc}") from exc


class AuditLog:
    """Appends, reads and verifies audit events; owns the locking write transaction."""

    def __init__(self, reads: sessionmaker[Session], writes: sessionmaker[Session]) -> None:
        self._reads = reads
        self._writes = writes

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction that has already locked and bumped ``registry_state``."""
        with self._writes() as session, session.begin():
            # FOR UPDATE serialises writers on PostgreSQL (SQLite ignores it; its writers
            # are serialised by BEGIN IMMEDIATE). Reads after this see the latest commits.
            state = session.execute(
                select(RegistryState).where(RegistryState.id == STATE_ROW_ID).with_for_update()
            ).scalar_one()
            state.change_counter += 1
            yield session

    def append(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        subject: str,
        before: Any = None,
        after: Any = None,
        reason: str = "",
    ) -> None:
        """Add one event to the chain inside a transaction opened by :meth:`writing`."""
        if not action or not subject:
            raise ValueError("an audit event needs an action and a subject")
        state = session.get(RegistryState, STATE_ROW_ID)
        if state is None:  # pragma: no cover - the first migration inserts the row
            raise RuntimeError("registry_state row is missing")
        event = AuditEvent(
            seq=state.audit_seq + 1,
            at=utcnow(),
            actor=actor,
            action=action,
            subject=subject,
            before=_json_value(before),
            after=_json_value(after),
            reason=reason,
            prev_hash=state.audit_head,
        )
        event.hash = audit_hash(event.prev_hash, event.hashed_fields())
        session.add(event)
        state.audit_seq = event.seq
        state.audit_head = event.hash

    def change_counter(self) -> int:
        with self._reads() as session, session.begin():
            return session.execute(
                select(RegistryState.change_counter).where(RegistryState.id == STATE_ROW_ID)
            ).scalar_one()

    def events(self, subject: str | None = None, limit: int | None = None) -> list[AuditRecord]:
        """Events oldest first; a model-name ``subject`` also matches its "model:version"
        events; ``limit`` keeps the most recent ones."""
        stmt = select(AuditEvent).order_by(AuditEvent.seq.desc())
        if subject is not None:
            condition = AuditEvent.subject == subject
            if ":" not in subject:
                prefix = AuditEvent.subject.startswith(subject + ":", autoescape=True)
                condition = or_(condition, prefix)
            stmt = stmt.where(condition)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._reads() as session, session.begin():
            rows = session.scalars(stmt).all()
            return [
                AuditRecord(
                    seq=r.seq,
                    at=r.at,
                    actor=r.actor,
                    action=r.action,
                    subject=r.subject,
                    before=r.before,
                    after=r.after,
                    reason=r.reason,
                    hash=r.hash,
                )
                for r in reversed(rows)
            ]

    def verify(self) -> list[str]:
        """Recompute every hash and check links, seq continuity and the recorded head."""
        problems: list[str] = []
        prev_hash, expected_seq = GENESIS_HASH, 1
        with self._reads() as session, session.begin():
            state = session.get(RegistryState, STATE_ROW_ID)
            rows = session.scalars(
                select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=500)
            )
            for row in rows:
                if row.seq != expected_seq:
                    problems.append(
                        f"audit seq {expected_seq}..{row.seq - 1} missing before seq {row.seq}"
                    )
                if row.prev_hash != prev_hash:
                    problems.append(
                        f"audit seq {row.seq}: prev_hash does not match the preceding event"
                    )
                if audit_hash(row.prev_hash, row.hashed_fields()) != row.hash:
                    problems.append(f"audit seq {row.seq}: contents do not match its hash")
                prev_hash, expected_seq = row.hash, row.seq + 1
            if state is not None and (
                state.audit_seq != expected_seq - 1 or state.audit_head != prev_hash
            ):
                problems.append(
                    f"audit log ends at seq {expected_seq - 1} but the registry recorded seq "
                    f"{state.audit_seq} as its head: events were removed or added"
                )
        return problems
