"""A real Prometheus scrapes ``onnxgate serve --workers 2``, and every panel query of the
shipped Grafana dashboard runs against it.

The parent's /metrics merges its workers (gateway.transport.worker_metrics); a dashboard
that goes blank when users scale is what this guards against. Each query must be valid
PromQL and return series after a story that touches every panel (a canary held by a
policy, a shadow, drifted inputs, labels, errors and refusals), and the counters must add
up over the workers: requests counted by Prometheus = requests sent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from fleettools import ENV, free_port
from monitoring.monitoring_support import infer_request, register_with_reference
from monitoring.prometheus_support import binary, query, running_prometheus, wait_for_series
from shared import HOLDING_POLICY, dashboard_queries, wait_for

from gateway._proto import governor_pb2 as gpb
from gateway._proto import governor_pb2_grpc
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from gateway.tools import modelzoo
from registry import Registry
from registry.deployment import Arm, Role, Shadow

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

FEATURES = 8


def _call(target: str, request: object) -> None:
    # A fresh channel per call: the kernel spreads new connections over the workers.
    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
        pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(request, timeout=30)


def _register(url: str, root: Path) -> None:
    rng = np.random.default_rng(4)
    registry = Registry.open(url, root / "artifacts")
    try:
        for seed in (1, 2):  # champion and canary, each with its reference profile
            data = modelzoo.mlp((FEATURES, 16, 2), seed=seed)
            register_with_reference(registry, "m", data, rng.standard_normal((5000, FEATURES)))
        registry.register_version("m", modelzoo.mlp((FEATURES, 16, 2), seed=1, bias_shift=1.0))
        arms = [Arm("1", Role.CHAMPION, 80), Arm("2", Role.CANARY, 20)]
        registry.set_deployment("m", arms, [Shadow("3", 1.0)], actor="t", reason="story")
        registry.governor.set_policy("m", HOLDING_POLICY, actor="t")
    finally:
        registry.close()


@contextlib.contextmanager
def _serve(url: str, root: Path) -> Iterator[tuple[str, int, Registry]]:
    port, metrics = free_port(), free_port()
    env = {**os.environ, **{k: v for k, v in ENV.items() if k != "ONNXGATE_BATCHING"}}
    cmd = [
        sys.executable, "-m", "gateway.cli", "serve", "--workers", "2", "--registry", url,
        "--artifact-dir", str(root / "artifacts"), "--host", "127.0.0.1",
        "--port", str(port), "--metrics-port", str(metrics), "--http-port", "-1",
    ]  # fmt: skip
    registry = Registry.open(url, root / "artifacts")
    with open(root / "serve.log", "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield f"127.0.0.1:{port}", metrics, registry
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()
        registry.close()


def _routed(target: str) -> bool:
    try:
        _call(target, infer_request("m", np.zeros((1, FEATURES)), version="1"))
        return True
    except grpc.RpcError:
        return False


def _traffic(target: str, registry: Registry, rng: np.random.Generator) -> int:
    """The story's calls; returns how many were routed to a version of ``m``."""
    sent = 0
    shifted = rng.standard_normal((400, FEATURES))
    shifted[:, 0] += 4.0
    for start in range(0, 400, 20):  # the champion's inputs drift, in every worker
        _call(target, infer_request("m", shifted[start : start + 20], version="1"))
        sent += 1
    ids = []
    for i in range(60):  # single rows with ids, labelled below: the join rate
        req = infer_request("m", rng.standard_normal((1, FEATURES)))
        req.id = f"r{i}"
        _call(target, req)
        ids.append(req.id)
        sent += 1
    for _ in range(10):  # errors after routing (a wrong width) and refusals before it
        with pytest.raises(grpc.RpcError, match="INVALID_ARGUMENT"):
            _call(target, infer_request("m", rng.standard_normal((1, FEATURES + 1))))
        sent += 1
        with pytest.raises(grpc.RpcError, match="NOT_FOUND"):
            _call(target, infer_request("nope", rng.standard_normal((1, FEATURES))))
    # Labels may reach the other worker: wait until every prediction is shared.
    wait_for(lambda: len(registry.fleet.predictions("m", ids)) == len(ids), timeout=60)
    items = [gpb.FeedbackItem(id=i, label="1") for i in ids]
    with grpc.insecure_channel(target) as ch:
        stub = governor_pb2_grpc.GovernorServiceStub(ch)
        resp = stub.Feedback(gpb.FeedbackRequest(model="m", items=items), timeout=30)
    assert (resp.joined, resp.unknown) == (len(ids), 0)
    return sent


@contextlib.contextmanager
def _canary_trickle(target: str, rng: np.random.Generator) -> Iterator[None]:
    # Gate values describe the candidate's current window, which the governor starts
    # afresh at each hold: a trickle keeps one non-empty while the queries wait.
    stop = threading.Event()
    rows = rng.standard_normal((1, FEATURES))

    def send() -> None:
        while not stop.wait(0.05):
            _call(target, infer_request("m", rows, version="2"))

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def _value(base: str, promql: str) -> float:
    result = query(base, promql)
    return float(result[0]["value"][1]) if result else float("nan")


def test_every_panel_query_returns_series_under_two_workers(tmp_path: Path) -> None:
    binary("prometheus")  # before the story: skip (or fail in CI) early
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    _register(url, tmp_path)
    rng = np.random.default_rng(5)
    with (
        _serve(url, tmp_path) as (target, metrics, registry),
        running_prometheus(tmp_path, metrics) as base,
    ):
        wait_for(lambda: _routed(target), timeout=120, every=0.2)
        # Both workers are fleet members, and Prometheus has scraped the parent once before
        # the traffic, so rates over the window see the increase.
        wait_for(lambda: len(registry.fleet.members()) == 2, timeout=60)
        wait_for_series(base, "onnxgate_routing_revision", 1, timeout=60)
        sent = _traffic(target, registry, rng) + 1  # and the readiness probe's call

        # Counters add up over the workers: what Prometheus stored is what was sent.
        total = 'sum(onnxgate_requests_total{model="m"})'
        wait_for(lambda: _value(base, total) == sent, timeout=60)
        assert _value(base, 'sum(onnxgate_requests_total{code="INVALID_ARGUMENT"})') == 10
        assert _value(base, 'sum(onnxgate_rejected_requests_total{code="NOT_FOUND"})') == 10
        assert _value(base, 'sum(onnxgate_inference_rows_total{model="m"})') == 400 + 60 + 1
        joined = 'sum(onnxgate_feedback_labels_total{model="m",outcome="joined"})'
        wait_for(lambda: _value(base, joined) == 60, timeout=60)
        # One live leader among the workers, whichever it is.
        wait_for(lambda: _value(base, "sum(onnxgate_governor_leader)") == 1, timeout=60)
        assert _value(base, "max(onnxgate_fleet_members)") == 2

        empty = []
        with _canary_trickle(target, rng):
            for title, expr in dashboard_queries():
                try:
                    wait_for_series(base, expr, 1, timeout=60)  # query() asserts it is valid
                except AssertionError:
                    empty.append(f"{title}: {expr}")
        assert not empty, "queries returning no series:\n" + "\n".join(empty)
