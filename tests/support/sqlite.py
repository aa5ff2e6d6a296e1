"""A migrated SQLite file for tests to copy: the migrations run once per session, not per test."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from uvm_reporting.database.engine import open_database


def migrated_sqlite_file(path: Path) -> Path:
    """Create and migrate the SQLite file ``path``; return it whole (its write-ahead log folded in)."""
    engine = open_database(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        engine.dispose()
    for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if leftover.exists() and leftover.stat().st_size:
            raise AssertionError(f"{leftover} is not empty: the copied template would miss part of the schema")
    return path
