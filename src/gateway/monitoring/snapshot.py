"""What the drift monitor publishes: immutable reports per version and side, read without
locks by the Prometheus collector, the monitoring API and the governor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from gateway.monitoring.drift import DriftReport
from gateway.monitoring.performance import Estimate, PerformanceSums
from gateway.monitoring.profiles import Profile
from gateway.monitoring.windows import BinnedCounts

__all__ = ["EstimatePoint", "MonitorSnapshot", "SideDrift", "VersionDrift", "feature_order"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class SideDrift:
    """Drift of one side of a version: the report, the profile it was measured against, the
    window's counts over the profile's bins (histograms) and counts since the profile was
    set (mergeable across processes)."""

    report: DriftReport
    profile: Profile
    current_counts: IntArray
    cumulative: BinnedCounts


@dataclass(frozen=True)
class EstimatePoint:
    """The label-free estimate of a version's outputs window as it stood at ``at``
    (wall-clock seconds): one point of its history."""

    at: float
    estimate: Estimate


@dataclass(frozen=True, eq=False)
class VersionDrift:
    """Latest drift of one version; a side is None until it has a profile and enough rows."""

    model: str
    version: str
    profile_source: str  # "" while no profile is known
    window_rows: int
    rows_seen: int
    inputs: SideDrift | None
    outputs: SideDrift | None
    skipped: tuple[str, ...]  # "side tensor: why" for tensors not monitored
    computed_at: float  # wall-clock seconds
    # Label-free performance of the outputs window (None: no estimator) and how it was
    # estimated, or why not (gateway.monitoring.performance).
    performance: PerformanceSums | None = None
    performance_note: str = ""
    # The last estimates, oldest first (one per refresh that saw new rows; bounded).
    performance_history: tuple[EstimatePoint, ...] = ()

    @property
    def drifted(self) -> bool:
        return any(s is not None and s.report.drifted for s in (self.inputs, self.outputs))

    def side(self, name: str) -> SideDrift | None:
        return self.inputs if name == "inputs" else self.outputs


@dataclass(frozen=True)
class MonitorSnapshot:
    """Immutable view published by the worker: model -> version -> :class:`VersionDrift`."""

    versions: Mapping[str, Mapping[str, VersionDrift]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    enqueued: int = 0
    dropped: int = 0
    sampled_out: int = 0
    queue_depth: int = 0
    errors: int = 0
    # Last reports of versions that stopped serving (e.g. rolled back): kept for people
    # asking "why", never exported as live gauges.
    retired: Mapping[tuple[str, str], VersionDrift] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def get(self, model: str, version: str) -> VersionDrift | None:
        return self.versions.get(model, {}).get(version)


def feature_order(report: DriftReport) -> npt.NDArray[np.intp]:
    """Feature indices sorted by drift: drifted first, then by adjusted p-value (NaN last),
    then by PSI, largest first (one lexsort, no Python loop)."""
    p = np.where(np.isnan(report.p_adjusted), np.inf, report.p_adjusted)
    psi = np.where(np.isnan(report.psi), -np.inf, report.psi)
    order: npt.NDArray[np.intp] = np.lexsort((-psi, p, ~report.drifted_mask))
    return order
