"""onnxgate's model registry: versions, artifacts, deployments and the audit log.

The pure parts (deployments, signatures, the datatype table, errors) are imported eagerly;
the database-backed ones (``Registry``, ``ArtifactStore`` and the records) load on first use,
so pure code such as the gateway's router can import :mod:`registry.deployment` without
pulling in SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from registry.datatypes import (
    DATATYPE_TO_NUMPY,
    DATATYPES,
    ORT_TO_DATATYPE,
    Datatype,
    datatype_of_numpy,
)
from registry.deployment import Arm, Deployment, Role, Shadow, parse_weights, validate_deployment
from registry.errors import (
    AlreadyExists,
    ArtifactIntegrityError,
    IncompatibleSignature,
    InvalidArtifact,
    InvalidDeployment,
    InvalidLineage,
    InvalidName,
    NotFoundError,
    PermissionRefused,
    PolicyViolation,
    RegistryError,
    StaleRevision,
)
from registry.signature import Signature, TensorSpec

if TYPE_CHECKING:
    from registry.registry import (
        AuditRecord,
        DeploymentRecord,
        ModelRecord,
        Registry,
        VersionRecord,
    )
    from registry.store import ArtifactStore

__all__ = [
    "DATATYPES",
    "DATATYPE_TO_NUMPY",
    "ORT_TO_DATATYPE",
    "AlreadyExists",
    "Arm",
    "ArtifactIntegrityError",
    "ArtifactStore",
    "AuditRecord",
    "Datatype",
    "Deployment",
    "DeploymentRecord",
    "IncompatibleSignature",
    "InvalidArtifact",
    "InvalidDeployment",
    "InvalidLineage",
    "InvalidName",
    "ModelRecord",
    "NotFoundError",
    "PermissionRefused",
    "PolicyViolation",
    "Registry",
    "RegistryError",
    "Role",
    "Shadow",
    "Signature",
    "StaleRevision",
    "TensorSpec",
    "VersionRecord",
    "datatype_of_numpy",
    "parse_weights",
    "validate_deployment",
]

_LAZY = {
    "ArtifactStore": "registry.store",
    "AuditRecord": "registry.registry",
    "DeploymentRecord": "registry.registry",
    "ModelRecord": "registry.registry",
    "Registry": "registry.registry",
    "VersionRecord": "registry.registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
