"""Deployment use cases: read deployments, and change one the only way there is.

A change (operator or governor) is :meth:`Deployments.change_deployment`: the catalog loads
and warms the versions the target needs (one that fails to load refuses the change, audited
by the catalog), one registry transaction writes the new revision and its audit event, then
the catalog re-syncs so this gateway routes the new revision at once; other gateways
converge by polling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidArgument
from gateway.registry_facade import AsyncRegistry, DeploymentTarget, RollBack, SetArms
from gateway.serving.catalog import Catalog
from registry import DeploymentRecord, ModelRecord, VersionRecord
from registry.deployment import Deployment, Shadow

__all__ = ["DeploymentView", "Deployments", "require"]


def require(**fields: str) -> None:
    """InvalidArgument naming the first empty field ("model is required")."""
    for name, value in fields.items():
        if not value:
            raise InvalidArgument(f"{name} is required")


@dataclass(frozen=True)
class DeploymentView:
    """A deployment and the versions this gateway has loaded for its model."""

    deployment: Deployment
    loaded: tuple[str, ...] = ()


class Deployments:
    """Reads and changes of deployments, over the registry facade and the catalog."""

    def __init__(self, registry: AsyncRegistry, catalog: Catalog) -> None:
        self._registry = registry
        self._catalog = catalog

    def view(self, dep: Deployment) -> DeploymentView:
        entry = self._catalog.entry(dep.model)
        loaded = tuple(sorted(entry.served)) if entry is not None else ()
        return DeploymentView(dep, loaded)

    async def list_models(self) -> list[ModelRecord]:
        return await self._registry.list_models()

    async def deployment(self, model: str) -> DeploymentView:
        require(model=model)
        return self.view(await self._registry.get_deployment(model))

    async def history(self, model: str, limit: int = 0) -> list[DeploymentRecord]:
        require(model=model)
        history = await self._registry.history(model)
        return history[-limit:] if limit > 0 else history

    async def versions(self, model: str) -> list[VersionRecord]:
        return await self._registry.list_versions(model)

    async def _to_load(self, model: str, target: DeploymentTarget) -> Iterable[str]:
        if isinstance(target, RollBack):
            history = await self._registry.history(model)
            return history[-2].deployment.versions() if len(history) >= 2 else ()
        return target.versions()

    async def change_deployment(
        self,
        model: str,
        target: DeploymentTarget,
        *,
        actor: str,
        reason: str,
        expected_revision: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> DeploymentView:
        """Preload what ``target`` serves, write it (one audited revision), re-sync."""
        require(model=model)
        versions = list(await self._to_load(model, target))
        if versions:
            await self._catalog.preload(model, versions)
        dep = await self._registry.write_deployment(
            model, target, actor=actor, reason=reason, expected_revision=expected_revision,
            details=details,
        )  # fmt: skip
        await self._catalog.sync()
        return self.view(dep)

    async def add_shadow(
        self, model: str, version: str, fraction: float, *, actor: str, reason: str
    ) -> DeploymentView:
        """Same arms, ``version`` shadowed at ``fraction`` (replacing its old fraction)."""
        require(model=model)
        current = await self._registry.get_deployment(model)
        shadows = [s for s in current.shadows if s.version != version]
        shadows.append(Shadow(version, fraction))
        return await self._replace_shadows(
            current, shadows, actor, reason or f"shadow {version} at {fraction:g}"
        )

    async def remove_shadow(
        self, model: str, version: str, *, actor: str, reason: str
    ) -> DeploymentView:
        require(model=model)
        current = await self._registry.get_deployment(model)
        if all(s.version != version for s in current.shadows):
            raise InvalidArgument(f"version '{version}' is not a shadow of '{model}'")
        shadows = [s for s in current.shadows if s.version != version]
        return await self._replace_shadows(
            current, shadows, actor, reason or f"remove shadow {version}"
        )

    async def _replace_shadows(
        self, current: Deployment, shadows: list[Shadow], actor: str, reason: str
    ) -> DeploymentView:
        """Same arms, new shadow list; fails if someone changed the deployment meanwhile."""
        return await self.change_deployment(
            current.model,
            SetArms(list(current.arms), shadows),
            actor=actor,
            reason=reason,
            expected_revision=current.revision,
        )
