"""Registering a version: one write that checks, stores, validates and audits it.

The name rules, the next version number, signature compatibility with the champion, the
validation report and governance metadata (:func:`registry.governance.record_registration`),
and for a new model its first deployment, all in the transaction that appends the
``version.register`` audit event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.artifact_scan import scan_onnx
from registry.audit import AuditLog
from registry.deployment import Arm, Deployment, Role
from registry.errors import (
    AlreadyExists,
    IncompatibleSignature,
    InvalidLineage,
    InvalidName,
    PolicyViolation,
)
from registry.failpoints import hit
from registry.governance import record_registration
from registry.governance_policy import load_policy
from registry.lifecycle import Status
from registry.lineage import Lineage, is_registry_tag
from registry.models import Model, ModelVersion, utcnow
from registry.records import (
    VersionRecord,
    add_revision,
    deployment_or_none,
    find_model,
    find_version,
    version_record,
)
from registry.signature import Signature, incompatibilities, signature_from_bytes
from registry.signing import signer_of, source_signature_tags, verify_bundle
from registry.store import ArtifactStore
from registry.validation import Check, probe_artifact

__all__ = ["Trust", "check_name", "next_version", "register_version"]


@dataclass(frozen=True)
class Trust:
    """How a registration proves who made it (see :mod:`registry.signing`).

    ``bundle`` is a model-signing bundle over the artifact, or over ``signed_source`` when
    the artifact was converted from that file (a trained model's pickle or text file);
    ``inherit_from`` ("model:version") copies a parent's signature as the source's, for a
    version the registry derived from it (``models optimize``).
    """

    bundle: bytes | None = None
    signed_source: bytes | None = None
    inherit_from: str = ""


def _runtime() -> str:
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def _signed(
    session: Session,
    store: ArtifactStore,
    model: str,
    artifact: bytes,
    lineage: Lineage,
    trust: Trust,
    actor: str,
) -> Lineage:
    """``lineage`` with the verified signature's tags (and who converted, for a derived
    version); refused (rule ``signing``) when the policy requires a trusted signature."""
    policy = load_policy(session)
    tags = dict(lineage.tags)
    if trust.bundle is not None:
        signed = artifact if trust.signed_source is None else trust.signed_source
        check = verify_bundle(signed, trust.bundle, policy)
        tags.update(check.tags("" if trust.signed_source is None else "source."))
        store.put(trust.bundle)  # kept to check it again at approval and at load
    if trust.inherit_from:
        parent_model, _, parent_version = trust.inherit_from.rpartition(":")
        parent = find_version(session, find_model(session, parent_model), parent_version)
        tags.update(source_signature_tags({t.key: t.value for t in parent.tag_rows}))
    if trust.signed_source is not None or trust.inherit_from or "converter" in tags:
        tags["converted.by"] = actor
    if policy.signing_required and signer_of(tags) == "unsigned":
        raise PolicyViolation(
            "signing",
            f"{model}: the policy requires a trusted signature (register with --signature "
            "BUNDLE from `model_signing sign`)",
        )
    return replace(lineage, tags=tags).validated()


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_name(kind: str, value: str) -> None:
    """Refuse (:class:`InvalidName`) a model or version name outside the allowed pattern."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidName(
            f"{kind} name {value!r} is invalid: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )


def next_version(existing: Sequence[str]) -> str:
    """One more than the highest integer version name (others are ignored)."""
    numbers = [int(v) for v in existing if v.isdigit()]
    return str(max(numbers, default=0) + 1)


