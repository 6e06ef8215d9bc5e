"""Drift monitoring of every serving version, off the request path.

Request path (event loop): :meth:`Monitor.observe` is an ``InferObserver``. It keeps a
request with probability ``sample`` and appends a *reference* to the request's input arrays
(numpy views over the request bytes) and its outputs to a bounded deque: no copy, no numpy
work, one ``len`` and one ``append``. A full queue drops the request and counts it
(``dropped``); monitoring never slows or fails a call.

Worker (one thread): drains the queue in bulk, groups requests by version and, per version
and side (inputs, outputs), stacks them into one float64 matrix (see
:mod:`gateway.monitoring.layout` for which tensors are monitored and which are skipped) appended to
a
count-based :class:`~gateway.monitoring.windows.CountWindow` and to
:class:`~gateway.monitoring.windows.BinnedCounts` over the reference bins. Every ``interval_s``
(and on
:meth:`Monitor.refresh`) it computes a :class:`~gateway.monitoring.drift.DriftReport` per version
and
side and publishes an immutable :class:`MonitorSnapshot`, which the Prometheus collector,
the monitoring API and the governor read without locks.

Reference profiles come from the registry (registered with a reference sample). A version
without one gets it from its first full window in production; that profile is written to
the registry (source ``first_window``, audited) unless one was registered meanwhile.

NOTE: keeping references rather than copies is safe because request tensors are read-only
views over immutable protobuf bytes and outputs are fresh arrays nobody mutates; the bounded
queue bounds the memory they keep alive.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gateway.domain import InferRequest, Tensors
from gateway.monitoring.drift import Correction, DriftReport, compute_drift
from gateway.monitoring.layout import FeatureLayout
from gateway.monitoring.profiles import Profile, as_float_matrix, bin_counts, build_profile
from gateway.monitoring.reference import VersionProfiles, categorical_indices
from gateway.monitoring.windows import BinnedCounts, CountWindow
from gateway.serving.catalog import Catalog, Served
from gateway.serving.routing import Route
from gateway.settings import Settings
from registry.registry import Registry
from registry.signature import Signature

__all__ = [
    "FIRST_WINDOW",
    "Monitor",
    "MonitorConfig",
    "MonitorSnapshot",
    "SideDrift",
    "VersionDrift",
    "feature_order",
    "served_versions",
]

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FIRST_WINDOW = "first_window"
ACTOR = "gateway:monitor"
SIDES = ("inputs", "outputs")
REGISTRY_RETRY_S = 5.0
RETIRED_KEPT = 64  # last reports of versions no longer served, oldest dropped first
BIN_EVERY_ROWS = 4096


class MonitoredVersion(Protocol):
    """What the monitor needs of a loaded version (``runtime.LoadedVersion`` has it)."""

    model: str
    version: str
    signature: Signature


Item = tuple[MonitoredVersion, Tensors, Tensors]


@dataclass(frozen=True)
class MonitorConfig:
    sample: float = 1.0
    queue_size: int = 1024
    window: int = 10_000
    min_rows: int = 1_000
    interval_s: float = 10.0
    alpha: float = 0.01
    correction: Correction = "bh"
    # NOTE: the worker sleeps this long after every drain, busy or not: draining in
    # batches of ~rate * poll_s requests amortises its per-batch numpy calls, and a worker
    # that re-drains at once under load would contend for the GIL with the event loop on
    # every request. The queue must hold rate * poll_s requests (1024: 50k requests/s).
    poll_s: float = 0.02

    @classmethod
    def from_settings(cls, s: Settings) -> MonitorConfig:
        correction: Correction = "bh"
        if s.monitor_correction in ("bonferroni", "none"):
            correction = "bonferroni" if s.monitor_correction == "bonferroni" else "none"
        return cls(
            sample=s.monitor_sample,
            queue_size=s.monitor_queue,
            window=s.monitor_window,
            min_rows=s.monitor_min_rows,
            interval_s=s.monitor_interval_s,
            alpha=s.monitor_alpha,
            correction=correction,
        )


@dataclass(frozen=True, eq=False)
class SideDrift:
    """Drift of one side of a version: the report, the profile it was measured against, the
    window's counts over the profile's bins (histograms) and counts since the profile was
    set (mergeable across processes)."""

    report: DriftReport
    profile: Profile
    current_counts: IntArray
    cumulative: BinnedCounts


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


class _Side:
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


class _VersionState:
    def __init__(self, version: MonitoredVersion, capacity: int) -> None:
        self.model = version.model
        self.version = version.version
        self.inputs = _Side(FeatureLayout.from_specs(version.signature.inputs), capacity)
        self.outputs = _Side(FeatureLayout.from_specs(version.signature.outputs), capacity)
        self.metadata: Mapping[str, str] = {}
        self.source = ""
        self.loaded = False  # registry profile looked up successfully
        self.retry_at = 0.0  # monotonic time of the next registry lookup after a failure
        self.rows_seen = 0
        self.skipped = tuple(
            f"{side} {name}: {why}"
            for side, layout in (("inputs", self.inputs.layout), ("outputs", self.outputs.layout))
            for name, why in layout.skipped
        )

    def sides(self) -> tuple[_Side, _Side]:
        return self.inputs, self.outputs


class Monitor:
    """Per-version windows and drift reports, fed by a bounded queue (see module docs)."""

    def __init__(
        self,
        config: MonitorConfig,
        registry: Registry,
        *,
        versions: Callable[[], Iterable[tuple[str, str]]] | None = None,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._registry = registry
        self._versions = versions
        self._uniform = uniform
        self._queue: deque[Item] = deque()
        # Written on the event loop thread only (observe), so plain ints are exact.
        self.enqueued = 0
        self.dropped = 0
        self.sampled_out = 0
        # Other threads (shadow scoring) offer under a lock of their own.
        self._offer_lock = threading.Lock()
        self._offered = 0
        self._offer_dropped = 0
        self._lock = threading.Lock()  # the worker's state: windows, profiles, snapshot
        self._states: dict[tuple[str, str], _VersionState] = {}
        self._retired: dict[tuple[str, str], VersionDrift] = {}
        self._errors = 0
        self._snapshot = MonitorSnapshot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- producers ------------------------------------------------------------------------

    def observe(self, req: InferRequest, served: Served, route: Route, outputs: Tensors) -> None:
        """InferObserver for the event loop: enqueue references, or count a drop."""
        if self.config.sample < 1.0 and self._uniform() >= self.config.sample:
            self.sampled_out += 1
            return
        if len(self._queue) >= self.config.queue_size:
            self.dropped += 1
            return
        self._queue.append((served.loaded, req.inputs, outputs))
        self.enqueued += 1

    def offer(self, version: MonitoredVersion, inputs: Tensors, outputs: Tensors) -> None:
        """Like :meth:`observe`, from any thread (shadow versions' outputs)."""
        with self._offer_lock:
            if self.config.sample < 1.0 and self._uniform() >= self.config.sample:
                return
            if len(self._queue) >= self.config.queue_size:
                self._offer_dropped += 1
                return
            self._queue.append((version, inputs, outputs))
            self._offered += 1

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="onnxgate-monitor", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        next_report = time.monotonic() + self.config.interval_s
        while not self._stop.is_set():
            with self._lock:
                self._drain()
            if time.monotonic() >= next_report:
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - monitoring must outlive its bugs
                    self._errors += 1
                    log.exception("drift refresh failed")
                next_report = time.monotonic() + self.config.interval_s
            self._stop.wait(self.config.poll_s)

    # -- reading ------------------------------------------------------------------------------

    def snapshot(self) -> MonitorSnapshot:
        """The last published reports with the queue counters as of now (lock-free: the
        reports are one attribute read; counters are plain ints)."""
        return dataclasses.replace(
            self._snapshot,
            enqueued=self.enqueued + self._offered,
            dropped=self.dropped + self._offer_dropped,
            sampled_out=self.sampled_out,
            queue_depth=len(self._queue),
        )

    def refresh(self) -> MonitorSnapshot:
        """Ingest everything queued, recompute drift where rows arrived, publish, return."""
        with self._lock:
            self._drain()
            self._prune()
            versions: dict[str, dict[str, VersionDrift]] = {}
            for st in self._states.values():
                versions.setdefault(st.model, {})[st.version] = self._report(st)
            snap = MonitorSnapshot(
                versions=MappingProxyType({m: MappingProxyType(v) for m, v in versions.items()}),
                enqueued=self.enqueued + self._offered,
                dropped=self.dropped + self._offer_dropped,
                sampled_out=self.sampled_out,
                queue_depth=len(self._queue),
                errors=self._errors,
                retired=MappingProxyType(dict(self._retired)),
            )
            self._snapshot = snap
        return snap

    # -- worker internals (self._lock held) ----------------------------------------------------

    def _drain(self) -> int:
        queue = self._queue
        items = [queue.popleft() for _ in range(len(queue))]  # pops only under self._lock
        groups: dict[tuple[str, str], list[Item]] = {}
        for item in items:
            groups.setdefault((item[0].model, item[0].version), []).append(item)
        for key, group in groups.items():
            try:
                self._ingest(key, group)
            except Exception:  # noqa: BLE001 - one bad batch must not stop monitoring
                self._errors += 1
                if self._errors <= 10:
                    log.exception("monitoring %s:%s failed on a batch", *key)
        return len(items)

    def _ingest(self, key: tuple[str, str], group: list[Item]) -> None:
        st = self._states.get(key)
        if st is None:
            st = _VersionState(group[0][0], self.config.window)
            self._states[key] = st
        if not st.loaded and time.monotonic() >= st.retry_at:
            self._load_profile(st)
        x_in = st.inputs.layout.stack([item[1] for item in group])
        x_out = st.outputs.layout.stack([item[2] for item in group])
        st.rows_seen += max(x_in.shape[0], x_out.shape[0])
        st.inputs.append(x_in)
        st.outputs.append(x_out)
        self._profile_from_window(st)

    def _load_profile(self, st: _VersionState) -> None:
        try:
            stored = self._registry.get_profile(st.model, st.version)
            st.metadata = dict(self._registry.get_version(st.model, st.version).metadata)
        except Exception as exc:  # noqa: BLE001 - retried a little later
            log.warning("no profile for %s:%s yet (registry: %s)", st.model, st.version, exc)
            st.retry_at = time.monotonic() + REGISTRY_RETRY_S
            return
        st.loaded = True
        if stored is not None:
            self._adopt(st, *stored)

    def _adopt(self, st: _VersionState, doc: Mapping[str, object], source: str) -> None:
        try:
            profiles = VersionProfiles.from_doc(doc)
            st.inputs.set_profile(profiles.inputs)
            st.outputs.set_profile(profiles.outputs)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("profile of %s:%s is unusable (%s); ignoring it", st.model, st.version, exc)
            return
        st.source = source

    def _profile_from_window(self, st: _VersionState) -> None:
        """Take a missing side's profile from its first full window and record it."""
        if not st.loaded:  # the registry may hold one we have not read yet
            return
        built = False
        for side, is_inputs in ((st.inputs, True), (st.outputs, False)):
            w = side.window
            if side.profile is not None or w is None or w.total_seen < w.capacity:
                continue
            cat = categorical_indices(side.layout.names, st.metadata) if is_inputs else None
            side.set_profile(build_profile(w.view(), side.layout.names, categorical=cat))
            built = True
        if not built:
            return
        profiles = VersionProfiles(st.inputs.profile, st.outputs.profile)
        source = FIRST_WINDOW if not st.source else f"{st.source}+{FIRST_WINDOW}"[:32]
        try:
            stored = self._registry.set_profile(
                st.model,
                st.version,
                profiles.to_doc(),
                source=source,
                actor=ACTOR,
                only_if_absent=not st.source,
                summary={"profiles": profiles.summary(), "window_rows": self.config.window},
            )
            if not stored:  # registered meanwhile: that one wins over ours
                existing = self._registry.get_profile(st.model, st.version)
                if existing is not None:
                    self._adopt(st, *existing)
                    return
        except Exception as exc:  # noqa: BLE001 - keep monitoring with the in-memory profile
            log.error("could not record %s:%s's profile: %s", st.model, st.version, exc)
        st.source = source
        log.info("%s:%s: reference profile taken from its first window", st.model, st.version)

    def _prune(self) -> None:
        if self._versions is None:
            return
        active = set(self._versions())
        for key in [k for k in self._states if k not in active]:
            del self._states[key]
            last = self._snapshot.get(*key)
            if last is not None:
                self._retired.pop(key, None)
                self._retired[key] = last
                while len(self._retired) > RETIRED_KEPT:
                    del self._retired[next(iter(self._retired))]
        for key in [k for k in self._retired if k in active]:
            del self._retired[key]  # serving again: live state takes over

    def _side_report(self, side: _Side) -> SideDrift | None:
        w, profile = side.window, side.profile
        if w is None or profile is None or side.counts is None:
            return None
        if w.count < min(self.config.min_rows, w.capacity):
            return None
        if side.last is not None and side.last_seen == w.total_seen:
            return side.last  # nothing new since the last report
        side.flush_counts()
        x = as_float_matrix(w.view())
        report = compute_drift(
            profile, x, alpha=self.config.alpha, correction=self.config.correction
        )
        current, _ = bin_counts(x, profile.edges)
        cumulative = side.counts.merge(BinnedCounts.from_profile(profile))  # a copy
        side.last = SideDrift(report, profile, current, cumulative)
        side.last_seen = w.total_seen
        return side.last

    def _report(self, st: _VersionState) -> VersionDrift:
        windows = [s.window.count for s in st.sides() if s.window is not None]
        return VersionDrift(
            model=st.model,
            version=st.version,
            profile_source=st.source,
            window_rows=max(windows, default=0),
            rows_seen=st.rows_seen,
            inputs=self._side_report(st.inputs),
            outputs=self._side_report(st.outputs),
            skipped=st.skipped,
            computed_at=time.time(),
        )


def feature_order(report: DriftReport) -> npt.NDArray[np.intp]:
    """Feature indices sorted by drift: drifted first, then by adjusted p-value (NaN last),
    then by PSI, largest first (one lexsort, no Python loop)."""
    p = np.where(np.isnan(report.p_adjusted), np.inf, report.p_adjusted)
    psi = np.where(np.isnan(report.psi), -np.inf, report.psi)
    order: npt.NDArray[np.intp] = np.lexsort((-psi, p, ~report.drifted_mask))
    return order


def served_versions(catalog: Catalog) -> Callable[[], list[tuple[str, str]]]:
    """(model, version) of everything the catalog has loaded: what monitoring keeps state
    for (a version dropped from every deployment is forgotten, bounding labels)."""

    def versions() -> list[tuple[str, str]]:
        return [(m, v) for m, entry in catalog.entries().items() for v in entry.served]

    return versions
