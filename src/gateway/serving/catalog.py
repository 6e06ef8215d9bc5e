"""The gateway's live view of the registry: routing tables kept in step with deployments.

Three parts: :mod:`~gateway.serving.tables` (per model, one immutable entry of routing table
+ loaded versions, replaced copy-on-write, so a request sees a table and versions that
belong together), :mod:`~gateway.serving.loader` (versions are loaded and warmed before any
table routes to them; a failure is audited and the model keeps its previous table) and
:mod:`~gateway.serving.watch` (the registry poll). :class:`Catalog` ties them: :meth:`sync`
reads the deployments and installs the tables they make.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping

from gateway.metrics import GatewayMetrics
from gateway.registry_facade import AsyncRegistry
from gateway.sections import ServingSettings
from gateway.serving.loader import Loader
from gateway.serving.routing import Route, RoutingTable
from gateway.serving.runtime import LoadedVersion
from gateway.serving.tables import ModelEntry, Served, Tables
from gateway.serving.watch import watch_registry
from registry.deployment import Deployment

__all__ = ["Catalog", "ModelEntry", "Served"]


class Catalog:
    """Keeps loaded versions and routing tables in step with the registry."""

    def __init__(
        self,
        registry: AsyncRegistry,
        settings: ServingSettings,
        metrics: GatewayMetrics,
        *,
        inference_executor: concurrent.futures.Executor,
        io_executor: concurrent.futures.Executor,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        self._registry = registry
        self._poll_s = settings.poll_interval_s
        self.tables = Tables(uniform)
        self.loader = Loader(
            registry,
            settings,
            metrics,
            inference_executor=inference_executor,
            io_executor=io_executor,
        )
        self._sync_lock: asyncio.Lock | None = None
        self._counter = -1
        # Models taken out of serving here (Triton's repository unload) until loaded again.
        self._held_out: set[str] = set()
        self.ready = False

    # -- request path (the tables) -------------------------------------------------------

    def route(self, model: str, version: str, routing_key: str | None) -> tuple[Served, Route]:
        """Pick the version for one request (pin > key > weight); raise NotFound/Unavailable."""
        return self.tables.route(model, version, routing_key)

    def shadows(self, model: str) -> tuple[LoadedVersion, ...]:
        """The shadow versions one request of ``model`` is mirrored to. Safe from any thread."""
        return self.tables.shadows(model)

    def loaded_versions(self) -> list[tuple[str, str]]:
        """(model, version) of every version the live tables route to."""
        return self.tables.loaded_versions()

    def entry(self, model: str) -> ModelEntry | None:
        return self.tables.entry(model)

    def entries(self) -> Mapping[str, ModelEntry]:
        return self.tables.entries()

    def find(self, model: str, version: str) -> Served:
        """A loaded version by name, or the champion when ``version`` is empty."""
        return self.tables.find(model, version)

    def deployment_snapshot(self) -> list[tuple[str, int, list[tuple[str, str, float]], list[str]]]:
        """For the metrics collector: (model, revision, [(version, role, weight)], loaded)."""
        return self.tables.deployment_snapshot()

    # -- keeping in step with the registry ---------------------------------------------------

    async def sync(self, *, force: bool = False) -> bool:
        """Read the registry and apply what changed. Returns True if anything was read."""
        if self._sync_lock is None:
            self._sync_lock = asyncio.Lock()
        async with self._sync_lock:
            counter = await self._registry.change_counter()
            if counter == self._counter and not force:
                return False
            deployments = await self._registry.deployments()
            entries: dict[str, ModelEntry] = {}
            for model, dep in deployments.items():
                if model not in self._held_out:
                    entries[model] = await self._entry_for(model, dep)
            self.tables.install(entries)
            self._counter = counter
            wanted = {(m, v) for m, e in entries.items() for v in e.served}
            self.loader.retire_all_but(wanted)
            self.ready = True
            return True

    async def hold_out(self, model: str) -> None:
        """Take ``model`` out of serving in this process (its versions unload once their
        batchers drain) until :meth:`release`; its deployment in the registry is unchanged."""
        self._held_out.add(model)
        await self.sync(force=True)

    async def release(self, model: str) -> None:
        """Serve ``model``'s registered deployment again (loaded before this returns)."""
        self._held_out.discard(model)
        await self.sync(force=True)

    async def _entry_for(self, model: str, dep: Deployment) -> ModelEntry:
        current = self.tables.entry(model)
        if current is not None and current.table.revision == dep.revision:
            return current
        try:
            served = await self.loader.ensure_loaded(model, dep.versions())
        except Exception as exc:  # noqa: BLE001 - any load failure keeps the old table
            await self.loader.revision_failed(model, dep.revision, exc)
            if current is not None:
                return current
            return ModelEntry(RoutingTable(model=model, revision=0, arms=()), {})
        return ModelEntry(RoutingTable.from_deployment(dep), served)

    async def preload(self, model: str, versions: Iterable[str]) -> None:
        """Load and warm ``versions`` before a deployment change is committed (raises
        FailedPrecondition, audited, if one fails)."""
        await self.loader.preload(model, versions)

    async def watch(
        self,
        stop: asyncio.Event,
        on_reachable: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        """Poll the registry's change counter until ``stop`` is set (the last routes keep
        serving while it cannot be read; ``on_reachable`` hears each change)."""
        await watch_registry(self.sync, self._poll_s, stop, on_reachable)

    async def close(self) -> None:
        self.ready = False
        await self.loader.close()
