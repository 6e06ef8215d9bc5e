"""The fleet's shared tables: process heartbeats, per-process evidence, stored governor
windows and served predictions (used by :mod:`gateway.fleet`).

Every gateway process has an id and a heartbeat row whose lease it renews each time it
publishes; a process whose lease has run out is not a member. Evidence rows hold a
process's *cumulative* counts per (model, version) and are overwritten on each publish:
writing a total rather than adding a delta makes a publish idempotent, so a retried or
late one (a process resumed after SIGSTOP) can never count anything twice, and the fleet's
total is the sum of the rows. What dead processes served was served: their rows are folded
(:meth:`FleetStore.fold`) into one row per (model, version), so the total is unchanged and
the table does not grow with every restart.

Labels joined anywhere are claimed in one table keyed (model, request id, row): a label
sent to two members joins on the first and is a duplicate on the second.

Windows are the fleet totals a governor window starts from, keyed by (model, candidate,
step), so a new leader continues the step in progress. Predictions are kept for the
feedback TTL so that a label reaching any process joins the prediction any other made.
These writes do not bump the registry's change counter (nobody needs waking for them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from registry.fleet_tables import (
    FleetEvidence,
    FleetLabel,
    FleetPrediction,
    FleetProcess,
    FleetWindow,
)
from registry.models import utcnow

__all__ = ["FOLDED", "EvidenceRow", "FleetStore", "Folded", "PredictionRow"]

_BATCH = 500  # rows per INSERT statement: bounded statement size on either backend
FOLDED = "folded"
"""The evidence rows' process name for what every folded (dead) process published."""
_TOMBSTONE = datetime(1970, 1, 1, tzinfo=UTC)  # a folded process's lease: never renewed
# PostgreSQL: publishers take it shared, a fold exclusive (SQLite writers are serialised).
_FOLD_LOCK = 0x666F6C64


class Folded(Exception):
    """This process's rows were folded (it was silent too long): it must publish under a
    new name, and only what it counted since (its folded counts are in ``FOLDED``)."""


@dataclass(frozen=True)
class EvidenceRow:
    process: str
    model: str
    version: str
    payload: dict[str, Any]
    live: bool


@dataclass(frozen=True)
class PredictionRow:
    model: str
    request_id: str
    version: str
    predictions: list[Any]
    segments: list[str]
    recorded_at: datetime


def _upsert(
    session: Session,
    entity: Any,
    keys: Sequence[str],
    rows: list[dict[str, Any]],
    *,
    keep: Sequence[str] = (),
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE the other columns (but ``keep``): the
    newest row wins (SQLite and PostgreSQL have the same statement)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = cast(Table, entity.__table__)  # Core, not the ORM's bulk path: half the cost
    columns = [c.name for c in table.columns if c.name not in (*keys, *keep)]
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={name: stmt.excluded[name] for name in columns}
    )
    # One statement, many parameter sets: compiled once (a VALUES list per batch would be
    # compiled per call, about 1 ms a row).
    for start in range(0, len(rows), _BATCH):
        session.execute(stmt, rows[start : start + _BATCH])


def _lock(session: Session, *, shared: bool) -> None:
    if session.get_bind().dialect.name == "postgresql":
        how = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        session.execute(text(f"SELECT {how}(:key)"), {"key": _FOLD_LOCK})


def _check_not_folded(session: Session, process: str) -> None:
    _lock(session, shared=True)  # a fold in progress finishes first
    row = session.get(FleetProcess, process)
    if row is not None and row.lease_expires_at <= _TOMBSTONE:
        raise Folded(process)


