"""How the product writes a moment in time (ISO-8601 UTC text with a ``Z``), and reads the clock."""

from __future__ import annotations

from datetime import UTC, datetime


def format_utc(value: datetime, precise: bool = False, *, exact: bool = False) -> str:
    """ISO-8601 UTC text with a ``Z``: seconds, or milliseconds when ``precise``.

    ``exact`` keeps every digit there is: fractions of a second to the microsecond, and only
    when there are any (a definition's filter values, stored as their user wrote them).
    """
    value = value.astimezone(UTC)
    if exact:
        return value.isoformat().replace("+00:00", "Z")
    if precise:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> datetime:
    return datetime.now(UTC)
