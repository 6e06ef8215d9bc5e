"""Everything the governor adds to a gateway, built in one call: its evidence sources (this
process's, or with a fleet every member's through the fleet node), the loop that moves
traffic (started by :class:`gateway.server.Gateway`) and its Prometheus metrics.

Apart from :mod:`gateway.governor` because the fleet node sits a room above it.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

from gateway.explain.assembly import Explanations
from gateway.fleet import FleetCollector, FleetNode
from gateway.governor.collector import GovernorMetrics
from gateway.governor.feedback import FeedbackStore
from gateway.governor.loop import Governor, default_holder
from gateway.governor.sources import (
    ContractEvidence,
    EvidenceSource,
    FeedbackEvidence,
    MetricsEvidence,
    MonitorEvidence,
)
from gateway.metrics import GatewayMetrics
from gateway.monitoring.assembly import Watching
from gateway.operations import Deployments
from gateway.registry_facade import AsyncRegistry
from gateway.settings import Settings
from gateway.traces import Tracing
from registry import Registry

__all__ = ["Governing", "build_governing"]


@dataclass
class Governing:
    governor: Governor
    fleet: FleetNode | None
    contract_source: ContractEvidence


def build_governing(
    settings: Settings,
    registry: Registry,
    registry_io: AsyncRegistry,
    metrics: GatewayMetrics,
    *,
    deployments: Deployments,
    feedback: FeedbackStore,
    watching: Watching,
    explanations: Explanations,
    io_executor: concurrent.futures.Executor,
    tracing: Tracing | None,
) -> Governing:
    """The governor and its sources; with ``settings.fleet_on`` the fleet node, whose
    collector is registered, publishes this process's evidence and judges the fleet's."""
    governor_metrics = GovernorMetrics(metrics)
    drift = None if watching.monitor is None else watching.monitor.snapshot
    contract_source = ContractEvidence(watching.contracts.tallies)
    local: list[EvidenceSource] = [
        MetricsEvidence(metrics),
        FeedbackEvidence(feedback),
        MonitorEvidence(drift, watching.shadow.snapshot),
        contract_source,
    ]
    holder = default_holder()
    # With a fleet the governor judges every process's published evidence (gateway.fleet).
    fleet = (
        _fleet(settings, registry, metrics, feedback, holder, local) if settings.fleet_on else None
    )
    governor = Governor(
        registry_io,
        deployments,
        feedback,
        # Importance drift is judged on this process's own sample, fleet or not.
        [*(local if fleet is None else [fleet]), *explanations.evidence()],
        io_executor=io_executor,
        holder=holder,
        tick_s=settings.governor_interval_s,
        on_decision=governor_metrics.on_decision,
        windows=fleet,
        tracing=tracing,
    )
    governor_metrics.attach(governor, feedback)
    governor.on_contracts = watching.contracts.configure
    return Governing(governor, fleet, contract_source)


def _fleet(
    s: Settings,
    registry: Registry,
    metrics: GatewayMetrics,
    feedback: FeedbackStore,
    holder: str,
    local: list[EvidenceSource],
) -> FleetNode:
    node = FleetNode(registry, local, feedback, metrics, process=holder,
                     publish_s=s.fleet_publish_s, lease_s=s.fleet_lease_s,
                     outbox=s.fleet_outbox, ttl_s=s.feedback_ttl_s)  # fmt: skip
    metrics.add_collector(FleetCollector(node))
    return node