class FleetStore:
    """Reads and writes of the fleet tables over the registry's database."""

    def __init__(self, reads: sessionmaker[Session], writes: sessionmaker[Session]) -> None:
        self._reads = reads
        self._writes = writes

    # -- membership ----------------------------------------------------------------------------

    def heartbeat(self, process: str, lease_s: float) -> None:
        """Renew ``process``'s lease; raises :class:`Folded` if its rows were folded."""
        now = utcnow()
        row = {"process": process, "started_at": now, "heartbeat_at": now}
        row["lease_expires_at"] = now + timedelta(seconds=lease_s)
        with self._writes() as session, session.begin():
            _check_not_folded(session, process)
            _upsert(session, FleetProcess, ("process",), [row], keep=("started_at",))

    def leave(self, process: str) -> None:
        """A process stopping cleanly is no member from now on (its evidence stays)."""
        with self._writes() as session, session.begin():
            session.execute(delete(FleetProcess).where(FleetProcess.process == process))

    def members(self) -> list[str]:
        """Processes whose lease has not run out, by id."""
        stmt = select(FleetProcess.process).where(FleetProcess.lease_expires_at >= utcnow())
        with self._reads() as session, session.begin():
            return sorted(session.scalars(stmt))

    # -- evidence -------------------------------------------------------------------------------

    def publish(self, process: str, payloads: Mapping[tuple[str, str], dict[str, Any]]) -> None:
        """Overwrite ``process``'s cumulative evidence of each (model, version) given."""
        if not payloads:
            return
        now = utcnow()
        rows = [
            {"process": process, "model": m, "version": v, "payload": p, "updated_at": now}
            for (m, v), p in sorted(payloads.items())
        ]
        with self._writes() as session, session.begin():
            _check_not_folded(session, process)
            _upsert(session, FleetEvidence, ("process", "model", "version"), rows)

    def fold(
        self, gone_s: float, combine: Callable[[list[dict[str, Any]]], dict[str, Any]]
    ) -> list[str]:
        """Fold the evidence rows of processes gone (left, or silent for ``gone_s``) into
        one row per (model, version) under :data:`FOLDED`, ``combine`` merging payloads
        (the gateway's merge: the registry does not know evidence); returns the processes
        folded. Their heartbeat rows become tombstones: such a process, resumed, is refused
        (:class:`Folded`) rather than counted twice. The fleet's totals do not change."""
        cutoff = utcnow() - timedelta(seconds=gone_s)
        with self._writes() as session, session.begin():
            _lock(session, shared=False)
            recent = select(FleetProcess.process).where(FleetProcess.lease_expires_at >= cutoff)
            gone = sorted(
                session.scalars(
                    select(FleetEvidence.process)
                    .distinct()
                    .where(FleetEvidence.process != FOLDED, FleetEvidence.process.not_in(recent))
                )
            )
            if not gone:
                return []
            stmt = select(FleetEvidence).where(FleetEvidence.process.in_([FOLDED, *gone]))
            grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for r in session.scalars(stmt):
                grouped.setdefault((r.model, r.version), []).append(dict(r.payload))
            session.execute(delete(FleetEvidence).where(FleetEvidence.process.in_(gone)))
            now = utcnow()
            folded = [
                {"process": FOLDED, "model": m, "version": v, "payload": combine(payloads),
                 "updated_at": now}
                for (m, v), payloads in sorted(grouped.items())
            ]  # fmt: skip
            _upsert(session, FleetEvidence, ("process", "model", "version"), folded)
            stones = [
                {"process": p, "started_at": now, "heartbeat_at": now,
                 "lease_expires_at": _TOMBSTONE}
                for p in gone
            ]  # fmt: skip
            _upsert(session, FleetProcess, ("process",), stones, keep=("started_at",))
            return gone

    def evidence(self) -> list[EvidenceRow]:
        """Every process's evidence rows, each marked with whether its process is live."""
        now = utcnow()
        with self._reads() as session, session.begin():
            live = set(
                session.scalars(
                    select(FleetProcess.process).where(FleetProcess.lease_expires_at >= now)
                )
            )
            return [
                EvidenceRow(r.process, r.model, r.version, dict(r.payload), r.process in live)
                for r in session.scalars(select(FleetEvidence))
            ]

    # -- windows --------------------------------------------------------------------------------

    def window(self, model: str, candidate: str, step: int) -> dict[str, Any] | None:
        with self._reads() as session, session.begin():
            row = session.get(FleetWindow, (model, candidate, step))
            return None if row is None else dict(row.baseline)

    def save_window(
        self, model: str, candidate: str, step: int, baseline: dict[str, Any], *, replace: bool
    ) -> dict[str, Any]:
        """Store a window's baseline; without ``replace`` an existing one is kept. Returns
        the baseline in force."""
        with self._writes() as session, session.begin():
            row = session.get(FleetWindow, (model, candidate, step))
            if row is None:
                session.add(FleetWindow(model=model, candidate=candidate, step=step,
                                        baseline=baseline, created_at=utcnow()))  # fmt: skip
                return baseline
            if replace:
                row.baseline = baseline
                row.created_at = utcnow()
            return dict(row.baseline)

    def clear_windows(self, model: str, candidate: str) -> None:
        stmt = delete(FleetWindow).where(
            FleetWindow.model == model, FleetWindow.candidate == candidate
        )
        with self._writes() as session, session.begin():
            session.execute(stmt)

    # -- predictions ----------------------------------------------------------------------------

    def record_predictions(self, rows: Iterable[PredictionRow]) -> int:
        """Keep served predictions (a reused request id keeps its latest); returns rows."""
        values = [vars(r) for r in rows]
        if values:
            with self._writes() as session, session.begin():
                _upsert(session, FleetPrediction, ("model", "request_id"), values)
        return len(values)

    def predictions(self, model: str, request_ids: Sequence[str]) -> list[PredictionRow]:
        out: list[PredictionRow] = []
        with self._reads() as session, session.begin():
            for start in range(0, len(request_ids), _BATCH):
                stmt = select(FleetPrediction).where(
                    FleetPrediction.model == model,
                    FleetPrediction.request_id.in_(request_ids[start : start + _BATCH]),
                )
                out.extend(
                    PredictionRow(
                        r.model,
                        r.request_id,
                        r.version,
                        list(r.predictions),
                        list(r.segments),
                        r.recorded_at,
                    )  # fmt: skip
                    for r in session.scalars(stmt)
                )
        return out

    def expire_predictions(self, older_than_s: float) -> int:
        """Forget predictions (and the labels joined to them) older than the feedback TTL;
        returns how many predictions."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        with self._writes() as session, session.begin():
            session.execute(delete(FleetLabel).where(FleetLabel.labelled_at < cutoff))
            result = session.execute(
                delete(FleetPrediction).where(FleetPrediction.recorded_at < cutoff)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    # -- labels ---------------------------------------------------------------------------------

    def claim_labels(
        self, process: str, model: str, keys: Sequence[tuple[str, int]]
    ) -> set[tuple[str, int]]:
        """Claim (request id, row) labels of ``model`` for ``process``; returns those claimed
        now. The primary key refuses a label any member (this one included) already joined,
        so the same label sent to two members joins once."""
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        now = utcnow()
        claimed: set[tuple[str, int]] = set()
        with self._writes() as session, session.begin():
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            for start in range(0, len(wanted), _BATCH):
                values = [
                    {"model": model, "request_id": rid, "row": row, "process": process,
                     "labelled_at": now}
                    for rid, row in wanted[start : start + _BATCH]
                ]  # fmt: skip
                stmt = (
                    insert(FleetLabel)
                    .values(values)
                    .on_conflict_do_nothing()
                    .returning(FleetLabel.request_id, FleetLabel.row)
                )
                claimed.update((rid, row) for rid, row in session.execute(stmt))
        return claimed
