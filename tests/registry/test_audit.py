"""The hash-chained audit log: contents, tamper detection and concurrent writers."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from registry.deployment import Arm, Deployment, Role
from registry.errors import StaleRevision
from registry.registry import Registry

CH, CL = Role.CHAMPION, Role.CHALLENGER


@pytest.fixture
def audited(reg: Registry, model_v1: bytes, model_v2: bytes) -> Registry:
    reg.register_version("m", model_v1, actor="alice")
    reg.register_version("m", model_v2, actor="alice")
    reg.set_weights("m", {"1": 90, "2": 10}, actor="bob", reason="canary")
    reg.register_version("n", model_v1, actor="carol")
    reg.record_audit(actor="gateway", action="version.load_failed", subject="m:2", reason="oom")
    return reg


def _sql(reg: Registry, statement: str) -> None:
    with reg._engine.begin() as conn:  # tampering on purpose
        conn.execute(text(statement))


def test_events_written_with_their_changes(audited: Registry) -> None:
    events = audited.audit_events()
    assert [(e.seq, e.action, e.subject) for e in events] == [
        (1, "version.register", "m:1"),
        (2, "deployment.set", "m"),
        (3, "version.register", "m:2"),
        (4, "deployment.set", "m"),
        (5, "version.register", "n:1"),
        (6, "deployment.set", "n"),
        (7, "version.load_failed", "m:2"),
    ]
    change = events[3]
    assert (change.actor, change.reason) == ("bob", "canary")
    assert change.before["arms"] == [{"version": "1", "role": "champion", "weight": 1.0}]
    assert change.after["revision"] == 2 and len(change.after["arms"]) == 2
    assert events[0].after["sha256"] == audited.get_version("m", "1").sha256
    assert all(e.at.tzinfo is not None for e in events)


def test_subject_filter_and_limit(audited: Registry) -> None:
    assert [e.seq for e in audited.audit_events("m")] == [1, 2, 3, 4, 7]
    assert [e.seq for e in audited.audit_events("m:2")] == [3, 7]
    assert [e.seq for e in audited.audit_events("n")] == [5, 6]
    assert [e.seq for e in audited.audit_events(limit=2)] == [6, 7]
    assert [e.seq for e in audited.audit_events("m", limit=1)] == [7]
    assert audited.audit_events("zzz") == []


def test_subject_filter_escapes_like_wildcards(reg: Registry) -> None:
    reg.record_audit(actor="a", action="x", subject="a_b:1")
    reg.record_audit(actor="a", action="x", subject="aXb:1")
    assert [e.subject for e in reg.audit_events("a_b")] == ["a_b:1"]


def test_record_audit_payloads_round_trip(reg: Registry) -> None:
    reg.record_audit(
        actor="gw", action="drift.alert", subject="m", before=(1, 2), after={"psi": 0.31}
    )
    [event] = reg.audit_events()
    assert event.before == [1, 2] and event.after == {"psi": 0.31}
    assert reg.verify_audit_chain() == []
    with pytest.raises(ValueError, match="JSON"):
        reg.record_audit(actor="gw", action="x", subject="m", after={"bad": object()})


def test_chain_intact(audited: Registry) -> None:
    assert audited.verify_audit_chain() == []


def test_chain_detects_edited_row(audited: Registry) -> None:
    _sql(audited, "UPDATE audit_event SET reason = 'nothing to see' WHERE seq = 4")
    assert audited.verify_audit_chain() == ["audit seq 4: contents do not match its hash"]


def test_chain_detects_deleted_middle_row(audited: Registry) -> None:
    _sql(audited, "DELETE FROM audit_event WHERE seq = 3")
    problems = audited.verify_audit_chain()
    assert "audit seq 3..3 missing before seq 4" in problems
    assert "audit seq 4: prev_hash does not match the preceding event" in problems


def test_chain_detects_truncated_tail(audited: Registry) -> None:
    _sql(audited, "DELETE FROM audit_event WHERE seq = 7")
    [problem] = audited.verify_audit_chain()
    assert "ends at seq 6" in problem and "recorded seq 7" in problem


def test_concurrent_set_deployment_exactly_one_wins(
    registry_url: str, artifact_dir: Path, reg: Registry, model_v1: bytes, model_v2: bytes
) -> None:
    reg.register_version("m", model_v1)
    reg.register_version("m", model_v2)
    barrier = threading.Barrier(2)
    results: list[Deployment | Exception] = []

    def writer(weight: float) -> None:
        with Registry.open(registry_url, artifact_dir) as own:
            barrier.wait()
            try:
                arms = [Arm("1", CH, 100 - weight), Arm("2", CL, weight)]
                results.append(own.set_deployment("m", arms, actor="t", expected_revision=1))
            except Exception as exc:  # noqa: BLE001 - the test looks at what each got
                results.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in (10.0, 20.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    wins = [r for r in results if isinstance(r, Deployment)]
    losses = [r for r in results if isinstance(r, StaleRevision)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert reg.get_deployment("m") == wins[0] and wins[0].revision == 2
    assert [h.deployment.revision for h in reg.history("m")] == [1, 2]
    assert reg.verify_audit_chain() == []


def test_concurrent_writers_keep_chain_linear(
    registry_url: str, artifact_dir: Path, reg: Registry
) -> None:
    per_thread = 15
    errors: list[Exception] = []

    def writer(name: str) -> None:
        try:
            with Registry.open(registry_url, artifact_dir) as own:
                for i in range(per_thread):
                    own.record_audit(actor=name, action="test.tick", subject=f"{name}:{i}")
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert [e.seq for e in reg.audit_events()] == list(range(1, 2 * per_thread + 1))
    assert reg.verify_audit_chain() == []
    assert reg.change_counter() == 2 * per_thread
