"""Value conversions the reference writers share.

Rows arrive as the database hands them over: a timestamp is an aware ``datetime``
(PostgreSQL) or the stored ISO-8601 UTC text ending in ``Z`` (SQLite); a date is a
``datetime.date`` or ``YYYY-MM-DD`` text; ``None`` is NULL in every type.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from uvm_reporting.domain.timestamps import format_utc


def timestamp_text(value: Any) -> Any:
    """A timestamp as ``2026-03-01T10:00:00Z``; stored text is already in that form."""
    return format_utc(value) if isinstance(value, datetime) else value


def number_text(value: Any) -> Any:
    """The shortest text that reads back as the same number, without a trailing ``.0``:
    what PostgreSQL's COPY and Arrow write too, so every path prints ``10`` and ``9.8``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return value


def date_text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value
