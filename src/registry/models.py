"""SQLAlchemy 2.0 tables of the registry; the Alembic migrations create exactly these.

Portable across SQLite and PostgreSQL: generic types only, JSON for structured fields,
timestamps stored as UTC and always handed back timezone-aware. Two concerns keep their
tables beside their store on this base: the fleet's (:mod:`registry.fleet_tables`) and the
console's sign-in sessions (:mod:`registry.console_sessions`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Approval",
    "AuditEvent",
    "Base",
    "DeploymentRevision",
    "GovernancePolicyRow",
    "GovernorPolicyRow",
    "GovernorStateRow",
    "Model",
    "ModelVersion",
    "RegistryState",
    "UTCDateTime",
    "VersionMetric",
    "VersionTag",
    "VersionProfile",
    "audit_hash",
    "canonical_json",
    "utcnow",
]

# Deterministic constraint names, so later migrations can drop them on every backend.
_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME_LENGTH = 128
GENESIS_HASH = "0" * 64
STATE_ROW_ID = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and returned timezone-aware on every backend.

    NOTE: SQLite keeps no zone, so values are stored naive-UTC and re-tagged on read;
    PostgreSQL's timestamptz may answer in the session's zone, so values are converted.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; registry timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def canonical_json(value: Any) -> str:
    """The one JSON spelling of ``value`` that audit hashes are computed over."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def audit_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """sha256 over the previous event's hash followed by this event's canonical JSON."""
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode("utf-8")).hexdigest()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class Model(Base):
    """A named model; its versions and deployment revisions hang off it."""

    __tablename__ = "model"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelVersion(Base):
    """One immutable registered version: artifact hash, signature and who registered it."""

    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id"), index=True)
    version: Mapped[str] = mapped_column(String(NAME_LENGTH))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(256), default="")
    # NOTE: "metadata" is reserved on declarative classes, hence the trailing underscore.
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    status: Mapped[str] = mapped_column(String(32), default="registered")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(256), default="")
    # Lineage (migration 0003): typed columns; metrics and tags live in their own tables so
    # that `models search --metric auc>0.9 --tag team=risk` is plain, portable SQL.
    license: Mapped[str] = mapped_column(String(128), default="")
    training_data: Mapped[str] = mapped_column(Text, default="")
    training_data_sha256: Mapped[str] = mapped_column(String(64), default="")
    code_ref: Mapped[str] = mapped_column(String(256), default="")
    parent: Mapped[str] = mapped_column(String(2 * NAME_LENGTH + 1), default="")  # model:version
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    metric_rows: Mapped[list[VersionMetric]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="VersionMetric.name"
    )
    tag_rows: Mapped[list[VersionTag]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="VersionTag.key"
    )


class VersionMetric(Base):
    """One evaluation metric of a version (name -> float), searchable by comparison."""

    __tablename__ = "version_metric"

    version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True, index=True)
    value: Mapped[float] = mapped_column(Double)


class VersionTag(Base):
    """One ``key=value`` tag of a version, searchable by equality."""

    __tablename__ = "version_tag"

    version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True, index=True)
    value: Mapped[str] = mapped_column(String(256))


class Approval(Base):
    """One principal's approval of one version; (version, approver) is unique, so the count
    of rows is the count of distinct approvers."""

    __tablename__ = "approval"
    __table_args__ = (UniqueConstraint("version_id", "approver"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"), index=True)
    approver: Mapped[str] = mapped_column(String(256))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GovernancePolicyRow(Base):
    """The registry's one governance policy document (row ``id`` 1; absent = defaults).

    Kept in the registry rather than in each process's settings so that every writer (CLI,
    every gateway replica, the governor) enforces the same rules, and changing them is an
    audited registry write like any other.
    """

    __tablename__ = "governance_policy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(256), default="")


class DeploymentRevision(Base):
    """One revision of a model's deployment; the highest revision is the current one.

    The unique (model_id, revision) pair is what makes concurrent writers unable to both
    win: two transactions writing the same next revision cannot both commit.
    """

    __tablename__ = "deployment_revision"
    __table_args__ = (UniqueConstraint("model_id", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    arms: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    shadows: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    actor: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VersionProfile(Base):
    """The reference profile drift monitoring compares a version's traffic with.

    One row per version (replaced, never versioned: the audit log keeps the history).
    ``profile`` is opaque to the registry: the gateway's serialised profile
    (``{"format", "inputs", "outputs"}``); ``source`` says where it came from
    ("reference" file at registration, the version's "first_window" in production, ...).
    """

    __tablename__ = "version_profile"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(256), default="")


class VersionContract(Base):
    """One revision of a version's data contract as an operator edited it (the gateway's
    contract document, opaque here); the newest revision is in force, older ones are kept.
    A version with no row has the contract derived from its reference profile."""

    __tablename__ = "version_contract"
    __table_args__ = (UniqueConstraint("version_id", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    contract: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(1024), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(256), default="")


class AuditEvent(Base):
    """An append-only, hash-chained record of one change.

    ``hash`` = sha256(prev_hash + canonical JSON of the event's fields); the first event's
    ``prev_hash`` is 64 zeros. Editing or deleting a row breaks the chain.
    """

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(2 * NAME_LENGTH + 1), index=True)
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    def hashed_fields(self) -> dict[str, Any]:
        """The fields the hash covers (everything but id and the hashes themselves)."""
        return {
            "seq": self.seq,
            "at": self.at.astimezone(UTC).isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
        }


class RegistryState(Base):
    """The single row every write transaction updates first.

    Updating it first serialises writers (a row lock on PostgreSQL; SQLite writers are
    already serialised by BEGIN IMMEDIATE), gives gateways one cheap number to poll, and
    records the audit chain's head so that truncating the log is detectable too.
    """

    __tablename__ = "registry_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    change_counter: Mapped[int] = mapped_column(BigInteger, default=0)
    audit_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    audit_head: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)


class GovernorPolicyRow(Base):
    """One version of a model's governor policy (TOML as written); the highest is in force.

    Versioned rather than replaced so that every decision can name the policy it applied.
    """

    __tablename__ = "governor_policy"
    __table_args__ = (UniqueConstraint("model", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    version: Mapped[int] = mapped_column(Integer)
    toml: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(256), default="")


class GovernorStateRow(Base):
    """The governor's memory of one model, plus (row ``model = "*"``) the leader lease.

    The lease row is how one governor acts at a time across gateways: a governor holds it
    while ``holder`` is its id and ``lease_expires_at`` is in the future, and takes it with a
    conditional UPDATE that only matches a free or expired lease (atomic on every backend).
    """

    __tablename__ = "governor_state"

    model: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16), default="")  # "paused" by an operator
    step: Mapped[int] = mapped_column(Integer, default=-1)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    rolled_back: Mapped[list[str]] = mapped_column(JSON, default=list)
    approved: Mapped[list[str]] = mapped_column(JSON, default=list)
    candidate: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_decision: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    next_evaluation_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    holder: Mapped[str] = mapped_column(String(256), default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
