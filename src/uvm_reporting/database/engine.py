"""Engines and migrations.

One function opens the database for any URL we support and brings its schema up to date with
Alembic, so every entry point (``serve``, CLI commands, tests) sees the same schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from uvm_reporting.private_files import create_private_file, make_private_folder

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x75766D5F6D6967  # an arbitrary constant of ours: "uvm_mig"


def create_database_engine(database_url: str) -> Engine:
    """An engine for ``database_url``; SQLite gets WAL, foreign keys and a busy timeout.

    A new SQLite file is made private (0600, in a 0700 folder); its WAL and shared-memory files
    take the same mode from it."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            make_private_folder(Path(url.database).parent)
            create_private_file(Path(url.database))
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _configure_sqlite_connection)
        event.listen(engine, "begin", _begin_sqlite_transaction)
        return engine
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("", "psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url, pool_pre_ping=True)


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Turn off the driver's own BEGIN handling: we issue BEGIN ourselves (below), so a
    # claim can ask for BEGIN IMMEDIATE (see database.runs).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_sqlite_transaction(connection: Any) -> None:
    # With the driver's own transaction handling off, SQLAlchemy's begin() must start one.
    # IMMEDIATE takes the write lock up front, so two claimers never both read the same
    # queued run and then collide on upgrade (which SQLite reports as "database is locked").
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def migrate(engine: Engine) -> None:
    """Apply every Alembic migration that the database does not have yet."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Processes started together (scale-out) must not race to create the same tables: one
    # migrates while the others wait, then find nothing left to do.
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_database(database_url: str) -> Engine:
    """Open and migrate: what every entry point calls first."""
    engine = create_database_engine(database_url)
    migrate(engine)
    return engine


# SQLSTATEs of a server that is going away or not accepting connections yet: class 08
# (connection exceptions) and 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now).
_UNAVAILABLE_SQLSTATES = ("57P01", "57P02", "57P03")


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached right now (a server stopped or
    restarting), rather than that a statement was wrong: a request may then be tried again later."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if not isinstance(error, (OperationalError, InterfaceError)):
        return False
    sqlstate = getattr(error.orig, "sqlstate", "")
    if sqlstate is None:  # psycopg: a failure on the client's side of the connection
        return True
    return str(sqlstate).startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES
