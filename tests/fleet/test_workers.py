"""``onnxgate serve --workers 3`` on one SQLite file is a fleet by itself: every worker is a
member, and the merged evidence counts every request once, whichever worker served it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
from fleettools import ENV, Fleet, free_port
from governor.govtools import N_FEATURES, threshold_model
from shared import wait_for

from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from registry import Registry


def _infer(target: str, i: int) -> str:
    # A fresh channel per call: the kernel spreads new connections over the workers.
    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
        req = pb.ModelInferRequest(model_name="w", id=f"w{i}")
        req.inputs.add(name="x", datatype="FP32", shape=[1, N_FEATURES])
        req.raw_input_contents.append(np.ones((1, N_FEATURES), np.float32).tobytes())
        return pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=20).model_version


def test_three_workers_are_one_fleet(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = Registry.open(url, tmp_path / "artifacts")
    registry.register_version("w", threshold_model(1), version="1", actor="t")
    fleet = Fleet(url, registry)
    port = free_port()
    env = {**os.environ, **{k: v for k, v in ENV.items() if k != "ONNXGATE_FLEET"}}
    cmd = [
        sys.executable, "-m", "gateway.cli", "serve", "--workers", "3", "--registry", url,
        "--artifact-dir", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
        "--port", str(port), "--metrics-port", "-1",
    ]  # fmt: skip
    with open(tmp_path / "serve.log", "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(fleet.live()) == 3, timeout=120, every=0.2)
        target = f"127.0.0.1:{port}"
        n = 45
        assert {_infer(target, i) for i in range(n)} == {"1"}
        wait_for(lambda: fleet.requests("w", "1") == n, timeout=30)
        served = [
            r for r in registry.fleet.evidence() if r.model == "w" and r.payload["traffic"][0]
        ]
        assert len(served) >= 2  # more than one worker served, and the merge still adds up
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
        registry.close()
    assert proc.returncode == 0


def test_worker_start_lines_are_quiet_and_name_the_parents_metrics(tmp_path: Path) -> None:
    """Each worker printed alembic's INFO lines (14 per worker) and said "no /metrics"
    although the parent serves the workers' metrics."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = Registry.open(url, tmp_path / "artifacts")
    registry.register_version("w", threshold_model(1), version="1", actor="t")
    registry.close()
    port, metrics = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONNXGATE_")}
    cmd = [
        sys.executable, "-m", "gateway.cli", "serve", "--workers", "2", "--registry", url,
        "--artifact-dir", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
        "--port", str(port), "--metrics-port", str(metrics), "--http-port", "-1",
    ]  # fmt: skip
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: log.read_text().count("onnxgate serving on") == 2, timeout=120)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
    text = log.read_text()
    assert "alembic" not in text, text
    started = [line for line in text.splitlines() if "onnxgate serving on" in line]
    assert all(f"/metrics on :{metrics}, served by the parent" in line for line in started)
    assert "no /metrics" not in text
    assert proc.returncode == 0
