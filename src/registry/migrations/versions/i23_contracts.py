"""Data contracts edited by operators: one row per revision per version.

Revision ID: i23_contracts
Revises: i21_console_sessions
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i23_contracts"
down_revision: str | Sequence[str] | None = "i24_fleet_labels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "version_contract",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("contract", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_version.id"],
            name=op.f("fk_version_contract_version_id_model_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_version_contract")),
        sa.UniqueConstraint("version_id", "revision", name=op.f("uq_version_contract_version_id")),
    )
    op.create_index(op.f("ix_version_contract_version_id"), "version_contract", ["version_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_version_contract_version_id"), table_name="version_contract")
    op.drop_table("version_contract")
