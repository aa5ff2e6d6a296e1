"""Executes one claimed run: definition -> parameterised SQL -> streamed CSV -> storage.

Memory stays flat: rows come from the database in batches (``yield_per``) and leave as
encoded bytes batch by batch; nothing holds the whole result.
"""

from __future__ import annotations

from contextlib import closing

from sqlalchemy import Engine

from uvm_reporting.domain.report_definition import parse_report_definition
from uvm_reporting.exports.csv_format import write_csv
from uvm_reporting.exports.query_compiler import compile_report_query, report_column_types
from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.store.runs import RunRecord, RunResult


def result_key(run: RunRecord) -> str:
    """Where a run's file lives in our storage; a retry of the same run writes the same key."""
    return f"results/{run.account_id}/{run.id}.{run.format}"


class RunExecutor:
    def __init__(self, engine: Engine, storage: LocalFolderStorage, batch_size: int = 5000) -> None:
        self._engine = engine
        self._storage = storage
        self._batch_size = batch_size

    def execute(self, run: RunRecord) -> RunResult:
        definition = parse_report_definition(run.definition)
        statement = compile_report_query(definition, run.account_id)
        columns = report_column_types(definition)
        key = result_key(run)
        # closing(): a failed write must close the server-side cursor before the connection.
        with (
            self._storage.open_for_write(key) as (writer, written),
            self._engine.connect() as connection,
            closing(connection.execution_options(yield_per=self._batch_size).execute(statement)) as result,
        ):
            row_count = write_csv(result.partitions(), columns, writer)
        return RunResult(row_count=row_count, size_bytes=written.size_bytes, sha256=written.sha256,
                         result_key=key)
