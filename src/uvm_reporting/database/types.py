"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, String
from sqlalchemy.types import TypeDecorator, TypeEngine

from uvm_reporting.domain.timestamps import format_utc


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp.

    PostgreSQL keeps ``timestamptz``. SQLite keeps fixed-width ISO-8601 text ending in ``Z``
    (``2026-03-01T10:00:00Z``, or with milliseconds when ``precise``), so the stored text is
    already what an export prints and sorts in time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def __init__(self, precise: bool = False) -> None:
        super().__init__()
        self.precise = precise

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(24))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must carry a time zone")
        value = value.astimezone(UTC)
        if dialect.name != "sqlite":
            return value
        return format_utc(value, self.precise)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value)
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        raise TypeError(f"unexpected timestamp value {value!r}")
