"""The drift monitor's working state per version: a window, binned counts and a profile
per side. Touched by the monitor's worker thread only (under its lock)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gateway.monitoring.layout import FeatureLayout
from gateway.monitoring.performance import Estimator, PerformanceSums
from gateway.monitoring.profiles import Profile
from gateway.monitoring.snapshot import EstimatePoint, SideDrift
from gateway.monitoring.windows import BinnedCounts, CountWindow
from registry.signature import Signature

__all__ = ["BIN_EVERY_ROWS", "ESTIMATE_HISTORY", "MonitoredVersion", "SideState", "VersionState"]

BIN_EVERY_ROWS = 4096
ESTIMATE_HISTORY = 120  # estimates kept per version (the console's plot over time)


class MonitoredVersion(Protocol):
    """What the monitor needs of a version: ``runtime.LoadedVersion`` and the taps'
    ``TapRecord`` both have it."""

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def signature(self) -> Signature: ...


class SideState:
    """Window, bins and profile of one side of one version; touched by the worker only."""

    def __init__(self, layout: FeatureLayout, capacity: int) -> None:
        self.layout = layout
        self.window = CountWindow(capacity, layout.n_features) if layout.n_features else None
        self.profile: Profile | None = None
        self.counts: BinnedCounts | None = None
        self._unbinned: list[npt.NDArray[np.float64]] = []  # rows not yet in ``counts``
        self._unbinned_rows = 0
        self.last: SideDrift | None = None
        self.last_seen = -1  # window.total_seen when ``last`` was computed

    def set_profile(self, profile: Profile | None) -> None:
        if profile is not None and profile.n_features != self.layout.n_features:
            raise ValueError(
                f"profile has {profile.n_features} features, traffic has {self.layout.n_features}"
            )
        self.profile = profile
        self.counts = None if profile is None else BinnedCounts.from_profile(profile)
        self._unbinned, self._unbinned_rows = [], 0
        self.last, self.last_seen = None, -1

    def append(self, x: npt.NDArray[np.float64]) -> None:
        if self.window is None or not x.shape[0]:
            return
        self.window.append(x)
        if self.counts is not None:
            # Binning sorts every column: done per few thousand rows, not per drain.
            self._unbinned.append(x)
            self._unbinned_rows += x.shape[0]
            if self._unbinned_rows >= BIN_EVERY_ROWS:
                self.flush_counts()

    def flush_counts(self) -> None:
        if self.counts is not None and self._unbinned:
            self.counts.add(np.concatenate(self._unbinned))
        self._unbinned, self._unbinned_rows = [], 0


class VersionState:
    def __init__(self, version: MonitoredVersion, capacity: int) -> None:
        self.model = version.model
        self.version = version.version
        self.inputs = SideState(FeatureLayout.from_specs(version.signature.inputs), capacity)
        self.outputs = SideState(FeatureLayout.from_specs(version.signature.outputs), capacity)
        self.metadata: Mapping[str, str] = {}
        self.source = ""
        self.loaded = False  # registry profile looked up successfully
        self.retry_at = 0.0  # monotonic time of the next registry lookup after a failure
        self.rows_seen = 0
        self.estimator: Estimator | None = None  # label-free performance, from the profile
        self.estimator_note = ""  # how it calibrates, or why there is none
        self.performance_doc: Mapping[str, object] | None = None  # as stored, kept on rewrite
        self.estimates: deque[EstimatePoint] = deque(maxlen=ESTIMATE_HISTORY)
        self._performance: PerformanceSums | None = None
        self._performance_seen = -1  # outputs.window.total_seen when it was computed
        self.skipped = tuple(
            f"{side} {name}: {why}"
            for side, layout in (("inputs", self.inputs.layout), ("outputs", self.outputs.layout))
            for name, why in layout.skipped
        )

    def sides(self) -> tuple[SideState, SideState]:
        return self.inputs, self.outputs

    def set_estimator(self, estimator: Estimator | None) -> None:
        self.estimator, self._performance, self._performance_seen = estimator, None, -1

    def performance(self, now: float) -> PerformanceSums | None:
        """The outputs window's estimate sums; recomputed only when rows arrived since the
        last time, and each recomputation is a point of :attr:`estimates` (at ``now``)."""
        w = self.outputs.window
        if self.estimator is None or w is None or not w.count:
            return None
        if self._performance_seen != w.total_seen:
            self._performance = self.estimator.sums(w.view())
            self._performance_seen = w.total_seen
            self.estimates.append(EstimatePoint(now, self._performance.estimate()))
        return self._performance
