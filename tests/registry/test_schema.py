"""Schema management: Alembic migrations match the models and run programmatically."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from registry.errors import RegistryError
from registry.models import Base
from registry.registry import Registry
from registry.schema import alembic_config, make_engine, schema_is_current, upgrade


def test_upgrade_makes_schema_current(registry_url: str) -> None:
    engine = make_engine(registry_url)
    try:
        assert not schema_is_current(engine)
        upgrade(registry_url)
        assert schema_is_current(engine)
        upgrade(registry_url)  # idempotent
        assert schema_is_current(engine)
    finally:
        engine.dispose()


def test_migration_matches_models(registry_url: str) -> None:
    upgrade(registry_url)
    engine = make_engine(registry_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_downgrade_and_upgrade_again(registry_url: str) -> None:
    upgrade(registry_url)
    engine = make_engine(registry_url)
    try:
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert not schema_is_current(engine)
        upgrade(registry_url)
        assert schema_is_current(engine)
    finally:
        engine.dispose()


def test_open_without_create_needs_current_schema(registry_url: str, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="schema"):
        Registry.open(registry_url, tmp_path / "a", create=False)
    upgrade(registry_url)
    with Registry.open(registry_url, tmp_path / "a", create=False) as reg:
        assert reg.change_counter() == 0


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
    finally:
        engine.dispose()
