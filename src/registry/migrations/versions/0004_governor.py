"""Governor: versioned per-model policies, per-model state, and the leader lease row.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEASE_ROW = "*"  # not a valid model name, so it can never collide with one


def upgrade() -> None:
    op.create_table(
        "governor_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("toml", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governor_policy")),
        sa.UniqueConstraint("model", "version", name=op.f("uq_governor_policy_model")),
    )
    op.create_index(op.f("ix_governor_policy_model"), "governor_policy", ["model"])
    state = op.create_table(
        "governor_state",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("rolled_back", sa.JSON(), nullable=False),
        sa.Column("approved", sa.JSON(), nullable=False),
        sa.Column("candidate", sa.String(length=128), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("last_decision", sa.JSON(), nullable=True),
        sa.Column("next_evaluation_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("holder", sa.String(length=256), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", name=op.f("pk_governor_state")),
    )
    # The lease row must exist before any governor tries to take it with an UPDATE.
    # NOTE: naive UTC, as the registry's UTCDateTime stores timestamps on SQLite.
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    op.bulk_insert(
        state,
        [
            {
                "model": LEASE_ROW,
                "mode": "",
                "step": -1,
                "consecutive_failures": 0,
                "rolled_back": [],
                "approved": [],
                "candidate": "",
                "state": {},
                "holder": "",
                "updated_at": now,
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("governor_state")
    op.drop_index(op.f("ix_governor_policy_model"), table_name="governor_policy")
    op.drop_table("governor_policy")
