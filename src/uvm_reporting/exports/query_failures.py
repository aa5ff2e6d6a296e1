"""The database's errors while a report's rows are read are the report query's failures.

Drivers raise their own types (SQLAlchemy's, sqlite3's, psycopg's, ADBC's); exports turn them
into ``QueryFailed`` where the rows are read, so that ``errors.run_failure`` needs to know
no driver.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import SQLAlchemyError

from uvm_reporting.errors import QueryFailed


def is_database_error(error: BaseException) -> bool:
    if isinstance(error, SQLAlchemyError | sqlite3.Error):
        return True
    # psycopg and the ADBC driver manager are loaded only where their backend is used.
    try:
        import psycopg  # noqa: PLC0415

        if isinstance(error, psycopg.Error):
            return True
    except ImportError:  # pragma: no cover - a dependency
        pass
    try:
        from adbc_driver_manager import Error as AdbcError  # noqa: PLC0415
    except ImportError:  # pragma: no cover - a dependency
        return False
    return isinstance(error, AdbcError)


def as_query_failure(error: BaseException) -> BaseException:
    """``QueryFailed`` (caused by ``error``) for a database error; any other error as it is."""
    if isinstance(error, QueryFailed) or not is_database_error(error):
        return error
    failure = QueryFailed()
    failure.__cause__ = error
    return failure


@contextmanager
def database_errors_as_query_failures() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        failure = as_query_failure(error)
        if failure is error:
            raise
        raise failure from error
