"""The Registry API: versions, deployments and the audit log, one transaction per call.

Every write runs in one transaction that first locks and bumps the ``registry_state`` row
(so writers are serialised on PostgreSQL and SQLite alike, and gateways can poll one
number), then makes its change and appends its hash-chained audit event before commit:
a change and its audit record are written together or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from registry import profiles_store
from registry.approvals import check_deployment
from registry.audit import AuditLog, AuditRecord
from registry.deployment import Arm, Deployment, Role, Shadow, validate_deployment
from registry.errors import (
    AlreadyExists,
    IncompatibleSignature,
    InvalidDeployment,
    InvalidName,
    NotFoundError,
    PolicyViolation,
    RegistryError,
    StaleRevision,
)
from registry.governance import Governance, record_registration
from registry.governance_policy import load_policy
from registry.governor_store import GovernorStore
from registry.lifecycle import Status, apply_deployment_statuses
from registry.lineage import Lineage
from registry.models import DeploymentRevision, Model, ModelVersion, utcnow
from registry.records import (
    DeploymentRecord,
    ModelRecord,
    VersionRecord,
    add_revision,
    current_deployment,
    current_deployments,
    deployment_of,
    find_model,
    find_version,
    version_record,
)
from registry.schema import (
    WRITE_OPTION,
    install_sqlite_events,
    make_engine,
    schema_is_current,
    upgrade_engine,
)
from registry.signature import Signature, incompatibilities, signature_from_bytes
from registry.store import ArtifactStore
from registry.validation import probe_artifact

__all__ = ["AuditRecord", "DeploymentRecord", "ModelRecord", "Registry", "VersionRecord"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _check_name(kind: str, value: str) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidName(
            f"{kind} name {value!r} is invalid: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )


def _deployment_or_none(session: Session, model: Model) -> Deployment | None:
    # A model can exist without a deployment when policy withheld its first one.
    try:
        return current_deployment(session, model)
    except NotFoundError:
        return None


def _next_version(existing: Sequence[str]) -> str:
    numbers = [int(v) for v in existing if v.isdigit()]
    return str(max(numbers, default=0) + 1)


# Derives the next deployment from the current one, inside the write transaction.
_Build = Callable[[Session, Model, Deployment], Deployment]


class Registry:
    """Versions, deployments and audit log over one database and one artifact store.

    Safe to share between threads; several processes may open the same database.
    """

    def __init__(self, engine: Engine, store: ArtifactStore) -> None:
        install_sqlite_events(engine)
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

    @classmethod
    def open(cls, url: str, artifact_dir: Path | str, *, create: bool = True) -> Registry:
        """Connect to ``url``; with ``create``, bring the schema up to date first."""
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
        return cls(engine, ArtifactStore(Path(artifact_dir)))

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
    ) -> VersionRecord:
        """Register ``artifact`` as a new, immutable version of ``model``.

        ``version`` None picks the next integer. The first version of a new model becomes
        its champion (deployment revision 1) if the governance policy allows it. A later
        version must stay compatible with the champion's signature unless ``force`` (the
        problems are then audited). The version is validated (see :mod:`registry.validation`)
        and the report stored with it and in its audit event.
        """
        _check_name("model", model)
        if version is not None:
            _check_name("version", version)
        meta = dict(metadata or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise TypeError("version metadata must map str to str")
        # Loading is slow: do it, and write the bytes, before taking the write lock.
        # NOTE: bytes of a registration that then fails stay in the store, unreferenced;
        # deleting them here could race with a concurrent registration of the same bytes.
        lineage = (lineage or Lineage()).validated()
        signature = signature_from_bytes(artifact)
        probe = probe_artifact(artifact)
        sha = self._store.put(artifact)
        with self._audit.writing() as session:
            if not self._store.exists(sha):  # retention removed these bytes meanwhile
                self._store.put(artifact)
            row = session.scalar(select(Model).where(Model.name == model))
            current = None if row is None else _deployment_or_none(session, row)
            if row is None:
                row = Model(name=model, created_at=utcnow())
                session.add(row)
                session.flush()
            existing = session.scalars(
                select(ModelVersion.version).where(ModelVersion.model_id == row.id)
            ).all()
            if version is None:
                version = _next_version(existing)
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
            self._audit.append(
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
                self._audit.append(
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
        """The version's artifact bytes, re-hashed against the registered sha256."""
        return self._store.read(self.get_version(model, version).sha256)

    # -- deployments ----------------------------------------------------------------

    def get_deployment(self, model: str) -> Deployment:
        """The current (highest) revision of ``model``'s deployment."""
        with self._reading() as session:
            return current_deployment(session, find_model(session, model))

    def deployments(self) -> dict[str, Deployment]:
        """Every model's current deployment, in one read."""
        with self._reading() as session:
            return current_deployments(session)

    def _change(
        self,
        model: str,
        build: _Build,
        *,
        action: str,
        actor: str,
        reason: str,
        expected_revision: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """Write the next deployment revision that ``build`` derives from the current one.

        ``details`` (e.g. the governor's decision, gates and figures) go into the audit
        event's ``after`` under "details", in the same transaction.
        """
        based_on = expected_revision
        try:
            with self._audit.writing() as session:
                row = find_model(session, model)
                # Revision 0, no arms: a model whose first deployment the policy withheld.
                current = _deployment_or_none(session, row) or Deployment(model, 0, ())
                based_on = current.revision if based_on is None else based_on
                if current.revision != based_on:
                    raise StaleRevision(model, based_on, current.revision)
                derived = build(session, row, current)
                new = Deployment(model, current.revision + 1, derived.arms, derived.shadows)
                validate_deployment(new.arms, new.shadows)
                for name in sorted(new.versions()):
                    find_version(session, row, name)
                # Governance rules hold for every writer (admin API, CLI, governor).
                check_deployment(session, row, current, new, load_policy(session))
                add_revision(session, row, new, actor, reason)
                changes = apply_deployment_statuses(session, row, current, new, utcnow())
                self._audit.append(
                    session,
                    actor=actor,
                    action=action,
                    subject=model,
                    before=current.to_dict(),
                    after={
                        **new.to_dict(),
                        **({"status_changes": changes} if changes else {}),
                        **({"details": dict(details)} if details else {}),
                    },
                    reason=reason,
                )
                session.flush()
        except PolicyViolation as exc:
            after = {"rule": exc.rule, "attempted": action}
            self.record_audit(
                actor=actor,
                action="governance.refused",
                subject=model,
                after=after,
                reason=exc.message,
            )
            raise
        except IntegrityError as exc:
            # Backstop for the unique (model_id, revision): another writer got there first.
            # Any other integrity failure (the revision did not move) is not ours to rename.
            actual = self.get_deployment(model).revision
            if based_on is None or actual == based_on:
                raise
            raise StaleRevision(model, based_on, actual) from exc
        return new

    def set_deployment(
        self,
        model: str,
        arms: Sequence[Arm],
        shadows: Sequence[Shadow] = (),
        *,
        actor: str,
        reason: str = "",
        expected_revision: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """Replace ``model``'s arms and shadows with a new revision.

        With ``expected_revision``, refuse (:class:`StaleRevision`) if the deployment is no
        longer at that revision, so concurrent read-modify-write callers cannot both win.
        """
        validate_deployment(arms, shadows)

        def build(_s: Session, _m: Model, current: Deployment) -> Deployment:
            return Deployment(model, current.revision + 1, tuple(arms), tuple(shadows))

        return self._change(
            model,
            build,
            action="deployment.set",
            actor=actor,
            reason=reason,
            expected_revision=expected_revision,
            details=details,
        )

    def set_weights(
        self,
        model: str,
        weights: Mapping[str, float],
        roles: Mapping[str, Role] | None = None,
        *,
        actor: str,
        reason: str = "",
        expected_revision: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """Serve exactly the versions in ``weights`` (see :meth:`Deployment.reweighted`)."""
        return self._change(
            model,
            lambda _s, _m, current: current.reweighted(weights, roles),
            action="deployment.set",
            actor=actor,
            reason=reason,
            expected_revision=expected_revision,
            details=details,
        )

    def promote(
        self,
        model: str,
        version: str,
        *,
        actor: str,
        reason: str = "",
        keep_old: bool = False,
        details: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """Make ``version`` champion (see :meth:`Deployment.promoted`)."""
        return self._change(
            model,
            lambda _s, _m, current: current.promoted(version, keep_old=keep_old),
            action="deployment.promote",
            actor=actor,
            reason=reason,
            details=details,
        )

    def rollback(self, model: str, *, actor: str, reason: str = "") -> Deployment:
        """Write a new revision restoring the arms and shadows of the previous revision.

        Rolling back twice therefore returns to where the first rollback started.
        """

        def build(session: Session, row: Model, current: Deployment) -> Deployment:
            previous = session.scalar(
                select(DeploymentRevision).where(
                    DeploymentRevision.model_id == row.id,
                    DeploymentRevision.revision == current.revision - 1,
                )
            )
            if previous is None:
                raise InvalidDeployment(
                    f"model {model!r} has no revision before {current.revision} to roll back to"
                )
            return deployment_of(model, previous)

        return self._change(model, build, action="deployment.rollback", actor=actor, reason=reason)

    def history(self, model: str) -> list[DeploymentRecord]:
        """Every deployment revision of ``model``, oldest first."""
        with self._reading() as session:
            row = find_model(session, model)
            rows = session.scalars(
                select(DeploymentRevision)
                .where(DeploymentRevision.model_id == row.id)
                .order_by(DeploymentRevision.revision)
            ).all()
            return [
                DeploymentRecord(deployment_of(model, r), r.actor, r.reason, r.created_at)
                for r in rows
            ]

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
