"""The registry's one exception tree, so callers catch registry failures by kind.

::

    RegistryError                 root; anything the registry refuses or cannot do
    ├── NotFoundError             unknown model or version
    ├── AlreadyExists             version already registered (versions are immutable)
    ├── InvalidName               model/version name breaks the naming rule (also ValueError)
    ├── InvalidArtifact           bytes are not an ONNX model onnxruntime can load
    ├── IncompatibleSignature     new version's inputs/outputs break the champion's callers
    ├── InvalidDeployment         arms/shadows/weights make no valid deployment (also ValueError)
    ├── StaleRevision             optimistic check failed: someone changed the deployment first
    ├── ArtifactIntegrityError    stored bytes are missing or no longer hash to their sha256
    ├── InvalidLineage            malformed lineage (metrics, tags, hashes...) (also ValueError)
    ├── RegistryUnavailable       the database cannot be reached or written (down, read-only)
    ├── ArtifactStoreError        the artifact store cannot take bytes (disk full, read-only)
    └── PolicyViolation           a governance rule refused the change; ``.rule`` names it
        └── PermissionRefused     ...because of who asked (four-eyes)

Each kind names its status as a class attribute, ``code`` (a ``grpc.StatusCode`` member's
name, as :class:`gateway.errors.GatewayError` does); the gateway's edge maps by that name and
this package never imports grpc. The root's ``INTERNAL`` is never shown with its message.
Messages name the offending model, version or field and never include artifact bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

__all__ = [
    "AlreadyExists",
    "ArtifactIntegrityError",
    "IncompatibleSignature",
    "InvalidArtifact",
    "InvalidDeployment",
    "InvalidLineage",
    "InvalidName",
    "NotFoundError",
    "PermissionRefused",
    "ArtifactStoreError",
    "PolicyViolation",
    "RegistryError",
    "RegistryUnavailable",
    "StaleRevision",
    "StatusName",
]

StatusName = Literal[
    "ALREADY_EXISTS",
    "DATA_LOSS",
    "FAILED_PRECONDITION",
    "INTERNAL",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "PERMISSION_DENIED",
    "UNAVAILABLE",
]
"""The status a registry error reports: a ``grpc.StatusCode`` member's name."""


class RegistryError(Exception):
    """Root of every error the registry raises on purpose."""

    code: ClassVar[StatusName] = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(RegistryError):
    """An unknown model or version was named."""

    code: ClassVar[StatusName] = "NOT_FOUND"


class AlreadyExists(RegistryError):
    """A version with that name is already registered; versions are never overwritten."""

    code: ClassVar[StatusName] = "ALREADY_EXISTS"


class InvalidName(RegistryError, ValueError):
    """A model or version name does not match ``^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$``."""

    code: ClassVar[StatusName] = "INVALID_ARGUMENT"


class InvalidArtifact(RegistryError):
    """The artifact is not an ONNX model that onnxruntime can load."""

    code: ClassVar[StatusName] = "INVALID_ARGUMENT"


class IncompatibleSignature(RegistryError):
    """The new version's signature would break callers of the current champion."""

    code: ClassVar[StatusName] = "FAILED_PRECONDITION"

    def __init__(self, model: str, version: str, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        listed = "; ".join(self.problems)
        super().__init__(
            f"version {version!r} of model {model!r} is incompatible with the current "
            f"champion: {listed} (use force to override)"
        )


class InvalidDeployment(RegistryError, ValueError):
    """The requested arms, shadows or weights do not form a valid deployment."""

    code: ClassVar[StatusName] = "INVALID_ARGUMENT"


class StaleRevision(RegistryError):
    """An optimistic concurrency check failed: the deployment moved on meanwhile."""

    code: ClassVar[StatusName] = "FAILED_PRECONDITION"

    def __init__(self, model: str, expected: int, actual: int | None) -> None:
        self.expected = expected
        self.actual = actual
        now = "unknown" if actual is None else str(actual)
        super().__init__(
            f"deployment of model {model!r} is at revision {now}, expected revision "
            f"{expected}; re-read it and retry"
        )


class ArtifactIntegrityError(RegistryError):
    """Stored artifact bytes are missing or do not hash to their recorded sha256."""

    code: ClassVar[StatusName] = "DATA_LOSS"


class InvalidLineage(RegistryError, ValueError):
    """Lineage metadata is malformed: a bad hash, a non-finite metric, an unknown parent..."""

    code: ClassVar[StatusName] = "INVALID_ARGUMENT"


class RegistryUnavailable(RegistryError):
    """The registry's database cannot be reached or written just now; retry later."""

    code: ClassVar[StatusName] = "UNAVAILABLE"


class ArtifactStoreError(RegistryError):
    """The artifact store cannot take the bytes (disk full, read-only, gone); nothing was
    recorded."""

    code: ClassVar[StatusName] = "UNAVAILABLE"


class PolicyViolation(RegistryError):
    """A governance rule refused the operation; ``rule`` names it (e.g. ``"approvals"``).

    The message starts with ``rule '<name>':`` so that every refusal says which rule
    refused it, wherever it is shown (CLI line, gRPC status details, audit reason).
    """

    code: ClassVar[StatusName] = "FAILED_PRECONDITION"

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(f"rule '{rule}': {message}")


class PermissionRefused(PolicyViolation):
    """The rule refused the operation because of who asked (e.g. four-eyes)."""

    code: ClassVar[StatusName] = "PERMISSION_DENIED"
