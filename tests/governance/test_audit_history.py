"""The audit trail and point-in-time history through the CLI: verify (intact, edited,
deleted), export as JSON lines, the human table, and "what served at time T"."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway import cli
from governance.support import linear
from registry.models import GENESIS_HASH, audit_hash
from registry.registry import Registry

Run = Callable[..., int]


@pytest.fixture
def onnxgate(registry_url: str, artifact_dir: Path) -> Run:
    flags = ["--registry", registry_url, "--artifact-dir", str(artifact_dir)]
    return lambda *args: cli.main([*args, *flags])


@pytest.fixture
def history(reg: Registry) -> dict[str, datetime]:
    """m: revision 1 (v1), 2 (90/10), 3 (v2 champion); instants between them."""
    marks: dict[str, datetime] = {}

    def mark(name: str) -> None:
        time.sleep(0.01)  # timestamps are microseconds; keep the instants apart
        marks[name] = datetime.now(UTC)
        time.sleep(0.01)

    mark("before")
    reg.register_version("m", linear(1), actor="alice")
    reg.register_version("m", linear(2), actor="alice")
    mark("r1")
    reg.set_weights("m", {"1": 90, "2": 10}, actor="bob", reason="canary")
    mark("r2")
    reg.promote("m", "2", actor="bob", reason="better auc")
    mark("r3")
    return marks


def test_deployment_at(reg: Registry, history: dict[str, datetime]) -> None:
    at = reg.governance.deployment_at
    assert at("m", history["r1"]).record.deployment.revision == 1
    r2 = at("m", history["r2"])
    assert (r2.record.deployment.revision, r2.record.actor, r2.record.reason) == (
        2,
        "bob",
        "canary",
    )
    assert r2.until is not None and r2.until > history["r2"]
    r3 = at("m", history["r3"])
    assert r3.record.deployment.champion.version == "2" and r3.until is None


def test_cli_deployment_at(
    onnxgate: Run, history: dict[str, datetime], capsys: pytest.CaptureFixture[str]
) -> None:
    when = history["r2"].isoformat().replace("+00:00", "Z")
    assert onnxgate("deployment", "at", "m", when) == 0
    out = capsys.readouterr().out
    assert f"model m at {history['r2'].isoformat()}: revision 2" in out
    assert "set by bob: canary" in out and "90.0%" in out and "10.0%" in out
    assert onnxgate("deployment", "at", "m", when, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["revision"] == 2 and doc["until"] is not None
    assert [a["version"] for a in doc["arms"]] == ["1", "2"]


@pytest.mark.parametrize(
    ("when", "needle"), [("before", "had no deployment"), ("not-a-time", "not an ISO 8601")]
)
def test_cli_deployment_at_errors(
    onnxgate: Run,
    history: dict[str, datetime],
    capfd: pytest.CaptureFixture[str],
    when: str,
    needle: str,
) -> None:
    arg = history[when].isoformat() if when in history else when
    assert onnxgate("deployment", "at", "m", arg) == 1
    out, err = capfd.readouterr()
    assert out == "" and err.startswith("onnxgate: ") and needle in err


def test_cli_audit_verify_intact_then_edited_then_deleted(
    reg: Registry, onnxgate: Run, history: dict[str, datetime], capsys: pytest.CaptureFixture[str]
) -> None:
    assert onnxgate("audit", "verify") == 0
    assert capsys.readouterr().out.startswith("audit chain intact: 5 event(s)")
    with reg._engine.begin() as conn:  # tampering on purpose
        conn.execute(text("UPDATE audit_event SET actor = 'mallory' WHERE seq = 4"))
    assert onnxgate("audit", "verify") == 1
    out = capsys.readouterr().out
    assert "BROKEN: 1 problem(s)" in out and "audit seq 4: contents do not match" in out
    with reg._engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET actor = 'bob' WHERE seq = 4"))
        conn.execute(text("DELETE FROM audit_event WHERE seq = 2"))
    assert onnxgate("audit", "verify", "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["intact"] is False
    assert "audit seq 2..2 missing before seq 3" in doc["problems"]


def test_cli_audit_export_is_verifiable_offline(
    onnxgate: Run, history: dict[str, datetime], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert onnxgate("audit", "export", "--format", "jsonl") == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    prev = GENESIS_HASH
    for e in events:
        fields = {k: e[k] for k in e if k not in ("prev_hash", "hash")}
        assert e["prev_hash"] == prev and audit_hash(prev, fields) == e["hash"]
        prev = e["hash"]
    since = history["r1"].isoformat()
    out = tmp_path / "audit.jsonl"
    assert onnxgate("audit", "export", "--since", since, "--output", str(out)) == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(e["seq"], e["action"]) for e in exported] == [
        (4, "deployment.set"),
        (5, "deployment.promote"),
    ]


def test_cli_audit_table_and_json(
    onnxgate: Run, history: dict[str, datetime], capsys: pytest.CaptureFixture[str]
) -> None:
    assert onnxgate("audit", "m") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "SEQ",
        "AT",
        "(UTC)",
        "ACTOR",
        "ACTION",
        "SUBJECT",
        "CHANGE",
        "REASON",
    ]
    assert len(lines) == 2 + 5
    assert "deployment.set" in lines[5] and "1(champ)=90% 2(chall)=10%" in lines[5]
    assert "canary" in lines[5]
    assert onnxgate("audit", "m:2", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["action"] for e in doc] == ["version.register"]
    assert doc[0]["after"]["validation"]["passed"] is True
