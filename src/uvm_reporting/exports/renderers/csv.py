"""CSV from Arrow record batches: UTF-8, a header row of field paths, minimal quoting.

RFC 4180 with minimal quoting (a field is quoted when it holds a comma, a double quote, CR or
LF, its quotes doubled), LF after every record (as PostgreSQL's COPY and the sqlite3 shell write them), NULL as an
empty field, text cells formula-neutralised. Values: timestamps as ISO-8601 UTC
(``2026-03-01T10:00:00Z``), dates as ``YYYY-MM-DD``, numbers as their shortest text (``10``,
``9.8``). Per batch, each text column's bytes are searched once for the characters
that need quotes; only the values that hold one are quoted, by Arrow's kernels.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import pyarrow.compute as pc

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.renderers.text_cells import (
    as_string_array,
    cells_holding,
    edit_where,
    neutralise_formulas,
)
from uvm_reporting.exports.renderers.values_text import date_texts, number_texts, timestamp_texts

Columns = Sequence[tuple[str, FieldType]]

_NEEDS_QUOTES = frozenset(b',"\r\n')
_TEXT_TYPES = (FieldType.STRING, FieldType.TEXT)


def csv_header(columns: Columns) -> bytes:
    """The header record: the column paths, quoted as the csv module quotes them."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([name for name, _ in columns])
    return buffer.getvalue().encode("utf-8")


def csv_records(batch: Any, columns: Columns) -> Any:
    """One CSV record per row of ``batch``, each ending in LF, as a ``pa.string()`` array whose
    values lie one after the other: ``record_bytes()`` hands them over without a copy."""
    fields = [_field_texts(batch.column(index), kind) for index, (_, kind) in enumerate(columns)]
    if len(fields) == 1:
        # csv.writer quotes a lone empty field, or the record would be an empty line.
        alone = pc.fill_null(fields[0], "")
        return as_string_array(pc.binary_join_element_wise(pc.if_else(pc.equal(alone, ""), '""', alone), "", "\n"))
    fields[-1] = pc.binary_join_element_wise(pc.fill_null(fields[-1], ""), "", "\n")
    return as_string_array(pc.binary_join_element_wise(*fields, ",", null_handling="replace", null_replacement=""))


def record_bytes(records: Any) -> memoryview:
    """The bytes of every value of a string array, back to back (no copy)."""
    records = as_string_array(records)
    if len(records) == 0:
        return memoryview(b"")
    offsets = records.buffers()[1]
    import numpy as np  # noqa: PLC0415 - local: only the offsets of the ends are read

    ends = np.frombuffer(offsets, dtype=np.int32, count=len(records) + 1, offset=records.offset * 4)
    data = records.buffers()[2]
    if data is None:
        return memoryview(b"")
    return memoryview(data)[int(ends[0]) : int(ends[-1])]


def _field_texts(values: Any, kind: FieldType) -> Any:
    if kind is FieldType.NUMBER:
        return number_texts(values)
    if kind is FieldType.TIMESTAMP:
        return timestamp_texts(values)
    if kind is FieldType.DATE:
        return date_texts(values)
    return _quoted_where_needed(neutralise_formulas(as_string_array(values)))


def _quoted_where_needed(values: Any) -> Any:
    values = as_string_array(values)
    holding, present = cells_holding(values, _NEEDS_QUOTES)
    if not present:
        return values
    doubled: Any = (lambda chosen: pc.replace_substring(chosen, '"', '""')) if ord('"') in present else (lambda c: c)
    return edit_where(values, holding, lambda chosen: pc.binary_join_element_wise('"', doubled(chosen), '"', ""))
