"""PostgreSQL for real: the throwaway cluster, its CI contract, and concurrent writers.

Every test in this directory and in tests/governance that takes ``registry_url`` runs on
SQLite and on PostgreSQL (``[postgresql]`` ids; marker ``postgres``): the session's cluster
is started once by ``tests/pg_cluster.py`` (initdb + pg_ctl on a free port, socket in a
temp dir, trust auth) and stopped at the end. This module adds what is specific to it.
"""

from __future__ import annotations

import multiprocessing
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pg_cluster
import pytest
from sqlalchemy import text

from registry.deployment import Arm, Role
from registry.errors import StaleRevision
from registry.registry import Registry
from registry.schema import make_engine


@pytest.mark.postgres
def test_the_cluster_is_a_real_postgresql(postgres_server: str) -> None:
    engine = make_engine(postgres_server)
    try:
        with engine.connect() as conn:
            assert conn.dialect.name == "postgresql"
            major = int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10_000
            assert major >= 12
    finally:
        engine.dispose()


def test_missing_postgresql_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pg_cluster, "find_pg_bin", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not found") as skipped:
        pg_cluster.locate_binaries()
    assert "test_postgres.py::" in str(skipped.value)  # names the test it skips
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true a missing PostgreSQL is a failure"):
        pg_cluster.locate_binaries()


def test_binaries_found_outside_path(monkeypatch: pytest.MonkeyPatch) -> None:
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.skip("no /usr/lib/postgresql/<major>/bin here")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert shutil.which("initdb") is None
    found = pg_cluster.find_pg_bin()
    assert found is not None and (found / "pg_ctl").exists()


def _writer(url: str, artifacts: str, weight: float, start: object, out: object) -> None:
    with Registry.open(url, artifacts) as reg:
        arms = [Arm("1", Role.CHAMPION, 100 - weight), Arm("2", Role.CHALLENGER, weight)]
        start.wait()  # type: ignore[attr-defined]
        try:
            reg.set_deployment("m", arms, actor=f"w{weight:g}", expected_revision=1)
            out.put("won")  # type: ignore[attr-defined]
        except StaleRevision:
            out.put("stale")  # type: ignore[attr-defined]


@pytest.fixture
def pg_reg(postgres_server: str, artifact_dir: Path) -> Iterator[Registry]:
    pg_cluster.wipe(postgres_server)
    with Registry.open(postgres_server, artifact_dir) as reg:
        yield reg
    pg_cluster.wipe(postgres_server)


@pytest.mark.postgres
def test_two_processes_editing_one_deployment(
    pg_reg: Registry, postgres_server: str, artifact_dir: Path, model_v1: bytes, model_v2: bytes
) -> None:
    """Separate processes (own connections, row locks taken by different backends): exactly
    one wins, the other gets StaleRevision. (Threads on both backends: test_audit.py.)"""
    reg, registry_url = pg_reg, postgres_server
    reg.register_version("m", model_v1)
    reg.register_version("m", model_v2)
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(registry_url, str(artifact_dir), w, start, out))
        for w in (10.0, 20.0)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert sorted(out.get(timeout=5) for _ in procs) == ["stale", "won"]
    assert reg.get_deployment("m").revision == 2
    assert reg.verify_audit_chain() == []


def test_concurrent_approvals_are_both_counted(
    registry_url: str, artifact_dir: Path, reg: Registry, model_v1: bytes, model_v2: bytes
) -> None:
    reg.register_version("m", model_v1, actor="alice")
    reg.register_version("m", model_v2, actor="alice")
    barrier, errors = threading.Barrier(2), []

    def approve(who: str) -> None:
        with Registry.open(registry_url, artifact_dir) as own:
            barrier.wait()
            try:
                own.governance.approve("m", "2", approver=who)
            except Exception as exc:  # noqa: BLE001 - surfaced below
                errors.append(exc)

    threads = [threading.Thread(target=approve, args=(w,)) for w in ("bob", "carol")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(a.approver for a in reg.governance.approvals("m", "2")) == ["bob", "carol"]
    assert reg.verify_audit_chain() == []
