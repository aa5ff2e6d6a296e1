"""The Alembic migrations: they build exactly the schema of tables.py, upgrade old data, go down."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, select, text

from uvm_reporting.database.engine import MIGRATIONS_DIR, create_database_engine
from uvm_reporting.database.tables import accounts, metadata


def alembic(engine: Engine, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def test_the_migrated_schema_matches_the_tables(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_upgrading_gives_existing_accounts_an_external_id(tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    try:
        alembic(engine, "upgrade", "0001")
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO accounts (id, name, created_at) VALUES ('a1', 'Old', '2026-01-01T00:00:00.000Z')")
            )
        alembic(engine, "upgrade", "head")
        with engine.connect() as connection:
            external_id = connection.execute(select(accounts.c.external_id)).scalar_one()
        assert len(external_id) >= 32
        alembic(engine, "downgrade", "base")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM sqlite_master WHERE name='runs'")).scalar() == 0
        alembic(engine, "upgrade", "head")
        with engine.begin() as connection:
            connection.execute(
                insert(accounts).values(id="a2", name="New", external_id="x" * 48, created_at=datetime.now(UTC))
            )
    finally:
        engine.dispose()
