"""Fixtures for the governance tests: a registry on each backend, and a clean environment.

``registry_url`` is parametrised over SQLite and PostgreSQL (the session's throwaway
cluster, see ``tests/pg_cluster.py``), like the registry suite's; test modules that run a
gateway override it with SQLite only, to keep the suite quick.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_cluster import BACKENDS, backend_url
from shared import clear_onnxgate_env

from registry.registry import Registry


@pytest.fixture(autouse=True)
def _no_onnxgate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads ONNXGATE_* from the environment; these tests pass flags instead."""
    clear_onnxgate_env(monkeypatch)


@pytest.fixture(params=BACKENDS)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from backend_url(request, tmp_path)


@pytest.fixture
def artifact_dir(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def reg(registry_url: str, artifact_dir: Path) -> Iterator[Registry]:
    registry = Registry.open(registry_url, artifact_dir)
    yield registry
    registry.close()
