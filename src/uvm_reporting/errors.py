"""The project's root exception and its typed children.

Each error carries its wire meaning: a stable ``code`` (used as GraphQL ``extensions.code``
and as the CLI's error label), the ``RunErrorCode`` a run that fails with it gets, and a
message a person can act on. ``run_failure`` is the one place that turns any exception into
a failed run's code and message.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class RunErrorCode(StrEnum):
    """Stable codes of a Failed run, shown to API clients as ``errorCode``."""

    QUERY_FAILED = "QUERY_FAILED"
    STORAGE_FAILED = "STORAGE_FAILED"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    INVALID_DEFINITION = "INVALID_DEFINITION"
    WORKER_LOST = "WORKER_LOST"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    INTERNAL = "INTERNAL"


INTERNAL_FAILURE_MESSAGE = "The export failed unexpectedly; the operator log has the details."
QUERY_FAILURE_MESSAGE = (
    "The report's query failed in the database. Check the report definition; the operator log has the details."
)


class UvmReportingError(Exception):
    """Root of every error this project raises on purpose."""

    code = "INTERNAL_SERVER_ERROR"
    run_error_code = RunErrorCode.INTERNAL
    """What a run that fails with this error reports; subclasses say their own."""
    transient = False
    """Whether the same run may succeed if tried again later (S3 throttling, a dropped database
    connection): the worker then queues it again after a backoff (application/run_retries.py)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def run_failure_message(self) -> str:
        """The failed run's message: this error's own, written for the run's owner."""
        return self.message


class BadUserInput(UvmReportingError):
    """The caller sent something invalid; the message names what and why."""

    code = "BAD_USER_INPUT"
    run_error_code = RunErrorCode.INVALID_DEFINITION  # a run's input is its report definition


class IdempotencyKeyReused(BadUserInput):
    """processReport's idempotency key was used before, within its lifetime, with other
    arguments: a bad input whose code says which."""

    code = "IDEMPOTENCY_KEY_REUSED"


class NotFound(UvmReportingError):
    """The id is unknown in the caller's account (or belongs to another account)."""

    code = "NOT_FOUND"


class Forbidden(UvmReportingError):
    """The caller is known but may not do this."""

    code = "FORBIDDEN"


class Unauthenticated(UvmReportingError):
    """No valid credentials."""

    code = "UNAUTHENTICATED"


class Conflict(UvmReportingError):
    """The request contradicts the current state (e.g. a revoked client)."""

    code = "CONFLICT"


class RateLimited(UvmReportingError):
    """Too many requests of one kind for one key (client, address, account) in the current
    window; ``retry_after_seconds`` says when the window ends."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, limit: str, retry_after_seconds: int) -> None:
        super().__init__(message, limit=limit)
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds


class Unavailable(UvmReportingError):
    """The database cannot be reached right now (stopped, restarting): HTTP 503 with
    ``Retry-After``; the same request may be sent again."""

    code = "UNAVAILABLE"


class QuotaExceeded(UvmReportingError):
    """The account has as many runs queued or running as it may; a scheduled run that meets
    the cap is recorded as Failed with this code."""

    code = "QUOTA_EXCEEDED"
    run_error_code = RunErrorCode.QUOTA_EXCEEDED


class ResultExpired(UvmReportingError):
    """The run's result file is past its retention: no link is issued for it, and an old link
    is refused (HTTP 410). Start a new run for a fresh file."""

    code = "RESULT_EXPIRED"


class QueryFailed(UvmReportingError):
    """The report's query failed in the database; the driver's error is the ``__cause__``
    and stays in the operator log (it may name tables and values). ``transient``: the
    connection was lost, not the query refused."""

    run_error_code = RunErrorCode.QUERY_FAILED

    def __init__(self, message: str = QUERY_FAILURE_MESSAGE, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class StorageFailed(UvmReportingError):
    """Writing or keeping a run's result failed (our storage, or S3 not set up for it)."""

    run_error_code = RunErrorCode.STORAGE_FAILED


class RunCancelled(UvmReportingError):
    """A started run was cancelled: its export stops between batches and its partial output is
    removed. The run ends Cancelled, not Failed (worker/pool.py)."""


@dataclass(frozen=True, slots=True)
class RunFailure:
    code: RunErrorCode
    message: str
    transient: bool = False
    """Whether trying the run again later may succeed (see ``UvmReportingError.transient``)."""

    @property
    def needs_operator(self) -> bool:
        """Whether the cause is ours to look into: then the log keeps the traceback."""
        return self.code in (RunErrorCode.INTERNAL, RunErrorCode.QUERY_FAILED)


def run_failure(error: BaseException) -> RunFailure:
    """The failed run's code and message for any exception; internals stay in the log."""
    if isinstance(error, UvmReportingError):
        return RunFailure(error.run_error_code, error.run_failure_message, error.transient)
    if isinstance(error, OSError):  # a full disk, a missing folder: where the result goes
        if error.errno == errno.ENOSPC:
            return RunFailure(
                RunErrorCode.STORAGE_FAILED, "Writing the result failed: the storage is full (No space left on device)."
            )
        return RunFailure(RunErrorCode.STORAGE_FAILED, f"Writing the result failed: {error.strerror or error}.")
    return RunFailure(RunErrorCode.INTERNAL, INTERNAL_FAILURE_MESSAGE)
