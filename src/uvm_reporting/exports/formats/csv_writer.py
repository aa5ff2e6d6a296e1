"""RFC 4180 CSV: UTF-8, a header row of field paths, CRLF line ends, minimal quoting.

Values: timestamps as ISO-8601 UTC (``2026-03-01T10:00:00Z``), dates as ``YYYY-MM-DD``,
numbers as numbers, NULL as an empty field, text cells formula-neutralised.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.formats.common import Batches, BinaryWriter, Columns, date_text, timestamp_text
from uvm_reporting.exports.formula_safety import neutralise_formula

__all__ = ["BinaryWriter", "write_csv"]

Converter = Callable[[Any], Any]


def _text(value: Any) -> Any:
    return neutralise_formula(value) if isinstance(value, str) else value


_CONVERTERS: dict[FieldType, Converter | None] = {
    FieldType.TIMESTAMP: timestamp_text,
    FieldType.DATE: date_text,
    FieldType.STRING: _text,
    FieldType.TEXT: _text,
    FieldType.NUMBER: None,
}


def write_csv(batches: Batches, columns: Columns, out: BinaryWriter) -> int:
    """Write a header and every row of ``batches`` to ``out``; return the number of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([name for name, _ in columns])
    converters = [(index, _CONVERTERS[kind]) for index, (_, kind) in enumerate(columns)]
    active = [(index, convert) for index, convert in converters if convert is not None]
    rows = 0
    for batch in batches:
        if active:
            converted = []
            for row in batch:
                values = list(row)
                for index, convert in active:
                    value = values[index]
                    if value is not None:
                        values[index] = convert(value)
                converted.append(values)
            writer.writerows(converted)
        else:
            writer.writerows(batch)
        rows += len(batch)
        out.write(buffer.getvalue().encode("utf-8"))
        buffer.seek(0)
        buffer.truncate()
    out.write(buffer.getvalue().encode("utf-8"))
    return rows
