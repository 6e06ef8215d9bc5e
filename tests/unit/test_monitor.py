"""The Monitor without a server: hot-path queueing, sampling, windows, verdicts over many
windows, first-window profiles against a real registry, pruning, the worker thread."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from gateway.monitoring.monitor import FIRST_WINDOW, Monitor, MonitorConfig
from gateway.monitoring.reference import build_version_profiles
from gateway.serving.taps import TapRecord
from gateway.tools import modelzoo

FEATURES = 10


@pytest.fixture
def version(registry) -> Any:
    """A registered linear model (x: 10 features -> y: 2) as the monitor sees a version."""
    rec = registry.register_version("lin", modelzoo.linear(FEATURES, 2, seed=0), actor="test")
    return SimpleNamespace(model="lin", version=rec.version, signature=rec.signature)


def _observe(monitor: Monitor, version: Any, x: np.ndarray) -> None:
    record = TapRecord(
        version.model, version.version, "champion", "", {}, {"x": x}, {}, version.signature
    )
    monitor.observe(record)


def test_observe_enqueues_references_and_counts_drops(registry, version) -> None:
    monitor = Monitor(MonitorConfig(queue_size=3), registry)
    batches = [np.zeros((2, FEATURES), dtype=np.float32) for _ in range(5)]
    for b in batches:
        _observe(monitor, version, b)
    assert (monitor.enqueued, monitor.dropped) == (3, 2)
    queued = [item[1]["x"] for item in monitor._queue]
    assert all(q is b for q, b in zip(queued, batches, strict=False))  # no copies
    snap = monitor.refresh()
    assert (snap.enqueued, snap.dropped, snap.queue_depth) == (3, 2, 0)
    assert snap.get("lin", "1").rows_seen == 6


def test_sampling_fraction_uses_the_injected_uniform(registry, version) -> None:
    draws = iter([0.1, 0.6, 0.4, 0.9] * 5)
    monitor = Monitor(MonitorConfig(sample=0.5), registry, uniform=lambda: next(draws))
    for _ in range(20):
        _observe(monitor, version, np.zeros((1, FEATURES), dtype=np.float32))
    assert (monitor.enqueued, monitor.sampled_out) == (10, 10)


def test_verdicts_over_many_windows(registry, version) -> None:
    """Unshifted features stay quiet window after window (false alarms at or below the
    nominal level); shifted ones are caught in every window."""
    rng = np.random.default_rng(1)
    profiles = build_version_profiles(version.signature, rng.standard_normal((20_000, FEATURES)))
    registry.set_profile("lin", "1", profiles.to_doc(), source="reference", actor="test")
    window = 1000
    monitor = Monitor(MonitorConfig(window=window, min_rows=window), registry)
    windows, alpha = 40, 0.01
    null_alarms = significant_null_windows = 0
    for w in range(windows):
        x = rng.standard_normal((window, FEATURES)).astype(np.float32)
        shifted = w % 2 == 1
        if shifted:
            x[:, [3, 7]] += 0.5
        for chunk in np.split(x, 10):
            _observe(monitor, version, chunk)
        side = monitor.refresh().get("lin", "1").inputs
        assert side is not None and side.report.window_rows == window
        r = side.report
        null = np.ones(FEATURES, dtype=bool)
        if shifted:
            null[[3, 7]] = False
            assert r.drifted_mask[3] and r.drifted_mask[7]
            assert r.features[:2] in (["x[3]", "x[7]"], ["x[7]", "x[3]"])
        null_alarms += int(r.drifted_mask[null].sum())
        significant_null_windows += int(np.any(r.p_adjusted[null] < alpha))
    # Windows where an unshifted feature is flagged stay near the nominal level (BH at
    # alpha = 0.01: about alpha * windows = 0.4 expected; P(> 3) < 1e-3). The effect-size
    # guard only lowers the count of drift verdicts further.
    assert significant_null_windows <= 3 and null_alarms <= 3


def test_first_window_profile_is_recorded_once(registry, version) -> None:
    monitor = Monitor(MonitorConfig(window=500, min_rows=100), registry)
    rng = np.random.default_rng(2)
    _observe(monitor, version, rng.standard_normal((499, FEATURES)).astype(np.float32))
    vd = monitor.refresh().get("lin", "1")
    assert vd.profile_source == "" and vd.inputs is None
    _observe(monitor, version, rng.standard_normal((1, FEATURES)).astype(np.float32))
    vd = monitor.refresh().get("lin", "1")
    assert vd.profile_source == FIRST_WINDOW and vd.inputs is not None
    assert not vd.inputs.report.drifted  # the window is its own reference
    doc, source = registry.get_profile("lin", "1")
    assert source == FIRST_WINDOW and doc["inputs"]["n_rows"] == 500
    json.dumps(doc, allow_nan=False)  # strict JSON, as the audit chain needs
    _observe(monitor, version, rng.standard_normal((1000, FEATURES)).astype(np.float32))
    monitor.refresh()
    events = [e for e in registry.audit_events("lin:1") if e.action == "version.profile"]
    assert len(events) == 1


def test_a_profile_registered_meanwhile_wins_over_the_first_window(registry, version) -> None:
    monitor = Monitor(MonitorConfig(window=200, min_rows=100), registry)
    rng = np.random.default_rng(3)
    _observe(monitor, version, rng.standard_normal((10, FEATURES)).astype(np.float32))
    monitor.refresh()  # looked the version up: no profile then
    reference = build_version_profiles(version.signature, rng.standard_normal((5000, FEATURES)))
    registry.set_profile("lin", "1", reference.to_doc(), source="reference", actor="test")
    _observe(monitor, version, rng.standard_normal((190, FEATURES)).astype(np.float32))
    vd = monitor.refresh().get("lin", "1")
    assert vd.profile_source == "reference"
    assert vd.inputs is not None and vd.inputs.profile.n_rows == 5000
    assert registry.get_profile("lin", "1")[1] == "reference"


def test_versions_no_longer_served_are_forgotten(registry, version) -> None:
    served = [("lin", "1")]
    monitor = Monitor(MonitorConfig(), registry, versions=lambda: served)
    _observe(monitor, version, np.zeros((3, FEATURES), dtype=np.float32))
    assert monitor.refresh().get("lin", "1") is not None
    served.clear()
    assert monitor.refresh().versions == {}


def test_last_report_of_a_version_no_longer_served_is_kept_apart(registry, version) -> None:
    served = [("lin", "1")]
    monitor = Monitor(MonitorConfig(window=200, min_rows=100), registry, versions=lambda: served)
    rng = np.random.default_rng(4)
    reference = build_version_profiles(version.signature, rng.standard_normal((2000, FEATURES)))
    registry.set_profile("lin", "1", reference.to_doc(), source="reference", actor="test")
    _observe(monitor, version, (rng.standard_normal((200, FEATURES)) + 3).astype(np.float32))
    live = monitor.refresh().get("lin", "1")
    assert live is not None and live.drifted
    served.clear()  # rolled back
    snap = monitor.refresh()
    assert snap.versions == {}  # no live gauges for it any more
    assert snap.retired[("lin", "1")] is live  # but "why was it rolled back?" has an answer
    served.append(("lin", "1"))  # serving again: the live state takes over
    _observe(monitor, version, rng.standard_normal((200, FEATURES)).astype(np.float32))
    snap = monitor.refresh()
    assert ("lin", "1") not in snap.retired and snap.get("lin", "1") is not None


def test_worker_thread_publishes_and_stops(registry, version) -> None:
    monitor = Monitor(MonitorConfig(interval_s=0.05, poll_s=0.001), registry)
    monitor.start()
    try:
        _observe(monitor, version, np.ones((7, FEATURES), dtype=np.float32))
        deadline = time.monotonic() + 10
        while monitor.snapshot().get("lin", "1") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert monitor.snapshot().get("lin", "1").rows_seen == 7
    finally:
        started = time.monotonic()
        monitor.close()
        assert time.monotonic() - started < 2


def test_bad_batches_are_counted_and_monitoring_goes_on(registry, version) -> None:
    monitor = Monitor(MonitorConfig(), registry)
    broken = SimpleNamespace(model="lin", version="1", signature=None)  # no signature
    monitor.offer(broken, {"x": np.zeros((1, FEATURES))}, {})  # type: ignore[arg-type]
    assert monitor.refresh().errors == 1
    _observe(monitor, version, np.zeros((2, FEATURES), dtype=np.float32))
    assert monitor.refresh().get("lin", "1").rows_seen == 2


def test_monitoring_settings_from_env_and_validation() -> None:
    from gateway.settings import Settings, SettingsError

    s = Settings.load(
        environ={
            "ONNXGATE_MONITORING": "off",
            "ONNXGATE_MONITOR_SAMPLE": "0.25",
            "ONNXGATE_MONITOR_CORRECTION": "bonferroni",
        }
    )
    assert (s.monitoring, s.monitor_sample, s.monitor_correction) == (False, 0.25, "bonferroni")
    config = MonitorConfig.from_settings(s.monitor)
    assert (config.sample, config.correction, config.window) == (0.25, "bonferroni", 10_000)
    for bad in (
        {"monitor_sample": 0.0},
        {"monitor_alpha": 1.0},
        {"monitor_correction": "holm"},
        {"monitor_queue": 0},
        {"monitor_interval_s": 0.0},
        {"shadow_threads": 0},
    ):
        with pytest.raises(SettingsError):
            Settings(**bad)  # type: ignore[arg-type]
