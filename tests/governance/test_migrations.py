"""Upgrading a registry with data in it, and refusing to run on an outdated schema.

A database is built at revision 0001 by hand (what an older onnxgate wrote), upgraded to
head, and must keep every row, derive lifecycle statuses from the deployment history and
keep its audit chain intact. Until it is upgraded the gateway and the CLI refuse it with a
message saying to run ``onnxgate db upgrade``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import MetaData, insert

from gateway import cli
from gateway.server import Gateway
from gateway.settings import Settings
from governance.support import linear
from registry.errors import PolicyViolation
from registry.models import GENESIS_HASH, audit_hash
from registry.registry import Registry
from registry.schema import alembic_config, make_engine, upgrade, upgrade_engine
from registry.schema_check import SchemaOutdated, schema_status
from registry.signature import signature_from_bytes
from registry.store import FileArtifactStore as ArtifactStore

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _arms(*arms: tuple[str, str, float]) -> list[dict[str, Any]]:
    return [{"version": v, "role": r, "weight": w} for v, r, w in arms]


@pytest.fixture
def old_db(registry_url: str, artifact_dir: Path) -> Iterator[str]:
    """A revision-0001 database: m with versions 1 (champion), 2 (served, then removed),
    3 (never deployed), three deployment revisions and a two-event audit chain."""
    store = ArtifactStore(artifact_dir)
    engine = make_engine(registry_url)
    upgrade_engine(engine, "0001")
    meta = MetaData()
    with engine.begin() as conn:
        meta.reflect(conn)
        t = meta.tables
        # No explicit ids: PostgreSQL's sequences must stay in step for later inserts.
        model_id = conn.execute(
            insert(t["model"]).values(name="m", created_at=T0).returning(t["model"].c.id)
        ).scalar_one()
        rows = []
        for i in (1, 2, 3):
            data = linear(i)
            rows.append(
                {"model_id": model_id, "version": str(i), "sha256": store.put(data),
                 "size_bytes": len(data), "signature": signature_from_bytes(data).to_dict(),
                 "description": "", "owner": "ana", "metadata": {"git": f"c{i}"},
                 "status": "registered", "created_at": T0 + timedelta(minutes=i),
                 "created_by": "alice"}
            )  # fmt: skip
        conn.execute(insert(t["model_version"]), rows)
        revisions = [
            _arms(("1", "champion", 1.0)),
            _arms(("1", "champion", 90.0), ("2", "challenger", 10.0)),
            _arms(("1", "champion", 1.0)),
        ]
        conn.execute(
            insert(t["deployment_revision"]),
            [
                {"model_id": model_id, "revision": n, "arms": arms, "shadows": [], "actor": "bob",
                 "reason": f"r{n}", "created_at": T0 + timedelta(hours=n)}
                for n, arms in enumerate(revisions, start=1)
            ],
        )  # fmt: skip
        prev, events = GENESIS_HASH, []
        for seq, (action, subject) in enumerate(
            [("version.register", "m:1"), ("deployment.set", "m")], start=1
        ):
            fields = {"seq": seq, "at": (T0 + timedelta(seconds=seq)).isoformat(),
                      "actor": "alice", "action": action, "subject": subject, "before": None,
                      "after": {"n": seq}, "reason": ""}  # fmt: skip
            digest = audit_hash(prev, fields)
            events.append({**fields, "at": T0 + timedelta(seconds=seq), "prev_hash": prev,
                           "hash": digest})  # fmt: skip
            prev = digest
        conn.execute(insert(t["audit_event"]), events)
        conn.execute(
            t["registry_state"].update().values(change_counter=5, audit_seq=2, audit_head=prev)
        )
    engine.dispose()
    yield registry_url


def test_upgrade_from_0001_keeps_the_data(old_db: str, artifact_dir: Path) -> None:
    upgrade(old_db)
    with Registry.open(old_db, artifact_dir, create=False) as reg:
        versions = {v.version: v for v in reg.list_versions("m")}
        assert {v: r.status for v, r in versions.items()} == {
            "1": "champion",
            "2": "retired",
            "3": "registered",
        }
        assert versions["2"].metadata == {"git": "c2"} and versions["2"].owner == "ana"
        assert versions["2"].status_changed_at == versions["2"].created_at
        assert [h.reason for h in reg.history("m")] == ["r1", "r2", "r3"]
        assert reg.verify_audit_chain() == []
        assert reg.read_artifact("m", "3") == linear(3)
        # Old versions were never validated: validate before approving.
        with pytest.raises(PolicyViolation, match="never validated"):
            reg.governance.approve("m", "3", approver="bob")
        assert reg.governance.validate("m", "3", actor="ops").passed
        reg.governance.approve("m", "3", approver="bob")
        assert reg.register_version("m", linear(4)).status == "validated"
        point = reg.governance.deployment_at("m", T0 + timedelta(hours=2, minutes=30))
        assert point.record.deployment.revision == 2


def test_downgrade_to_previous_revision_and_back(registry_url: str, artifact_dir: Path) -> None:
    with Registry.open(registry_url, artifact_dir) as reg:
        reg.register_version("m", linear(1), actor="alice")
        reg.register_version("m", linear(2), actor="alice")
        reg.governance.approve("m", "2", approver="bob")
    engine = make_engine(registry_url)
    try:
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
        assert schema_status(engine).current == ("0002",)
    finally:
        engine.dispose()
    upgrade(registry_url)
    with Registry.open(registry_url, artifact_dir, create=False) as reg:
        # Validation reports went with the downgrade: version 2 is merely registered again.
        assert [v.status for v in reg.list_versions("m")] == ["champion", "registered"]
        assert reg.governance.approvals("m") == []  # the approval table was dropped
        assert reg.verify_audit_chain() == []


def test_gateway_and_cli_refuse_an_outdated_schema(
    old_db: str, artifact_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(registry=old_db, artifact_dir=artifact_dir, port=0, metrics_port=-1)
    with pytest.raises(SchemaOutdated, match=r"database at 0001.*run `onnxgate db upgrade`"):
        Gateway(settings)
    flags = ["--registry", old_db, "--artifact-dir", str(artifact_dir)]
    serve = ["serve", *flags, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1"]
    assert cli.main(serve) == 1
    assert "onnxgate db upgrade" in capsys.readouterr().err
    assert cli.main(["models", "list", *flags]) == 1
    assert "out of date" in capsys.readouterr().err
    assert cli.main(["db", "status", *flags]) == 1
    assert "database at 0001" in capsys.readouterr().out
    assert cli.main(["db", "upgrade", *flags]) == 0
    assert "(upgraded from 0001)" in capsys.readouterr().out
    assert cli.main(["db", "status", "--json", *flags]) == 0
    assert json.loads(capsys.readouterr().out)["up_to_date"] is True
    assert cli.main(["models", "list", *flags]) == 0
