"""What every export renderer shares: the output protocol and the input shapes.

Rows arrive as the database hands them over: a timestamp is an aware ``datetime``
(PostgreSQL) or the stored ISO-8601 UTC text ending in ``Z`` (SQLite); a date is a
``datetime.date`` or ``YYYY-MM-DD`` text; ``None`` is NULL in every type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from uvm_reporting.domain.catalog import FieldType


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
