"""Engines and migrations.

One function opens the database for any URL we support and brings its schema up to date with
Alembic, so every entry point (``serve``, CLI commands, tests) sees the same schema.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
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
SQLITE_BUSY_TIMEOUT_SECONDS = 30


def create_database_engine(database_url: str) -> Engine:
    """An engine for ``database_url``; SQLite gets WAL, foreign keys and a busy timeout.

    A new SQLite file is made private (0600, in a 0700 folder); its WAL and shared-memory files
    take the same mode from it."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            make_private_folder(Path(url.database).parent)
            create_private_file(Path(url.database))
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False})
        writers = _SqliteWriters(sqlite_write_lock(url.database or ":memory:"))
        event.listen(engine, "connect", _configure_sqlite_connection)
        event.listen(engine, "begin", writers.begin)
        event.listen(engine, "before_cursor_execute", writers.before_execute)
        event.listen(engine, "commit", writers.commit)
        event.listen(engine, "rollback", writers.rollback)
        event.listen(engine, "checkin", writers.checkin)
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


class FifoLock:
    """A lock handed to its waiters in the order they came: under a steady stream of writers,
    none waits much longer than the others (``threading.Lock`` lets a thread that releases it
    take it again at once, ahead of those waiting)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Event] = deque()

    def acquire(self, timeout: float) -> bool:
        with self._guard:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True
        with self._guard:
            if turn.is_set():  # handed over just as the wait timed out
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().set()  # held on, by the next in line
            else:
                self._held = False

    def locked(self) -> bool:
        return self._held


_WRITE_LOCKS: dict[str, FifoLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()
_HOLDS_WRITE_LOCK = "uvm_reporting_holds_write_lock"
_WRITE_STATEMENTS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def sqlite_write_lock(database: str) -> FifoLock:
    """The lock this process's writers of the SQLite file ``database`` take turns on."""
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(database, FifoLock())


class _SqliteWriters:
    """One writer at a time per SQLite file within this process, queued on a lock.

    SQLite has one write lock per file. Threads that wait for it in SQLite's busy handler poll
    with growing sleeps (up to 100 ms each) and whoever polls at the right moment wins, so under
    contention (API enqueues, worker claims, completions and heartbeats of ``serve``) a few
    unlucky waiters took a second. Here a transaction takes this process's lock before it asks
    SQLite for the write lock (at BEGIN IMMEDIATE, or at its first write), and gives it back once
    its COMMIT or ROLLBACK is done (at the latest when its connection returns to the pool):
    waiters are woken as soon as it is free, in the order they came, and only one thread of the
    process asks SQLite. Other processes on the same file still meet in the busy handler.
    Read-only transactions never take it (WAL readers never wait).
    """

    def __init__(self, lock: FifoLock) -> None:
        self._lock = lock

    def begin(self, connection: Any) -> None:
        # With the driver's own transaction handling off, SQLAlchemy's begin() must start one.
        # IMMEDIATE takes the write lock up front, so two claimers never both read the same
        # queued run and then collide on upgrade (which SQLite reports as "database is locked").
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode == "IMMEDIATE":
            self._acquire(connection.info)
        connection.exec_driver_sql(f"BEGIN {mode}")

    def before_execute(self, connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip()[:7].upper().startswith(_WRITE_STATEMENTS):
            self._acquire(connection.info)

    def commit(self, connection: Any) -> None:
        self._end(connection, "commit")

    def rollback(self, connection: Any) -> None:
        self._end(connection, "rollback")

    def _end(self, connection: Any, how: str) -> None:
        # These events come before SQLAlchemy ends the transaction: end it here, so that the next
        # writer finds SQLite's lock free; SQLAlchemy's own COMMIT or ROLLBACK then finds no
        # transaction and does nothing. A failure is raised as SQLAlchemy would raise it (a
        # COMMIT that failed must never pass for done); the lock then goes back at check-in.
        if not connection.info.get(_HOLDS_WRITE_LOCK):
            return
        try:
            getattr(connection.connection.dbapi_connection, how)()
        except sqlite3.Error as error:
            raise DBAPIError.instance(how.upper(), None, error, sqlite3.Error) from error
        del connection.info[_HOLDS_WRITE_LOCK]
        self._lock.release()

    def checkin(self, _dbapi_connection: Any, record: Any) -> None:
        # The pool has ended any transaction by now (commit, rollback or its reset).
        if record is not None and record.info.pop(_HOLDS_WRITE_LOCK, False):
            self._lock.release()

    def _acquire(self, info: dict[str, Any]) -> None:
        if info.get(_HOLDS_WRITE_LOCK):
            return
        # Past the busy timeout, go on without it and let SQLite's busy handler decide, as before.
        if self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_SECONDS):
            info[_HOLDS_WRITE_LOCK] = True


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
