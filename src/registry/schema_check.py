"""Which schema revision a database is at, and opening a registry only when it fits.

Long-running processes (the gateway, its workers) and the CLI's registry commands open the
registry with :func:`open_registry`: an empty database is created at the latest revision
(zero set-up), an up-to-date one is used as is, and anything else is refused with a message
saying what to run. Only ``onnxgate db upgrade`` migrates an existing database, so that
upgrading is a deliberate, single step rather than a side effect of whichever process
starts first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from registry.artifacts import open_store
from registry.errors import RegistryError
from registry.registry import Registry
from registry.schema import alembic_config, make_engine

__all__ = ["SchemaOutdated", "SchemaStatus", "open_registry", "schema_status"]


@dataclass(frozen=True)
class SchemaStatus:
    """The database's Alembic revision(s) against the ones this code needs."""

    current: tuple[str, ...]
    head: tuple[str, ...]
    known: bool  # every current revision is one this code has a migration for

    @property
    def empty(self) -> bool:
        return not self.current

    @property
    def up_to_date(self) -> bool:
        return set(self.current) == set(self.head)

    def describe(self) -> str:
        at = ", ".join(self.current) or "empty"
        return f"database at {at}; this onnxgate needs {', '.join(self.head)}"


class SchemaOutdated(RegistryError):
    """The database's schema is older (or newer) than this code needs."""


def schema_status(engine: Engine) -> SchemaStatus:
    script = ScriptDirectory.from_config(alembic_config())
    with engine.connect() as conn:
        current = tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    known = all(script.get_revision(rev) is not None for rev in current) if current else True
    return SchemaStatus(current=current, head=tuple(sorted(script.get_heads())), known=known)


def _status_or_unknown(engine: Engine) -> SchemaStatus:
    try:
        return schema_status(engine)
    except Exception:  # noqa: BLE001 - alembic raises for a revision it has no script for
        script = ScriptDirectory.from_config(alembic_config())
        with engine.connect() as conn:
            current = tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
        return SchemaStatus(current=current, head=tuple(script.get_heads()), known=False)


def open_registry(url: str, artifact_dir: Path | str, artifact_store: str = "") -> Registry:
    """Open the registry for use; create an empty database, refuse an outdated one.

    ``artifact_store``: ``s3://BUCKET/PREFIX`` keeps the artifacts in a bucket, with
    ``artifact_dir`` as its local cache; empty, they live in ``artifact_dir``.
    """
    store = open_store(artifact_store or artifact_dir, cache_dir=Path(artifact_dir))
    engine = make_engine(url)
    try:
        status = _status_or_unknown(engine)
    finally:
        engine.dispose()
    if status.empty:
        return Registry.open(url, store, create=True)
    if status.up_to_date:
        return Registry.open(url, store, create=False)
    if not status.known:
        raise SchemaOutdated(
            f"the registry schema is newer than this onnxgate ({status.describe()}); "
            "upgrade onnxgate"
        )
    raise SchemaOutdated(
        f"the registry schema is out of date ({status.describe()}); "
        "run `onnxgate db upgrade` (with the same --registry) and start again"
    )
