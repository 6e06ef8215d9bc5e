"""Three real gateway processes (``python -m gateway.cli serve``) on one registry database,
with short fleet and governor intervals, and helpers to talk to each one.

The processes are started once per backend and module (they cost seconds each on a slow
machine); tests use models of their own, so they do not disturb each other.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from shared import wait_for

from gateway._proto import governor_pb2 as gpb
from gateway._proto import governor_pb2_grpc
from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from gateway.fleet.payload import decode, merge
from gateway.governor.evidence import Evidence
from registry import Registry

PUBLISH_S = 0.2
LEASE_S = 1.0
GOVERNOR_TICK_S = 0.1
GOVERNOR_LEASE_S = 2.0  # the loop's lease: max(3 ticks, 2 s)

ENV = {
    "ONNXGATE_FLEET": "true",
    "ONNXGATE_FLEET_PUBLISH_S": str(PUBLISH_S),
    "ONNXGATE_FLEET_LEASE_S": str(LEASE_S),
    "ONNXGATE_GOVERNOR_INTERVAL_S": str(GOVERNOR_TICK_S),
    "ONNXGATE_POLL_INTERVAL_S": "0.1",
    # Drift monitoring, with small windows (only models given reference profiles drift).
    "ONNXGATE_MONITORING": "true",
    "ONNXGATE_MONITOR_MIN_ROWS": "60",
    "ONNXGATE_MONITOR_WINDOW": "200",
    "ONNXGATE_MONITOR_INTERVAL_S": "0.2",
    "ONNXGATE_LOG_LEVEL": "WARNING",
    "ONNXGATE_INTRA_OP_THREADS": "1",
    "ONNXGATE_INFERENCE_THREADS": "1",
    "ONNXGATE_BATCHING": "false",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Member:
    index: int
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def infer(self, model: str, request_id: str, x: np.ndarray) -> pb.ModelInferResponse:
        with grpc.insecure_channel(self.target) as ch:
            req = pb.ModelInferRequest(model_name=model, id=request_id)
            req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
            req.raw_input_contents.append(x.astype(np.float32).tobytes())
            return pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=20)

    def feedback(self, model: str, labels: Iterable[tuple[str, str]]) -> gpb.FeedbackResponse:
        items = [gpb.FeedbackItem(id=i, label=label) for i, label in labels]
        with grpc.insecure_channel(self.target) as ch:
            stub = governor_pb2_grpc.GovernorServiceStub(ch)
            return stub.Feedback(gpb.FeedbackRequest(model=model, items=items), timeout=20)

    def model_ready(self, model: str) -> bool:
        try:
            with grpc.insecure_channel(self.target) as ch:
                stub = pb_grpc.GRPCInferenceServiceStub(ch)
                return bool(stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=2).ready)
        except grpc.RpcError:
            return False

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            with grpc.insecure_channel(self.target) as ch:
                stub = pb_grpc.GRPCInferenceServiceStub(ch)
                return bool(stub.ServerReady(pb.ServerReadyRequest(), timeout=1).ready)
        except grpc.RpcError:
            return False


@dataclass
class Fleet:
    url: str
    registry: Registry
    members: list[Member] = field(default_factory=list)

    def by_pid(self, pid: int) -> Member:
        return next(m for m in self.members if m.proc.pid == pid)

    def leader(self) -> Member | None:
        holder, _ = self.registry.governor.leader()
        if not holder:
            return None
        pid = int(holder.split(":")[-2])
        return next((m for m in self.members if m.proc.pid == pid), None)

    def serving(self, model: str) -> None:
        """Wait until every member routes ``model`` (it polls the registry for it)."""
        for m in self.members:
            wait_for(lambda m=m: m.model_ready(model), timeout=30)

    def totals(self, model: str) -> dict[str, Evidence]:
        """The fleet's merged evidence, exactly as the leader computes it."""
        rows: dict[str, list[tuple[Evidence, bool]]] = {}
        for r in self.registry.fleet.evidence():
            if r.model == model:
                rows.setdefault(r.version, []).append((decode(r.payload), r.live))
        return {v: merge(evs) for v, evs in rows.items()}

    def requests(self, model: str, version: str) -> int:
        t = self.totals(model).get(version)
        return 0 if t is None or t.traffic is None else t.traffic.requests

    def live(self) -> set[int]:
        return {int(p.split(":")[-2]) for p in self.registry.fleet.members()}


def start_fleet(
    url: str, root: Path, n: int = 3, settings: Mapping[str, str] | None = None
) -> Fleet:
    """``n`` members on ``url``; ``settings`` (ONNXGATE_* variables) override :data:`ENV`."""
    registry = Registry.open(url, root / "artifacts")
    fleet = Fleet(url, registry)
    env = {**os.environ, **ENV, **(settings or {})}
    for i in range(n):
        port = free_port()
        log = root / f"member{i}.log"
        cmd = [
            sys.executable, "-m", "gateway.cli", "serve", "--registry", url,
            "--artifact-dir", str(root / "artifacts"), "--host", "127.0.0.1",
            "--port", str(port), "--metrics-port", "-1",
        ]  # fmt: skip
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        fleet.members.append(Member(i, port, proc, log))
    try:
        for m in fleet.members:
            wait_for(m.ready, timeout=120, every=0.2)
        wait_for(lambda: len(fleet.live()) == n, timeout=30)
    except BaseException:
        stop_fleet(fleet)  # a member that never came up must not leave the others running
        raise
    return fleet


def stop_fleet(fleet: Fleet) -> None:
    for m in fleet.members:
        if m.proc.poll() is None:
            os.kill(m.proc.pid, signal.SIGCONT)
            m.proc.send_signal(signal.SIGTERM)
    for m in fleet.members:
        try:
            m.proc.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            m.proc.kill()
            m.proc.wait()  # reaped: no "still running" ResourceWarning in the next test
    fleet.registry.close()
