"""A failed run tells its owner what kind of failure it was, whichever layer raised it."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from uvm_reporting.domain.runs import RunErrorCode
from uvm_reporting.worker.pool import describe_failure


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("SELECT 1", {}, Exception("boom")),
        sqlite3.OperationalError("no such column: x"),
        psycopg.errors.UndefinedColumn("column x does not exist"),
    ],
)
def test_database_errors_from_sqlalchemy_or_the_driver_are_query_failures(error: Exception) -> None:
    code, message = describe_failure(error)
    assert code is RunErrorCode.QUERY_FAILED
    assert str(error) not in message  # internals stay in the log


def test_other_errors_stay_internal() -> None:
    assert describe_failure(RuntimeError("bug"))[0] is RunErrorCode.INTERNAL
