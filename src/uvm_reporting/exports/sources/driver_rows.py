"""Batches of row tuples, as a database driver hands them over, as Arrow record batches, and
written in a format through the renderers (``write_rows``).

The small reports the worker writes in its own thread read their rows through the engine's
driver (exports/row_batches.py); each batch becomes one record batch, one ``pa.array`` call per
column, and is rendered like the export process's batches (exports/renderers).

The columns get the types ADBC's drivers give the export process, so the renderers see the
same batches either way: text for strings; doubles for numbers (a ``Decimal`` of a NUMERIC
expression too); timestamps and dates as Arrow timestamps (UTC) and dates when the driver hands
over ``datetime`` and ``date`` (PostgreSQL), and as the stored ISO-8601 text when it hands over
text (SQLite, database.types). A column mixing both is parsed into the Arrow type.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.formats import Compression, ExportFormat
from uvm_reporting.exports.formats.common import Batches, BinaryWriter, Columns
from uvm_reporting.exports.renderers import write_batches
from uvm_reporting.exports.renderers.parquet import arrow_type

_DATED = (FieldType.TIMESTAMP, FieldType.DATE)


def write_rows(
    format: ExportFormat, compression: Compression | None, batches: Batches, columns: Columns, out: BinaryWriter
) -> int:
    """Write batches of row tuples, as a database driver hands them over, to ``out`` in
    ``format`` (gzipped if asked): each batch becomes a record batch and is rendered like any
    other. Return the number of rows."""
    return write_batches(format, compression, columns, [record_batches(batches, columns)], out)


def record_batches(batches: Batches, columns: Columns) -> Iterator[Any]:
    """Each non-empty batch of row tuples as an Arrow record batch of ``columns``."""
    names = [name for name, _ in columns]
    kinds = [kind for _, kind in columns]
    for batch in batches:
        if batch:
            arrays = [_column(values, kind) for values, kind in zip(zip(*batch, strict=True), kinds, strict=True)]
            yield pa.RecordBatch.from_arrays(arrays, names=names)


def _column(values: Sequence[Any], kind: FieldType) -> Any:
    typed = arrow_type(kind)
    if kind in _DATED and next((value for value in values if value is not None), None).__class__ is str:
        # SQLite's stored text, as ADBC reads it (a datetime object among it fails: parsed below).
        with contextlib.suppress(pa.ArrowTypeError, pa.ArrowInvalid):
            return pa.array(values, type=pa.string())
    try:
        return pa.array(values, type=typed)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        if kind is FieldType.NUMBER:  # e.g. Decimal from a NUMERIC expression
            return pa.array([None if value is None else float(value) for value in values], type=typed)
        if kind not in _DATED:
            raise
    # Text next to datetime objects: Arrow's cast parses the text (the "Z" included).
    text = [value if value is None or isinstance(value, str) else value.isoformat() for value in values]
    return pa.array(text, type=pa.string()).cast(typed)
