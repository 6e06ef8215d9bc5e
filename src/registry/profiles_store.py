"""Row-level reads and writes of versions' reference profiles (table ``version_profile``).

The registry treats a profile as an opaque JSON document; :mod:`gateway.monitoring.monitor` owns its
layout. Each function runs inside the caller's session, so :class:`registry.Registry` can
write a profile and its audit event in one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import ModelVersion, VersionProfile, canonical_json, utcnow

__all__ = ["digest", "read_profile", "write_profile"]

MAX_SOURCE_LENGTH = 32


def digest(profile: Mapping[str, Any]) -> tuple[str, int]:
    """sha256 and size of the profile's canonical JSON (what the audit event records,
    rather than the profile itself, which can be megabytes)."""
    text = canonical_json(profile).encode("utf-8")
    return hashlib.sha256(text).hexdigest(), len(text)


def read_profile(session: Session, version: ModelVersion) -> VersionProfile | None:
    return session.scalar(select(VersionProfile).where(VersionProfile.version_id == version.id))


def write_profile(
    session: Session,
    version: ModelVersion,
    profile: Mapping[str, Any],
    *,
    source: str,
    actor: str,
) -> VersionProfile | None:
    """Insert or replace the version's profile; returns the replaced row's copy (or None)."""
    if not source or len(source) > MAX_SOURCE_LENGTH:
        raise ValueError(f"profile source must be 1-{MAX_SOURCE_LENGTH} characters")
    row = read_profile(session, version)
    previous = None
    if row is None:
        row = VersionProfile(version_id=version.id)
        session.add(row)
    else:
        previous = VersionProfile(
            version_id=row.version_id,
            source=row.source,
            profile=row.profile,
            created_at=row.created_at,
            created_by=row.created_by,
        )
    row.source = source
    row.profile = dict(profile)
    row.created_at = utcnow()
    row.created_by = actor
    return previous
