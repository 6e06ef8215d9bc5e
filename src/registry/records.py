"""What the registry hands out (frozen records) and the row lookups that build them.

Shared by :mod:`registry.registry`'s read and write paths; each function takes the
caller's session so it runs inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from registry.deployment import Arm, Deployment, Shadow
from registry.errors import NotFoundError
from registry.lineage import Lineage, lineage_of
from registry.models import DeploymentRevision, Model, ModelVersion, utcnow
from registry.signature import Signature

__all__ = [
    "DeploymentRecord",
    "ModelRecord",
    "VersionRecord",
    "add_revision",
    "current_deployment",
    "current_deployments",
    "deployment_of",
    "deployment_or_none",
    "find_model",
    "find_version",
    "version_record",
]


@dataclass(frozen=True)
class VersionRecord:
    """One registered, immutable version of a model."""

    model: str
    version: str
    sha256: str
    size_bytes: int
    signature: Signature
    description: str
    owner: str
    metadata: dict[str, str]
    status: str
    created_at: datetime
    created_by: str
    lineage: Lineage = field(default_factory=Lineage)
    validation: dict[str, Any] | None = None  # the last ValidationReport, as stored
    status_changed_at: datetime | None = None


@dataclass(frozen=True)
class ModelRecord:
    """A model, its versions in registration order, and its current champion."""

    name: str
    versions: tuple[str, ...]
    champion: str | None
    revision: int


@dataclass(frozen=True)
class DeploymentRecord:
    """One deployment revision with who made it, why and when."""

    deployment: Deployment
    actor: str
    reason: str
    created_at: datetime


def version_record(model: str, row: ModelVersion) -> VersionRecord:
    return VersionRecord(
        model=model,
        version=row.version,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        signature=Signature.from_dict(row.signature),
        description=row.description,
        owner=row.owner,
        metadata=dict(row.metadata_),
        status=row.status,
        created_at=row.created_at,
        created_by=row.created_by,
        lineage=lineage_of(row),
        validation=row.validation,
        status_changed_at=row.status_changed_at,
    )


def deployment_of(model: str, row: DeploymentRevision) -> Deployment:
    return Deployment(
        model=model,
        revision=row.revision,
        arms=tuple(Arm.from_dict(a) for a in row.arms),
        shadows=tuple(Shadow.from_dict(s) for s in row.shadows),
    )


def find_model(session: Session, name: str) -> Model:
    row = session.scalar(select(Model).where(Model.name == name))
    if row is None:
        raise NotFoundError(f"model {name!r} is not registered")
    return row


def find_version(session: Session, model: Model, version: str) -> ModelVersion:
    row = session.scalar(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == version
        )
    )
    if row is None:
        raise NotFoundError(f"version {version!r} of model {model.name!r} is not registered")
    return row


def current_deployment(session: Session, model: Model) -> Deployment:
    """The model's highest deployment revision."""
    row = session.scalar(
        select(DeploymentRevision)
        .where(DeploymentRevision.model_id == model.id)
        .order_by(DeploymentRevision.revision.desc())
        .limit(1)
    )
    if row is None:
        raise NotFoundError(f"model {model.name!r} has no deployment")
    return deployment_of(model.name, row)


def deployment_or_none(session: Session, model: Model) -> Deployment | None:
    """The current deployment, or None for a model whose first one the policy withheld."""
    try:
        return current_deployment(session, model)
    except NotFoundError:
        return None


def current_deployments(session: Session) -> dict[str, Deployment]:
    """Every model's highest deployment revision, in one query."""
    latest = (
        select(
            DeploymentRevision.model_id,
            func.max(DeploymentRevision.revision).label("revision"),
        )
        .group_by(DeploymentRevision.model_id)
        .subquery()
    )
    rows = session.execute(
        select(Model.name, DeploymentRevision)
        .join(DeploymentRevision, DeploymentRevision.model_id == Model.id)
        .join(
            latest,
            and_(
                latest.c.model_id == DeploymentRevision.model_id,
                latest.c.revision == DeploymentRevision.revision,
            ),
        )
    )
    return {name: deployment_of(name, rev) for name, rev in rows}


def add_revision(
    session: Session, model: Model, deployment: Deployment, actor: str, reason: str
) -> None:
    session.add(
        DeploymentRevision(
            model_id=model.id,
            revision=deployment.revision,
            arms=[a.to_dict() for a in deployment.arms],
            shadows=[s.to_dict() for s in deployment.shadows],
            actor=actor,
            reason=reason,
            created_at=utcnow(),
        )
    )
