"""Snapshots of filled test databases: data that takes seconds to generate is generated once per
session, and each further test that wants it starts from a copy (a file copy on SQLite, a database
cloned from a template on PostgreSQL)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, make_url, text

from tests.support.postgres import admin_engine
from tests.support.sqlite import migrated_sqlite_file
from uvm_reporting.database.engine import open_database


class DatabaseSnapshots:
    """Per session: ``fill(database_url, key, populate)`` gives the empty, migrated database at
    ``database_url`` what ``populate`` writes, running ``populate`` only for the first database of
    each (backend, key)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._taken: dict[tuple[str, str], str] = {}  # (backend, key) -> SQLite file or PostgreSQL database

    def fill(self, database_url: str, key: str, populate: Callable[[Engine], None]) -> None:
        url = make_url(database_url)
        backend = url.get_backend_name()
        snapshot = self._taken.get((backend, key))
        if snapshot is None:
            engine = open_database(database_url)
            try:
                populate(engine)
            finally:
                engine.dispose()
            self._taken[(backend, key)] = self._take(database_url)
        elif backend == "sqlite":
            assert url.database is not None
            shutil.copyfile(snapshot, url.database)
        else:
            _administer(
                f'DROP DATABASE "{url.database}" WITH (FORCE)',
                f'CREATE DATABASE "{url.database}" TEMPLATE "{snapshot}"',
            )

    def _take(self, database_url: str) -> str:
        url = make_url(database_url)
        assert url.database is not None
        if url.get_backend_name() == "sqlite":
            copy = self._folder / f"{uuid.uuid4().hex}.sqlite3"
            shutil.copyfile(migrated_sqlite_file(Path(url.database)), copy)  # (its log folded in first)
            return str(copy)
        name = f"uvm_snapshot_{uuid.uuid4().hex[:12]}"
        _administer(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"')
        return name

    def drop(self) -> None:
        names = [name for (backend, _), name in self._taken.items() if backend == "postgresql"]
        _administer(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names))
        self._taken.clear()


def _administer(*statements: str) -> None:
    if not statements:
        return
    engine = admin_engine()
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()
