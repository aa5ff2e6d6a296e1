"""The project's root exception and its typed children.

Each error carries its wire meaning: a stable ``code`` (used as GraphQL ``extensions.code``
and as the CLI's error label), the ``RunErrorCode`` a run that fails with it gets, and a
message a person can act on. ``run_failure`` is the one place that turns any exception into
a failed run's code and message.
"""

from __future__ import annotations

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


class QuotaExceeded(UvmReportingError):
    """The account has as many runs queued or running as it may; a scheduled run that meets
    the cap is recorded as Failed with this code."""

    code = "QUOTA_EXCEEDED"
    run_error_code = RunErrorCode.QUOTA_EXCEEDED


class QueryFailed(UvmReportingError):
    """The report's query failed in the database; the driver's error is the ``__cause__``
    and stays in the operator log (it may name tables and values)."""

    run_error_code = RunErrorCode.QUERY_FAILED

    def __init__(self, message: str = QUERY_FAILURE_MESSAGE) -> None:
        super().__init__(message)


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

    @property
    def needs_operator(self) -> bool:
        """Whether the cause is ours to look into: then the log keeps the traceback."""
        return self.code in (RunErrorCode.INTERNAL, RunErrorCode.QUERY_FAILED)


def run_failure(error: BaseException) -> RunFailure:
    """The failed run's code and message for any exception; internals stay in the log."""
    if isinstance(error, UvmReportingError):
        return RunFailure(error.run_error_code, error.run_failure_message)
    if isinstance(error, OSError):  # a full disk, a missing folder: where the result goes
        return RunFailure(RunErrorCode.STORAGE_FAILED, f"Writing the result failed: {error.strerror or error}.")
    return RunFailure(RunErrorCode.INTERNAL, INTERNAL_FAILURE_MESSAGE)
