"""Export file formats and compression: which exist, how a file of each is named and typed.

Pure, no I/O, and light to import: the API checks a format string here without loading the
writers (pyarrow, xlsxwriter), which live in :mod:`uvm_reporting.exports.formats`.
"""

from __future__ import annotations

from enum import StrEnum

from uvm_reporting.errors import BadUserInput


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    NDJSON = "ndjson"
    XLSX = "xlsx"
    PARQUET = "parquet"


class Compression(StrEnum):
    GZIP = "gzip"


# xlsx and parquet files are compressed inside already; gzip on top gains nothing.
GZIP_FORMATS = frozenset({ExportFormat.CSV, ExportFormat.JSON, ExportFormat.NDJSON})

_CONTENT_TYPES: dict[ExportFormat, str] = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.JSON: "application/json",
    ExportFormat.NDJSON: "application/x-ndjson",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}


def compression_problem(format: ExportFormat, compression: Compression | None) -> str | None:
    """Why ``compression`` does not apply to ``format``, or None."""
    if compression is not None and format not in GZIP_FORMATS:
        allowed = ", ".join(f for f in ExportFormat if f in GZIP_FORMATS)
        return (
            f'"{compression}" does not apply to {format} files, which are compressed already; it applies to {allowed}'
        )
    return None


def validate_format_options(format: ExportFormat, compression: Compression | None) -> None:
    """Raise ``BadUserInput`` for a combination no export can produce."""
    if problem := compression_problem(format, compression):
        raise BadUserInput(problem, format=str(format), compression=str(compression))


def parse_format_options(
    export_format: str | None, compression: str | None, *, default: ExportFormat
) -> tuple[ExportFormat, Compression | None]:
    """A format and compression as an API client names them; ``BadUserInput`` if not valid."""
    formats = [f.value for f in ExportFormat]
    if export_format is not None and export_format not in formats:
        raise BadUserInput(f"format {export_format!r} is not one of {', '.join(formats)}.")
    if compression is not None and compression not in [c.value for c in Compression]:
        raise BadUserInput(f"compression {compression!r} is not supported; use gzip or leave it out.")
    chosen = ExportFormat(export_format or default)
    options = chosen, Compression(compression) if compression else None
    validate_format_options(*options)
    return options


def file_extension(format: ExportFormat, compression: Compression | None) -> str:
    """The file name extension without the dot: ``csv``, ``csv.gz``, ``parquet``, ..."""
    return f"{format}.gz" if compression == Compression.GZIP else str(format)


def content_type(format: ExportFormat, compression: Compression | None) -> str:
    """The media type of the file as stored (a gzipped export is ``application/gzip``)."""
    return "application/gzip" if compression == Compression.GZIP else _CONTENT_TYPES[format]
