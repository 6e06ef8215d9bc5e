"""N gateway processes, on any number of machines, behaving as one gateway: each publishes
its evidence and predictions to the registry database, the governor leader judges the
merge, windows outlive the leader, and a label joins wherever it lands.
See :mod:`gateway.fleet.node` (the member) and :mod:`gateway.fleet.payload` (the merge)."""

from gateway.fleet.collector import FleetCollector
from gateway.fleet.node import FleetNode, Outbox

__all__ = ["FleetCollector", "FleetNode", "Outbox"]
