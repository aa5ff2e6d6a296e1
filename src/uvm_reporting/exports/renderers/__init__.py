"""One renderer per format: Arrow record batches -> an export file's bytes on ``out``.

| format          | from each record batch                                                |
|-----------------|-----------------------------------------------------------------------|
| csv             | records rendered by Arrow kernels (csv.py)                            |
| ndjson, json    | objects rendered by Arrow kernels (ndjson.py, json_array.py)          |
| parquet         | the batch cast to the export's schema, row groups by pyarrow          |
| xlsx            | Excel serials computed column-wise, cells written by xlsxwriter       |

Every export goes through here, whichever way its batches come: a large report's from ADBC in
the export process (exports/job_writer.py), a small report's from the driver's rows in the
worker's thread (exports/sources/driver_rows.py). An export of several parts (SQLite id
ranges, text formats only) runs the parts at once (exports/ordered_parts.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.formats import Compression, ExportFormat, validate_format_options
from uvm_reporting.exports.formats.common import BinaryWriter, Columns
from uvm_reporting.exports.ordered_parts import write_parts
from uvm_reporting.exports.renderers.csv import csv_header, csv_records, record_bytes
from uvm_reporting.exports.renderers.excel_serials import date_serials, timestamp_serials
from uvm_reporting.exports.renderers.gzip_stream import GzipStream
from uvm_reporting.exports.renderers.json_array import JsonArrayFromLines
from uvm_reporting.exports.renderers.ndjson import ndjson_records
from uvm_reporting.exports.renderers.parquet import arrow_schema, write_parquet_batches
from uvm_reporting.exports.renderers.xlsx import write_xlsx

Renderer = Callable[[Any, Columns], Any]
Part = Iterable[Any]
"""One query's record batches, read when the part is written."""
ReadAhead = Callable[[Iterator[Any]], Iterator[Any]]

XLSX_ROWS_PER_PIECE = 5_000
"""Rows turned into Python values at a time for the XLSX writer (a batch may hold many more)."""

_TEXT_RENDERERS: dict[ExportFormat, Renderer] = {
    ExportFormat.CSV: csv_records,
    ExportFormat.NDJSON: ndjson_records,
    ExportFormat.JSON: ndjson_records,
}


def write_batches(
    format: ExportFormat,
    compression: Compression | None,
    columns: Columns,
    parts: Sequence[Part],
    out: BinaryWriter,
    *,
    read_ahead: ReadAhead | None = None,
) -> int:
    """Write the parts' record batches, one part after the other, to ``out`` in ``format``
    (gzipped if asked); return the number of rows. ``read_ahead`` wraps the batches of a part
    read alone (e.g. reading them in a thread of their own while these render)."""
    validate_format_options(format, compression)
    if compression is None:
        return _write_format(format, columns, parts, out, read_ahead)
    compressed = GzipStream(out)
    rows = _write_format(format, columns, parts, compressed, read_ahead)
    compressed.finish()
    return rows


def _write_format(
    format: ExportFormat, columns: Columns, parts: Sequence[Part], out: BinaryWriter, read_ahead: ReadAhead | None
) -> int:
    if not parts:
        raise ValueError("an export needs at least one part")
    if format in _TEXT_RENDERERS:
        return _write_text(format, columns, parts, out, read_ahead)
    if len(parts) != 1:
        raise ValueError(f"{format} exports are written from one query")
    batches = iter(parts[0]) if read_ahead is None else read_ahead(iter(parts[0]))
    if format is ExportFormat.PARQUET:
        schema = arrow_schema(columns)
        return write_parquet_batches((in_export_schema(batch, schema) for batch in batches), columns, out)
    if format is ExportFormat.XLSX:
        return write_xlsx(
            (_xlsx_rows(piece, columns) for batch in batches for piece in _slices(batch, XLSX_ROWS_PER_PIECE)),
            columns,
            out,
        )
    raise ValueError(f"no export for format {format}")


def _write_text(
    format: ExportFormat, columns: Columns, parts: Sequence[Part], out: BinaryWriter, read_ahead: ReadAhead | None
) -> int:
    render = _TEXT_RENDERERS[format]
    array = JsonArrayFromLines(out) if format is ExportFormat.JSON else None
    sink: BinaryWriter = array if array is not None else out

    def write_part(part: Part, target: BinaryWriter, first: bool) -> int:
        if first and format is ExportFormat.CSV:
            target.write(csv_header(columns))
        rows = 0
        # One part alone may read ahead; parts at once keep each other busy.
        batches = read_ahead(iter(part)) if read_ahead is not None and len(parts) == 1 else part
        for batch in batches:
            target.write(record_bytes(render(batch, columns)))
            rows += len(batch)
        return rows

    if len(parts) == 1:
        rows = write_part(parts[0], sink, True)
    else:
        rows = write_parts([_part_writer(write_part, part) for part in parts], sink)
    if array is not None:
        array.finish()
    return rows


def _part_writer(
    write_part: Callable[[Part, BinaryWriter, bool], int], part: Part
) -> Callable[[BinaryWriter, bool], int]:
    return lambda target, first: write_part(part, target, first)


def in_export_schema(batch: Any, schema: Any) -> Any:
    """The batch with the export's Arrow types: SQLite's ISO text parsed into timestamps and
    dates, anything else cast where it differs."""
    arrays = [
        values if values.type == field.type else pc.cast(values, field.type)
        for values, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _slices(batch: Any, rows: int) -> Iterator[Any]:
    for start in range(0, len(batch), rows):
        yield batch.slice(start, rows)


def _xlsx_rows(batch: Any, columns: Columns) -> list[tuple[Any, ...]]:
    """The batch as rows of Python values for the XLSX writer, timestamps and dates already
    their Excel serials."""
    values: list[list[Any]] = []
    for column, (_, kind) in zip(batch.columns, columns, strict=True):
        if kind is FieldType.TIMESTAMP:
            values.append(timestamp_serials(column))
        elif kind is FieldType.DATE:
            values.append(date_serials(column))
        else:
            values.append(column.to_pylist())
    return list(zip(*values, strict=True))
