"""Fleet: process heartbeats, per-process evidence, stored governor windows, predictions
kept for joining labels on any process.

Revision ID: i13_fleet
Revises: 0004
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i13_fleet"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


CHANNEL = "onnxgate_registry_changes"  # registry.notify.CHANNEL, frozen here

_NOTIFY_FUNCTION = f"""
CREATE OR REPLACE FUNCTION onnxgate_notify_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', NEW.change_counter::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""
_NOTIFY_TRIGGER = """
CREATE TRIGGER onnxgate_change_notify AFTER UPDATE OF change_counter ON registry_state
FOR EACH ROW EXECUTE FUNCTION onnxgate_notify_change()
"""


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "fleet_process",
        sa.Column("process", sa.String(length=256), nullable=False),
        _when("started_at"),
        _when("heartbeat_at"),
        _when("lease_expires_at"),
        sa.PrimaryKeyConstraint("process", name=op.f("pk_fleet_process")),
    )
    op.create_index(
        op.f("ix_fleet_process_lease_expires_at"), "fleet_process", ["lease_expires_at"]
    )
    op.create_table(
        "fleet_evidence",
        sa.Column("process", sa.String(length=256), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("process", "model", "version", name=op.f("pk_fleet_evidence")),
    )
    op.create_table(
        "fleet_window",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("candidate", sa.String(length=128), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("baseline", sa.JSON(), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("model", "candidate", "step", name=op.f("pk_fleet_window")),
    )
    op.create_table(
        "fleet_prediction",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("request_id", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("predictions", sa.JSON(), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        _when("recorded_at"),
        sa.PrimaryKeyConstraint("model", "request_id", name=op.f("pk_fleet_prediction")),
    )
    op.create_index(op.f("ix_fleet_prediction_recorded_at"), "fleet_prediction", ["recorded_at"])
    if op.get_bind().dialect.name == "postgresql":
        # Gateways LISTEN (registry.notify): a change reaches them on commit, not next poll.
        op.execute(_NOTIFY_FUNCTION)
        op.execute(_NOTIFY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS onnxgate_change_notify ON registry_state")
        op.execute("DROP FUNCTION IF EXISTS onnxgate_notify_change()")
    op.drop_index(op.f("ix_fleet_prediction_recorded_at"), table_name="fleet_prediction")
    op.drop_table("fleet_prediction")
    op.drop_table("fleet_window")
    op.drop_table("fleet_evidence")
    op.drop_index(op.f("ix_fleet_process_lease_expires_at"), table_name="fleet_process")
    op.drop_table("fleet_process")
