"""The Registry API end to end on a real database: versions, artifacts and deployments."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from registry.deployment import Arm, Role, Shadow
from registry.errors import (
    AlreadyExists,
    ArtifactIntegrityError,
    IncompatibleSignature,
    InvalidArtifact,
    InvalidDeployment,
    InvalidName,
    NotFoundError,
    StaleRevision,
)
from registry.registry import Registry
from registry.signature import TensorSpec

CH, CL, CA = Role.CHAMPION, Role.CHALLENGER, Role.CANARY


@pytest.fixture
def three(reg: Registry, model_v1: bytes, model_v2: bytes, make_model: object) -> Registry:
    """Model "m" with versions 1 (champion), 2 and 3 registered."""
    reg.register_version("m", model_v1)
    reg.register_version("m", model_v2)
    reg.register_version("m", make_model(seed=9))  # type: ignore[operator]
    return reg


def test_register_then_get_and_list(reg: Registry, model_v1: bytes) -> None:
    rec = reg.register_version(
        "iris",
        model_v1,
        version="v1",
        description="first",
        owner="ml-team",
        metadata={"git": "abc123"},
        actor="alice",
    )
    assert rec.model == "iris" and rec.version == "v1"
    assert rec.size_bytes == len(model_v1) and len(rec.sha256) == 64
    assert rec.signature.inputs == (TensorSpec("x", "FP32", (-1, 4)),)
    assert (rec.description, rec.owner, rec.metadata) == ("first", "ml-team", {"git": "abc123"})
    # The lifecycle status: the first version of a new model becomes its champion.
    assert rec.status == "champion" and rec.created_by == "alice"
    assert rec.created_at.tzinfo is not None and rec.created_at.utcoffset() == UTC.utcoffset(None)
    assert reg.get_version("iris", "v1") == rec
    assert reg.get_version("iris") == rec  # None -> champion
    assert reg.list_versions("iris") == [rec]
    assert reg.read_artifact("iris", "v1") == model_v1


def test_first_version_becomes_champion(reg: Registry, model_v1: bytes) -> None:
    reg.register_version("m", model_v1)
    dep = reg.get_deployment("m")
    assert dep.revision == 1 and dep.arms == (Arm("1", CH, 1.0),) and dep.shadows == ()
    [record] = reg.history("m")
    assert record.deployment == dep and record.actor == "cli"


def test_versions_are_numbered_and_listed(reg: Registry, model_v1: bytes, model_v2: bytes) -> None:
    assert reg.register_version("m", model_v1).version == "1"
    assert reg.register_version("m", model_v2, version="7").version == "7"
    assert reg.register_version("m", model_v2, version="canary-a").version == "canary-a"
    assert reg.register_version("m", model_v2).version == "8"
    assert [v.version for v in reg.list_versions("m")] == ["1", "7", "canary-a", "8"]
    reg.register_version("a", model_v2)
    models = reg.list_models()
    assert [(m.name, m.versions, m.champion, m.revision) for m in models] == [
        ("a", ("1",), "1", 1),
        ("m", ("1", "7", "canary-a", "8"), "1", 1),
    ]


def test_duplicate_version_refused(reg: Registry, model_v1: bytes, model_v2: bytes) -> None:
    reg.register_version("m", model_v1, version="1")
    with pytest.raises(AlreadyExists, match="'1'.*immutable"):
        reg.register_version("m", model_v2, version="1")
    assert reg.read_artifact("m", "1") == model_v1


@pytest.mark.parametrize(
    ("model", "version"), [("", None), ("-x", None), ("a/b", None), ("m", "v 1"), ("m", "x" * 129)]
)
def test_invalid_names_refused(
    reg: Registry, model_v1: bytes, model: str, version: str | None
) -> None:
    with pytest.raises(InvalidName):
        reg.register_version(model, model_v1, version=version)


def test_non_onnx_refused(reg: Registry) -> None:
    with pytest.raises(InvalidArtifact, match="ONNX"):
        reg.register_version("m", b"this is not a model")
    assert reg.list_models() == []
    assert reg.audit_events() == []


def test_incompatible_signature_refused_unless_forced(
    reg: Registry, model_v1: bytes, model_other_signature: bytes
) -> None:
    reg.register_version("m", model_v1)
    with pytest.raises(IncompatibleSignature, match="dim 1 changed 4 -> 3.*use force") as info:
        reg.register_version("m", model_other_signature)
    assert info.value.problems == ("input 'x' dim 1 changed 4 -> 3",)
    assert [v.version for v in reg.list_versions("m")] == ["1"]
    rec = reg.register_version("m", model_other_signature, force=True, actor="bob")
    assert rec.version == "2" and rec.signature.inputs[0].shape == (-1, 3)
    event = reg.audit_events("m:2")[0]
    assert event.after["forced_incompatibilities"] == ["input 'x' dim 1 changed 4 -> 3"]


def test_tampered_artifact_detected(reg: Registry, model_v1: bytes) -> None:
    rec = reg.register_version("m", model_v1)
    path = reg.store.path(rec.sha256)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match=rec.sha256):
        reg.read_artifact("m", "1")


def test_unknown_model_and_version(reg: Registry, model_v1: bytes) -> None:
    with pytest.raises(NotFoundError, match="'nope'"):
        reg.get_version("nope")
    reg.register_version("m", model_v1)
    with pytest.raises(NotFoundError, match="version '9'"):
        reg.get_version("m", "9")
    with pytest.raises(NotFoundError, match="'nope'"):
        reg.get_deployment("nope")
    with pytest.raises(NotFoundError, match="'nope'"):
        reg.history("nope")


def test_set_deployment_and_deployments(three: Registry) -> None:
    dep = three.set_deployment(
        "m",
        [Arm("1", CH, 90), Arm("2", CL, 10)],
        [Shadow("3", 0.25)],
        actor="alice",
        reason="a/b test",
        expected_revision=1,
    )
    assert dep.revision == 2 and dep.champion.version == "1"
    assert three.get_deployment("m") == dep
    assert three.deployments() == {"m": dep}
    assert three.get_version("m").version == "1"
    last = three.history("m")[-1]
    assert (last.actor, last.reason) == ("alice", "a/b test")


@pytest.mark.parametrize(
    ("arms", "shadows", "error", "match"),
    [
        ([Arm("1", CL, 1)], [], InvalidDeployment, "no champion"),
        ([Arm("1", CH, 1), Arm("2", CH, 1)], [], InvalidDeployment, "1, 2"),
        ([Arm("1", CH, 1), Arm("2", CL, -5)], [], InvalidDeployment, "version '2'"),
        ([Arm("1", CH, 0), Arm("2", CL, 0)], [], InvalidDeployment, "total weight is 0"),
        ([Arm("1", CH, 1), Arm("1", CL, 1)], [], InvalidDeployment, "version '1'"),
        ([Arm("1", CH, 1), Arm("42", CL, 1)], [], NotFoundError, "version '42'"),
        ([Arm("1", CH, 1)], [Shadow("43", 0.5)], NotFoundError, "version '43'"),
    ],
)
def test_set_deployment_validation(
    three: Registry,
    arms: list[Arm],
    shadows: list[Shadow],
    error: type[Exception],
    match: str,
) -> None:
    counter, events = three.change_counter(), len(three.audit_events())
    with pytest.raises(error, match=match):
        three.set_deployment("m", arms, shadows, actor="alice")
    assert three.get_deployment("m").revision == 1
    assert three.change_counter() == counter and len(three.audit_events()) == events


def test_unknown_model_deployment(reg: Registry) -> None:
    with pytest.raises(NotFoundError, match="'ghost'"):
        reg.set_deployment("ghost", [Arm("1", CH, 1)], actor="a")


def test_stale_expected_revision(three: Registry) -> None:
    three.set_weights("m", {"1": 90, "2": 10}, actor="a", expected_revision=1)
    with pytest.raises(StaleRevision, match="revision 2, expected revision 1") as info:
        three.set_deployment("m", [Arm("1", CH, 1)], actor="b", expected_revision=1)
    assert (info.value.expected, info.value.actual) == (1, 2)


def test_set_weights(three: Registry) -> None:
    dep = three.set_weights("m", {"1": 80, "2": 20}, actor="a")
    assert dep.arms == (Arm("1", CH, 80), Arm("2", CL, 20))
    dep = three.set_weights("m", {"1": 70, "2": 20, "3": 10}, {"3": CA}, actor="a")
    assert dep.arms == (Arm("1", CH, 70), Arm("2", CL, 20), Arm("3", CA, 10))
    dep = three.set_weights("m", {"1": 50, "2": 50}, {"2": CH}, actor="a")
    assert dep.arms == (Arm("1", CL, 50), Arm("2", CH, 50))
    with pytest.raises(NotFoundError, match="'99'"):
        three.set_weights("m", {"2": 1, "99": 1}, actor="a")


@pytest.mark.parametrize(
    ("keep_old", "arms"),
    [
        (False, (Arm("2", CH, 100.0), Arm("3", CA, 5.0))),
        (True, (Arm("2", CH, 100.0), Arm("3", CA, 5.0), Arm("1", CL, 0.0))),
    ],
)
def test_promote(three: Registry, keep_old: bool, arms: tuple[Arm, ...]) -> None:
    three.set_weights("m", {"1": 90, "2": 10, "3": 5}, {"3": CA}, actor="a")
    dep = three.promote("m", "2", actor="bob", reason="better auc", keep_old=keep_old)
    assert dep.revision == 3 and dep.arms == arms
    assert three.get_version("m").version == "2"
    event = three.audit_events("m")[-1]
    assert (event.action, event.actor, event.reason) == ("deployment.promote", "bob", "better auc")
    assert event.before["arms"][0] == {"version": "1", "role": "champion", "weight": 90.0}
    assert event.after["arms"][0] == {"version": "2", "role": "champion", "weight": 100.0}


def test_promote_refuses_version_outside_deployment(three: Registry) -> None:
    with pytest.raises(InvalidDeployment, match="'3' is neither"):
        three.promote("m", "3", actor="a")


def test_rollback_and_history(three: Registry) -> None:
    with pytest.raises(InvalidDeployment, match="no revision before 1"):
        three.rollback("m", actor="a")
    r2 = three.set_weights("m", {"1": 90, "2": 10}, actor="a")
    r3 = three.promote("m", "2", actor="a")
    r4 = three.rollback("m", actor="ops", reason="latency")
    assert r4.revision == 4 and (r4.arms, r4.shadows) == (r2.arms, r2.shadows)
    history = three.history("m")
    assert [h.deployment.revision for h in history] == [1, 2, 3, 4]
    assert history[2].deployment == r3 and history[3].reason == "latency"
    assert three.audit_events("m")[-1].action == "deployment.rollback"
    assert three.rollback("m", actor="a").arms == r3.arms


def test_change_counter_bumped_by_every_write(three: Registry, model_v2: bytes) -> None:
    seen = [three.change_counter()]

    def bumped() -> None:
        seen.append(three.change_counter())
        assert seen[-1] == seen[-2] + 1

    three.register_version("m", model_v2)
    bumped()
    three.set_deployment("m", [Arm("1", CH, 1), Arm("2", CL, 1)], actor="a")
    bumped()
    three.set_weights("m", {"1": 3, "2": 1}, actor="a")
    bumped()
    three.promote("m", "2", actor="a")
    bumped()
    three.rollback("m", actor="a")
    bumped()
    three.record_audit(actor="gw", action="version.load_failed", subject="m:2")
    bumped()
    with pytest.raises(AlreadyExists):
        three.register_version("m", model_v2, version="1")
    assert three.change_counter() == seen[-1]


def test_failed_registration_writes_nothing(reg: Registry, model_v1: bytes) -> None:
    """A failure after the audit event was added rolls the event back with the rest."""
    counter = reg.change_counter()
    with reg._engine.begin() as conn:  # test sets up a failing trigger
        if conn.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER fail_revision BEFORE INSERT ON deployment_revision "
                    "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION fail_revision() RETURNS trigger "
                    "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER fail_revision BEFORE INSERT ON deployment_revision "
                    "FOR EACH ROW EXECUTE FUNCTION fail_revision()"
                )
            )
    with pytest.raises(DBAPIError, match="injected failure"):
        reg.register_version("m", model_v1)
    assert reg.list_models() == []
    assert reg.audit_events() == []
    assert reg.change_counter() == counter
    assert reg.verify_audit_chain() == []
    with reg._engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER fail_revision"))
        else:
            conn.execute(text("DROP TRIGGER fail_revision ON deployment_revision"))
            conn.execute(text("DROP FUNCTION fail_revision()"))
    reg.register_version("m", model_v1)
    assert [e.action for e in reg.audit_events()] == ["version.register", "deployment.set"]


def test_open_creates_nested_sqlite_dir(tmp_path: Path, model_v1: bytes) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'r.db'}"
    with Registry.open(url, tmp_path / "art") as reg:
        reg.register_version("m", model_v1)
    with Registry.open(url, tmp_path / "art") as reg:
        assert reg.get_version("m").version == "1"
