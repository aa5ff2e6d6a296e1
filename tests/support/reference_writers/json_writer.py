"""Reference JSON writers: JSON (one array of objects) and NDJSON (one object per line), streamed batch by batch.

Each row is an object keyed by the column paths (``"asset.hostname"``), in column order.
Numbers are JSON numbers (NaN and infinities, which JSON cannot express, become ``null``),
timestamps ISO-8601 UTC text ending in ``Z``, dates ``YYYY-MM-DD``, NULL ``null``.

The JSON array is written as ``[``, then one object per line, then ``]``: the whole list is
never built, and the file stays line-oriented for tools that peek into it.

Text is written verbatim, without the formula neutralisation CSV and XLSX get: these files
are read by programs, not opened by spreadsheets, and a prefixed quote would corrupt data a
program compares or joins on.

The stdlib encoder is used (its C accelerator encodes each object in one call).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tests.support.reference_writers.common import date_text, timestamp_text
from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.formats.common import Batches, BinaryWriter, Columns

Converter = Callable[[Any], Any]


def _number(value: Any) -> Any:
    return value if math.isfinite(value) else None


def _fallback(value: Any) -> Any:
    # Only reached for types the encoder does not know; a driver may hand over these.
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, datetime):
        return timestamp_text(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot export a value of type {type(value).__name__} as JSON")


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False, allow_nan=False, default=_fallback
)

_CONVERTERS: dict[FieldType, Converter | None] = {
    FieldType.TIMESTAMP: timestamp_text,
    FieldType.DATE: date_text,
    FieldType.NUMBER: _number,
    FieldType.STRING: None,
    FieldType.TEXT: None,
}


def _encoded_rows(batches: Batches, columns: Columns) -> Iterator[tuple[list[str], int]]:
    """Yield each batch as a list of encoded objects, with its row count."""
    names = [name for name, _ in columns]
    active = [(index, convert) for index, (_, kind) in enumerate(columns) if (convert := _CONVERTERS[kind]) is not None]
    encode = _ENCODER.encode
    for batch in batches:
        if not batch:
            continue
        if active:
            objects = []
            for row in batch:
                values = list(row)
                for index, convert in active:
                    value = values[index]
                    if value is not None:
                        values[index] = convert(value)
                objects.append(dict(zip(names, values, strict=True)))
        else:
            objects = [dict(zip(names, row, strict=True)) for row in batch]
        yield [encode(item) for item in objects], len(batch)


def write_json(batches: Batches, columns: Columns, out: BinaryWriter) -> int:
    """Write ``[``, one object per row, ``]`` to ``out``; return the number of rows."""
    rows = 0
    out.write(b"[")
    for encoded, count in _encoded_rows(batches, columns):
        separator = ",\n" if rows else "\n"
        out.write((separator + ",\n".join(encoded)).encode("utf-8"))
        rows += count
    out.write(b"\n]\n" if rows else b"]\n")
    return rows


def write_ndjson(batches: Batches, columns: Columns, out: BinaryWriter) -> int:
    """Write one JSON object per line (``\\n`` ends every line); return the number of rows."""
    rows = 0
    for encoded, count in _encoded_rows(batches, columns):
        encoded.append("")
        out.write("\n".join(encoded).encode("utf-8"))
        rows += count
    return rows
