"""Console sessions: random ids kept server-side (as hashes), expiring and revocable.

Revision ID: i21_console_sessions
Revises: i13_fleet
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i21_console_sessions"
down_revision: str | Sequence[str] | None = "i13_fleet"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_session",
        sa.Column("id_sha256", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id_sha256", name=op.f("pk_console_session")),
    )
    op.create_index(op.f("ix_console_session_principal"), "console_session", ["principal"])
    op.create_index(op.f("ix_console_session_expires_at"), "console_session", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_console_session_expires_at"), table_name="console_session")
    op.drop_index(op.f("ix_console_session_principal"), table_name="console_session")
    op.drop_table("console_session")
