"""What CLI commands share: settings read once, and the migrated database."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine

from uvm_reporting.database.engine import open_database
from uvm_reporting.settings import Settings


@cache
def settings() -> Settings:
    return Settings()


@cache
def database() -> Engine:
    return open_database(settings().database_url)
