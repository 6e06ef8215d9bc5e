"""The shipped Grafana dashboard's queries, run by a real Prometheus against a running gateway.

A dashboard whose queries return nothing is broken, and nothing else notices: every
panel's every PromQL expression (with the ``$model`` variable set to all models) must
return at least one series once the gateway has served a story that touches every panel:
a canary under a governor policy, a shadow, drift on the champion, errors, refusals and
delayed labels.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from monitoring_support import infer_request, register_with_reference
from prometheus_support import binary, running_prometheus, wait_for_series
from shared import GRAFANA_DASHBOARD, HOLDING_POLICY, admin_metadata, dashboard_queries

from gateway._proto import admin_pb2 as apb
from gateway._proto import governor_pb2 as gpb
from gateway._proto import governor_pb2_grpc
from gateway.tools import modelzoo
from registry.deployment import Role

pytestmark = pytest.mark.prometheus

FEATURES = 8


def _expressions() -> list[tuple[str, str]]:
    found = dashboard_queries()
    assert len(found) >= 13
    return found


def test_dashboard_is_valid_grafana_json() -> None:
    doc = json.loads(GRAFANA_DASHBOARD.read_text())
    assert doc["uid"] == "onnxgate" and doc["schemaVersion"] >= 36
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        assert panel["targets"] and panel["gridPos"]["w"] > 0
        assert all("rate(" not in t["expr"] or "[" in t["expr"] for t in panel["targets"])
    titles = " ".join(p["title"].lower() for p in doc["panels"])
    for topic in ("requests", "errors", "latency", "batch", "queue", "weights", "governor",
                  "gates", "drift", "shadow", "feedback"):  # fmt: skip
        assert topic in titles, topic


def _story(registry, make_gateway):
    rng = np.random.default_rng(4)
    data = modelzoo.mlp((FEATURES, 16, 2), seed=1)
    register_with_reference(registry, "m", data, rng.standard_normal((5000, FEATURES)))
    register_with_reference(
        registry, "m", modelzoo.mlp((FEATURES, 16, 2), seed=2), rng.standard_normal((5000, 8))
    )
    registry.register_version("m", modelzoo.mlp((FEATURES, 16, 2), seed=1, bias_shift=1.0))
    registry.set_weights("m", {"1": 80, "2": 20}, {"2": Role.CANARY}, actor="t", reason="canary")
    gw = make_gateway(
        monitor_window=400, monitor_min_rows=100, monitor_interval_s=0.25, governor_interval_s=0.05
    )
    gw.admin().AddShadow(
        apb.AddShadowRequest(model="m", version="3", fraction=1.0),
        metadata=admin_metadata(),
        timeout=30,
    )
    governor = governor_pb2_grpc.GovernorServiceStub(gw.channel())
    policy = gpb.SetPolicyRequest(model="m", toml=HOLDING_POLICY)
    governor.SetPolicy(policy, metadata=admin_metadata())
    return gw, governor, rng


def _traffic(gw, governor, rng) -> None:
    stub = gw.stub()
    shifted = rng.standard_normal((400, FEATURES))
    shifted[:, 0] += 4.0
    for start in range(0, 400, 50):  # the champion's inputs drift
        stub.ModelInfer(infer_request("m", shifted[start : start + 50], version="1"), timeout=30)
    items = []
    for i in range(120):  # single rows with ids, labelled later: the join rate
        req = infer_request("m", rng.standard_normal((1, FEATURES)))
        req.id = f"r{i}"
        stub.ModelInfer(req, timeout=30)
        items.append(gpb.FeedbackItem(id=req.id, label="1"))
    items.append(gpb.FeedbackItem(id="never-served", label="1"))
    governor.Feedback(gpb.FeedbackRequest(model="m", items=items), timeout=30)
    for _ in range(10):  # errors after routing (a wrong width) and refusals before it
        bad = infer_request("m", rng.standard_normal((1, FEATURES + 1)))
        with pytest.raises(Exception, match="INVALID_ARGUMENT|shape"):
            stub.ModelInfer(bad, timeout=30)
        with pytest.raises(Exception, match="NOT_FOUND|not known"):
            stub.ModelInfer(infer_request("nope", rng.standard_normal((1, FEATURES))), timeout=30)
    assert gw.gateway.taps.flush(30)
    assert gw.gateway.shadow.drain(30)


@contextlib.contextmanager
def _canary_trickle(gw, rng) -> Iterator[None]:
    stop = threading.Event()
    rows = rng.standard_normal((1, FEATURES))

    def send() -> None:
        stub = gw.stub()
        while not stop.wait(0.02):
            stub.ModelInfer(infer_request("m", rows, version="2"), timeout=30)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def test_every_panel_query_returns_series(registry, make_gateway, tmp_path) -> None:
    binary("prometheus")  # before the story: skip (or fail in CI) early
    gw, governor, rng = _story(registry, make_gateway)
    with running_prometheus(tmp_path, gw.gateway.metrics_port) as base:
        # A first scrape before the traffic, so rates over the window see the increase.
        wait_for_series(base, "onnxgate_routing_revision", 1, timeout=60)
        _traffic(gw, governor, rng)
        empty = []
        # Gate values describe the candidate's current window, which the governor starts
        # afresh at each hold: a trickle of canary traffic keeps one non-empty while the
        # queries wait, as live traffic would.
        with _canary_trickle(gw, rng):
            for title, expr in _expressions():
                try:
                    wait_for_series(base, expr, 1, timeout=60)
                except AssertionError:
                    empty.append(f"{title}: {expr}")
        assert not empty, "queries returning no series:\n" + "\n".join(empty)
