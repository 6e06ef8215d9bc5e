"""Everything monitoring adds to a gateway, built from :class:`Settings` in one call: the
drift monitor (off with ``monitoring = false``), the shadow scorer, the data-contract guard
and their Prometheus collectors (so the composition root stays one block, not thirty lines)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.metrics import GatewayMetrics
from gateway.monitoring.collector import MonitoringCollector
from gateway.monitoring.contract_guard import ContractCollector, ContractGuard
from gateway.monitoring.monitor import Monitor, MonitorConfig
from gateway.monitoring.performance_metrics import PerformanceCollector
from gateway.monitoring.shadow import Record, ShadowScorer
from gateway.serving.catalog import Catalog
from gateway.settings import Settings
from gateway.traces import Tracing
from registry import Registry

__all__ = ["Watching", "build_watching"]


@dataclass
class Watching:
    monitor: Monitor | None
    shadow: ShadowScorer
    contracts: ContractGuard


def build_watching(
    settings: Settings,
    registry: Registry,
    catalog: Catalog,
    metrics: GatewayMetrics,
    tracing: Tracing | None = None,
    shadow_log: Record | None = None,
) -> Watching:
    """The monitor, shadow scorer and contract guard, their collectors registered;
    ``shadow_log`` (the prediction log) gets each shadow answer as a record."""
    versions = catalog.loaded_versions
    monitor = (
        Monitor(MonitorConfig.from_settings(settings.monitor), registry, versions=versions)
        if settings.monitoring
        else None
    )
    shadow = ShadowScorer(
        catalog.shadows,
        queue_size=settings.shadow_queue,
        threads=settings.shadow_threads,
        feed=None if monitor is None else monitor.offer,
        record=shadow_log,
        versions=versions,
        tracing=tracing,
    )
    metrics.add_collector(
        MonitoringCollector(
            None if monitor is None else monitor.snapshot,
            shadow.snapshot,
            top_k=settings.monitor_top_k,
        )
    )
    if monitor is not None:
        metrics.add_collector(PerformanceCollector(monitor.snapshot))
    # Data contracts: the profile is read on the guard's own thread, never on the loop.
    contracts = ContractGuard(registry.get_profile, registry.contracts.get, registry.change_counter)
    metrics.add_collector(ContractCollector(contracts))
    return Watching(monitor, shadow, contracts)
