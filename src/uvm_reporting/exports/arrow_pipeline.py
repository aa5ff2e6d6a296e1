"""One export job, inside the export process: ADBC record batches -> a format -> bytes on ``out``.

| format          | from each record batch                                                  |
|-----------------|-------------------------------------------------------------------------|
| csv             | records rendered by Arrow kernels (arrow_formats/csv_lines.py)          |
| ndjson, json    | objects rendered by Arrow kernels (arrow_formats/ndjson_lines.py)       |
| parquet         | the batch cast to the export's schema, row groups by pyarrow           |
| xlsx            | Excel serials computed column-wise, cells written by xlsxwriter         |

Each gives the bytes the row writers of exports/formats give for the same rows (the worker
uses those for small reports, in its own thread). Text formats of a job with several parts
(SQLite id ranges) run the parts at once (exports/ordered_parts.py). Reading the next batch
overlaps with rendering this one: the drivers and the kernels release the GIL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.formats import ExportFormat
from uvm_reporting.exports.arrow_formats.csv_lines import csv_header, csv_records, record_bytes
from uvm_reporting.exports.arrow_formats.excel_serials import date_serials, timestamp_serials
from uvm_reporting.exports.arrow_formats.json_array import JsonArrayFromLines
from uvm_reporting.exports.arrow_formats.ndjson_lines import ndjson_records
from uvm_reporting.exports.arrow_sources import postgres_batches, prefetched, sqlite_batches
from uvm_reporting.exports.export_job import ExportJob, QueryPart
from uvm_reporting.exports.formats.common import BinaryWriter, Columns
from uvm_reporting.exports.formats.gzip_stream import GzipStream
from uvm_reporting.exports.formats.parquet_writer import arrow_schema, write_parquet_batches
from uvm_reporting.exports.formats.xlsx_writer import write_xlsx
from uvm_reporting.exports.ordered_parts import write_parts

Renderer = Callable[[Any, Columns], Any]

XLSX_ROWS_PER_PIECE = 5_000
"""Rows turned into Python values at a time for the XLSX writer (a batch may hold many more)."""

_TEXT_RENDERERS: dict[ExportFormat, Renderer] = {
    ExportFormat.CSV: csv_records,
    ExportFormat.NDJSON: ndjson_records,
    ExportFormat.JSON: ndjson_records,
}


def write_job(job: ExportJob, out: BinaryWriter) -> int:
    """Write the job's rows to ``out`` in its format (gzipped if asked); return the row count."""
    if job.compression is None:
        return _write_format(job, out)
    compressed = GzipStream(out)
    rows = _write_format(job, compressed)
    compressed.finish()
    return rows


def _write_format(job: ExportJob, out: BinaryWriter) -> int:
    if job.format in _TEXT_RENDERERS:
        return _write_text(job, out)
    if len(job.parts) != 1:
        raise ValueError(f"{job.format} exports are written from one query")
    batches = prefetched(_batches(job, job.parts[0]))
    if job.format is ExportFormat.PARQUET:
        schema = arrow_schema(job.columns)
        return write_parquet_batches((_in_schema(batch, schema) for batch in batches), job.columns, out)
    if job.format is ExportFormat.XLSX:
        return write_xlsx(
            (_xlsx_rows(piece, job.columns) for batch in batches for piece in _slices(batch, XLSX_ROWS_PER_PIECE)),
            job.columns,
            out,
        )
    raise ValueError(f"no export for format {job.format}")


def _write_text(job: ExportJob, out: BinaryWriter) -> int:
    render = _TEXT_RENDERERS[job.format]
    array = JsonArrayFromLines(out) if job.format is ExportFormat.JSON else None
    sink: BinaryWriter = array if array is not None else out

    def write_part(part: QueryPart, target: BinaryWriter, first: bool) -> int:
        if first and job.format is ExportFormat.CSV:
            target.write(csv_header(job.columns))
        rows = 0
        # One part alone reads ahead in a thread of its own; parts at once keep each other busy.
        batches = _batches(job, part)
        for batch in prefetched(batches) if len(job.parts) == 1 else batches:
            target.write(record_bytes(render(batch, job.columns)))
            rows += len(batch)
        return rows

    if len(job.parts) == 1:
        rows = write_part(job.parts[0], sink, True)
    else:
        rows = write_parts([_part_writer(write_part, part) for part in job.parts], sink)
    if array is not None:
        array.finish()
    return rows


def _part_writer(
    write_part: Callable[[QueryPart, BinaryWriter, bool], int], part: QueryPart
) -> Callable[[BinaryWriter, bool], int]:
    return lambda target, first: write_part(part, target, first)


def _batches(job: ExportJob, part: QueryPart) -> Iterator[Any]:
    if job.dialect == "sqlite":
        return sqlite_batches(
            Path(job.database), part.sql, part.parameters, [kind for _, kind in job.columns], batch_rows=job.batch_rows
        )
    return postgres_batches(job.database, part.sql, job.lookups, [name for name, _ in job.columns])


def _in_schema(batch: Any, schema: Any) -> Any:
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
