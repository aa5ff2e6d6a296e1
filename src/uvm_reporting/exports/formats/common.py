"""What every export writer shares: the output protocol, the input shapes, value conversions.

Rows arrive as the database hands them over: a timestamp is an aware ``datetime``
(PostgreSQL) or the stored ISO-8601 UTC text ending in ``Z`` (SQLite); a date is a
``datetime.date`` or ``YYYY-MM-DD`` text; ``None`` is NULL in every type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.timestamps import format_utc


class BinaryWriter(Protocol):
    def write(self, data: bytes | memoryview, /) -> int: ...


Batches = Iterable[Sequence[Sequence[Any]]]
Columns = Sequence[tuple[str, FieldType]]

LOGICAL_TYPES: dict[FieldType, str] = {
    FieldType.STRING: "string",
    FieldType.TEXT: "string",
    FieldType.NUMBER: "number",
    FieldType.TIMESTAMP: "timestamp",
    FieldType.DATE: "date",
}
"""The format-independent type of each catalog type: ``text`` is a string to a reader."""


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


def naive_utc(value: datetime | str) -> datetime:
    """The UTC wall-clock time of a timestamp, without a zone (what spreadsheets hold)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def as_date(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(value) if isinstance(value, str) else value
