"""Shadow scoring on a real gateway: two versions that disagree on a known share of inputs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from monitoring_support import AUTH, get_drift, infer_request, monitoring, send
from shared import admin_metadata

from gateway._proto import admin_pb2 as apb
from gateway._proto import monitoring_pb2 as mpb
from gateway.tools import modelzoo

FEATURES = 8
SIZES = (FEATURES, 16, 2)


def _run(data: bytes, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return list(session.run(None, {"x": x.astype(np.float32)}))


def _with_shadow(registry, make_gateway, **settings):
    served = modelzoo.mlp(SIZES, seed=1)
    shadow = modelzoo.mlp(SIZES, seed=1, bias_shift=1.0)  # moves ~30% of labels
    registry.register_version("m", served, actor="test")
    registry.register_version("m", shadow, actor="test")
    gw = make_gateway(monitor_interval_s=60, monitor_window=1000, **settings)
    request = apb.AddShadowRequest(model="m", version="2", fraction=1.0)
    gw.admin().AddShadow(request, metadata=admin_metadata(), timeout=30)
    return gw, served, shadow


def test_agreement_matches_the_known_disagreement(registry, make_gateway) -> None:
    gw, served, shadow = _with_shadow(registry, make_gateway)
    x = np.random.default_rng(11).standard_normal((2000, FEATURES)).astype(np.float32)
    served_probs, served_labels = _run(served, x)
    shadow_probs, shadow_labels = _run(shadow, x)
    expected = float(np.mean(served_labels == shadow_labels))
    assert 0.6 < expected < 0.8  # the two versions really disagree, on a known share

    send(gw, "m", x, rows_per_call=20)
    assert gw.gateway.taps.flush(30)
    assert gw.gateway.shadow.drain(30)
    resp = monitoring(gw).GetShadowReport(
        mpb.GetShadowReportRequest(model="m"), metadata=AUTH, timeout=10
    )
    (c,) = resp.comparisons
    assert (c.version, c.served_version) == ("2", "1")
    assert (c.requests, c.rows, c.errors, c.compared_rows) == (100, 2000, 0, 2000)
    assert c.classifier
    # Batched vs one-shot inference may round differently: a boundary row could flip.
    assert abs(c.agreement - expected) < 0.002
    diff = np.abs(served_probs - shadow_probs)
    assert abs(c.mean_abs_diff - diff.mean()) < 1e-5
    assert abs(c.max_abs_diff - diff.max()) < 1e-5
    assert c.latency_mean_seconds > 0 and resp.dropped == 0

    # The shadow's outputs fed its own windows: version 2 is monitored without serving.
    (v2,) = get_drift(gw, "m", "2").versions
    assert v2.rows_seen == 2000 and v2.profile_source == "first_window"


def test_full_shadow_queue_drops_and_never_fails_the_caller(registry, make_gateway) -> None:
    gw, _, _ = _with_shadow(registry, make_gateway, shadow_queue=1)
    stub = gw.stub()
    x = np.random.default_rng(0).standard_normal((64, FEATURES))
    futures = [stub.ModelInfer.future(infer_request("m", x), timeout=30) for _ in range(200)]
    assert all(f.result().model_version == "1" for f in futures)
    assert gw.gateway.taps.flush(30)
    assert gw.gateway.shadow.drain(30)
    resp = monitoring(gw).GetShadowReport(
        mpb.GetShadowReportRequest(model="m"), metadata=AUTH, timeout=10
    )
    (c,) = resp.comparisons
    assert resp.dropped > 0
    assert c.requests + resp.dropped == 200
