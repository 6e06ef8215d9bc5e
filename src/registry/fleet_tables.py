"""SQLAlchemy tables of the fleet: processes' heartbeats, shared evidence, window
baselines, kept predictions and joined labels (read and written by :mod:`registry.fleet_store`).

Declared on :class:`registry.models.Base`, so the Alembic migrations create them with the
rest; a reader of ``Base.metadata`` that needs them imports this module.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.models import NAME_LENGTH, Base, UTCDateTime, utcnow

__all__ = ["FleetEvidence", "FleetLabel", "FleetPrediction", "FleetProcess", "FleetWindow"]


class FleetProcess(Base):
    """One gateway process of the fleet and its heartbeat lease (registry.fleet_store)."""

    __tablename__ = "fleet_process"

    process: Mapped[str] = mapped_column(String(256), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class FleetEvidence(Base):
    """A process's cumulative evidence about one version (opaque JSON to the registry)."""

    __tablename__ = "fleet_evidence"

    process: Mapped[str] = mapped_column(String(256), primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    version: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FleetWindow(Base):
    """The fleet evidence a governor window starts from, keyed (model, candidate, step)."""

    __tablename__ = "fleet_window"

    model: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    candidate: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    baseline: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FleetPrediction(Base):
    """A served prediction kept (for the feedback TTL) so any process can join its label."""

    __tablename__ = "fleet_prediction"

    model: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    version: Mapped[str] = mapped_column(String(NAME_LENGTH))
    predictions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    segments: Mapped[list[str]] = mapped_column(JSON, default=list)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class FleetLabel(Base):
    """A label row joined by some member: unique, so one label joins once fleet-wide."""

    __tablename__ = "fleet_label"

    model: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    row: Mapped[int] = mapped_column(Integer, primary_key=True)
    process: Mapped[str] = mapped_column(String(256))
    labelled_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
