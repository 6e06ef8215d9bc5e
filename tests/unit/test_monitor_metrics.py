"""The scrape-time collector on a fresh registry: bounded feature labels, shadow series."""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np
from prometheus_client import CollectorRegistry

from gateway.monitoring.collector import MonitoringCollector
from gateway.monitoring.drift import compute_drift
from gateway.monitoring.monitor import MonitorSnapshot, SideDrift, VersionDrift
from gateway.monitoring.profiles import build_profile
from gateway.monitoring.shadow import ShadowReport, ShadowSnapshot
from gateway.monitoring.windows import BinnedCounts

FEATURES = 40


def _snapshot() -> MonitorSnapshot:
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(FEATURES)]
    profile = build_profile(rng.standard_normal((5000, FEATURES)), names)
    window = rng.standard_normal((2000, FEATURES))
    window[:, 33] += 2.0  # the drifted one sorts first, whatever its index
    report = compute_drift(profile, window)
    side = SideDrift(
        report, profile, np.zeros((FEATURES, 10), np.int64), BinnedCounts(profile.edges)
    )
    vd = VersionDrift("m", "1", "reference", 2000, 2000, side, None, (), 0.0)
    versions = MappingProxyType({"m": MappingProxyType({"1": vd})})
    return MonitorSnapshot(versions, enqueued=10, dropped=3)


def _shadows() -> ShadowSnapshot:
    report = ShadowReport(
        "m", "2", "1", requests=4, rows=40, errors=1, classifier=True, compared_rows=40,
        agreement=0.75, mean_abs_diff=0.1, max_abs_diff=0.5, latency_sum_s=0.02,
        latency_max_s=0.01,
    )  # fmt: skip
    regressor = ShadowReport(
        "r", "2", "1", requests=1, rows=1, errors=0, classifier=False, compared_rows=0,
        agreement=math.nan, mean_abs_diff=0.2, max_abs_diff=0.2, latency_sum_s=0.001,
        latency_max_s=0.001,
    )  # fmt: skip
    return ShadowSnapshot((report, regressor), MappingProxyType({"m": 7}))


def test_collector_exports_top_k_features_and_shadow_series() -> None:
    reg = CollectorRegistry()
    reg.register(MonitoringCollector(_snapshot, _shadows, top_k=5))
    side = {"model": "m", "version": "1", "side": "inputs"}
    assert reg.get_sample_value("onnxgate_drift_verdict", side) == 1.0
    assert reg.get_sample_value("onnxgate_drift_drifted_features", side) == 1.0
    exported = [
        s.labels["feature"]
        for metric in reg.collect()
        if metric.name == "onnxgate_drift_psi"
        for s in metric.samples
    ]
    assert len(exported) == 5 and exported[0] == "f33"  # bounded; drifted first
    assert reg.get_sample_value("onnxgate_drift_feature_drifted", {**side, "feature": "f33"}) == 1
    assert reg.get_sample_value("onnxgate_monitor_dropped_total") == 3
    assert reg.get_sample_value("onnxgate_monitor_enqueued_total") == 10

    pair = {"model": "m", "version": "2", "served_version": "1"}
    assert reg.get_sample_value("onnxgate_shadow_agreement_ratio", pair) == 0.75
    assert reg.get_sample_value("onnxgate_shadow_errors_total", pair) == 1
    assert reg.get_sample_value("onnxgate_shadow_latency_seconds_count", pair) == 4
    assert reg.get_sample_value("onnxgate_shadow_dropped_total", {"model": "m"}) == 7
    regressor = {"model": "r", "version": "2", "served_version": "1"}
    assert reg.get_sample_value("onnxgate_shadow_agreement_ratio", regressor) is None
    assert reg.get_sample_value("onnxgate_shadow_mean_abs_diff", regressor) == 0.2


def test_collector_without_monitor_exports_shadows_only() -> None:
    reg = CollectorRegistry()
    reg.register(MonitoringCollector(None, _shadows))
    names = {metric.name for metric in reg.collect()}
    assert "onnxgate_shadow_agreement_ratio" in names
    assert not any(n.startswith(("onnxgate_drift", "onnxgate_monitor")) for n in names)
