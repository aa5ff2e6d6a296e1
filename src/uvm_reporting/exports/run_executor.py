"""Executes one claimed run: definition -> parameterised SQL -> a format -> a destination.

Memory stays flat on every path, and no path builds Python objects per cell where the
database can do the work:

| database   | csv            | ndjson / json  | xlsx                                | parquet                         |
|------------|----------------|----------------|-------------------------------------|---------------------------------|
| PostgreSQL | COPY           | lines via COPY | binary cursor, Excel serials in SQL | Arrow batches from COPY CSV     |
| SQLite     | rendered lines | rendered lines | rows in batches, serials in SQL     | Arrow batches from rendered CSV |

(exports/fast_paths.py, exports/xlsx_rows.py, exports/arrow_batches.py). CSV, NDJSON and JSON
of a large report sorted by id run as parallel id ranges on SQLite (exports/id_ranges.py). Each path
gives the same content as the Python writers in exports/formats.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from functools import partial
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Engine, Select

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.report_definition import parse_report_definition
from uvm_reporting.domain.runs import Delivery
from uvm_reporting.errors import UvmReportingError
from uvm_reporting.exports.arrow_batches import record_batches
from uvm_reporting.exports.fast_paths import copy_csv_postgres, stream_lines
from uvm_reporting.exports.formats import (
    Compression,
    ExportFormat,
    column_manifest,
    content_type,
    file_extension,
)
from uvm_reporting.exports.formats.common import BinaryWriter
from uvm_reporting.exports.formats.gzip_stream import GzipStream
from uvm_reporting.exports.formats.parquet_writer import write_parquet_batches
from uvm_reporting.exports.id_ranges import split_by_id, write_ranges
from uvm_reporting.exports.query_compiler import compile_report_query, report_column_types
from uvm_reporting.exports.xlsx_rows import write_xlsx_export
from uvm_reporting.storage.local_folder import WrittenObject
from uvm_reporting.storage.s3 import S3Connector, S3ObjectWriter, put_json
from uvm_reporting.store.accounts import get_account
from uvm_reporting.store.ids import utc_now
from uvm_reporting.store.runs import RunRecord, RunResult
from uvm_reporting.store.types import format_utc

Columns = Sequence[tuple[str, FieldType]]


class ResultStorage(Protocol):
    """Where a run's file is written: our storage (local folder or S3) or a delivery target."""

    def open_for_write(self, key: str) -> AbstractContextManager[tuple[BinaryWriter, WrittenObject]]: ...


def result_key(run: RunRecord) -> str:
    """Where a run's file lives in our storage; a retry of the same run writes the same key."""
    return f"results/{run.account_id}/{run.id}.{file_extension(*run_format(run))}"


def run_format(run: RunRecord) -> tuple[ExportFormat, Compression | None]:
    return ExportFormat(run.format), Compression(run.compression) if run.compression else None


def download_file_name(run: RunRecord) -> str:
    """``<report-name>-<YYYYMMDD-HHMMSS>-<run id prefix>.<format>``, safe in any file system."""
    name = str(run.definition.get("name", "report"))
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:80] or "report"
    stamp = (run.finished_at or run.created_at).strftime("%Y%m%d-%H%M%S")
    return f"{slug}-{stamp}-{run.id[:8]}.{file_extension(*run_format(run))}"


def manifest_key(key: str) -> str:
    """The manifest beside a delivered file: ``<file name without extensions>.manifest.json``."""
    folder, _, name = key.rpartition("/")
    stem = name.split(".", 1)[0] or name
    return f"{folder}/{stem}.manifest.json" if folder else f"{stem}.manifest.json"


