"""Drift monitoring of every serving version, off the request path.

Tap (the data plane's tap thread): :meth:`Monitor.observe` takes one
:class:`~gateway.serving.taps.TapRecord`. It keeps a request with probability ``sample``
and appends a *reference* to the request's input arrays (numpy views over the request
bytes) and its outputs to a bounded deque: no copy, no numpy work, one ``len`` and one
``append``. A full queue drops the request and counts it (``dropped``); monitoring never
slows or fails a call.

Worker (one thread; the queue and the thread are a :class:`~gateway.sidework.SideWork`
whose cycle also recomputes drift): drains the queue in bulk, groups requests by version
and, per version and side (inputs, outputs), stacks them into one float64 matrix (see
:mod:`gateway.monitoring.layout` for which tensors are monitored and which are skipped)
appended to that side's count-based window and binned counts
(:mod:`gateway.monitoring.state`). Every ``interval_s`` (and on :meth:`Monitor.refresh`)
it computes a :class:`~gateway.monitoring.drift.DriftReport` per version and side and
publishes an immutable :class:`~gateway.monitoring.snapshot.MonitorSnapshot`, which the
Prometheus collector, the monitoring API and the governor read without locks.

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from gateway.domain import Tensors
from gateway.monitoring.drift import Correction, compute_drift
from gateway.monitoring.performance import Estimator
from gateway.monitoring.profiles import as_float_matrix, bin_counts, build_profile
from gateway.monitoring.reference import VersionProfiles, categorical_indices
from gateway.monitoring.snapshot import MonitorSnapshot, SideDrift, VersionDrift, feature_order
from gateway.monitoring.state import MonitoredVersion, SideState, VersionState
from gateway.monitoring.windows import BinnedCounts
from gateway.sections import MonitorSettings
from gateway.sidework import SideWork
from registry import Registry

if TYPE_CHECKING:
    from gateway.serving.taps import TapRecord

__all__ = [
    "FIRST_WINDOW",
    "Monitor",
    "MonitorConfig",
    "MonitorSnapshot",
    "MonitoredVersion",
    "SideDrift",
    "VersionDrift",
    "feature_order",
]

log = logging.getLogger(__name__)

FIRST_WINDOW = "first_window"
ACTOR = "gateway:monitor"
SIDES = ("inputs", "outputs")
REGISTRY_RETRY_S = 5.0
RETIRED_KEPT = 64  # last reports of versions no longer served, oldest dropped first


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
    def from_settings(cls, s: MonitorSettings) -> MonitorConfig:
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
        # Two producers (the tap thread, shadow scoring's threads): offers take a lock.
        self._work: SideWork[Item] = SideWork(
            "onnxgate-monitor",
            self._ingest_items,
            capacity=config.queue_size,
            poll_s=config.poll_s,
            cycle=self._tick,
            threadsafe=True,
            drain_on_close=False,
        )
        self._queue = self._work.items
        self.sampled_out = 0
        self._next_report = 0.0
        self._lock = threading.Lock()  # the worker's state: windows, profiles, snapshot
        self._states: dict[tuple[str, str], VersionState] = {}
        self._retired: dict[tuple[str, str], VersionDrift] = {}
        self._errors = 0
        self._snapshot = MonitorSnapshot()

    @property
    def enqueued(self) -> int:
        return self._work.offered

    @property
    def dropped(self) -> int:
        return self._work.dropped

    # -- producers ------------------------------------------------------------------------

    def observe(self, record: TapRecord) -> None:
        """The tap: enqueue references to one served request, or count a drop."""
        if self.config.sample < 1.0 and self._uniform() >= self.config.sample:
            self.sampled_out += 1
            return
        self._work.offer((record, record.inputs, record.outputs))

    def offer(self, version: MonitoredVersion, inputs: Tensors, outputs: Tensors) -> None:
        """Like :meth:`observe`, from any thread (shadow versions' outputs)."""
        if self.config.sample < 1.0 and self._uniform() >= self.config.sample:
            return
        self._work.offer((version, inputs, outputs))

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._next_report = time.monotonic() + self.config.interval_s
        self._work.start()

    def close(self, timeout: float = 10.0) -> None:
        self._work.close(timeout)

    def _tick(self) -> None:
        """One cycle of the worker: ingest what is queued; recompute every ``interval_s``."""
        with self._lock:
            self._work.drain()
        if time.monotonic() >= self._next_report:
            try:
                self.refresh()
            except Exception:  # monitoring must outlive its bugs
                self._errors += 1
                log.exception("drift refresh failed")
            self._next_report = time.monotonic() + self.config.interval_s

    # -- reading ------------------------------------------------------------------------------

    def snapshot(self) -> MonitorSnapshot:
        """The last published reports with the queue counters as of now (lock-free: the
        reports are one attribute read; counters are plain ints)."""
        return dataclasses.replace(
            self._snapshot,
            enqueued=self.enqueued,
            dropped=self.dropped,
            sampled_out=self.sampled_out,
            queue_depth=len(self._queue),
        )

    def refresh(self) -> MonitorSnapshot:
        """Ingest everything queued, recompute drift where rows arrived, publish, return."""
        with self._lock:
            self._work.drain()
            self._prune()
            versions: dict[str, dict[str, VersionDrift]] = {}
            for st in self._states.values():
                versions.setdefault(st.model, {})[st.version] = self._report(st)
            snap = MonitorSnapshot(
                versions=MappingProxyType({m: MappingProxyType(v) for m, v in versions.items()}),
                enqueued=self.enqueued,
                dropped=self.dropped,
                sampled_out=self.sampled_out,
                queue_depth=len(self._queue),
                errors=self._errors,
                retired=MappingProxyType(dict(self._retired)),
            )
            self._snapshot = snap
        return snap

    # -- worker internals (self._lock held) ----------------------------------------------------

    def _ingest_items(self, items: list[Item]) -> None:
        """The side work's handler (drained with self._lock held: :meth:`_tick`, refresh)."""
        groups: dict[tuple[str, str], list[Item]] = {}
        for item in items:
            groups.setdefault((item[0].model, item[0].version), []).append(item)
        for key, group in groups.items():
            try:
                self._ingest(key, group)
            except Exception:  # one bad batch must not stop monitoring
                self._errors += 1
                if self._errors <= 10:
                    log.exception("monitoring %s:%s failed on a batch", *key)

    def _ingest(self, key: tuple[str, str], group: list[Item]) -> None:
        st = self._states.get(key)
        if st is None:
            st = VersionState(group[0][0], self.config.window)
            self._states[key] = st
        if not st.loaded and time.monotonic() >= st.retry_at:
            self._load_profile(st)
        x_in = st.inputs.layout.stack([item[1] for item in group])
        x_out = st.outputs.layout.stack([item[2] for item in group])
        st.rows_seen += max(x_in.shape[0], x_out.shape[0])
        st.inputs.append(x_in)
        st.outputs.append(x_out)
        self._profile_from_window(st)

    def _load_profile(self, st: VersionState) -> None:
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

    def _adopt(self, st: VersionState, doc: Mapping[str, object], source: str) -> None:
        try:
            profiles = VersionProfiles.from_doc(doc)
            st.inputs.set_profile(profiles.inputs)
            st.outputs.set_profile(profiles.outputs)
            _adopt_estimator(st, profiles.performance)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("profile of %s:%s is unusable (%s); ignoring it", st.model, st.version, exc)
            return
        st.source = source

    def _profile_from_window(self, st: VersionState) -> None:
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
        profiles = VersionProfiles(st.inputs.profile, st.outputs.profile, st.performance_doc)
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

    def _side_report(self, side: SideState) -> SideDrift | None:
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

    def _report(self, st: VersionState) -> VersionDrift:
        windows = [s.window.count for s in st.sides() if s.window is not None]
        now = time.time()
        performance = st.performance(now)
        return VersionDrift(
            model=st.model,
            version=st.version,
            profile_source=st.source,
            window_rows=max(windows, default=0),
            rows_seen=st.rows_seen,
            inputs=self._side_report(st.inputs),
            outputs=self._side_report(st.outputs),
            skipped=st.skipped,
            computed_at=now,
            performance=performance,
            performance_note=st.estimator_note,
            performance_history=tuple(st.estimates),
        )


def _adopt_estimator(st: VersionState, doc: Mapping[str, object] | None) -> None:
    """The version's label-free performance estimator from its profile document, if any."""
    st.set_estimator(None)
    st.estimator_note, st.performance_doc = "", doc
    if doc is None:
        return
    if "skipped" in doc:
        st.estimator_note = str(doc["skipped"])
        return
    try:
        st.set_estimator(Estimator.from_doc(doc))
    except (ValueError, KeyError, TypeError) as exc:  # drift monitoring goes on without it
        log.error("performance estimator of %s:%s is unusable (%s)", st.model, st.version, exc)
        st.estimator_note = f"estimator unusable: {exc}"
        return
    st.estimator_note = st.estimator.reason if st.estimator is not None else ""
