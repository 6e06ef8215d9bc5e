"""Data-contract revisions in the registry: each edit is a new revision kept with who, when
and why, audited in the same transaction; the newest is in force."""

from __future__ import annotations

import pytest

from registry.errors import NotFoundError
from registry.registry import Registry

DOC = {"features": ["x[0]"], "low": [-1.0], "high": [1.0], "nan_allowed": [False],
       "categories": [None]}  # fmt: skip


def test_revisions_round_trip_and_are_audited(reg: Registry, model_v1: bytes) -> None:
    reg.register_version("m", model_v1, actor="alice")
    assert reg.contracts.get("m", "1") is None
    first = reg.contracts.set("m", "1", DOC, actor="alice", reason="from the reference")
    wider = {**DOC, "high": [5.0]}
    second = reg.contracts.set("m", "1", wider, actor="bob", reason="age up to 5")
    assert (first.revision, second.revision) == (1, 2)
    now = reg.contracts.get("m", "1")
    assert now is not None and now.revision == 2 and now.contract == wider
    assert (now.created_by, now.reason) == ("bob", "age up to 5")
    old = reg.contracts.get("m", "1", revision=1)
    assert old is not None and old.contract == DOC and old.created_by == "alice"
    assert [r.revision for r in reg.contracts.revisions("m", "1")] == [1, 2]

    events = [e for e in reg.audit_events("m:1") if e.action == "contract.set"]
    assert [(e.actor, e.reason) for e in events] == [
        ("alice", "from the reference"),
        ("bob", "age up to 5"),
    ]
    assert events[1].before == {"revision": 1} and events[1].after["revision"] == 2
    assert len(events[1].after["sha256"]) == 64
    assert not reg.verify_audit_chain()

    with pytest.raises(NotFoundError):
        reg.contracts.set("m", "9", DOC, actor="alice", reason="")
