"""Prometheus view of this process's fleet membership, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.fleet.node import FleetNode

__all__ = ["FleetCollector"]


class FleetCollector(Collector):
    def __init__(self, node: FleetNode) -> None:
        self._node = node

    def collect(self) -> Iterable[Metric]:
        node = self._node
        members = GaugeMetricFamily(
            "onnxgate_fleet_members", "Live processes in the fleet, as of the last publish."
        )
        members.add_metric([], len(node.members))
        yield members
        for name, doc, value in (
            ("onnxgate_fleet_publish_failures", "Publishing cycles that failed.", node.failures),
            ("onnxgate_fleet_predictions_shared", "Predictions written to the shared table.",
             node.shared),
            ("onnxgate_fleet_predictions_dropped",
             "Predictions not shared: outbox full, or not storable.", node.outbox.dropped),
            ("onnxgate_fleet_predictions_adopted",
             "Predictions made by other processes, read back to join a label.", node.adopted),
        ):  # fmt: skip
            counter = CounterMetricFamily(name, doc)
            counter.add_metric([], value)
            yield counter
