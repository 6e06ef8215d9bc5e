"""Reading what the gateway watches: drift reports and shadow comparisons.

Served requests reach the monitor through the tap queue: a refreshed drift report first
waits (briefly) for what is already queued there, so it covers every answered call; the
recomputation itself is blocking work and runs on the I/O executor.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.concurrency import run_blocking
from gateway.errors import FailedPrecondition, NotFound
from gateway.governor.evidence import ContractCounts, Evidence, Quality
from gateway.governor.realised import RealisedPoint
from gateway.monitoring.monitor import Monitor, MonitorSnapshot, VersionDrift
from gateway.monitoring.shadow import ShadowReport, ShadowScorer
from gateway.operations.deployments import require

__all__ = ["DriftAnswer", "Observations", "ShadowAnswer", "VersionPerformance"]


@dataclass(frozen=True)
class DriftAnswer:
    versions: Sequence[VersionDrift]
    enqueued: int
    dropped: int
    # per version: rows checked against its data contract (fleet-summed when ``fleet``)
    contracts: Mapping[str, ContractCounts] = field(default_factory=dict)
    contract_mode: str = "off"
    fleet: bool = False


# (model, versions) -> evidence per version: where contract counts are read (the fleet's
# merged evidence with a fleet, else this process's)
EvidenceLookup = Callable[[str, Collection[str]], Mapping[str, Evidence]]


@dataclass(frozen=True)
class VersionPerformance:
    """One served version's window (its CBPE estimate), role and delayed-label quality."""

    drift: VersionDrift
    role: str
    quality: Quality | None
    realised: Sequence[RealisedPoint] = ()  # realised accuracy by prediction time


@dataclass(frozen=True)
class ShadowAnswer:
    comparisons: Sequence[ShadowReport]
    dropped: int
    pending: int


class Observations:
    """Drift, shadow and label-free performance reports of one gateway."""

    def __init__(
        self,
        monitor: Monitor | None,
        shadow: ShadowScorer,
        *,
        io_executor: concurrent.futures.Executor,
        settle: Callable[[], Awaitable[object]] | None = None,
        role_of: Callable[[str, str], str] | None = None,
        quality: Callable[[str], Mapping[str, Quality]] | None = None,
        contracts: EvidenceLookup | None = None,
        contract_mode: Callable[[str], str] | None = None,
        fleet: bool = False,
        realised: Callable[[str], Mapping[str, Sequence[RealisedPoint]]] | None = None,
    ) -> None:
        self._contracts = contracts
        self._contract_mode = contract_mode
        self._fleet = fleet
        self._monitor = monitor
        self._role_of = role_of  # (model, version) -> its role in the routing table
        self._quality = quality  # model -> version -> delayed-label quality (feedback)
        self._realised = realised  # model -> version -> realised accuracy over time
        self._shadow = shadow
        self._io = io_executor
        self._settle = settle

    async def drift(self, model: str, version: str = "", *, refresh: bool = False) -> DriftAnswer:
        """Every served version's report (sorted), or one version's (served or retired)."""
        snap = await self._snapshot(model, refresh)
        versions = snap.versions.get(model, {})
        if version:
            # A version no longer served (rolled back, retired) answers with its last report.
            found = versions.get(version) or snap.retired.get((model, version))
            if found is None:
                raise NotFound(
                    f"model '{model}' version '{version}' has no monitored "
                    "traffic on this gateway yet"
                )
            chosen = [found]
        else:
            if not versions:
                raise NotFound(f"model '{model}' has no monitored traffic yet")
            chosen = [versions[v] for v in sorted(versions)]
        counts: dict[str, ContractCounts] = {}
        if self._contracts is not None:
            known = self._contracts(model, [v.version for v in chosen])
            counts = {v: c for v, ev in known.items() if (c := ev.contracts) and c.rows}
        mode = "off" if self._contract_mode is None else self._contract_mode(model)
        return DriftAnswer(chosen, snap.enqueued, snap.dropped, counts, mode, self._fleet)

    async def performance(
        self, model: str, *, refresh: bool = False, retired: bool = False
    ) -> list[VersionPerformance]:
        """Every served version's label-free estimate (sorted), beside realised quality;
        with ``retired``, also versions no longer served (their last window)."""
        snap = await self._snapshot(model, refresh)
        versions = dict(snap.versions.get(model, {}))
        if retired:
            for (m, version), vd in snap.retired.items():
                if m == model:
                    versions.setdefault(version, vd)
        if not versions:
            raise NotFound(f"model '{model}' has no monitored traffic yet")
        quality = {} if self._quality is None else self._quality(model)
        realised = {} if self._realised is None else self._realised(model)
        return [
            VersionPerformance(
                versions[name],
                "" if self._role_of is None else self._role_of(model, name),
                quality.get(name),
                tuple(realised.get(name, ())),
            )
            for name in sorted(versions)
        ]

    async def _snapshot(self, model: str, refresh: bool) -> MonitorSnapshot:
        require(model=model)
        if self._monitor is None:
            raise FailedPrecondition("drift monitoring is off on this gateway (monitoring=false)")
        if refresh:
            if self._settle is not None:
                await self._settle()
            return await run_blocking(self._io, self._monitor.refresh)
        return self._monitor.snapshot()

    def shadows(self, model: str) -> ShadowAnswer:
        require(model=model)
        snap = self._shadow.snapshot()
        return ShadowAnswer(snap.for_model(model), snap.dropped.get(model, 0), snap.pending)
