"""Which failures of a run are tried again, and what a run that runs out of attempts says.

The one place that decides "transient or permanent" for a failed attempt:

* transient: S3 or STS throttling, 5xx answers and connection errors (our storage and a
  customer's bucket alike), a database connection dropped while the rows were read or the
  run was set up; the worker queues the run again after ``retry_delay`` (domain/retries.py);
* permanent: everything else (a bad definition, access denied, no such bucket, an ExternalId
  the role refuses, a full disk, a bug): the run fails at once.

Attempts share one budget with lost leases (``run_max_attempts``): ``runs.attempts`` counts
claims, whatever ended the earlier ones, so a run is tried at most that many times in all.
"""

from __future__ import annotations

import dataclasses

from botocore.exceptions import BotoCoreError, ClientError

from uvm_reporting.errors import RunErrorCode, RunFailure, StorageFailed, UvmReportingError, run_failure
from uvm_reporting.exports.query_failures import is_connection_lost
from uvm_reporting.storage.s3.delivery_errors import error_code, is_transient_aws_error

STORAGE_UNAVAILABLE_MESSAGE = (
    "The result storage (S3) was unavailable while writing the result ({answer}). "
    "This is usually temporary: the run is tried again."
)
DATABASE_UNAVAILABLE_MESSAGE = (
    "The connection to the service's database was lost while the run was prepared. "
    "This is usually temporary: the run is tried again."
)


def classify_run_failure(error: BaseException) -> RunFailure:
    """The failed attempt's code and message, and whether it is ``transient``."""
    cause = error.__cause__
    if isinstance(error, StorageFailed) and isinstance(cause, ClientError | BotoCoreError):
        # Our S3 storage names the failure (StorageFailed) and keeps botocore's error as the cause.
        return dataclasses.replace(run_failure(error), transient=is_transient_aws_error(cause))
    if not isinstance(error, UvmReportingError):
        # Our own S3 storage lets botocore's errors through; the database's come from SQLAlchemy.
        if isinstance(error, ClientError | BotoCoreError) and is_transient_aws_error(error):
            return RunFailure(
                RunErrorCode.STORAGE_FAILED,
                STORAGE_UNAVAILABLE_MESSAGE.format(answer=_answer(error)),
                transient=True,
            )
        if is_connection_lost(error):
            return RunFailure(RunErrorCode.INTERNAL, DATABASE_UNAVAILABLE_MESSAGE, transient=True)
    return run_failure(error)


def final_failure(failure: RunFailure, attempts: int) -> RunFailure:
    """What a run whose attempt ``attempts`` ended with ``failure`` reports when it is not tried
    again: a transient cause that used up the attempts says so, and names the last cause."""
    if not failure.transient or attempts <= 1:
        return failure
    return RunFailure(failure.code, f"Failed after {attempts} attempts; the last one: {failure.message}")


def _answer(error: BaseException) -> str:
    if isinstance(error, ClientError):
        code, _, status = error_code(error)
        return f"{status} {code}".strip()
    return "no connection could be made"
