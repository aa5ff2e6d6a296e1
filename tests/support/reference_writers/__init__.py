"""The reference writers: each export format written from Python rows, value by value, with the
standard library (csv, json) and pyarrow's conversion of Python objects.

They are the oracle of the differential tests: the one renderer of each format in src/
(exports/renderers, Arrow kernels over record batches) must write the bytes these write for
the same rows (Parquet: the same table; XLSX has one writer, exports/renderers/xlsx.py,
which the renderer feeds with Excel serials and these with Python dates).
"""

from __future__ import annotations

from collections.abc import Callable

from tests.support.reference_writers.csv_writer import write_csv
from tests.support.reference_writers.json_writer import write_json, write_ndjson
from tests.support.reference_writers.parquet_writer import write_parquet
from uvm_reporting.domain.formats import Compression, ExportFormat, validate_format_options
from uvm_reporting.exports.formats.common import Batches, BinaryWriter, Columns
from uvm_reporting.exports.renderers.gzip_stream import GzipStream
from uvm_reporting.exports.renderers.xlsx import write_xlsx

__all__ = ["write_csv", "write_json", "write_ndjson", "write_parquet", "write_reference"]

Writer = Callable[[Batches, Columns, BinaryWriter], int]

_WRITERS: dict[ExportFormat, Writer] = {
    ExportFormat.CSV: write_csv,
    ExportFormat.JSON: write_json,
    ExportFormat.NDJSON: write_ndjson,
    ExportFormat.XLSX: write_xlsx,
    ExportFormat.PARQUET: write_parquet,
}


def write_reference(
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
