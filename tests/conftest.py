"""Fixtures shared by every test level: settings in a temp folder and a migrated store.

Tests that use ``engine`` (or ``settings``) run twice: on a SQLite file and on a fresh
PostgreSQL database cloned from a migrated template. Without a PostgreSQL server the
PostgreSQL half is skipped, except in CI, where it must run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.postgres import cloned_database, migrated_template, postgres_problem
from uvm_reporting.settings import Settings
from uvm_reporting.store.accounts import Account, create_account
from uvm_reporting.store.database import open_database

pytest_plugins = ["tests.support.s3_fixtures"]


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    problem = postgres_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    with migrated_template() as template:
        yield template


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'var' / 'uvm-reporting.sqlite3'}"
        return
    template: str = request.getfixturevalue("postgres_template")
    with cloned_database(template) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "var", database_url=database_url, public_url="http://127.0.0.1:8000", region="us01"
    )


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
