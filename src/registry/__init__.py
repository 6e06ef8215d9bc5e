"""onnxgate's model registry: versions, artifacts, deployments and the audit log.

The pure parts (deployments, signatures, the datatype table, errors) are imported eagerly;
the database-backed ones (``Registry``, ``ArtifactStore`` and the records) load on first use,
so pure code such as the gateway's router can import :mod:`registry.deployment` without
pulling in SQLAlchemy.

This module is the registry's face: the gateway imports the registry through it, or through
the pure modules it re-exports (``datatypes``, ``deployment``, ``errors``, ``signature``),
never through the database modules behind it (an import contract checks that).
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
from registry.signature import Signature, TensorSpec, signature_from_bytes, signature_from_session

if TYPE_CHECKING:
    from registry.artifacts import open_store
    from registry.bom import build_bom
    from registry.cards import build_card
    from registry.contracts_store import ContractRecord
    from registry.convert import (
        ConversionError,
        convert_file,
        is_native,
        optimize_version,
        read_sample,
        register_model,
    )
    from registry.fleet_store import FOLDED, Folded, PredictionRow
    from registry.governance import ApprovalRecord
    from registry.governance_policy import GovernancePolicy
    from registry.governor_store import StateRecord
    from registry.history import parse_instant
    from registry.lineage import Lineage, MetricFilter, parse_key_value, user_tags
    from registry.models import utcnow
    from registry.notify import listen_for_changes, supports_notify
    from registry.registration import Trust
    from registry.registry import (
        AuditRecord,
        DeploymentRecord,
        ModelRecord,
        Registry,
        VersionRecord,
    )
    from registry.s3_store import s3_client
    from registry.schema import make_engine, upgrade_engine
    from registry.schema_check import open_registry, schema_status
    from registry.signing import signer_of
    from registry.store import ArtifactStore
    from registry.validation import ValidationReport

__all__ = [
    "DATATYPES",
    "DATATYPE_TO_NUMPY",
    "FOLDED",
    "ORT_TO_DATATYPE",
    "AlreadyExists",
    "ApprovalRecord",
    "Arm",
    "ArtifactIntegrityError",
    "ArtifactStore",
    "AuditRecord",
    "ContractRecord",
    "ConversionError",
    "Datatype",
    "Deployment",
    "DeploymentRecord",
    "Folded",
    "GovernancePolicy",
    "IncompatibleSignature",
    "InvalidArtifact",
    "InvalidDeployment",
    "InvalidLineage",
    "InvalidName",
    "Lineage",
    "MetricFilter",
    "ModelRecord",
    "NotFoundError",
    "PermissionRefused",
    "PolicyViolation",
    "PredictionRow",
    "Registry",
    "RegistryError",
    "Role",
    "Shadow",
    "Signature",
    "StaleRevision",
    "StateRecord",
    "TensorSpec",
    "Trust",
    "ValidationReport",
    "VersionRecord",
    "build_bom",
    "build_card",
    "convert_file",
    "datatype_of_numpy",
    "is_native",
    "listen_for_changes",
    "make_engine",
    "open_registry",
    "open_store",
    "optimize_version",
    "parse_instant",
    "parse_key_value",
    "parse_weights",
    "read_sample",
    "register_model",
    "s3_client",
    "schema_status",
    "signature_from_bytes",
    "signature_from_session",
    "signer_of",
    "supports_notify",
    "upgrade_engine",
    "user_tags",
    "utcnow",
    "validate_deployment",
]

_LAZY = {
    "Trust": "registry.registration",
    "build_bom": "registry.bom",
    "signer_of": "registry.signing",
    "user_tags": "registry.lineage",
    "ApprovalRecord": "registry.governance",
    "ContractRecord": "registry.contracts_store",
    "ArtifactStore": "registry.store",
    "AuditRecord": "registry.registry",
    "ConversionError": "registry.convert",
    "DeploymentRecord": "registry.registry",
    "GovernancePolicy": "registry.governance_policy",
    "Lineage": "registry.lineage",
    "MetricFilter": "registry.lineage",
    "ModelRecord": "registry.registry",
    "FOLDED": "registry.fleet_store",
    "Folded": "registry.fleet_store",
    "PredictionRow": "registry.fleet_store",
    "Registry": "registry.registry",
    "StateRecord": "registry.governor_store",
    "ValidationReport": "registry.validation",
    "VersionRecord": "registry.registry",
    "build_card": "registry.cards",
    "convert_file": "registry.convert",
    "is_native": "registry.convert",
    "listen_for_changes": "registry.notify",
    "make_engine": "registry.schema",
    "open_registry": "registry.schema_check",
    "open_store": "registry.artifacts",
    "optimize_version": "registry.convert",
    "parse_instant": "registry.history",
    "parse_key_value": "registry.lineage",
    "read_sample": "registry.convert",
    "register_model": "registry.convert",
    "s3_client": "registry.s3_store",
    "schema_status": "registry.schema_check",
    "supports_notify": "registry.notify",
    "upgrade_engine": "registry.schema",
    "utcnow": "registry.models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
