"""Fleet labels: one row per joined (model, request id, row), so that a label sent to two
members joins once (the second is answered as a duplicate).

Revision ID: i24_fleet_labels
Revises: i21_console_sessions
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i24_fleet_labels"
down_revision: str | Sequence[str] | None = "i21_console_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fleet_label",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("request_id", sa.String(length=256), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("process", sa.String(length=256), nullable=False),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", "request_id", "row", name=op.f("pk_fleet_label")),
    )
    op.create_index(op.f("ix_fleet_label_labelled_at"), "fleet_label", ["labelled_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_fleet_label_labelled_at"), table_name="fleet_label")
    op.drop_table("fleet_label")
