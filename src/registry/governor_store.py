"""The governor's tables: versioned policies, per-model state, and the leader lease.

Operator actions (setting a policy, pausing, resuming, approving, clearing a rollback mark)
are audited in the same transaction, like every registry write. The governor's own
bookkeeping after each evaluation (step, failures, last decision) is not: the decision it
applied is already audited with the deployment change it caused, and holds need no record.
Bookkeeping writes do not bump the registry's change counter, so gateways polling it are
not woken by evaluations that changed nothing.

One governor at a time: the row ``model = "*"`` is a lease. :meth:`GovernorStore.acquire`
takes or renews it with one conditional UPDATE that only matches when the lease is free,
expired, or already ours, so two gateways cannot both win on SQLite or PostgreSQL. A
holder that dies loses the lease when it expires (the loop uses a few intervals), after
which another gateway's governor takes over, reading the state from here.

The registry treats the state as opaque JSON (the gateway's ``GovernorState``) apart from a
few columns worth querying. Timestamps are compared on the writers' clocks; keep gateway
clocks in sync (NTP) to well under the lease length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, sessionmaker

from registry.audit import AuditLog
from registry.errors import NotFoundError
from registry.failpoints import hit
from registry.models import GovernorPolicyRow, GovernorStateRow, utcnow
from registry.records import find_model

__all__ = ["LEASE_ROW", "GovernorStore", "PolicyRecord", "StateRecord"]

LEASE_ROW = "*"
PAUSED = "paused"


@dataclass(frozen=True)
class PolicyRecord:
    model: str
    version: int
    toml: str
    created_at: datetime
    actor: str


@dataclass(frozen=True)
class StateRecord:
    model: str
    paused: bool
    state: dict[str, Any]
    rolled_back: tuple[str, ...]
    approved: tuple[str, ...]
    last_decision: dict[str, Any] | None
    next_evaluation_at: datetime | None
    updated_at: datetime


def _policy(row: GovernorPolicyRow) -> PolicyRecord:
    return PolicyRecord(row.model, row.version, row.toml, row.created_at, row.actor)


def _state(row: GovernorStateRow) -> StateRecord:
    return StateRecord(
        model=row.model,
        paused=row.mode == PAUSED,
        state=dict(row.state or {}),
        rolled_back=tuple(row.rolled_back or ()),
        approved=tuple(row.approved or ()),
        last_decision=row.last_decision,
        next_evaluation_at=row.next_evaluation_at,
        updated_at=row.updated_at,
    )


def _row(session: Session, model: str) -> GovernorStateRow:
    row = session.get(GovernorStateRow, model)
    if row is None:
        row = GovernorStateRow(
            model=model,
            mode="",
            step=-1,
            consecutive_failures=0,
            rolled_back=[],
            approved=[],
            candidate="",
            state={},
            holder="",
            updated_at=utcnow(),
        )
        session.add(row)
    return row


class GovernorStore:
    """Reads and writes of the governor tables over the registry's database."""

    def __init__(
        self, reads: sessionmaker[Session], writes: sessionmaker[Session], audit: AuditLog
    ) -> None:
        self._reads = reads
        self._writes = writes  # write transactions that do not bump the change counter
        self._audit = audit

    # -- policies -----------------------------------------------------------------------------

    def set_policy(
        self, model: str, toml: str, *, actor: str, reason: str = "", summary: Any = None
    ) -> PolicyRecord:
        """Store ``toml`` (already validated by the caller) as the model's next policy."""
        with self._audit.writing() as session:
            find_model(session, model)
            latest = session.scalar(
                select(func.max(GovernorPolicyRow.version)).where(GovernorPolicyRow.model == model)
            )
            row = GovernorPolicyRow(
                model=model, version=(latest or 0) + 1, toml=toml, created_at=utcnow(), actor=actor
            )
            session.add(row)
            self._audit.append(
                session,
                actor=actor,
                action="governor.policy",
                subject=model,
                before={"version": latest} if latest else None,
                after={"version": row.version, "policy": summary},
                reason=reason,
            )
            session.flush()
            return _policy(row)

    def get_policy(self, model: str, version: int | None = None) -> PolicyRecord:
        """The model's policy in force (or that ``version``); NotFoundError if none."""
        stmt = select(GovernorPolicyRow).where(GovernorPolicyRow.model == model)
        if version:
            stmt = stmt.where(GovernorPolicyRow.version == version)
        stmt = stmt.order_by(GovernorPolicyRow.version.desc()).limit(1)
        with self._reads() as session, session.begin():
            row = session.scalar(stmt)
            if row is None:
                which = f"version {version} of " if version else ""
                raise NotFoundError(f"model {model!r} has no {which}governor policy")
            return _policy(row)

    def policies(self) -> dict[str, PolicyRecord]:
        """Every model's policy in force."""
        newest = (
            select(GovernorPolicyRow.model, func.max(GovernorPolicyRow.version).label("v"))
            .group_by(GovernorPolicyRow.model)
            .subquery()
        )
        stmt = select(GovernorPolicyRow).join(
            newest,
            (GovernorPolicyRow.model == newest.c.model) & (GovernorPolicyRow.version == newest.c.v),
        )
        with self._reads() as session, session.begin():
            return {row.model: _policy(row) for row in session.scalars(stmt)}

    # -- state ----------------------------------------------------------------------------------

    def get_state(self, model: str) -> StateRecord | None:
        with self._reads() as session, session.begin():
            row = session.get(GovernorStateRow, model)
            return None if row is None else _state(row)

    def save_state(
        self,
        model: str,
        state: Mapping[str, Any],
        *,
        last_decision: Mapping[str, Any] | None,
        next_evaluation_at: datetime | None,
    ) -> None:
        """The governor's bookkeeping after an evaluation (operator fields are kept)."""
        with self._writes() as session, session.begin():
            row = _row(session, model)
            row.state = dict(state)
            row.step = int(state.get("step", -1))
            row.consecutive_failures = int(state.get("consecutive_failures", 0))
            row.rolled_back = sorted(state.get("rolled_back", ()))
            row.candidate = str(state.get("candidate") or "")
            if last_decision is not None:
                row.last_decision = dict(last_decision)
            row.next_evaluation_at = next_evaluation_at
            row.updated_at = utcnow()
            hit("governor.before_commit")
        hit("governor.after_commit")

    def _operator_change(
        self, model: str, action: str, *, actor: str, reason: str, change: Any
    ) -> StateRecord:
        with self._audit.writing() as session:
            find_model(session, model)
            row = _row(session, model)
            before = {"paused": row.mode == PAUSED, "approved": list(row.approved or ())}
            before["rolled_back"] = list(row.rolled_back or ())
            change(row)
            row.updated_at = utcnow()
            after = {"paused": row.mode == PAUSED, "approved": list(row.approved or ())}
            after["rolled_back"] = list(row.rolled_back or ())
            self._audit.append(
                session,
                actor=actor,
                action=action,
                subject=model,
                before=before,
                after=after,
                reason=reason,
            )
            session.flush()
            return _state(row)

    def set_paused(self, model: str, paused: bool, *, actor: str, reason: str = "") -> StateRecord:
        def change(row: GovernorStateRow) -> None:
            row.mode = PAUSED if paused else ""

        action = "governor.pause" if paused else "governor.resume"
        return self._operator_change(model, action, actor=actor, reason=reason, change=change)

    def approve(self, model: str, version: str, *, actor: str, reason: str = "") -> StateRecord:
        """Approve ``version``'s final promotion (policies with ``require_approval``)."""

        def change(row: GovernorStateRow) -> None:
            row.approved = sorted(set(row.approved or ()) | {version})

        return self._operator_change(
            model, "governor.approve", actor=actor, reason=reason, change=change
        )

    def clear_rolled_back(
        self, model: str, versions: Sequence[str], *, actor: str, reason: str = ""
    ) -> StateRecord:
        """Let the governor act on versions it rolled back before."""

        def change(row: GovernorStateRow) -> None:
            row.rolled_back = sorted(set(row.rolled_back or ()) - set(versions))
            state = dict(row.state or {})
            state["rolled_back"] = row.rolled_back
            row.state = state

        return self._operator_change(
            model, "governor.clear_rollback", actor=actor, reason=reason, change=change
        )

    # -- the lease ------------------------------------------------------------------------------

    def acquire(self, holder: str, ttl_s: float) -> bool:
        """Take or renew the leader lease for ``ttl_s`` seconds; True if ``holder`` has it."""
        now = utcnow()
        stmt = (
            update(GovernorStateRow)
            .where(GovernorStateRow.model == LEASE_ROW)
            .where(
                or_(
                    GovernorStateRow.holder == holder,
                    GovernorStateRow.holder == "",
                    GovernorStateRow.lease_expires_at.is_(None),
                    GovernorStateRow.lease_expires_at < now,
                )
            )
            .values(holder=holder, lease_expires_at=now + timedelta(seconds=ttl_s), updated_at=now)
        )
        with self._writes() as session, session.begin():
            result = session.execute(stmt)
            return isinstance(result, CursorResult) and result.rowcount == 1

    def release(self, holder: str) -> None:
        stmt = (
            update(GovernorStateRow)
            .where(GovernorStateRow.model == LEASE_ROW, GovernorStateRow.holder == holder)
            .values(holder="", lease_expires_at=None, updated_at=utcnow())
        )
        with self._writes() as session, session.begin():
            session.execute(stmt)

    def leader(self) -> tuple[str, datetime | None]:
        """The lease's holder ("" if free) and expiry."""
        with self._reads() as session, session.begin():
            row = session.get(GovernorStateRow, LEASE_ROW)
            if row is None:
                return "", None
            expires = row.lease_expires_at
            if expires is not None and expires < utcnow():
                return "", expires
            return row.holder, expires
