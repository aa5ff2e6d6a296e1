"""How the product writes a moment in time: ISO-8601 UTC text with a ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def format_utc(value: datetime, precise: bool = False) -> str:
    """ISO-8601 UTC text with a ``Z``: seconds, or milliseconds when ``precise``."""
    value = value.astimezone(UTC)
    if precise:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
