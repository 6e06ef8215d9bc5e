"""A registry write killed (SIGKILL) at each of its steps leaves a registry that is whole.

Each case runs one write in its own process (``faultops.py``) with ``ONNXGATE_FAILPOINTS``
arming one step, so the process dies exactly there. Afterwards: ``onnxgate audit verify``
calls the chain intact; the deployment is the old or the new revision (which one the step
decides); every file in the artifact store that a load could use hashes to its name (a
write cut short leaves only a ``.tmp-*.part`` file, never a file under a sha256 name); and
the same write, repeated, succeeds.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultops import run
from pg_cluster import backend_url
from shared import clear_onnxgate_env

from gateway import cli
from gateway.tools import modelzoo
from registry.errors import ArtifactIntegrityError
from registry.failpoints import ENV, POINTS, FailpointError, hit
from registry.governance_policy import GovernancePolicy
from registry.registry import Registry

OPS = Path(__file__).with_name("faultops.py")

# (operation, failpoint, whether the operation's change is committed when it dies there)
CASES = [
    ("register", "store.before_rename", False),
    ("register", "register.after_artifact", False),
    ("register", "register.before_commit", False),
    ("register", "register.after_commit", True),
    ("deploy", "deployment.before_commit", False),
    ("deploy", "deployment.after_commit", True),
    ("governor", "deployment.before_commit", False),
    ("governor", "deployment.after_commit", True),
    ("governor", "governor.before_commit", True),  # the revision committed, the state not
    ("governor", "governor.after_commit", True),
    ("retention", "retention.after_purge", False),
    ("retention", "retention.after_commit", True),
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_onnxgate_env(monkeypatch)


# Every step on SQLite; on PostgreSQL the steps where a transaction is cut short (each
# process is a second or two, so not all of them twice).
ON_POSTGRES = {"register.before_commit", "deployment.before_commit", "retention.after_purge"}
PARAMS = [
    pytest.param("sqlite", op, point, committed, id=f"sqlite-{op}-{point}")
    for op, point, committed in CASES
] + [
    pytest.param(
        "postgresql", op, point, committed, id=f"pg-{op}-{point}", marks=pytest.mark.postgres
    )
    for op, point, committed in CASES
    if point in ON_POSTGRES
]


@pytest.fixture
def registry_url(request: pytest.FixtureRequest, tmp_path: Path):
    yield from backend_url(request, tmp_path)


def _prepare(url: str, artifacts: Path, op: str) -> None:
    reg = Registry.open(url, artifacts)
    try:
        reg.register_version("m", modelzoo.linear(seed=1), actor="setup")  # champion
        reg.register_version("m", modelzoo.linear(seed=2), actor="setup")
        if op == "retention":  # 2 served, then retired; the policy keeps no retired version
            reg.set_weights("m", {"1": 9, "2": 1}, actor="setup")
            reg.set_weights("m", {"1": 1}, actor="setup")
            reg.governance.set_policy(GovernancePolicy(retention_keep_last=0), actor="setup")
    finally:
        reg.close()


def _run_child(
    op: str, url: str, artifacts: Path, failpoints: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, ENV: failpoints}
    return subprocess.run(
        [sys.executable, str(OPS), op, url, str(artifacts)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _loadable_files_hash_to_their_names(artifacts: Path) -> list[Path]:
    """Every file under a sha256 name holds exactly those bytes; return the temp leftovers."""
    leftovers = []
    for path in artifacts.rglob("*"):
        if path.is_dir():
            continue
        if path.name.startswith(".tmp-"):
            leftovers.append(path)
            continue
        sha = path.parent.name + path.name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha, path
    return leftovers


def _audit_intact(url: str, artifacts: Path) -> None:
    assert cli.main(["audit", "verify", "--registry", url, "--artifact-dir", str(artifacts)]) == 0


@pytest.mark.parametrize(
    ("registry_url", "op", "point", "committed"), PARAMS, indirect=["registry_url"]
)
def test_killed_at_each_step_leaves_a_whole_registry(registry_url, tmp_path, op, point, committed):
    artifacts = tmp_path / "artifacts"
    _prepare(registry_url, artifacts, op)
    reg = Registry.open(registry_url, artifacts, create=False)
    before = reg.get_deployment("m").revision
    reg.close()

    child = _run_child(op, registry_url, artifacts, point)
    assert child.returncode == -signal.SIGKILL, (child.returncode, child.stderr[-2000:])

    _audit_intact(registry_url, artifacts)
    leftovers = _loadable_files_hash_to_their_names(artifacts)
    assert bool(leftovers) == (point == "store.before_rename"), leftovers
    reg = Registry.open(registry_url, artifacts, create=False)
    try:
        revision = reg.get_deployment("m").revision
        changes_deployment = op in ("deploy", "governor")
        assert revision == (before + 1 if committed and changes_deployment else before)
        versions = {v.version: v.status for v in reg.list_versions("m")}
        if op == "register":
            assert ("3" in versions) == committed
        if op == "retention":
            assert versions["2"] == ("deleted" if committed else "retired")
        if op == "governor":
            state = reg.governor.get_state("m")
            saved = state is not None and state.state.get("candidate") == "2"
            assert saved == (point == "governor.after_commit")
        for version, status in versions.items():
            if status == "deleted":
                continue
            if point == "retention.after_purge" and version == "2":
                # Bytes gone, deletion not committed: a load refuses it, never trusts it;
                # the next retention run finishes the deletion (below).
                with pytest.raises(ArtifactIntegrityError):
                    reg.read_artifact("m", version)
                continue
            reg.read_artifact("m", version)  # re-hashed on read

        # The same write, repeated without a failpoint, goes through.
        run(op, reg)
        if op == "retention":
            assert {v.version: v.status for v in reg.list_versions("m")}["2"] == "deleted"
    finally:
        reg.close()
    _audit_intact(registry_url, artifacts)


def test_raise_and_enospc_actions_and_unknown_points():
    hit("register.before_commit", {})  # unarmed: nothing happens
    hit("register.before_commit", {ENV: "deployment.before_commit"})  # another point armed
    with pytest.raises(FailpointError):
        hit("register.before_commit", {ENV: "store.write=enospc, register.before_commit=raise"})
    with pytest.raises(OSError) as info:
        hit("store.write", {ENV: "store.write=enospc"})
    assert info.value.errno == 28
    with pytest.raises(ValueError, match="not <point>"):
        hit("store.write", {ENV: "store.wirte"})  # a typo must not silently test nothing
    assert len(set(POINTS)) == len(POINTS)


def test_bytes_of_a_killed_registration_are_swept_with_an_audit_event(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    artifacts = tmp_path / "artifacts"
    _prepare(url, artifacts, "register")
    child = _run_child("register", url, artifacts, "register.before_commit")
    assert child.returncode == -signal.SIGKILL
    reg = Registry.open(url, artifacts, create=False)
    try:
        named = {v.sha256 for v in reg.list_versions("m")}
        orphans = set(reg.store.shas()) - named
        assert len(orphans) == 1  # the killed registration's bytes, whole but unnamed
        dry = reg.governance.retention(apply=False, actor="ops")
        assert [(i.action, i.sha256) for i in dry] == [("sweep", sha) for sha in orphans]
        assert set(reg.store.shas()) - named == orphans  # a dry run changes nothing
        reg.governance.retention(apply=True, actor="ops")
        assert set(reg.store.shas()) == named
        (event,) = [e for e in reg.audit_events() if e.action == "artifact.sweep"]
        assert event.subject == f"artifact:{orphans.pop()}"
    finally:
        reg.close()
    _audit_intact(url, artifacts)


def test_retention_sweeps_a_stale_partial_write_and_keeps_a_fresh_one(tmp_path):
    """A kill at store.before_rename leaves a .tmp-*.part nothing loads; retention apply
    removes it once it is older than an hour (a younger one may be a write in progress)."""
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    artifacts = tmp_path / "artifacts"
    _prepare(registry_url, artifacts, "register")
    child = _run_child("register", registry_url, artifacts, "store.before_rename")
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    [stale] = _loadable_files_hash_to_their_names(artifacts)
    fresh = stale.with_name(".tmp-fresh.part")
    fresh.write_bytes(b"a write still in progress")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    reg = Registry.open(registry_url, artifacts, create=False)
    try:
        reg.governance.retention(apply=True, actor="test")
        events = [e for e in reg.audit_events() if e.action == "artifact.sweep"]
    finally:
        reg.close()
    assert not stale.exists() and fresh.exists()
    assert events and events[-1].after == {"temporary_files": 1}
    _audit_intact(registry_url, artifacts)
