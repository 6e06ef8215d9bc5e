"""Database set-up for the registry: engines with the right per-backend settings, and
Alembic migrations run programmatically (no alembic.ini needed).

SQLite engines get WAL, foreign keys, a busy timeout and explicit BEGIN handling so that
write transactions start with ``BEGIN IMMEDIATE`` (writers queue on the file lock instead
of failing half-way); PostgreSQL needs nothing special here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from registry.errors import RegistryError, RegistryUnavailable

__all__ = [
    "WRITE_OPTION",
    "alembic_config",
    "install_error_events",
    "install_sqlite_events",
    "make_engine",
    "missing_extra",
    "schema_is_current",
    "upgrade",
    "upgrade_engine",
]

WRITE_OPTION = "registry_write"
"""Execution option marking a write transaction (SQLite then begins it IMMEDIATE)."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Arbitrary constant shared by every onnxgate process migrating a PostgreSQL database.
_PG_MIGRATION_LOCK = 0x6F6E6E78

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # NOTE: hand transaction control to SQLAlchemy's "begin" event below; the sqlite3
    # driver's legacy mode would otherwise skip BEGIN before SELECTs and DDL.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front: a deferred transaction that reads and then
    # writes fails with SQLITE_BUSY (no waiting) when another writer committed meanwhile.
    immediate = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# Optional drivers and clients, by top-level module, and the extra that installs each.
_EXTRAS = {"psycopg": "postgres", "psycopg2": "postgres", "boto3": "s3", "botocore": "s3"}


def missing_extra(exc: ModuleNotFoundError, needed_for: str) -> RegistryError | ModuleNotFoundError:
    """One line naming the onnxgate extra that installs the module ``exc`` misses (a
    :class:`RegistryError`, which the CLI prints without a traceback); ``exc`` itself for a
    module no extra provides."""
    module = (exc.name or "").partition(".")[0]
    extra = _EXTRAS.get(module)
    if extra is None:
        return exc
    return RegistryError(
        f"{needed_for} needs the {module} module, which is not installed: "
        f"pip install 'onnxgate[{extra}]'"
    )


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine for the registry; for SQLite files, create the parent directory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        try:
            engine = create_engine(parsed, **kwargs)
        except ModuleNotFoundError as exc:  # the driver is imported here, not at connect
            raise missing_extra(exc, f"a {parsed.drivername}:// registry") from None
        install_error_events(engine)
        return engine
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, **kwargs)
    install_sqlite_events(engine)
    install_error_events(engine)
    return engine


def install_error_events(engine: Engine) -> None:
    """Make the database's outages :class:`RegistryUnavailable` (see :func:`_unavailable`);
    idempotent."""
    if not event.contains(engine, "handle_error", _unavailable):
        event.listen(engine, "handle_error", _unavailable)


def _unavailable(context: ExceptionContext) -> BaseException | None:
    """A database that is down, unreachable, read-only or locked is :class:`RegistryUnavailable`
    (UNAVAILABLE to a client, one line at the CLI), not a driver traceback.

    NOTE: not during the pool's pre-ping: SQLAlchemy must see its own error there to
    reconnect once the database is back.
    """
    if context.is_pre_ping:
        return None
    if not (context.is_disconnect or isinstance(context.sqlalchemy_exception, OperationalError)):
        return None
    text_ = str(context.original_exception).strip()
    reason = text_.splitlines()[0][:200] if text_ else type(context.original_exception).__name__
    return RegistryUnavailable(f"the registry database is unavailable: {reason}")


def install_sqlite_events(engine: Engine) -> None:
    """Give a SQLite engine the registry's pragmas and BEGIN handling; idempotent, and a
    no-op for other backends."""
    if engine.dialect.name != "sqlite" or event.contains(engine, "begin", _sqlite_begin):
        return
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    # Pooled connections made before the listeners existed lack the pragmas.
    engine.dispose()


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    # configparser interpolates "%", which may appear in an install path.
    config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision``; safe to run concurrently."""
    config = alembic_config()
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two processes starting at once must not both create the tables.
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def upgrade(url: str) -> None:
    """Migrate the database at ``url`` to the latest schema."""
    engine = make_engine(url)
    try:
        upgrade_engine(engine)
    finally:
        engine.dispose()


def schema_is_current(engine: Engine) -> bool:
    """Whether the database is at the latest migration (False for an empty database)."""
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current == heads
