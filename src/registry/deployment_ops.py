"""The Registry's deployment operations: read the current revision, write the next one
(set, reweight, promote, roll back) and list the history.

A mixin of :class:`registry.registry.Registry`, which provides the session factory, the
audit log and ``_reading``; every write goes through :func:`registry.revisions.write_revision`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from registry.audit import AuditLog
from registry.deployment import Arm, Deployment, Role, Shadow, validate_deployment
from registry.models import Model
from registry.records import DeploymentRecord, current_deployment, current_deployments, find_model
from registry.revisions import deployment_history, previous_revision, write_revision

__all__ = ["DeploymentOperations"]


class DeploymentOperations:
    """Deployments of the registry's models (see module docs)."""

    _reads: sessionmaker[Session]
    _audit: AuditLog
    _reading: Callable[[], AbstractContextManager[Session]]

    def get_deployment(self, model: str) -> Deployment:
        """The current (highest) revision of ``model``'s deployment."""
        with self._reading() as session:
            return current_deployment(session, find_model(session, model))

    def deployments(self) -> dict[str, Deployment]:
        """Every model's current deployment, in one read."""
        with self._reading() as session:
            return current_deployments(session)

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

        return write_revision(
            self._reads,
            self._audit,
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
        return write_revision(
            self._reads,
            self._audit,
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
        expected_revision: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """Make ``version`` champion (see :meth:`Deployment.promoted`); with
        ``expected_revision``, only if the deployment is still at that revision."""
        return write_revision(
            self._reads,
            self._audit,
            model,
            lambda _s, _m, current: current.promoted(version, keep_old=keep_old),
            action="deployment.promote",
            actor=actor,
            reason=reason,
            expected_revision=expected_revision,
            details=details,
        )

    def rollback(self, model: str, *, actor: str, reason: str = "") -> Deployment:
        """Write a new revision restoring the arms and shadows of the previous revision.

        Rolling back twice therefore returns to where the first rollback started.
        """
        return write_revision(
            self._reads,
            self._audit,
            model,
            previous_revision(model),
            action="deployment.rollback",
            actor=actor,
            reason=reason,
        )

    def history(self, model: str) -> list[DeploymentRecord]:
        """Every deployment revision of ``model``, oldest first."""
        with self._reading() as session:
            return deployment_history(session, model)
