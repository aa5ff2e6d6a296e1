"""Fixtures of the CLI acceptance tests: the data folder the commands use, and its database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from uvm_reporting.settings import Settings
from uvm_reporting.store.database import open_database


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def store(data_dir: Path) -> Iterator[Engine]:
    """The same SQLite file the commands open (through UVM_REPORTING_DATA_DIR)."""
    engine = open_database(Settings(data_dir=data_dir).database_url)
    yield engine
    engine.dispose()
