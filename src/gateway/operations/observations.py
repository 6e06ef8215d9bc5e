"""Reading what the gateway watches: drift reports and shadow comparisons.

Served requests reach the monitor through the tap queue: a refreshed drift report first
waits (briefly) for what is already queued there, so it covers every answered call; the
recomputation itself is blocking work and runs on the I/O executor.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gateway.concurrency import run_blocking
from gateway.errors import FailedPrecondition, NotFound
from gateway.monitoring.monitor import Monitor, VersionDrift
from gateway.monitoring.shadow import ShadowReport, ShadowScorer
from gateway.operations.deployments import require

__all__ = ["DriftAnswer", "Observations", "ShadowAnswer"]


@dataclass(frozen=True)
class DriftAnswer:
    versions: Sequence[VersionDrift]
    enqueued: int
    dropped: int


@dataclass(frozen=True)
class ShadowAnswer:
    comparisons: Sequence[ShadowReport]
    dropped: int
    pending: int


class Observations:
    """Drift and shadow reports of one gateway."""

    def __init__(
        self,
        monitor: Monitor | None,
        shadow: ShadowScorer,
        *,
        io_executor: concurrent.futures.Executor,
        settle: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._monitor = monitor
        self._shadow = shadow
        self._io = io_executor
        self._settle = settle

    async def drift(self, model: str, version: str = "", *, refresh: bool = False) -> DriftAnswer:
        """Every served version's report (sorted), or one version's (served or retired)."""
        require(model=model)
        if self._monitor is None:
            raise FailedPrecondition("drift monitoring is off on this gateway (monitoring=false)")
        if refresh:
            if self._settle is not None:
                await self._settle()
            snap = await run_blocking(self._io, self._monitor.refresh)
        else:
            snap = self._monitor.snapshot()
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
        return DriftAnswer(chosen, snap.enqueued, snap.dropped)

    def shadows(self, model: str) -> ShadowAnswer:
        require(model=model)
        snap = self._shadow.snapshot()
        return ShadowAnswer(snap.for_model(model), snap.dropped.get(model, 0), snap.pending)
