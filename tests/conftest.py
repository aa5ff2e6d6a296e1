"""Fixtures shared by every test level: settings in a temp folder, a migrated SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from uvm_reporting.settings import Settings
from uvm_reporting.store.accounts import Account, create_account
from uvm_reporting.store.database import open_database


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", public_url="http://127.0.0.1:8000", region="us01")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = open_database(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def account(engine: Engine) -> Account:
    return create_account(engine, "Acme Corp")


@pytest.fixture
def other_account(engine: Engine) -> Account:
    return create_account(engine, "Globex")
