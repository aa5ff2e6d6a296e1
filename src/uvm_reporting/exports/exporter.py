"""Writes a run's file: definition -> parameterised SQL -> record batches -> its format.

One renderer per format (exports/renderers) writes every file from Arrow record batches;
two ways to read the batches:

* a report whose entity holds at least ``export_process_min_rows`` rows of the account runs in
  an export process of its own (exports/export_process.py): ADBC record batches rendered by
  Arrow's kernels, no Python object per value; large CSV, NDJSON and JSON exports on SQLite
  read parallel id ranges there (exports/id_ranges.py);
  on PostgreSQL, relations that are only shown are joined there, from lookup tables of at most
  ``lookup_max_values`` values (exports/sources/adbc_lookups.py);
* smaller reports are rendered in the worker's thread from the driver's rows
  (exports/row_batches.py), each batch made a record batch (exports/sources/driver_rows.py): no
  process to start for a few rows.

Either way the bytes stream into the writer it is given (application/execute_run.py passes
our storage's or the customer's bucket's, which count, hash and publish them). With a
``RunControl`` (domain/run_control.py) the rows and bytes written so far are counted for the
worker's heartbeat, and a cancel stops the export between batches (an export process is killed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, Select, func, select

from uvm_reporting.database.tables import PLATFORM_TABLES
from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.formats import ExportFormat
from uvm_reporting.domain.report_definition.model import ReportDefinition
from uvm_reporting.domain.report_definition.parsing import parse_report_definition
from uvm_reporting.domain.run_control import RunControl
from uvm_reporting.domain.runs import RunRecord
from uvm_reporting.errors import UvmReportingError
from uvm_reporting.expiring_cache import ExpiringCache
from uvm_reporting.exports.driver_sql import DriverQuery, driver_query
from uvm_reporting.exports.export_job import ExportJob, LookupPart, QueryPart
from uvm_reporting.exports.export_process import ExportProcesses
from uvm_reporting.exports.formats.common import BinaryWriter
from uvm_reporting.exports.id_ranges import split_by_id
from uvm_reporting.exports.query_compiler import (
    LookupQuery,
    compile_lookup_query,
    compile_report_query,
    report_column_types,
)
from uvm_reporting.exports.query_failures import database_errors_as_query_failures
from uvm_reporting.exports.row_batches import row_batches

log = logging.getLogger(__name__)

Columns = Sequence[tuple[str, FieldType]]

LOOKUP_MAX_VALUES = 500_000
"""The most values (rows times columns) a lookup table the export process joins may hold. At
the lengths of ids and host names that is about 12 MB of table and 25 MB of hash table while
keys are looked up (bench/RESULTS.md); a relation with more is joined by the database."""


PREPARED_REPORTS_KEPT = 256


@dataclass(frozen=True, slots=True)
class PreparedReport:
    """What a run of a report needs before it reads a row."""

    definition: ReportDefinition
    statement: Select[Any]
    columns: Columns
    rows: DriverQuery
    """The statement as the driver runs it in the worker's thread (a small report)."""


