"""Governance: lineage columns, metrics and tags, approvals, the policy row, lifecycle status.

Existing versions get a lifecycle status derived from the deployment history: their role in
the current revision, "retired" if an earlier revision served them, else they keep theirs;
``status_changed_at`` starts at the registration time.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _lineage_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("license", sa.String(length=128), nullable=False, server_default=""),
        sa.Column("training_data", sa.Text(), nullable=False, server_default=""),
        sa.Column("training_data_sha256", sa.String(length=64), nullable=False, server_default=""),
        sa.Column("code_ref", sa.String(length=256), nullable=False, server_default=""),
        sa.Column("parent", sa.String(length=257), nullable=False, server_default=""),
        sa.Column("hyperparameters", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("validation", sa.JSON(), nullable=True),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("model_version") as batch:
        for column in _lineage_columns():
            batch.add_column(column)
    op.create_table(
        "version_metric",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_version.id"],
            name=op.f("fk_version_metric_version_id_model_version"),
        ),
        sa.PrimaryKeyConstraint("version_id", "name", name=op.f("pk_version_metric")),
    )
    op.create_index(op.f("ix_version_metric_name"), "version_metric", ["name"])
    op.create_table(
        "version_tag",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_version.id"],
            name=op.f("fk_version_tag_version_id_model_version"),
        ),
        sa.PrimaryKeyConstraint("version_id", "key", name=op.f("pk_version_tag")),
    )
    op.create_index(op.f("ix_version_tag_key"), "version_tag", ["key"])
    op.create_table(
        "approval",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("approver", sa.String(length=256), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_version.id"], name=op.f("fk_approval_version_id_model_version")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval")),
        sa.UniqueConstraint("version_id", "approver", name=op.f("uq_approval_version_id")),
    )
    op.create_index(op.f("ix_approval_version_id"), "approval", ["version_id"])
    op.create_table(
        "governance_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_policy")),
    )
    _derive_statuses()


def _derive_statuses() -> None:
    """Give versions registered before this revision the lifecycle status they now need."""
    bind = op.get_bind()
    version = sa.table(
        "model_version",
        sa.column("id", sa.Integer()),
        sa.column("model_id", sa.Integer()),
        sa.column("version", sa.String()),
        sa.column("status", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("status_changed_at", sa.DateTime(timezone=True)),
    )
    revision_t = sa.table(
        "deployment_revision",
        sa.column("model_id", sa.Integer()),
        sa.column("revision", sa.Integer()),
        sa.column("arms", sa.JSON()),
        sa.column("shadows", sa.JSON()),
    )
    bind.execute(version.update().values(status_changed_at=version.c.created_at))
    served_ever: dict[int, set[str]] = {}
    current: dict[int, tuple[int, dict[str, str]]] = {}
    for model_id, rev, arms, shadows in bind.execute(
        sa.select(
            revision_t.c.model_id, revision_t.c.revision, revision_t.c.arms, revision_t.c.shadows
        )
    ):
        roles: dict[str, str] = {str(a["version"]): str(a["role"]) for a in arms or []}
        roles.update({str(s["version"]): "shadow" for s in shadows or []})
        served_ever.setdefault(model_id, set()).update(roles)
        if model_id not in current or rev > current[model_id][0]:
            current[model_id] = (rev, roles)
    rows = bind.execute(sa.select(version.c.id, version.c.model_id, version.c.version)).all()
    for row_id, model_id, name in rows:
        roles = current.get(model_id, (0, {}))[1]
        status: Any = roles.get(name)
        if status is None and name in served_ever.get(model_id, set()):
            status = "retired"
        if status is not None:
            bind.execute(version.update().where(version.c.id == row_id).values(status=status))


def downgrade() -> None:
    op.drop_table("governance_policy")
    op.drop_index(op.f("ix_approval_version_id"), table_name="approval")
    op.drop_table("approval")
    op.drop_index(op.f("ix_version_tag_key"), table_name="version_tag")
    op.drop_table("version_tag")
    op.drop_index(op.f("ix_version_metric_name"), table_name="version_metric")
    op.drop_table("version_metric")
    with op.batch_alter_table("model_version") as batch:
        for column in reversed(_lineage_columns()):
            batch.drop_column(column.name)
    # The lifecycle statuses other than "registered" mean nothing to revision 0002.
    op.execute("UPDATE model_version SET status = 'registered'")
