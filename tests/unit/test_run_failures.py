"""Each kind of failure a run can end with maps to its run error code, through one function."""

from __future__ import annotations

import sqlite3

import adbc_driver_manager
import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from uvm_reporting.errors import (
    INTERNAL_FAILURE_MESSAGE,
    BadUserInput,
    QueryFailed,
    RunErrorCode,
    StorageFailed,
    UvmReportingError,
    run_failure,
)
from uvm_reporting.exports.export_process import ExportProcessFailed, ExportProcessGone
from uvm_reporting.exports.query_failures import as_query_failure, database_errors_as_query_failures
from uvm_reporting.storage.s3.delivery_errors import DeliveryError

NO_SPACE = "No space left on device"


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (BadUserInput("unknown column x"), RunErrorCode.INVALID_DEFINITION, "unknown column x"),
        (StorageFailed("S3 is not configured here."), RunErrorCode.STORAGE_FAILED, "S3 is not configured here."),
        (
            DeliveryError("AccessDenied", "the role may not write"),
            RunErrorCode.DELIVERY_FAILED,
            "AccessDenied: the role may not write",
        ),
        (ExportProcessFailed("QUERY_FAILED", "the query failed"), RunErrorCode.QUERY_FAILED, "the query failed"),
        (ExportProcessFailed("STORAGE_FAILED", "disk full"), RunErrorCode.STORAGE_FAILED, "disk full"),
        (ExportProcessFailed("NO_SUCH_CODE", "odd"), RunErrorCode.INTERNAL, "odd"),
        (
            OSError(28, "No space left on device"),
            RunErrorCode.STORAGE_FAILED,
            "Writing the result failed: the storage is full (No space left on device).",
        ),
        (
            OSError(13, "Permission denied"),
            RunErrorCode.STORAGE_FAILED,
            "Writing the result failed: Permission denied.",
        ),
        (
            UvmReportingError("Exports need a SQLite database file."),
            RunErrorCode.INTERNAL,
            "Exports need a SQLite database file.",
        ),
        (RuntimeError("a bug"), RunErrorCode.INTERNAL, INTERNAL_FAILURE_MESSAGE),
    ],
)
def test_each_failure_has_its_code_and_message(error: BaseException, code: RunErrorCode, message: str) -> None:
    failure = run_failure(error)
    assert failure.code is code
    assert failure.message == message


def test_a_dead_export_process_is_internal() -> None:
    failure = run_failure(ExportProcessGone("was killed by signal 9"))
    assert failure.code is RunErrorCode.INTERNAL
    assert "was killed by signal 9" in failure.message


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("SELECT 1", {}, Exception("boom")),
        sqlite3.OperationalError("no such column: x"),
        psycopg.errors.UndefinedColumn("column x does not exist"),
        adbc_driver_manager.ProgrammingError(
            "no such table: findings", status_code=adbc_driver_manager.AdbcStatusCode.NOT_FOUND
        ),
    ],
)
def test_database_errors_while_rows_are_read_are_query_failures(error: Exception) -> None:
    with pytest.raises(QueryFailed) as raised, database_errors_as_query_failures():
        raise error
    assert raised.value.__cause__ is error  # the driver's text goes to the operator log
    failure = run_failure(raised.value)
    assert failure.code is RunErrorCode.QUERY_FAILED
    assert str(error) not in failure.message
    assert failure.needs_operator


@pytest.mark.parametrize("error", [OSError(5, "I/O error"), BadUserInput("bad"), RuntimeError("bug")])
def test_other_errors_pass_through_the_query_translation_unchanged(error: Exception) -> None:
    assert as_query_failure(error) is error
    with pytest.raises(type(error)) as raised, database_errors_as_query_failures():
        raise error
    assert raised.value is error


def test_only_our_own_faults_keep_a_traceback_in_the_log() -> None:
    assert run_failure(RuntimeError("bug")).needs_operator
    assert not run_failure(BadUserInput("bad")).needs_operator
    assert not run_failure(StorageFailed("full")).needs_operator
