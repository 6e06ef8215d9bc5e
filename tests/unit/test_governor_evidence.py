"""Evidence arithmetic, the evidence-source adapters, and what a rollback restores."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from gateway.governor.evidence import (
    Drift,
    Evidence,
    Quality,
    SegmentCounts,
    ShadowAgreement,
    Traffic,
)
from gateway.governor.feedback import FeedbackStore
from gateway.governor.loop import restore_target
from gateway.governor.rollout import FeedbackPolicy
from gateway.governor.sources import (
    DriftEvidence,
    FeedbackEvidence,
    MetricsEvidence,
    MonitorEvidence,
    drift_from_reports,
)
from gateway.metrics import GatewayMetrics
from gateway.monitoring.drift import compute_drift
from gateway.monitoring.profiles import build_profile
from registry.deployment import Arm, Deployment, Role, Shadow


def test_traffic_quantile_and_window() -> None:
    t = Traffic(100, 2, (0.001, 0.002, 0.005, math.inf), (50, 40, 10, 0))
    assert t.error_rate == 0.02
    assert t.quantile(0.5) == pytest.approx(0.001)
    assert t.quantile(0.99) == pytest.approx(0.002 + 0.003 * 9 / 10)
    assert Traffic(5, 0, (0.001, math.inf), (0, 5)).quantile(0.99) == 0.001  # open bucket
    assert Traffic().quantile(0.99) is None and Traffic().error_rate is None
    later = Traffic(150, 3, t.bounds, (60, 70, 20, 0))
    window = later.minus(t)
    assert (window.requests, window.errors, window.counts) == (50, 1, (10, 30, 10, 0))
    assert later.minus(Traffic()) == later  # a baseline taken before any latency sample


def test_quality_window_and_merge() -> None:
    seg = {"a": SegmentCounts(10, 5, 4, 3, 2, 1)}
    before = Quality(10, 4, 3, 0.0, 0.0, seg)
    after = Quality(
        30, 10, 8, 0.0, 0.0, {"a": SegmentCounts(20, 9, 8, 6, 4, 3), "b": SegmentCounts(5, 1)}
    )
    w = after.minus(before)
    assert (w.predictions, w.labelled, w.correct) == (20, 6, 5)
    assert w.segments["a"] == SegmentCounts(10, 4, 4, 3, 2, 2) and w.segments["b"].positives == 1
    assert w.score("classification") == pytest.approx(5 / 6)
    reg = Quality(0, 4, 0, 6.0, 14.0)
    assert reg.score("regression") == -1.5
    assert reg.sample("regression").variance == pytest.approx(14 / 4 - 1.5**2)
    merged = Evidence(traffic=Traffic(1)).merged(Evidence(shadow=ShadowAgreement(4, 3)))
    assert merged.traffic == Traffic(1) and merged.shadow is not None
    assert merged.shadow.agreement == 0.75


def test_metrics_evidence_sums_roles_and_ignores_client_errors() -> None:
    m = GatewayMetrics()
    version = m.for_version("m", "2")
    for _ in range(8):
        version.succeeded("canary", 0.0015, rows=1)
    version.succeeded("champion", 0.0015, rows=1)  # after a promotion: same version, new role
    version.failed("canary", "INTERNAL", 0.001)
    version.failed("canary", "INVALID_ARGUMENT", 0.001)  # the caller's fault
    m.for_version("other", "2").failed("canary", "INTERNAL", 0.001)
    ev = MetricsEvidence(m).evidence("m", ["2", "1"])
    t = ev["2"].traffic
    assert t is not None and (t.requests, t.errors) == (10, 1)
    assert sum(t.counts) == 9 and 0.001 < (t.quantile(0.5) or 0) <= 0.002
    assert ev["1"].traffic == Traffic(0, 0, (), ())


def test_feedback_and_drift_sources() -> None:
    store = FeedbackStore()
    store.configure("m", FeedbackPolicy())
    store.record("m", "1", "id", ["1"], ["a"])
    assert set(FeedbackEvidence(store).evidence("m", ["1", "2"])) == {"1"}
    rng = np.random.default_rng(0)
    profile = build_profile(rng.standard_normal((500, 3)), ("a", "b", "c"))
    window = rng.standard_normal((500, 3))
    window[:, 1] += 2.0
    report = compute_drift(profile, window)
    drift = drift_from_reports(report, None)
    assert drift == Drift(("b",), False, (), 500)
    source = DriftEvidence(lambda model, version: (report, report) if version == "2" else None)
    got = source.evidence("m", ["1", "2"])
    assert set(got) == {"2"} and got["2"].drift is not None and got["2"].drift.output_drifted


def test_monitor_evidence_adapter() -> None:
    report = SimpleNamespace(features=["x"], drifted=True, window_rows=100)
    side = SimpleNamespace(report=report)
    vd = SimpleNamespace(inputs=side, outputs=side, performance=None)
    empty = SimpleNamespace(inputs=None, outputs=None, performance=None)
    drift_snap = SimpleNamespace(get=lambda m, v: {"2": vd, "1": empty}.get(v))
    shadow_reports = (
        SimpleNamespace(version="3", compared_rows=100, agreement=0.9),
        SimpleNamespace(version="3", compared_rows=100, agreement=0.7),
        SimpleNamespace(version="4", compared_rows=0, agreement=math.nan),
    )
    shadow_snap = SimpleNamespace(for_model=lambda model: shadow_reports)
    ev = MonitorEvidence(lambda: drift_snap, lambda: shadow_snap).evidence(
        "m", ["1", "2", "3", "4"]
    )  # type: ignore[arg-type,return-value]
    assert set(ev) == {"2", "3"}
    assert ev["2"].drift == Drift(("x",), True, ("x",), 100)
    assert ev["3"].shadow == ShadowAgreement(200, 160)


def test_restore_target_is_the_last_deployment_without_the_bad_version() -> None:
    champion = Arm("1", Role.CHAMPION, 100.0)
    history = [
        Deployment("m", 1, (champion,)),
        Deployment("m", 2, (champion,), (Shadow("2", 0.5),)),
        Deployment("m", 3, (Arm("1", Role.CHAMPION, 95.0), Arm("2", Role.CANARY, 5.0))),
        Deployment("m", 4, (Arm("1", Role.CHAMPION, 90.0), Arm("2", Role.CANARY, 10.0))),
    ]
    assert restore_target(history, history[-1], "2") == history[1]
    # nothing good in history: the current arms without it, its weight to the champion
    current = Deployment("m", 9, (Arm("1", Role.CHAMPION, 80.0), Arm("2", Role.CANARY, 20.0)))
    fallback = restore_target([current], current, "2")
    assert fallback.arms == (Arm("1", Role.CHAMPION, 100.0),)
