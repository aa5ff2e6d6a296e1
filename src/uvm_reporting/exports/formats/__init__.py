"""Export file formats: which exist, and how each is named and typed.

Every format has one renderer, which writes Arrow record batches (exports/renderers).
"""

from __future__ import annotations

from enum import StrEnum

from uvm_reporting.errors import BadUserInput
from uvm_reporting.exports.formats.common import LOGICAL_TYPES, BinaryWriter, Columns

__all__ = [
    "BinaryWriter",
    "Compression",
    "ExportFormat",
    "column_manifest",
    "content_type",
    "file_extension",
    "validate_format_options",
]


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    NDJSON = "ndjson"
    XLSX = "xlsx"
    PARQUET = "parquet"


class Compression(StrEnum):
    GZIP = "gzip"


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
