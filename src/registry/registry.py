"""The Registry API: versions, deployments and the audit log, one transaction per call.

Every write runs in one transaction that first locks and bumps the ``registry_state`` row
(so writers are serialised on PostgreSQL and SQLite alike, and gateways can poll one
number), then makes its change and appends its hash-chained audit event before commit:
a change and its audit record are written together or not at all.

This class is the face; the two big writes live next to it: registering a version in
:mod:`registry.registration`, writing a deployment revision in :mod:`registry.revisions`
(the deployment operations in :mod:`registry.deployment_ops`, governance in
:mod:`registry.governance`, the governor's state in :mod:`registry.governor_store`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from registry import profiles_store
from registry.artifacts import open_store
from registry.audit import AuditLog, AuditRecord
from registry.console_sessions import ConsoleSessions
from registry.contracts_store import ContractStore
from registry.deployment_ops import DeploymentOperations
from registry.errors import ArtifactIntegrityError, PolicyViolation, RegistryError
from registry.fleet_store import FleetStore
from registry.governance import Governance
from registry.governor_store import GovernorStore
from registry.lineage import Lineage
from registry.models import Model, ModelVersion
from registry.records import (
    DeploymentRecord,
    ModelRecord,
    VersionRecord,
    current_deployment,
    current_deployments,
    find_model,
    find_version,
    version_record,
)
from registry.registration import Trust, register_version
from registry.schema import (
    WRITE_OPTION,
    install_error_events,
    install_sqlite_events,
    make_engine,
    schema_is_current,
    upgrade_engine,
)
from registry.signing import BUNDLE_TAG, recheck
from registry.store import ArtifactStore

__all__ = ["AuditRecord", "DeploymentRecord", "ModelRecord", "Registry", "VersionRecord"]


class Registry(DeploymentOperations):
    """Versions, deployments and audit log over one database and one artifact store.

    Safe to share between threads; several processes may open the same database.
    """

    def __init__(self, engine: Engine, store: ArtifactStore) -> None:
        install_sqlite_events(engine)
        install_error_events(engine)
        self._engine = engine
        self._store = store
        self._reads = sessionmaker(engine, expire_on_commit=False)
        writes = sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        self._audit = AuditLog(self._reads, writes)
        self.governance = Governance(self._reads, self._audit, store)
        """Policy, approvals, validation, lineage search, history and retention."""
        self.governor = GovernorStore(self._reads, writes, self._audit)
        """The governor's policies, state and leader lease (gateway.governor.loop)."""
        self.fleet = FleetStore(self._reads, writes)
        """Heartbeats, shared evidence, windows and predictions of the fleet (gateway.fleet)."""
        self.sessions = ConsoleSessions(self._reads, writes)
        """Console sign-in sessions (server-side, expiring, revocable)."""
        self.contracts = ContractStore(self._reads, self._audit)
        """Operators' revisions of versions' data contracts (gateway.monitoring.contracts)."""

    @classmethod
    def open(
        cls, url: str, artifact_dir: Path | str | ArtifactStore, *, create: bool = True
    ) -> Registry:
        """Connect to ``url``; with ``create``, bring the schema up to date first.

        ``artifact_dir``: a directory, or an opened store (:func:`registry.store.open_store`).
        """
        engine = make_engine(url)
        try:
            if create:
                upgrade_engine(engine)
            elif not schema_is_current(engine):
                raise RegistryError(
                    "the registry database schema is missing or out of date; "
                    "run `onnxgate db upgrade` (registry.schema.upgrade)"
                )
        except BaseException:
            engine.dispose()
            raise
        store = (
            artifact_dir if isinstance(artifact_dir, ArtifactStore) else open_store(artifact_dir)
        )
        return cls(engine, store)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> ArtifactStore:
        return self._store

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._reads() as session, session.begin():
            yield session

    # -- versions -------------------------------------------------------------------

    def register_version(
        self,
        model: str,
        artifact: bytes,
        *,
        version: str | None = None,
        description: str = "",
        owner: str = "",
        metadata: Mapping[str, str] | None = None,
        actor: str = "cli",
        force: bool = False,
        lineage: Lineage | None = None,
        trust: Trust | None = None,
    ) -> VersionRecord:
        """Register ``artifact`` as a new, immutable version of ``model``.

        ``version`` None picks the next integer. The first version of a new model becomes
        its champion (deployment revision 1) if the governance policy allows it. A later
        version must stay compatible with the champion's signature unless ``force`` (the
        problems are then audited). The version is validated (see :mod:`registry.validation`)
        and the report stored with it and in its audit event. The artifact is scanned first
        (:mod:`registry.artifact_scan`); ``trust`` carries a signature to verify against the
        policy's ``[signing]`` trust (:class:`registry.registration.Trust`).
        """
        return register_version(
            self._audit,
            self._store,
            model,
            artifact,
            version=version,
            description=description,
            owner=owner,
            metadata=metadata,
            actor=actor,
            force=force,
            lineage=lineage,
            trust=trust,
        )

    def get_version(self, model: str, version: str | None = None) -> VersionRecord:
        """A version of ``model``; ``None`` means its current champion."""
        with self._reading() as session:
            row = find_model(session, model)
            if version is None:
                version = current_deployment(session, row).champion.version
            return version_record(model, find_version(session, row, version))

    def list_versions(self, model: str) -> list[VersionRecord]:
        """Every version of ``model`` in registration order."""
        with self._reading() as session:
            row = find_model(session, model)
            rows = session.scalars(
                select(ModelVersion)
                .where(ModelVersion.model_id == row.id)
                .order_by(ModelVersion.id)
            ).all()
            return [version_record(model, r) for r in rows]

    def list_models(self) -> list[ModelRecord]:
        """Every model, by name, with its versions and current champion."""
        with self._reading() as session:
            models = session.scalars(select(Model).order_by(Model.name)).all()
            versions: dict[int, list[str]] = {}
            query = select(ModelVersion.model_id, ModelVersion.version).order_by(ModelVersion.id)
            for model_id, version in session.execute(query):
                versions.setdefault(model_id, []).append(version)
            current = current_deployments(session)
        records = []
        for m in models:
            dep = current.get(m.name)
            records.append(
                ModelRecord(
                    name=m.name,
                    versions=tuple(versions.get(m.id, ())),
                    champion=dep.champion.version if dep else None,
                    revision=dep.revision if dep else 0,
                )
            )
        return records

    def read_artifact(self, model: str, version: str) -> bytes:
        """The version's artifact bytes, re-hashed against the registered sha256; a signed
        version's signature is verified again against the policy's current trust."""
        record = self.get_version(model, version)
        if BUNDLE_TAG in record.lineage.tags:
            try:
                recheck(
                    record.lineage.tags, self.governance.policy(), self._store.read, record.sha256
                )
            except PolicyViolation as exc:
                raise ArtifactIntegrityError(f"{model}:{version} at load: {exc}") from None
        return self._store.read(record.sha256)

    # -- reference profiles (drift monitoring) --------------------------------------

    def set_profile(
        self,
        model: str,
        version: str,
        profile: Mapping[str, Any],
        *,
        source: str,
        actor: str,
        only_if_absent: bool = False,
        summary: Mapping[str, Any] | None = None,
    ) -> bool:
        """Store ``profile`` (an opaque JSON document) as the version's reference profile.

        Replaces any previous one; the audit event (same transaction) records the source,
        the profile's sha256 and size and ``summary``, not the profile itself. With
        ``only_if_absent`` an existing profile is kept and False returned (so a profile the
        gateway derives from traffic never overwrites one registered meanwhile).
        """
        sha, size = profiles_store.digest(profile)
        with self._audit.writing() as session:
            mv = find_version(session, find_model(session, model), version)
            if only_if_absent and profiles_store.read_profile(session, mv) is not None:
                return False
            previous = profiles_store.write_profile(
                session, mv, profile, source=source, actor=actor
            )
            before = None
            if previous is not None:
                old_sha, old_size = profiles_store.digest(previous.profile)
                before = {"source": previous.source, "sha256": old_sha, "bytes": old_size}
            self._audit.append(
                session,
                actor=actor,
                action="version.profile",
                subject=f"{model}:{version}",
                before=before,
                after={"source": source, "sha256": sha, "bytes": size, **(summary or {})},
            )
        return True

    def get_profile(self, model: str, version: str) -> tuple[dict[str, Any], str] | None:
        """The version's reference profile and its source, or None if it has none."""
        with self._reading() as session:
            mv = find_version(session, find_model(session, model), version)
            row = profiles_store.read_profile(session, mv)
            return None if row is None else (dict(row.profile), row.source)

    # -- change counter and audit ---------------------------------------------------

    def change_counter(self) -> int:
        """A number every write transaction increases; poll it to notice changes cheaply."""
        return self._audit.change_counter()

    def audit_events(
        self, subject: str | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        """Audit events, oldest first; ``subject`` is a model name (also matching its
        "model:version" events) or "model:version"; ``limit`` keeps the most recent."""
        return self._audit.events(subject, limit)

    def verify_audit_chain(self) -> list[str]:
        """Problems found in the audit log's hash chain; an empty list means intact."""
        return self._audit.verify()

    def record_audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        before: Any = None,
        after: Any = None,
        reason: str = "",
    ) -> None:
        """Append an audit event in its own transaction (e.g. the gateway's failed load)."""
        with self._audit.writing() as session:
            self._audit.append(
                session,
                actor=actor,
                action=action,
                subject=subject,
                before=before,
                after=after,
                reason=reason,
            )
