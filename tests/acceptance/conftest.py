"""Fixtures of the CLI acceptance tests: the data folder the commands use, its database, and
snapshots of filled databases (tests/support/snapshots.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url

from tests.support.snapshots import DatabaseSnapshots
from uvm_reporting.database.engine import open_database
from uvm_reporting.settings import Settings


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def store(data_dir: Path, sqlite_template: Path) -> Iterator[Engine]:
    """The same SQLite file the commands open (through UVM_REPORTING_DATA_DIR), copied from the
    session's migrated template."""
    database_url = Settings(data_dir=data_dir).database_url
    path = Path(make_url(database_url).database or "")
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sqlite_template, path)
    engine = open_database(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def database_snapshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseSnapshots]:
    snapshots = DatabaseSnapshots(tmp_path_factory.mktemp("snapshots"))
    yield snapshots
    snapshots.drop()
