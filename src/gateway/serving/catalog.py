"""The gateway's live view of the registry: loaded versions and the routes over them.

Per model, one immutable :class:`ModelEntry` (routing table + the loaded versions it routes
to) is replaced copy-on-write, so a request sees a table and versions that belong together.
A version is loaded and warmed before any table routes to it; a version dropped from every
table leaves memory only after its batcher drains. A version that fails to load never gets
traffic: the model keeps its previous table, and the failure is audited.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gateway.concurrency import run_blocking
from gateway.errors import FailedPrecondition, NotFound, Unavailable
from gateway.messages import quoted
from gateway.metrics import GatewayMetrics, VersionCounters
from gateway.registry_facade import AsyncRegistry
from gateway.serving.batching import Batcher, BatchPolicy
from gateway.serving.routing import NoRoute, Route, RoutingTable, choose, shadow_targets
from gateway.serving.runtime import LoadedVersion
from gateway.settings import Settings
from registry.deployment import Deployment
from registry.errors import RegistryUnavailable

__all__ = ["Catalog", "ModelEntry", "Served"]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Served:
    """A loaded version, the batcher in front of it and its one counter set."""

    loaded: LoadedVersion
    batcher: Batcher
    counters: VersionCounters

    @property
    def version(self) -> str:
        return self.loaded.version


@dataclass(frozen=True)
class ModelEntry:
    """One model at one deployment revision: its table and every version it may route to."""

    table: RoutingTable
    served: Mapping[str, Served] = field(default_factory=dict)


class Catalog:
    """Keeps loaded versions and routing tables in step with the registry."""

    def __init__(
        self,
        registry: AsyncRegistry,
        settings: Settings,
        metrics: GatewayMetrics,
        *,
        inference_executor: concurrent.futures.Executor,
        io_executor: concurrent.futures.Executor,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        self._registry = registry
        self._settings = settings
        self._metrics = metrics
        self._inference_executor = inference_executor
        self._io = io_executor  # model loads; the registry is reached through its facade
        self.uniform = uniform
        self._entries: Mapping[str, ModelEntry] = MappingProxyType({})
        self._loaded: dict[tuple[str, str], Served] = {}
        self._failed: set[tuple[str, int]] = set()  # (model, revision) already audited
        self._sync_lock: asyncio.Lock | None = None
        self._counter = -1
        self._retiring: set[asyncio.Task[None]] = set()
        # Models taken out of serving here (Triton's repository unload) until loaded again.
        self._held_out: set[str] = set()
        self.ready = False

    # -- request path --------------------------------------------------------------------

    def route(self, model: str, version: str, routing_key: str | None) -> tuple[Served, Route]:
        """Pick the version for one request (pin > key > weight); raise NotFound/Unavailable."""
        entry = self._entries.get(model)
        if entry is None:
            raise NotFound(f"model {quoted(model)} is not known to this gateway")
        try:
            route = choose(
                entry.table, version=version or None, routing_key=routing_key, u=self.uniform()
            )
        except NoRoute:
            raise Unavailable(f"model {quoted(model)} has no version with traffic weight") from None
        served = entry.served.get(route.version)
        if served is None:
            if version:
                raise NotFound(f"model {quoted(model)} version {quoted(version)} is not loaded")
            raise Unavailable(f"model {quoted(model)} has no loaded version to serve")
        return served, route

    def shadows(self, model: str) -> tuple[LoadedVersion, ...]:
        """The shadow versions one request of ``model`` is mirrored to (each drawn with its
        configured fraction). Safe from any thread: it reads one immutable entry."""
        entry = self._entries.get(model)
        if entry is None or not entry.table.shadows:
            return ()
        targets = shadow_targets(entry.table, self.uniform())
        return tuple(entry.served[v].loaded for v in targets if v in entry.served)

    def loaded_versions(self) -> list[tuple[str, str]]:
        """(model, version) of every version the live tables route to (monitoring keeps
        state for these only, so a version dropped from every deployment is forgotten)."""
        return [(m, v) for m, entry in self._entries.items() for v in entry.served]

    def entry(self, model: str) -> ModelEntry | None:
        return self._entries.get(model)

    def entries(self) -> Mapping[str, ModelEntry]:
        return self._entries

    def find(self, model: str, version: str) -> Served:
        """A loaded version by name, or the champion when ``version`` is empty."""
        entry = self._entries.get(model)
        if entry is None:
            raise NotFound(f"model {quoted(model)} is not known to this gateway")
        if not version:
            champions = [a.version for a in entry.table.arms if a.role == "champion"]
            version = champions[0] if champions else next(iter(entry.served), "")
            if version not in entry.served:
                raise NotFound(f"model {quoted(model)} has no loaded version")
        served = entry.served.get(version)
        if served is None:
            raise NotFound(f"model {quoted(model)} version {quoted(version)} is not loaded")
        return served

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
            self._entries = MappingProxyType({m: e for m, e in entries.items() if e is not None})
            self._counter = counter
            self._retire_unused()
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
        current = self._entries.get(model)
        if current is not None and current.table.revision == dep.revision:
            return current
        try:
            served = await self._ensure_loaded(model, dep.versions())
        except Exception as exc:  # noqa: BLE001 - any load failure keeps the old table
            if (model, dep.revision) not in self._failed:
                self._failed.add((model, dep.revision))
                log.error("model %s revision %d not applied: %s", model, dep.revision, exc)
                await self._audit(
                    "deployment.load_failed",
                    model,
                    {"revision": dep.revision, "error": str(exc)},
                    "a version of this revision failed to load; previous routing kept",
                )
            if current is not None:
                return current
            return ModelEntry(RoutingTable(model=model, revision=0, arms=()), {})
        return ModelEntry(RoutingTable.from_deployment(dep), MappingProxyType(served))

    async def _audit(self, action: str, model: str, after: object, reason: str) -> None:
        await self._registry.record_audit(
            actor="gateway",
            action=action,
            subject=model,
            after=after,
            reason=reason,
        )

    async def preload(self, model: str, versions: Iterable[str]) -> None:
        """Load and warm ``versions`` before a deployment change is committed.

        Raises FailedPrecondition (and audits the refusal) if any of them fails, so that the
        change is refused rather than routed to a broken version.
        """
        wanted = frozenset(versions)  # read the iterable once: it is used twice below
        try:
            await self._ensure_loaded(model, wanted)
        except NotFound:
            raise
        except Exception as exc:
            await self._audit(
                "deployment.refused",
                model,
                {"versions": sorted(wanted), "error": str(exc)},
                "version failed to load",
            )
            raise FailedPrecondition(
                f"model {quoted(model)}: a version failed to load ({exc}); deployment unchanged"
            ) from exc

    async def _ensure_loaded(self, model: str, versions: frozenset[str]) -> dict[str, Served]:
        served: dict[str, Served] = {}
        for version in sorted(versions):
            key = (model, version)
            existing = self._loaded.get(key)
            if existing is None:
                existing = await self._load(model, version)
                self._loaded[key] = existing
            served[version] = existing
        return served

    async def _load(self, model: str, version: str) -> Served:
        from registry.errors import NotFoundError

        try:
            record = await self._registry.get_version(model, version)
        except NotFoundError as exc:
            raise NotFound(str(exc)) from exc
        try:
            artifact = await self._registry.read_artifact(model, version)
            loaded = await run_blocking(
                self._io,
                LoadedVersion.load,
                model,
                version,
                record.sha256,
                artifact,
                providers=self._settings.providers,
                intra_op_threads=self._settings.effective_intra_op_threads,
            )
        except Exception:
            self._metrics.load_failures.labels(model, version).inc()
            raise
        s = self._settings
        policy = BatchPolicy(
            enabled=s.batching and loaded.batchable,
            max_batch_size=s.max_batch_size,
            max_delay_us=s.max_delay_us,
            max_queue=s.max_queue,
            inline_below_us=s.inline_below_us,
        )
        counters = self._metrics.for_version(model, version)
        batcher = Batcher(
            loaded.run,
            policy,
            name=f"{model}:{version}",
            executor=self._inference_executor,
            observer=counters,
            cost=loaded.estimated_run_s,
            probe=loaded.sample_inputs,
        )
        log.info("loaded %s version %s (sha256 %s…)", model, version, record.sha256[:12])
        return Served(loaded, batcher, counters)

    def _retire_unused(self) -> None:
        wanted = {(m, v) for m, e in self._entries.items() for v in e.served}
        for key in [k for k in self._loaded if k not in wanted]:
            served = self._loaded.pop(key)
            task = asyncio.get_running_loop().create_task(self._retire(served))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _retire(self, served: Served) -> None:
        # Requests already routed to this version hold a reference and finish normally:
        # close() stops new submissions only after draining the queue and in-flight batches.
        await served.batcher.close()
        log.info("unloaded %s version %s", served.loaded.model, served.version)

    async def watch(
        self,
        stop: asyncio.Event,
        on_reachable: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        """Poll the registry's change counter until ``stop`` is set.

        While the registry cannot be read, the last routes keep serving; ``on_reachable``
        hears each change between reachable and not (readiness reports it), and the log
        gets one line when the registry goes and one when it is back, not one per poll.
        """
        interval = self._settings.poll_interval_s
        reachable = True
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass
            if stop.is_set():
                break
            try:
                await self.sync()
            except Exception as exc:  # a registry hiccup must not stop serving
                if not reachable:
                    continue
                reachable = False
                if isinstance(exc, RegistryUnavailable):
                    log.warning("%s; serving the last known routes until it is back", exc)
                else:
                    log.exception("registry sync failed; serving the last known routes")
                if on_reachable is not None:
                    await on_reachable(False)
                continue
            if not reachable:
                reachable = True
                log.warning("the registry is reachable again; routes follow it again")
                if on_reachable is not None:
                    await on_reachable(True)

    async def close(self) -> None:
        self.ready = False
        for served in list(self._loaded.values()):
            await served.batcher.close()
        self._loaded.clear()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    def deployment_snapshot(self) -> list[tuple[str, int, list[tuple[str, str, float]], list[str]]]:
        """For the metrics collector: (model, revision, [(version, role, weight)], loaded)."""
        return [
            (
                model,
                entry.table.revision,
                [(a.version, str(a.role), a.weight) for a in entry.table.arms],
                sorted(entry.served),
            )
            for model, entry in self._entries.items()
        ]
