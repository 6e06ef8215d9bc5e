"""Shared fixtures: a registry on a real SQLite file, and real gateways on loopback.

A gateway runs its grpc.aio server on an event loop in a background thread, so tests talk
to it with ordinary blocking clients (tritonclient, our own stubs, the CLI) exactly as an
application would.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from shared import ADMIN_TOKEN, admin_metadata  # noqa: F401  (re-exported for old imports)

from gateway._proto import admin_pb2_grpc, grpc_service_pb2_grpc
from gateway.server import Gateway
from gateway.settings import Settings
from gateway.tools.embedded import EmbeddedGateway
from registry.registry import Registry

# Tests never bind the well-known HTTP port (8000): every gateway a test starts as a process
# (serve, --workers, fleet members) inherits this and picks a free port instead, so suites
# that start several gateways at once cannot collide on it.
os.environ.setdefault("ONNXGATE_HTTP_PORT", "0")

# One throwaway PostgreSQL cluster per session, for the backend-parametrised suites.
pytest_plugins = ["pg_cluster", "s3_server"]


class RunningGateway(EmbeddedGateway):
    """An embedded gateway plus the stubs tests use most."""

    def stub(self) -> grpc_service_pb2_grpc.GRPCInferenceServiceStub:
        return grpc_service_pb2_grpc.GRPCInferenceServiceStub(self.channel())

    def admin(self) -> admin_pb2_grpc.AdminServiceStub:
        return admin_pb2_grpc.AdminServiceStub(self.channel())


@pytest.fixture
def registry_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture
def registry(registry_url: str, tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(registry_url, tmp_path / "artifacts")
    yield reg
    reg.close()


@pytest.fixture
def make_gateway(
    registry: Registry, registry_url: str, tmp_path: Path
) -> Iterator[Callable[..., RunningGateway]]:
    """Start gateways over the test registry; every one is stopped at teardown."""
    running: list[RunningGateway] = []

    def start(gateway_kwargs: dict[str, Any] | None = None, **overrides: Any) -> RunningGateway:
        """Settings ``overrides``; ``gateway_kwargs`` go to the Gateway itself (e.g. taps)."""
        fields: dict[str, Any] = {
            "registry": registry_url,
            "artifact_dir": tmp_path / "artifacts",
            "host": "127.0.0.1",
            "port": 0,
            "metrics_port": 0,
            "http_port": 0,
            "poll_interval_s": 0.2,
            "admin_tokens": {ADMIN_TOKEN: "test-operator"},
            # A fleet is on by default on PostgreSQL; these gateways test one process.
            "fleet": False,
        }
        fields.update(overrides)
        gateway = Gateway(Settings(**fields), registry=registry, **(gateway_kwargs or {}))
        rg = RunningGateway(gateway)
        running.append(rg)
        return rg.start()

    yield start
    for rg in running:
        rg.stop()


@pytest.fixture
def onnxgate(registry_url: str, tmp_path: Path) -> Callable[..., int]:
    """Run ``onnxgate ...`` in process against the test registry; returns the exit code."""
    from gateway import cli

    flags = ["--registry", registry_url, "--artifact-dir", str(tmp_path / "artifacts")]

    def run(*args: str) -> int:
        return cli.main([*args, *flags])

    return run