def register_version(
    audit: AuditLog,
    store: ArtifactStore,
    model: str,
    artifact: bytes,
    *,
    version: str | None,
    description: str,
    owner: str,
    metadata: Mapping[str, str] | None,
    actor: str,
    force: bool,
    lineage: Lineage | None,
    trust: Trust | None = None,
) -> VersionRecord:
    """See :meth:`registry.registry.Registry.register_version`."""
    trust = trust or Trust()
    check_name("model", model)
    if version is not None:
        check_name("version", version)
    meta = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise TypeError("version metadata must map str to str")
    # Loading is slow: do it, and write the bytes, before taking the write lock.
    lineage = (lineage or Lineage()).validated()
    reserved = sorted(k for k in lineage.tags if is_registry_tag(k))
    if reserved:
        raise InvalidLineage(f"tag {reserved[0]!r} is set by the registry, not by the caller")
    # The scan runs before onnxruntime parses the bytes (it refuses hostile files).
    scanned = {"scan": scan_onnx(artifact), "validated.runtime": _runtime()}
    lineage = replace(lineage, tags={**lineage.tags, **scanned})
    signature = signature_from_bytes(artifact)
    probe = probe_artifact(artifact)
    sha = store.put(artifact)
    hit("register.after_artifact")
    with audit.writing() as session:
        # Asked before this registration adds its row; under the write lock, no other
        # registration can commit a row with these bytes until this one ends.
        held = _referenced(session, sha)
        try:
            record = _record(
                session,
                audit,
                store,
                model,
                artifact,
                sha,
                signature=signature,
                probe=probe,
                version=version,
                description=description,
                owner=owner,
                metadata=meta,
                actor=actor,
                force=force,
                lineage=lineage,
                trust=trust,
            )
        except Exception:
            # Refused (or failed) before commit: take the bytes back unless another version
            # holds them. A registration of the same bytes waiting for the lock puts them
            # back when it gets it (see _record).
            if not held:
                store.delete(sha)
            raise
        hit("register.before_commit")
    hit("register.after_commit")
    return record


def _referenced(session: Session, sha: str) -> bool:
    row = session.scalar(select(ModelVersion.id).where(ModelVersion.sha256 == sha).limit(1))
    return row is not None


def _record(
    session: Session,
    audit: AuditLog,
    store: ArtifactStore,
    model: str,
    artifact: bytes,
    sha: str,
    *,
    signature: Signature,
    probe: tuple[Check, ...],
    version: str | None,
    description: str,
    owner: str,
    metadata: dict[str, str],
    actor: str,
    force: bool,
    lineage: Lineage,
    trust: Trust,
) -> VersionRecord:
    meta = metadata
    if not store.exists(sha):  # retention removed these bytes meanwhile
        store.put(artifact)
    lineage = _signed(session, store, model, artifact, lineage, trust, actor)
    row = session.scalar(select(Model).where(Model.name == model))
    current = None if row is None else deployment_or_none(session, row)
    if row is None:
        row = Model(name=model, created_at=utcnow())
        session.add(row)
        session.flush()
    existing = session.scalars(
        select(ModelVersion.version).where(ModelVersion.model_id == row.id)
    ).all()
    if version is None:
        version = next_version(existing)
    elif version in existing:
        raise AlreadyExists(
            f"version {version!r} of model {model!r} is already registered; "
            "versions are immutable, register a new one"
        )
    problems: list[str] = []
    if current is not None:
        champion = find_version(session, row, current.champion.version)
        champion_sig = Signature.from_dict(champion.signature)
        problems = incompatibilities(champion_sig, signature)
        if problems and not force:
            raise IncompatibleSignature(model, version, problems)
    mv = ModelVersion(
        model_id=row.id,
        version=version,
        sha256=sha,
        size_bytes=len(artifact),
        signature=signature.to_dict(),
        description=description,
        owner=owner,
        metadata_=meta,
        status="registered",
        created_at=utcnow(),
        created_by=actor,
    )
    session.add(mv)
    governed, bootstrap = record_registration(
        session,
        row,
        mv,
        probe=probe,
        incompatible=problems,
        lineage=lineage,
        first=current is None,
    )
    after: dict[str, Any] = {
        "sha256": sha,
        "size_bytes": len(artifact),
        "signature": signature.to_dict(),
        "owner": owner,
        "description": description,
        "metadata": meta,
        **governed,
    }
    if problems:
        after["forced_incompatibilities"] = problems
    audit.append(
        session,
        actor=actor,
        action="version.register",
        subject=f"{model}:{version}",
        after=after,
    )
    if bootstrap:
        first = Deployment(model, 1, (Arm(version, Role.CHAMPION, 1.0),))
        reason = "first version of a new model becomes its champion"
        add_revision(session, row, first, actor, reason)
        changes = {version: [mv.status, Status.CHAMPION.value]}
        mv.status = Status.CHAMPION.value
        audit.append(
            session,
            actor=actor,
            action="deployment.set",
            subject=model,
            after={**first.to_dict(), "status_changes": changes},
            reason=reason,
        )
    session.flush()
    record = version_record(model, mv)
    return record
