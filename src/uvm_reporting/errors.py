"""The project's root exception and its typed children.

Each error carries its wire meaning: a stable ``code`` (used as GraphQL ``extensions.code``
and as the CLI's error label) and a message a person can act on.
"""

from __future__ import annotations

from typing import Any


class UvmReportingError(Exception):
    """Root of every error this project raises on purpose."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadUserInput(UvmReportingError):
    """The caller sent something invalid; the message names what and why."""

    code = "BAD_USER_INPUT"


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
