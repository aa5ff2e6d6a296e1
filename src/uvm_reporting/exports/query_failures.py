"""The database's errors while a report's rows are read are the report query's failures.

Drivers raise their own types (SQLAlchemy's, sqlite3's, psycopg's, ADBC's); exports turn them
into ``QueryFailed`` where the rows are read, so that ``errors.run_failure`` needs to know
no driver.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from uvm_reporting.errors import QueryFailed

CONNECTION_LOST_MESSAGE = (
    "The connection to the database was lost while the report's rows were read. "
    "This is usually temporary: the run is tried again."
)


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


def is_connection_lost(error: BaseException) -> bool:
    """Whether ``error`` says the database connection dropped (the server restarted, the
    connection was terminated), not that the query was refused: then trying again may work.

    SQLAlchemy tells a disconnect by the driver's error (``connection_invalidated``); psycopg's
    OperationalError is about the connection (a bad query is a ProgrammingError). sqlite3's
    OperationalError is not used: it also means "no such column".
    """
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or (error.orig is not None and is_connection_lost(error.orig))
    try:
        import psycopg  # noqa: PLC0415

        return isinstance(error, psycopg.OperationalError)
    except ImportError:  # pragma: no cover - a dependency
        return False


def as_query_failure(error: BaseException) -> BaseException:
    """``QueryFailed`` (caused by ``error``) for a database error; any other error as it is."""
    if isinstance(error, QueryFailed) or not is_database_error(error):
        return error
    failure = QueryFailed(CONNECTION_LOST_MESSAGE, transient=True) if is_connection_lost(error) else QueryFailed()
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
