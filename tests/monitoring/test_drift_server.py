"""Drift monitoring on a real gateway: verdicts, first-window profiles, overload, auth."""

from __future__ import annotations

import urllib.request

import grpc
import numpy as np
import pytest
from monitoring_support import (
    AUTH,
    get_drift,
    infer_request,
    monitoring,
    register_with_reference,
    send,
)

from gateway._proto import monitoring_pb2 as mpb
from gateway.tools import modelzoo

FEATURES = 8
SHIFTED = (2, 5)
WINDOW = 2000


def _inputs(resp: mpb.GetDriftResponse) -> mpb.SideDrift:
    (version,) = resp.versions
    sides = {s.side: s for s in version.sides}
    assert "inputs" in sides, f"no input drift yet: {version}"
    return sides["inputs"]


def test_shifted_features_flip_the_verdict_and_only_they(registry, make_gateway) -> None:
    rng = np.random.default_rng(7)
    data = modelzoo.mlp((FEATURES, 16, 2), seed=1)
    register_with_reference(registry, "m", data, rng.standard_normal((20_000, FEATURES)))
    gw = make_gateway(monitor_window=WINDOW, monitor_min_rows=500, monitor_interval_s=60)

    # Several windows of unshifted traffic: no feature ever drifts.
    for _ in range(3):
        send(gw, "m", rng.standard_normal((WINDOW, FEATURES)))
        side = _inputs(get_drift(gw, "m"))
        assert side.window_rows == WINDOW
        assert not side.drifted and not list(side.driving_features)
        assert not any(f.drifted for f in side.features)

    shifted = rng.standard_normal((WINDOW, FEATURES))
    shifted[:, SHIFTED] += 1.0
    send(gw, "m", shifted)
    resp = get_drift(gw, "m", "1")
    side = _inputs(resp)
    expected = {f"x[{i}]" for i in SHIFTED}
    assert side.drifted
    assert set(side.driving_features) == expected
    assert {f.name for f in side.features if f.drifted} == expected
    # Sorted by drift: the drifted features come first, with tiny adjusted p-values.
    assert {f.name for f in side.features[:2]} == expected
    assert all(f.pvalue_adjusted < 1e-6 and f.psi > 0.2 for f in side.features[:2])
    assert all(f.pvalue_adjusted > 0.01 for f in side.features[2:])
    assert resp.versions[0].profile_source == "reference"

    metrics = urllib.request.urlopen(gw.metrics_url, timeout=10).read().decode()
    labels = 'model="m",side="inputs",version="1"'
    assert f"onnxgate_drift_verdict{{{labels}}} 1.0" in metrics
    assert f'onnxgate_drift_feature_drifted{{feature="x[2]",{labels}}} 1.0' in metrics
    assert f'onnxgate_drift_feature_drifted{{feature="x[0]",{labels}}} 0.0' in metrics
    assert f'onnxgate_drift_psi{{feature="x[5]",{labels}}}' in metrics


def test_first_full_window_becomes_the_recorded_profile(registry, make_gateway) -> None:
    rng = np.random.default_rng(3)
    registry.register_version("m", modelzoo.mlp((FEATURES, 16, 2), seed=1), actor="test")
    gw = make_gateway(monitor_window=1000, monitor_min_rows=200, monitor_interval_s=60)

    send(gw, "m", rng.standard_normal((500, FEATURES)))
    (version,) = get_drift(gw, "m").versions
    assert version.profile_source == "" and not version.sides  # half a window: nothing yet
    assert registry.get_profile("m", "1") is None

    send(gw, "m", rng.standard_normal((500, FEATURES)))
    (version,) = get_drift(gw, "m").versions
    assert version.profile_source == "first_window"
    stored = registry.get_profile("m", "1")
    assert stored is not None and stored[1] == "first_window"
    assert stored[0]["inputs"]["n_rows"] == 1000
    assert stored[0]["outputs"]["feature_names"] == [
        "probabilities[0]",
        "probabilities[1]",
        "label",
    ]
    (event,) = [e for e in registry.audit_events("m:1") if e.action == "version.profile"]
    assert event.actor == "gateway:monitor" and event.after["source"] == "first_window"

    shifted = rng.standard_normal((1000, FEATURES))
    shifted[:, 0] += 1.5
    send(gw, "m", shifted)
    side = _inputs(get_drift(gw, "m"))
    assert list(side.driving_features) == ["x[0]"]


def test_monitor_queue_overflow_is_counted_not_fatal(registry, make_gateway) -> None:
    registry.register_version("m", modelzoo.mlp((FEATURES, 16, 2), seed=1), actor="test")
    gw = make_gateway(monitor_queue=1, monitor_window=1000, monitor_interval_s=60)
    stub = gw.stub()
    x = np.random.default_rng(0).standard_normal((4, FEATURES))
    calls = 300
    futures = [stub.ModelInfer.future(infer_request("m", x), timeout=30) for _ in range(calls)]
    assert all(len(f.result().outputs) == 2 for f in futures)  # every call served
    resp = get_drift(gw, "m")
    assert resp.monitor_dropped > 0
    assert resp.monitor_enqueued + resp.monitor_dropped == calls
    assert resp.versions[0].rows_seen == 4 * resp.monitor_enqueued
    metrics = urllib.request.urlopen(gw.metrics_url, timeout=10).read().decode()
    assert f"onnxgate_monitor_dropped_total {float(resp.monitor_dropped)}" in metrics


def test_sampling_fraction_monitors_a_share_of_requests(registry, make_gateway) -> None:
    registry.register_version("m", modelzoo.mlp((FEATURES, 16, 2), seed=1), actor="test")
    gw = make_gateway(monitor_sample=0.25, monitor_interval_s=60)
    send(gw, "m", np.zeros((400, FEATURES)), rows_per_call=1)
    resp = get_drift(gw, "m")
    assert 70 <= resp.monitor_enqueued <= 130  # Binomial(400, 0.25): mean 100, sd 8.7


def test_monitoring_off_and_authentication(registry, make_gateway) -> None:
    registry.register_version("m", modelzoo.mlp((FEATURES, 16, 2), seed=1), actor="test")
    gw = make_gateway(monitoring=False)
    send(gw, "m", np.zeros((10, FEATURES)))
    request = mpb.GetDriftRequest(model="m", refresh=True)
    with pytest.raises(grpc.RpcError) as err:
        monitoring(gw).GetDrift(request, metadata=AUTH, timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        monitoring(gw).GetDrift(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    metrics = urllib.request.urlopen(gw.metrics_url, timeout=10).read().decode()
    assert "onnxgate_drift_verdict" not in metrics
    assert "onnxgate_shadow_agreement_ratio" in metrics  # family exists, no series yet
