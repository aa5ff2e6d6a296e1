"""Export file writers: one entry to write any format (the formats themselves are
:mod:`uvm_reporting.domain.formats`).

Every writer takes ``(batches, columns, out)`` - batches of row tuples, ``(path, FieldType)``
per column, a binary writer with ``write`` - streams rows from the batches to ``out``
without holding the result, and returns the number of rows written.
"""

from __future__ import annotations

from collections.abc import Callable

from uvm_reporting.domain.formats import Compression, ExportFormat, validate_format_options
from uvm_reporting.exports.formats.common import LOGICAL_TYPES, Batches, BinaryWriter, Columns
from uvm_reporting.exports.formats.csv_writer import write_csv
from uvm_reporting.exports.formats.gzip_stream import GzipStream
from uvm_reporting.exports.formats.json_writer import write_json, write_ndjson
from uvm_reporting.exports.formats.parquet_writer import write_parquet
from uvm_reporting.exports.formats.xlsx_writer import write_xlsx

__all__ = ["BinaryWriter", "column_manifest", "write_export"]


Writer = Callable[[Batches, Columns, BinaryWriter], int]

_WRITERS: dict[ExportFormat, Writer] = {
    ExportFormat.CSV: write_csv,
    ExportFormat.JSON: write_json,
    ExportFormat.NDJSON: write_ndjson,
    ExportFormat.XLSX: write_xlsx,
    ExportFormat.PARQUET: write_parquet,
}


def column_manifest(columns: Columns) -> list[dict[str, str]]:
    """Each column's name and format-independent type: string, number, timestamp or date."""
    return [{"name": name, "type": LOGICAL_TYPES[kind]} for name, kind in columns]


def write_export(
    format: ExportFormat, compression: Compression | None, batches: Batches, columns: Columns, out: BinaryWriter
) -> int:
    """Write ``batches`` to ``out`` in ``format`` (gzipped if asked); return the number of rows."""
    validate_format_options(format, compression)
    writer = _WRITERS[ExportFormat(format)]
    if compression is None:
        return writer(batches, columns, out)
    stream = GzipStream(out)
    rows = writer(batches, columns, stream)
    stream.finish()
    return rows
