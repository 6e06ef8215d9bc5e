"""The registry's database goes away mid-run; the gateway keeps serving and recovers.

PostgreSQL: a cluster of this test's own (``tests/pg_cluster.py``) is stopped under a
serving gateway and started again. While it is down, inference is served from the last
routes, operator changes fail with ``UNAVAILABLE`` naming the database, the health service
``onnxgate.registry`` is NOT_SERVING (``""`` stays SERVING: inference works), the log gets
one line for the outage and one for the recovery (no traceback, not one per poll), and when
the database is back changes go through and new deployments reach the gateway again.

SQLite: root (as the tests run here) ignores file modes, and a read-only remount is refused
while SQLite holds the file open, so the SQLite file is made unwritable by the way it
actually happens: its file system fills up (a tmpfs of its own, needs ``mount``). Reads
still work, so readiness stays SERVING; changes fail with ``UNAVAILABLE``.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pg_cluster import Cluster, locate_binaries
from shared import ADMIN_TOKEN, admin_metadata, wait_for
from tmpfs_support import mounted_tmpfs

from gateway._proto import admin_pb2 as apb
from gateway._proto import admin_pb2_grpc, grpc_service_pb2_grpc
from gateway._proto import grpc_service_pb2 as pb
from gateway.server import REGISTRY_HEALTH, Gateway
from gateway.settings import Settings
from gateway.tools import modelzoo
from gateway.tools.embedded import EmbeddedGateway
from registry.errors import RegistryUnavailable
from registry.registry import Registry

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    own = Cluster(locate_binaries())
    own.start()
    try:
        yield own
    finally:
        own.stop()


def _gateway(url: str, artifacts: Path, reg: Registry) -> EmbeddedGateway:
    settings = Settings(
        registry=url,
        artifact_dir=artifacts,
        host="127.0.0.1",
        port=0,
        metrics_port=-1,
        http_port=0,  # never the well-known port: another gateway may hold it
        poll_interval_s=0.1,
        admin_tokens={ADMIN_TOKEN: "test-operator"},
    )
    return EmbeddedGateway(Gateway(settings, registry=reg)).start()


def _infer(gw: EmbeddedGateway, model: str = "m") -> list[float]:
    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name="x", datatype="FP32", shape=[1, 3])
    req.raw_input_contents.append(np.array([[1, 2, 3]], np.float32).tobytes())
    out = grpc_service_pb2_grpc.GRPCInferenceServiceStub(gw.channel()).ModelInfer(req, timeout=10)
    return np.frombuffer(out.raw_output_contents[0], np.float32).tolist()


def _ready(gw: EmbeddedGateway, model: str) -> bool:
    stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(gw.channel())
    try:
        return stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=10).ready
    except grpc.RpcError:
        return False


def _health(gw: EmbeddedGateway, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(gw.channel())
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def _set_weights(gw: EmbeddedGateway, weights: dict[str, float]) -> apb.DeploymentResponse:
    admin = admin_pb2_grpc.AdminServiceStub(gw.channel())
    request = apb.SetWeightsRequest(model="m", weights=weights, reason="fault test")
    return admin.SetWeights(request, metadata=admin_metadata(), timeout=30)


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def test_postgres_stops_and_returns(cluster, tmp_path, caplog):
    artifacts = tmp_path / "artifacts"
    reg = Registry.open(cluster.url, artifacts)
    reg.register_version("m", modelzoo.identity("FP32"), actor="test")
    reg.register_version("m", modelzoo.identity("FP32", width=3), version="2", actor="test")
    gw = _gateway(cluster.url, artifacts, reg)
    try:
        assert _infer(gw) == [1, 2, 3]
        assert _health(gw, REGISTRY_HEALTH) == SERVING
        samples = gw.gateway.metrics.registry

        def reachable() -> float | None:
            return samples.get_sample_value("onnxgate_registry_reachable")

        assert reachable() == 1  # what OnnxgateRegistryUnreachable alerts on
        with caplog.at_level(logging.INFO):
            cluster.pause()
            assert wait_for(lambda: _health(gw, REGISTRY_HEALTH) == NOT_SERVING)
            assert reachable() == 0
            assert _health(gw, "") == SERVING
            for _ in range(20):
                assert _infer(gw) == [1, 2, 3]  # the last routes
            with pytest.raises(grpc.RpcError) as info:
                _set_weights(gw, {"1": 1, "2": 1})
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
            assert "registry database is unavailable" in (info.value.details() or "")
            with pytest.raises(RegistryUnavailable):
                reg.register_version("other", modelzoo.identity("FP32"), actor="test")
            # The fleet's publisher may be mid-attempt when the database stops: wait for its
            # failure before the database returns (else an outage shorter than one attempt
            # leaves nothing to report "works again" about).
            assert wait_for(lambda: _lines(caplog, "fleet: publishing failed"), timeout=30)

            cluster.resume()
            assert wait_for(lambda: _health(gw, REGISTRY_HEALTH) == SERVING)
            assert reachable() == 1
            # The fleet (on by default on PostgreSQL) publishes again: one line for the
            # outage, one when it ends (with a count), never a traceback per attempt.
            assert wait_for(lambda: _lines(caplog, "publishing works again"), timeout=30)
        assert "Traceback" not in caplog.text
        assert not [r for r in caplog.records if r.exc_info]
        outage = _lines(caplog, "serving the last known routes")
        back = _lines(caplog, "reachable again")
        assert (len(outage), len(back)) == (1, 1), [r.getMessage() for r in caplog.records]
        failed = _lines(caplog, "fleet: publishing failed")
        again = _lines(caplog, "fleet: publishing works again after")
        assert (len(failed), len(again)) == (1, 1), [r.getMessage() for r in caplog.records]

        # Everything works again: changes, registrations, and routes following them.
        assert _set_weights(gw, {"1": 1, "2": 1}).deployment.revision == 2
        reg.register_version("other", modelzoo.identity("FP32"), actor="test")
        assert wait_for(lambda: _ready(gw, "other"))
        assert _infer(gw, "other") == [1, 2, 3]
        assert reg.verify_audit_chain() == []
    finally:
        gw.stop()
        reg.close()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of the test's own; skipped where mounting is not permitted."""
    with mounted_tmpfs(tmp_path / "small", "4m") as mount:
        yield mount


def _fill(path: Path) -> None:
    """Write zeros to ``path`` until its file system has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for block in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_sqlite_on_a_full_disk(small_fs, tmp_path, caplog):
    url = f"sqlite:///{small_fs / 'registry.db'}"
    artifacts = tmp_path / "artifacts"
    reg = Registry.open(url, artifacts)
    reg.register_version("m", modelzoo.identity("FP32"), actor="test")
    reg.register_version("m", modelzoo.identity("FP32", width=3), version="2", actor="test")
    gw = _gateway(url, artifacts, reg)
    filler = small_fs / "filler"
    try:
        with caplog.at_level(logging.INFO):
            _fill(filler)
            with pytest.raises(grpc.RpcError) as info:
                _set_weights(gw, {"1": 1, "2": 1})
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
            assert "registry database is unavailable" in (info.value.details() or "")
            assert _infer(gw) == [1, 2, 3]
            assert _health(gw, "") == SERVING
        assert "Traceback" not in caplog.text
        filler.unlink()
        assert _set_weights(gw, {"1": 1, "2": 1}).deployment.revision == 2
        assert reg.verify_audit_chain() == []
    finally:
        gw.stop()
        reg.close()
