"""Triton's repository load / unload, with onnxgate's meaning, for both faces.

``load`` serves the model's registered deployment (its versions loaded and warmed before
the call returns); ``unload`` takes the model out of serving in this process: requests get
NOT_FOUND and its versions leave memory once their queues drain. Neither changes the
deployment in the registry (which stays the one place traffic is decided); both are
recorded in the audit log as deployment changes, by the principal that asked.
"""

from __future__ import annotations

from gateway.errors import FailedPrecondition, NotFound
from gateway.messages import quoted
from gateway.registry_facade import AsyncRegistry
from gateway.serving.catalog import Catalog
from registry.errors import NotFoundError

__all__ = ["RepositoryControl"]


class RepositoryControl:
    """Load and unload models on this gateway; see the module docstring."""

    def __init__(self, registry: AsyncRegistry, catalog: Catalog) -> None:
        self._registry = registry
        self._catalog = catalog

    async def load(self, model: str, *, actor: str) -> None:
        """Serve ``model``'s registered deployment; FailedPrecondition if it cannot load."""
        await self._known(model)
        await self._catalog.release(model)
        entry = self._catalog.entry(model)
        if entry is None or not entry.served:
            raise FailedPrecondition(
                f"model {quoted(model)}: its deployment did not load (see the audit log)"
            )
        await self._audit("deployment.load", model, sorted(entry.served), actor)

    async def unload(self, model: str, *, actor: str) -> None:
        """Take ``model`` out of serving here; its registry deployment is kept."""
        await self._known(model)
        before = self._catalog.entry(model)
        await self._catalog.hold_out(model)
        versions = [] if before is None else sorted(before.served)
        await self._audit("deployment.unload", model, versions, actor)

    async def _known(self, model: str) -> None:
        if not model:
            raise NotFound("model name is required")
        try:
            await self._registry.get_deployment(model)
        except NotFoundError as exc:
            raise NotFound(f"model {quoted(model)} has no deployment in the registry") from exc

    async def _audit(self, action: str, model: str, versions: list[str], actor: str) -> None:
        await self._registry.record_audit(
            actor=actor,
            action=action,
            subject=model,
            after={"versions": versions},
            reason="repository " + action.rpartition(".")[2] + " (Triton repository API)",
        )
