"""Which failed attempts are tried again (application/run_retries.py), and how long a run waits
before its next attempt (domain/retries.py)."""

from __future__ import annotations

import random
import sqlite3
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, NoCredentialsError
from sqlalchemy.exc import OperationalError

from uvm_reporting.application.run_retries import classify_run_failure, final_failure
from uvm_reporting.domain.retries import retry_delay
from uvm_reporting.errors import BadUserInput, RunErrorCode, RunFailure, StorageFailed
from uvm_reporting.exports.export_process import ExportProcessFailed
from uvm_reporting.exports.query_failures import as_query_failure
from uvm_reporting.storage.s3.delivery_errors import S3Target, Stage, classify_delivery_error

ROLE = "arn:aws:iam::111122223333:role/uvm-export"
TARGET = S3Target(bucket="customer-exports", prefix="uvm", region="eu-west-1", role_arn=ROLE)


def aws_answer(code: str, status: int, message: str = "", operation: str = "PutObject") -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


def delivery(error: BaseException, stage: Stage = "write") -> RunFailure:
    """The failure of a run whose delivery to a customer's bucket met ``error``."""
    return classify_run_failure(classify_delivery_error(error, stage, TARGET))


@pytest.mark.parametrize(
    ("error", "stage"),
    [
        (aws_answer("SlowDown", 503), "write"),
        (aws_answer("ServiceUnavailable", 503), "write"),
        (aws_answer("InternalError", 500), "write"),
        (aws_answer("", 502), "write"),
        (aws_answer("Throttling", 400, "Rate exceeded", "AssumeRole"), "assume"),
        (aws_answer("RequestLimitExceeded", 400, operation="AssumeRole"), "assume"),
        (aws_answer("ServiceUnavailable", 503, operation="AssumeRole"), "assume"),
        (EndpointConnectionError(endpoint_url="https://sts.amazonaws.com"), "assume"),
        (EndpointConnectionError(endpoint_url="https://s3.amazonaws.com"), "write"),
        (ConnectTimeoutError(endpoint_url="https://s3.amazonaws.com"), "write"),
    ],
)
def test_s3_and_sts_throttling_5xx_and_connection_errors_are_transient(error: BaseException, stage: Stage) -> None:
    failure = delivery(error, stage)
    assert failure.transient
    assert failure.code is RunErrorCode.DELIVERY_FAILED


@pytest.mark.parametrize(
    ("error", "stage", "reason"),
    [
        (aws_answer("AccessDenied", 403, "Access Denied"), "write", "PUT_DENIED"),
        (aws_answer("NoSuchBucket", 404), "write", "NO_SUCH_BUCKET"),
        (aws_answer("AccessDenied", 403, "not authorized", "AssumeRole"), "assume", "EXTERNAL_ID_MISMATCH"),
        (aws_answer("NoSuchEntity", 404, operation="AssumeRole"), "assume", "ROLE_NOT_FOUND"),
        (aws_answer("InvalidClientTokenId", 403, operation="AssumeRole"), "assume", "DEPLOYMENT_CREDENTIALS_INVALID"),
        (NoCredentialsError(), "assume", "DEPLOYMENT_CREDENTIALS_INVALID"),
    ],
)
def test_refusals_of_s3_and_sts_are_permanent(error: BaseException, stage: Stage, reason: str) -> None:
    failure = delivery(error, stage)
    assert not failure.transient
    assert failure.message.startswith(f"{reason}: ")


def test_our_own_s3_storage_answering_503_is_transient_and_says_so() -> None:
    failure = classify_run_failure(aws_answer("SlowDown", 503))
    assert failure == RunFailure(
        RunErrorCode.STORAGE_FAILED,
        "The result storage (S3) was unavailable while writing the result (503 SlowDown). "
        "This is usually temporary: the run is tried again.",
        transient=True,
    )
    assert classify_run_failure(EndpointConnectionError(endpoint_url="http://x")).transient
    # A refusal of our own storage is a setup problem for the operator, not retried.
    assert not classify_run_failure(aws_answer("AccessDenied", 403)).transient


def test_a_dropped_database_connection_is_transient() -> None:
    dropped = OperationalError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True)
    # While the report's rows were read: the exporter makes it a QueryFailed that says so.
    failure = classify_run_failure(as_query_failure(dropped))
    assert failure.transient
    assert failure.code is RunErrorCode.QUERY_FAILED
    assert "connection to the database was lost" in failure.message
    # While the run was set up (its account read, say): the bare SQLAlchemy error.
    assert classify_run_failure(dropped).transient


def test_a_psycopg_connection_error_is_transient() -> None:
    psycopg = pytest.importorskip("psycopg")
    refused = OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused"))
    assert classify_run_failure(as_query_failure(refused)).transient


def test_a_query_the_database_refuses_is_permanent() -> None:
    # sqlite3 calls a missing column an OperationalError too: not a dropped connection.
    refused = OperationalError("SELECT nope", {}, sqlite3.OperationalError("no such column: nope"))
    failure = classify_run_failure(as_query_failure(refused))
    assert failure.code is RunErrorCode.QUERY_FAILED
    assert not failure.transient


@pytest.mark.parametrize(
    "error",
    [
        BadUserInput("The report's definition names an unknown column."),
        StorageFailed("This run delivers to S3, but S3 is not configured here."),
        OSError(28, "No space left on device"),
        RuntimeError("a bug"),
    ],
)
def test_a_bad_definition_a_full_disk_and_a_bug_are_permanent(error: BaseException) -> None:
    assert not classify_run_failure(error).transient


def test_an_export_process_passes_on_whether_its_failure_is_transient() -> None:
    failure = ExportProcessFailed("QUERY_FAILED", "lost", transient=True)
    assert classify_run_failure(failure) == RunFailure(RunErrorCode.QUERY_FAILED, "lost", transient=True)
    assert not classify_run_failure(ExportProcessFailed("QUERY_FAILED", "bad")).transient


def test_the_final_failure_names_the_attempts_and_the_last_cause() -> None:
    cause = RunFailure(RunErrorCode.DELIVERY_FAILED, "UNEXPECTED_ERROR: S3 answered 503 SlowDown", transient=True)
    assert final_failure(cause, 3) == RunFailure(
        RunErrorCode.DELIVERY_FAILED,
        "Failed after 3 attempts; the last one: UNEXPECTED_ERROR: S3 answered 503 SlowDown",
    )
    permanent = RunFailure(RunErrorCode.DELIVERY_FAILED, "PUT_DENIED: no")
    assert final_failure(permanent, 2) == permanent  # a permanent cause is told as it is
    assert final_failure(cause, 1).message == cause.message


def test_the_backoff_doubles_up_to_its_cap() -> None:
    def step(attempt: int) -> float:
        return retry_delay(attempt, base_seconds=2.0, max_seconds=60.0, random_fraction=lambda: 1.0)

    assert [step(attempt) for attempt in range(1, 8)] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert step(10_000) == 60.0  # no overflow, however many attempts


def test_the_jitter_stays_within_half_to_the_whole_step() -> None:
    rng = random.Random(7)
    for attempt in (1, 2, 3, 6, 40):
        step = min(60.0, 2.0 * 2 ** (attempt - 1))
        delays = [
            retry_delay(attempt, base_seconds=2.0, max_seconds=60.0, random_fraction=rng.random) for _ in range(500)
        ]
        assert all(step / 2 <= delay <= step for delay in delays)
        assert max(delays) - min(delays) > step / 4  # spread out, not one fixed wait
    assert retry_delay(1, base_seconds=2.0, max_seconds=60.0, random_fraction=lambda: 0.0) == 1.0