class RunExecutor:
    def __init__(self, engine: Engine, storage: ResultStorage, connector: S3Connector | None = None,
                 *, batch_size: int = 5000, parallelism: int = 1, split_min_rows: int = 200_000) -> None:
        self._engine = engine
        self._storage = storage
        self._connector = connector
        self._batch_size = batch_size
        self._parallelism = parallelism
        self._split_min_rows = split_min_rows

    def execute(self, run: RunRecord) -> RunResult:
        if run.delivery is Delivery.S3:
            return self._deliver_to_s3(run)
        key = result_key(run)
        with self._storage.open_for_write(key) as (writer, written):
            row_count = self.write(run, writer)
        return RunResult(row_count=row_count, size_bytes=written.size_bytes, sha256=written.sha256,
                         result_key=key)

    def _deliver_to_s3(self, run: RunRecord) -> RunResult:
        """Stream into the customer's bucket with the role they let us assume, then the manifest."""
        if self._connector is None or not run.destination:
            raise UvmReportingError("This run delivers to S3, but S3 is not configured here.")
        destination = run.destination
        bucket, key, role_arn = destination["bucket"], destination["key"], destination["role_arn"]
        external_id = get_account(self._engine, run.account_id).external_id
        client = self._connector.assume_role(role_arn, external_id, destination["region"],
                                             session_name=f"uvm-reporting-run-{run.id[:18]}")
        writer = S3ObjectWriter(client, bucket, region=destination["region"], role_arn=role_arn)
        with writer.open_for_write(key, content_type=content_type(*run_format(run))) as (stream, written):
            row_count = self.write(run, stream)
        export_format, compression = run_format(run)
        definition = parse_report_definition(run.definition)
        manifest = {
            "file": key.rpartition("/")[2],
            "key": key,
            "bucket": bucket,
            "format": export_format.value,
            "compression": compression.value if compression else None,
            "rowCount": row_count,
            "sizeBytes": written.size_bytes,
            "sha256": written.sha256,
            "columns": column_manifest(report_column_types(definition)),
            "runId": run.id,
            "reportId": run.report_id,
            "reportName": definition.name,
            "scheduledFor": format_utc(run.scheduled_for) if run.scheduled_for else None,
            "createdAt": format_utc(utc_now()),
        }
        put_json(client, bucket, manifest_key(key), manifest, role_arn=role_arn)
        return RunResult(row_count=row_count, size_bytes=written.size_bytes, sha256=written.sha256,
                         result_key=f"s3://{bucket}/{key}")

    def write(self, run: RunRecord, out: BinaryWriter) -> int:
        """Write the run's rows to ``out`` in its format; return the number of rows."""
        definition = parse_report_definition(run.definition)
        statement = compile_report_query(definition, run.account_id)
        columns = report_column_types(definition)
        export_format, compression = run_format(run)
        ranges = None
        # Only SQLite: there the database's own work per row dominates and spreads over the
        # ranges; on PostgreSQL receiving COPY's rows is the limit, and two streams measured
        # no faster than one (bench/RESULTS.md).
        if export_format in _LINE_FORMATS and self._engine.dialect.name == "sqlite":
            ranges = split_by_id(self._engine, definition, run.account_id, self._parallelism, self._split_min_rows)
        if compression is None:
            return self._write_format(export_format, statement, columns, out, ranges)
        compressed = GzipStream(out)
        rows = self._write_format(export_format, statement, columns, compressed, ranges)
        compressed.finish()
        return rows

    def _write_format(self, export_format: ExportFormat, statement: Select[Any], columns: Columns,
                      out: BinaryWriter, ranges: list[ColumnElement[bool]] | None = None) -> int:
        if export_format is ExportFormat.XLSX:
            return write_xlsx_export(self._engine, statement, columns, out, batch_rows=self._batch_size)
        if export_format is ExportFormat.PARQUET:
            return write_parquet_batches(record_batches(self._engine, statement, columns), columns, out)
        return self._write_lines(export_format, statement, columns, out, ranges)

    def _write_lines(self, export_format: ExportFormat, statement: Select[Any], columns: Columns,
                     out: BinaryWriter, ranges: list[ColumnElement[bool]] | None) -> int:
        """CSV, NDJSON and JSON: text the database renders, in id ranges at once when given."""
        engine = self._engine

        def write(part: Select[Any], sink: BinaryWriter, first: bool) -> int:
            if export_format is ExportFormat.CSV and engine.dialect.name == "postgresql":
                return copy_csv_postgres(engine, part, columns, sink, header=first)
            kind = "csv" if export_format is ExportFormat.CSV else "ndjson"
            return stream_lines(engine, part, columns, sink, kind=kind, header=first)

        array = _JsonArrayFromLines(out) if export_format is ExportFormat.JSON else None
        sink: BinaryWriter = array if array is not None else out
        if ranges is None:
            rows = write(statement, sink, True)
        else:
            rows = write_ranges([partial(write, statement.where(condition)) for condition in ranges], sink)
        if array is not None:
            array.finish()
        return rows


_LINE_FORMATS = (ExportFormat.CSV, ExportFormat.NDJSON, ExportFormat.JSON)


class _JsonArrayFromLines:
    """Turns NDJSON lines into one JSON array. Safe because a JSON text never holds a raw
    newline: every LF in the stream ends an object. Data may arrive cut anywhere (appended
    ranges come in blocks), so the LF that ends the data so far is held back until more
    follows: it becomes ``,\n`` before another object, or closes the array in finish()."""

    def __init__(self, out: BinaryWriter) -> None:
        self._out = out
        self._started = False
        self._object_ended = False

    def write(self, data: bytes, /) -> int:
        if data:
            prefix = b",\n" if self._object_ended else b"" if self._started else b"[\n"
            self._started = True
            self._object_ended = data.endswith(b"\n")
            body = data[:-1] if self._object_ended else data
            self._out.write(prefix + body.replace(b"\n", b",\n"))
        return len(data)

    def finish(self) -> None:
        self._out.write(b"\n]\n" if self._started else b"[]\n")