class Exporter:
    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int = 10_000,
        parallelism: int = 1,
        split_min_rows: int = 200_000,
        export_process_min_rows: int = 20_000,
        keep_spare_export_process: bool = False,
        lookup_max_values: int = LOOKUP_MAX_VALUES,
        log_level: str = "INFO",
        log_format: Literal["text", "json"] = "text",
    ) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._parallelism = parallelism
        self._split_min_rows = split_min_rows
        self._export_process_min_rows = export_process_min_rows
        self._lookup_max_values = lookup_max_values
        self._log_level = log_level
        self._log_format: Literal["text", "json"] = log_format
        self._export_processes = ExportProcesses(keep_spare=keep_spare_export_process)
        # A report's definition, its SELECT and that SELECT compiled for the driver depend on the
        # definition and the account alone: a report run again (every scheduled run) reuses them.
        self._prepared: ExpiringCache[tuple[str, str], PreparedReport] = ExpiringCache(
            float("inf"), max_entries=PREPARED_REPORTS_KEPT
        )

    def close(self) -> None:
        """Stop the spare export process (exports still running end too)."""
        self._export_processes.close()

    def _prepare(self, document: dict[str, Any], account_id: str) -> PreparedReport:
        definition = parse_report_definition(document)
        statement = compile_report_query(definition, account_id)
        return PreparedReport(
            definition, statement, report_column_types(definition), driver_query(statement, self._engine.dialect)
        )

    def write(self, run: RunRecord, out: BinaryWriter, control: RunControl | None = None) -> int:
        """Write the run's rows to ``out`` in its format; return the number of rows. The
        database's errors while it reads the report's rows fail the run as QUERY_FAILED. With
        ``control``, progress is counted there and a cancel raises RunCancelled."""
        if control is not None:
            control.check()
            out = ControlledWriter(out, control)
        with database_errors_as_query_failures():
            return self._write(run, out, control)

    def _write(self, run: RunRecord, out: BinaryWriter, control: RunControl | None) -> int:
        key = (json.dumps(run.definition, sort_keys=True), run.account_id)
        prepared = self._prepared.get_or_load(key, lambda: self._prepare(run.definition, run.account_id))
        definition, statement, columns = prepared.definition, prepared.statement, prepared.columns
        export_format, compression = run.export_format, run.export_compression
        if not self._in_export_process(definition, run.account_id):
            # Loaded at the first small report, not at start: an idle worker holds no Arrow
            # kernels (bench/idle_rss.py).
            from uvm_reporting.exports.sources.driver_rows import write_rows  # noqa: PLC0415

            rows = row_batches(self._engine, prepared.rows, self._batch_size)
            if control is not None:
                rows = _counted(rows, control)
            return write_rows(export_format, compression, rows, columns, out)
        ranges = None
        # Only SQLite: there reading and joining rows dominates and spreads over the ranges; on
        # PostgreSQL the server's one backend per query is the limit either way.
        if export_format in _TEXT_FORMATS and self._engine.dialect.name == "sqlite":
            ranges = split_by_id(self._engine, definition, run.account_id, self._parallelism, self._split_min_rows)
        statements = [statement] if ranges is None else [statement.where(condition) for condition in ranges]
        lookups: tuple[LookupPart, ...] = ()
        if self._engine.dialect.name == "postgresql" and (split := self._lookup_query(definition, run.account_id)):
            statements = [split.main]
            lookups = tuple(
                LookupPart(lookup.key_column, driver_query(lookup.statement, self._engine.dialect).sql)
                for lookup in split.lookups
            )
        queries = [driver_query(part, self._engine.dialect) for part in statements]
        job = ExportJob(
            dialect=self._engine.dialect.name,
            database=_driver_database(self._engine),
            parts=tuple(QueryPart(query.sql, query.parameters) for query in queries),
            columns=tuple(columns),
            format=export_format,
            compression=compression,
            batch_rows=self._batch_size,
            log_level=self._log_level,
            log_format=self._log_format,
            lookups=lookups,
        )
        outcome = self._export_processes.run(job, out, control)
        log.info(
            "run %s: export process wrote %d rows in %.2fs (%d parts, %d lookups), peak RSS %.1f MiB",
            run.id,
            outcome.rows,
            outcome.seconds,
            len(queries),
            len(lookups),
            outcome.peak_rss_bytes / (1 << 20),
        )
        return outcome.rows

    def _lookup_query(self, definition: ReportDefinition, account_id: str) -> LookupQuery | None:
        """The report split into its entity's rows and lookups, when it shows a relation it
        neither filters nor sorts on, and each lookup holds at most ``lookup_max_values``
        values (keys and fields; the count stops there); else None: the database joins."""
        split = compile_lookup_query(definition, account_id)
        if split is None:
            return None
        with self._engine.connect() as connection:
            for lookup in split.lookups:
                per_row = len(lookup.statement.selected_columns)
                capped = lookup.statement.limit(self._lookup_max_values // per_row + 1).subquery()
                rows = connection.scalar(select(func.count()).select_from(capped)) or 0
                if rows * per_row > self._lookup_max_values:
                    return None
        return split

    def _in_export_process(self, definition: ReportDefinition, account_id: str) -> bool:
        """Whether the report's entity holds at least ``export_process_min_rows`` rows of the
        account (an upper bound of the report's rows; the count stops there)."""
        threshold = self._export_process_min_rows
        if threshold <= 0:
            return True
        table = PLATFORM_TABLES[definition.entity]
        capped = select(table.c.id).where(table.c.account_id == account_id).limit(threshold).subquery()
        with self._engine.connect() as connection:
            return (connection.scalar(select(func.count()).select_from(capped)) or 0) >= threshold


_TEXT_FORMATS = (ExportFormat.CSV, ExportFormat.NDJSON, ExportFormat.JSON)


class ControlledWriter:
    """``out`` that counts the bytes written for the run's progress, and stops a cancelled run
    before its next write (its partial output is removed by whoever opened ``out``)."""

    def __init__(self, out: BinaryWriter, control: RunControl) -> None:
        self._out = out
        self._control = control

    def write(self, data: bytes | memoryview, /) -> int:
        self._control.check()
        written = self._out.write(data)
        self._control.add_bytes(len(data))
        return written


def _counted(batches: Iterator[Sequence[Any]], control: RunControl) -> Iterator[Sequence[Any]]:
    """The batches, each counted and checked for a cancel before it is rendered."""
    for batch in batches:
        control.check()
        control.add_rows(len(batch))
        yield batch


def _driver_database(engine: Engine) -> str:
    """The database as the export process's driver opens it: a SQLite file's path, or a libpq URI."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise UvmReportingError("Exports need a SQLite database file, not an in-memory database.")
        return str(Path(url.database).resolve())
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
