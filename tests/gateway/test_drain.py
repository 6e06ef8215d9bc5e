"""SIGTERM drains a real ``onnxgate serve`` process, as a new user would try it.

Eight clients keep sending while a slow request is in flight; the process gets SIGTERM.
Health turns NOT_SERVING at once, the slow request (admitted before) completes, every
other call either succeeded or got UNAVAILABLE (which clients retry elsewhere; never
CANCELLED), and the process exits 0. With ``--workers 2`` the parent forwards the signal.

NOTE: the clients stop at their first UNAVAILABLE (they fail over). One that kept
sending to this process until its very end could still get CANCELLED for a call that
reached grpc's core in the instant the listener closes: the core drops calls it has
received but not yet handed to Python when its server shuts down.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from shared import wait_for

from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from gateway.tools import modelzoo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(model: str) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    req.raw_input_contents.append(np.ones((1, 4), np.float32).tobytes())
    return req


def _health(channel: grpc.Channel) -> int | None:
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    except grpc.RpcError:
        return None
    return int(reply.status)


def _running(metrics_port: int, model: str) -> float:
    """The version's ``onnxgate_queue_depth`` (runs in flight, unbatched) from /metrics."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    for line in text.splitlines():
        if line.startswith("onnxgate_queue_depth{") and f'model="{model}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class Clients:
    """``n`` threads, each sending one call after another until its first UNAVAILABLE
    (a client that fails over to another replica, as a load balancer would make it)."""

    def __init__(self, target: str, n: int = 8) -> None:
        self.codes: Counter[grpc.StatusCode] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(target,)) for _ in range(n)]

    def _run(self, target: str) -> None:
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            while not self._stop.is_set():
                try:
                    stub.ModelInfer(_request("lin"), timeout=30)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    code = exc.code()
                with self._lock:
                    self.codes[code] += 1
                if code != grpc.StatusCode.OK:
                    return

    def start(self) -> Clients:
        for t in self._threads:
            t.start()
        return self

    def finished(self) -> bool:
        return not any(t.is_alive() for t in self._threads)

    def stop(self) -> Counter[grpc.StatusCode]:
        self._stop.set()
        for t in self._threads:
            t.join(60)
        return self.codes


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_in_flight_calls_and_exits_zero(registry, registry_url, tmp_path, workers):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    registry.register_version("slow", modelzoo.slow(iterations=1000), actor="test")
    port, metrics_port = _free_port(), _free_port()
    argv = [sys.executable, "-m", "gateway.cli", "serve", "--registry", registry_url]
    argv += ["--artifact-dir", str(tmp_path / "artifacts"), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--metrics-port", str(metrics_port), "--workers", str(workers)]
    env = {**os.environ, "ONNXGATE_GRACE_S": "120", "ONNXGATE_POLL_INTERVAL_S": "0.2"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    target = f"127.0.0.1:{port}"
    channel = grpc.insecure_channel(target)
    try:
        serving = health_pb2.HealthCheckResponse.SERVING
        wait_for(lambda: _health(channel) == serving, timeout=120)
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        if workers > 1:  # every worker up (each answers on its own connections)
            wait_for(lambda: Path(tmp_path / "serve.log").read_text().count("serving on") == 2)
        clients = Clients(target).start()
        wait_for(lambda: clients.codes[grpc.StatusCode.OK] >= 50, timeout=60)
        slow = stub.ModelInfer.future(_request("slow"), timeout=120)
        # Admitted and running: the slow version's in-flight gauge says so.
        wait_for(lambda: _running(metrics_port, "slow") == 1, timeout=60)
        ok_before = clients.codes[grpc.StatusCode.OK]
        proc.send_signal(signal.SIGTERM)
        if workers == 1:
            not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
            wait_for(lambda: _health(channel) in (not_serving, None), timeout=60)
        wait_for(clients.finished, timeout=60)  # every client has had its UNAVAILABLE
        codes = clients.stop()
        assert not slow.done(), "the slow call ended before the clients were refused"
        assert slow.result(timeout=120).model_name == "slow"
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        channel.close()
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, (codes, text[-3000:])
    assert codes[grpc.StatusCode.OK] >= ok_before
    assert codes[grpc.StatusCode.UNAVAILABLE] == 8  # each client, once, during the drain
    assert "Traceback" not in text, text[-3000:]
