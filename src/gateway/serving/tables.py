"""The live routing tables: per model, one immutable entry (routing table + the loaded
versions it routes to), replaced whole, so a request sees a table and versions that belong
together. Every read here is safe from any thread: it reads one immutable mapping.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gateway.errors import NotFound, Unavailable
from gateway.messages import quoted
from gateway.metrics import VersionCounters
from gateway.serving.batching import Batcher
from gateway.serving.routing import NoRoute, Route, RoutingTable, choose, shadow_targets
from gateway.serving.runtime import LoadedVersion

__all__ = ["ModelEntry", "Served", "Tables"]


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


class Tables:
    """Every model's current :class:`ModelEntry`; :meth:`install` swaps them all at once."""

    def __init__(self, uniform: Callable[[], float] = random.random) -> None:
        self.uniform = uniform
        self._entries: Mapping[str, ModelEntry] = MappingProxyType({})

    def install(self, entries: Mapping[str, ModelEntry]) -> None:
        self._entries = MappingProxyType(dict(entries))

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
        configured fraction)."""
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
