"""Export file formats: which exist, how each is named and typed, and one entry to write any.

Every writer takes ``(batches, columns, out)`` - batches of row tuples, ``(path, FieldType)``
per column, a binary writer with ``write`` - streams rows from the batches to ``out``
without holding the result, and returns the number of rows written.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from uvm_reporting.errors import BadUserInput
from uvm_reporting.exports.formats.common import LOGICAL_TYPES, Batches, BinaryWriter, Columns
from uvm_reporting.exports.formats.csv_writer import write_csv
from uvm_reporting.exports.formats.gzip_stream import GzipStream
from uvm_reporting.exports.formats.json_writer import write_json, write_ndjson
from uvm_reporting.exports.formats.parquet_writer import write_parquet
from uvm_reporting.exports.formats.xlsx_writer import write_xlsx

__all__ = [
    "BinaryWriter",
    "Compression",
    "ExportFormat",
    "column_manifest",
    "content_type",
    "file_extension",
    "validate_format_options",
    "write_export",
]


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    NDJSON = "ndjson"
    XLSX = "xlsx"
    PARQUET = "parquet"


class Compression(StrEnum):
    GZIP = "gzip"


Writer = Callable[[Batches, Columns, BinaryWriter], int]

_WRITERS: dict[ExportFormat, Writer] = {
    ExportFormat.CSV: write_csv,
    ExportFormat.JSON: write_json,
    ExportFormat.NDJSON: write_ndjson,
    ExportFormat.XLSX: write_xlsx,
    ExportFormat.PARQUET: write_parquet,
}

_CONTENT_TYPES: dict[ExportFormat, str] = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.JSON: "application/json",
    ExportFormat.NDJSON: "application/x-ndjson",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}

# Formats that are compressed inside the file already, and why gzip would not help them.
_SELF_COMPRESSED: dict[ExportFormat, str] = {
    ExportFormat.XLSX: "xlsx is already a zip archive",
    ExportFormat.PARQUET: "parquet is compressed inside the file",
}


def validate_format_options(format: ExportFormat, compression: Compression | None) -> None:
    """Raise ``BadUserInput`` for a combination no export can produce."""
    if compression is not None and format in _SELF_COMPRESSED:
        raise BadUserInput(
            f"compression {compression} applies to csv, json and ndjson only; {_SELF_COMPRESSED[format]}",
            format=str(format),
            compression=str(compression),
        )


def file_extension(format: ExportFormat, compression: Compression | None) -> str:
    """The file name extension without the dot: ``csv``, ``csv.gz``, ``parquet``, ..."""
    return f"{format}.gz" if compression is Compression.GZIP else str(format)


def content_type(format: ExportFormat, compression: Compression | None) -> str:
    """The media type of the file as stored (a gzipped export is ``application/gzip``)."""
    return "application/gzip" if compression is Compression.GZIP else _CONTENT_TYPES[format]


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
