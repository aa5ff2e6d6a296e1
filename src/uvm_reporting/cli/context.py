"""What CLI commands share: settings read once, and the migrated database."""

from __future__ import annotations

from functools import cache

from pydantic import ValidationError
from sqlalchemy import Engine

from uvm_reporting.database.engine import open_database
from uvm_reporting.errors import BadUserInput
from uvm_reporting.settings import Settings


@cache
def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, problem['loc'])) or 'settings'}: {problem['msg']}" for problem in error.errors()
        )
        raise BadUserInput(f"The UVM_REPORTING_* settings are not valid: {problems}") from None


@cache
def database() -> Engine:
    return open_database(settings().database_url)
