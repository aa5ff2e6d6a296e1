"""Fresh PostgreSQL databases for tests: one migrated template per session, cloned per test.

``CREATE DATABASE ... TEMPLATE`` copies a migrated database in a fraction of the time the
migrations take, so every test gets its own empty, current schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from uvm_reporting.database.engine import open_database

SERVER_URL = os.environ.get("UVM_REPORTING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")


def admin_engine() -> Engine:
    return create_engine(f"{SERVER_URL}/postgres", isolation_level="AUTOCOMMIT", pool_size=1)


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers."""
    engine = admin_engine()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        return f"PostgreSQL at {SERVER_URL} does not answer: {error.orig}"
    finally:
        engine.dispose()
    return None


@contextmanager
def migrated_template() -> Iterator[str]:
    """Create a migrated template database; yield its name; drop it at the end."""
    name = f"uvm_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = admin_engine()
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        open_database(f"{SERVER_URL}/{name}").dispose()
        yield name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def cloned_database(template: str) -> Iterator[str]:
    """A new database copied from ``template``; yields its URL; dropped afterwards."""
    name = f"uvm_test_{uuid.uuid4().hex[:12]}"
    admin = admin_engine()
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        yield f"{SERVER_URL}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
