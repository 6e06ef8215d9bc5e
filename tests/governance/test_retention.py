"""Retention: dry run vs apply, tombstones, shared bytes, and what is never deleted."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from gateway import cli
from governance.support import linear, set_policy
from registry.errors import ArtifactIntegrityError, PolicyViolation
from registry.models import Model, ModelVersion, utcnow
from registry.registry import Registry


def _backdate(reg: Registry, version: str, days: float) -> None:
    with reg._engine.begin() as conn:  # time travel for the test
        conn.execute(
            update(ModelVersion)
            .where(ModelVersion.version == version)
            .where(ModelVersion.model_id == Model.id, Model.name == "m")
            .values(status_changed_at=utcnow() - timedelta(days=days))
        )


@pytest.fixture
def retired(reg: Registry) -> Registry:
    """m: 1 champion; 2 and 3 retired 40 and 35 days ago; 4 never deployed but has the
    same bytes as 2; 5 approved and waiting to serve."""
    reg.register_version("m", linear(1))
    reg.register_version("m", linear(2))
    reg.register_version("m", linear(3))
    reg.register_version("m", linear(2), version="4")
    reg.register_version("m", linear(5), version="5", actor="alice")
    reg.governance.approve("m", "5", approver="bob")
    for v in ("2", "3"):
        reg.set_weights("m", {"1": 9, v: 1}, actor="op")
        reg.set_weights("m", {"1": 1}, actor="op")
    _backdate(reg, "2", 40)
    _backdate(reg, "3", 35)
    return reg


def _statuses(reg: Registry) -> dict[str, str]:
    return {v.version: v.status for v in reg.list_versions("m")}


def test_no_policy_keeps_everything(retired: Registry) -> None:
    items = retired.governance.retention(apply=True, actor="ops")
    assert {(i.version, i.action) for i in items} == {("2", "keep"), ("3", "keep")}
    assert all(i.reason == "no retention policy set" for i in items)


def test_dry_run_changes_nothing_then_apply_deletes(retired: Registry) -> None:
    set_policy(retired, retention_days=30, retention_keep_last=1)
    counter, events = retired.change_counter(), len(retired.audit_events())
    plan = retired.governance.retention(apply=False, actor="ops")
    assert [(i.version, i.action, i.artifact) for i in plan] == [
        ("2", "delete", "keep (shared with m:4)"),
        ("3", "keep", "keep"),
    ]
    assert "one of the last 1" in plan[1].reason
    assert retired.change_counter() == counter and len(retired.audit_events()) == events
    assert _statuses(retired)["2"] == "retired"

    applied = retired.governance.retention(apply=True, actor="ops")
    assert applied == plan
    assert _statuses(retired) == {
        "1": "champion",
        "2": "deleted",
        "3": "retired",
        "4": "validated",
        "5": "approved",
    }
    sha = retired.get_version("m", "2").sha256
    assert retired.store.exists(sha)  # version 4 still needs these bytes
    [event] = [e for e in retired.audit_events("m:2") if e.action == "version.delete"]
    assert (event.actor, event.before["status"], event.after["status"]) == (
        "ops",
        "retired",
        "deleted",
    )
    assert event.reason.startswith("retention: retired 40.0 days ago")
    assert retired.verify_audit_chain() == []


def test_apply_removes_unshared_bytes_and_tombstone_cannot_serve(retired: Registry) -> None:
    set_policy(retired, retention_days=30)
    items = retired.governance.retention(apply=True, actor="ops")
    assert {(i.version, i.action) for i in items} == {("2", "delete"), ("3", "delete")}
    three = retired.get_version("m", "3")
    assert three.status == "deleted" and three.sha256  # the tombstone keeps its metadata
    assert not retired.store.exists(three.sha256)
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        retired.read_artifact("m", "3")
    with pytest.raises(PolicyViolation, match="rule 'lifecycle'.*'3'.*deleted"):
        retired.set_weights("m", {"1": 9, "3": 1}, actor="op")
    # Approved-pending, never-deployed and serving versions are not even candidates.
    assert {i.version for i in items} == {"2", "3"}
    assert retired.governance.retention(apply=True, actor="ops") == []


def test_registering_deleted_bytes_again_restores_them(retired: Registry) -> None:
    set_policy(retired, retention_days=30)
    retired.governance.retention(apply=True, actor="ops")
    rec = retired.register_version("m", linear(3), version="3b")
    assert retired.read_artifact("m", "3b") == linear(3)
    assert rec.sha256 == retired.get_version("m", "3").sha256


def test_cli_dry_run_and_apply(
    retired: Registry, registry_url: str, artifact_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_policy(retired, retention_days=30, retention_keep_last=1)
    flags = ["--registry", registry_url, "--artifact-dir", str(artifact_dir)]
    assert cli.main(["retention", "apply", "--dry-run", "--json", *flags]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] is True
    assert [(i["version"], i["action"]) for i in doc["items"]] == [("2", "delete"), ("3", "keep")]
    assert _statuses(retired)["2"] == "retired"
    assert cli.main(["retention", "apply", *flags]) == 0
    out = capsys.readouterr().out
    assert out.startswith("retention (applied): deleted 1 of 2 retired version(s)")
    assert "keep (shared with m:4)" in out
    assert _statuses(retired)["2"] == "deleted"
