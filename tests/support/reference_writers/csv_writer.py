"""Reference CSV writer: RFC 4180 quoting, UTF-8, a header row of field paths, minimal quoting.

Records end with LF, as PostgreSQL's COPY and the sqlite3 shell write them, so a report
gives the same bytes whichever path or database produced it. Values: timestamps as
ISO-8601 UTC (``2026-03-01T10:00:00Z``), dates as ``YYYY-MM-DD``, numbers as their
shortest text (``10``, ``9.8``), NULL as an empty field, text cells formula-neutralised.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from tests.support.reference_writers.common import date_text, number_text, timestamp_text
from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.formats.common import Batches, BinaryWriter, Columns
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
    FieldType.NUMBER: number_text,
}


def write_csv(batches: Batches, columns: Columns, out: BinaryWriter) -> int:
    """Write a header and every row of ``batches`` to ``out``; return the number of rows."""
    buffer = io.StringIO()
    # The csv module quotes a field only for the characters of its line terminator; with
    # CRLF it quotes a lone CR too. Each record's CRLF is then swapped for LF.
    writer = csv.writer(buffer, lineterminator="\r\n")
    converters = [(index, _CONVERTERS[kind]) for index, (_, kind) in enumerate(columns)]
    active = [(index, convert) for index, convert in converters if convert is not None]
    lines = [_record(writer, buffer, [name for name, _ in columns])]
    rows = 0
    for batch in batches:
        for row in batch:
            values = list(row)
            for index, convert in active:
                value = values[index]
                if value is not None:
                    values[index] = convert(value)
            lines.append(_record(writer, buffer, values))
        rows += len(batch)
        out.write("".join(lines).encode("utf-8"))
        lines.clear()
    if lines:
        out.write("".join(lines).encode("utf-8"))
    return rows


def _record(writer: Any, buffer: io.StringIO, values: list[Any]) -> str:
    writer.writerow(values)
    record = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return record[:-2] + "\n"
