"""A gateway killed with SIGKILL after it has explained something leaves no process behind:
its explanation worker and multiprocessing's resource tracker die with it (the worker
watches its parent, gateway.explain.process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
from explain_support import onnx_of, register
from grpc_health.v1 import health_pb2, health_pb2_grpc
from procs import descendants, live_processes
from s3_server import _free_port as free_port
from shared import wait_for
from sklearn.linear_model import LogisticRegression

from gateway import cli
from registry.registry import Registry

FEATURES = 4


def _serving(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def test_sigkill_leaves_no_explain_worker_behind(
    registry: Registry, registry_url: str, tmp_path: Path, capsys
) -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(200, FEATURES))
    model = LogisticRegression().fit(ref, (ref[:, 0] > 0).astype(int))
    register(registry, "m", onnx_of(model, FEATURES), ref)
    np.save(tmp_path / "rows.npy", ref[:2])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONNXGATE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--registry", registry_url,
         "--artifact-dir", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--metrics-port", "-1", "--http-port", "-1"],
        env={**env, "ONNXGATE_EXPLAIN_PROCESSES": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    left: set[int] = set()
    try:
        wait_for(lambda: proc.poll() is not None or _serving(port), timeout=60)
        assert proc.poll() is None
        rows = str(tmp_path / "rows.npy")
        assert cli.main(["explain", "m", "--data", rows, "--target", f"127.0.0.1:{port}"]) == 0
        capsys.readouterr()
        left = descendants(proc.pid)
        assert left, "the explanation worker runs in a process of its own"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    try:
        wait_for(lambda: not (left & set(live_processes())), timeout=30)
    finally:
        for pid in left & set(live_processes()):  # only what this test started
            os.kill(pid, signal.SIGKILL)
