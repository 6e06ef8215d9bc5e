"""Console sign-in sessions: random ids, kept server-side, expiring and revocable.

A console cookie must not be a credential anyone could replay elsewhere: it holds a random
session id (32 bytes from :mod:`secrets`), and this table holds only its SHA-256, the
principal it signed in as, when it expires and whether it was revoked. Being in the
registry, a session is the same on every worker and replica (one sign-in serves a fleet
behind a load balancer), survives a restart, and ends for all of them at once on sign-out.

The bearer token a principal signed in with is never stored: the gateway maps the
principal back to its configured token for each page (so a token taken out of the
configuration ends its sessions too).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from registry.models import Base, UTCDateTime, utcnow

__all__ = ["ConsoleSessionRow", "ConsoleSessions"]


class ConsoleSessionRow(Base):
    """One console session: its id's hash, who signed in, until when, whether revoked."""

    __tablename__ = "console_session"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal: Mapped[str] = mapped_column(String(256), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


class ConsoleSessions:
    """Create, look up and revoke console sessions (one short transaction each)."""

    def __init__(self, reads: sessionmaker[Session], writes: sessionmaker[Session]) -> None:
        self._reads = reads
        self._writes = writes

    def create(self, principal: str, ttl_s: float) -> str:
        """A new session for ``principal``, valid ``ttl_s`` seconds; returns its id (the
        only copy: the table keeps its hash). Expired sessions are purged on the way."""
        session_id = secrets.token_urlsafe(32)
        now = utcnow()
        with self._writes.begin() as s:
            s.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at < now))
            s.add(
                ConsoleSessionRow(
                    id_sha256=_digest(session_id),
                    principal=principal,
                    created_at=now,
                    expires_at=now + timedelta(seconds=ttl_s),
                )
            )
        return session_id

    def principal_of(self, session_id: str) -> str | None:
        """The principal of a live session; None when unknown, expired or revoked."""
        if not session_id or len(session_id) > 128:
            return None
        with self._reads() as s:
            row = s.get(ConsoleSessionRow, _digest(session_id))
            if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
                return None
            return row.principal

    def revoke(self, session_id: str) -> bool:
        """End one session (sign-out); True when it was live."""
        now = utcnow()
        with self._writes.begin() as s:
            result = s.execute(
                update(ConsoleSessionRow)
                .where(ConsoleSessionRow.id_sha256 == _digest(session_id))
                .where(ConsoleSessionRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return bool(getattr(result, "rowcount", 0))

    def revoke_principal(self, principal: str) -> int:
        """End every live session of ``principal`` (its token was revoked); how many."""
        now = utcnow()
        with self._writes.begin() as s:
            result = s.execute(
                update(ConsoleSessionRow)
                .where(ConsoleSessionRow.principal == principal)
                .where(ConsoleSessionRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return int(getattr(result, "rowcount", 0))

    def live(self, principal: str) -> int:
        """Live sessions of ``principal`` (tests, operators)."""
        now = utcnow()
        with self._reads() as s:
            rows = s.scalars(
                select(ConsoleSessionRow.id_sha256)
                .where(ConsoleSessionRow.principal == principal)
                .where(ConsoleSessionRow.revoked_at.is_(None))
                .where(ConsoleSessionRow.expires_at > now)
            )
            return len(list(rows))
