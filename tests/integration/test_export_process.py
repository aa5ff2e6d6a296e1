"""The export process (ADBC batches, in a process of its own) writes what the worker's thread
writes from the driver's rows, both through the one renderer of each format, and what the
reference row writers (tests/support/reference_writers) write from those rows, on SQLite and on
PostgreSQL; it fails cleanly and never outlives its worker."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, insert

from tests.support.expected_exports import expected_findings_rows
from tests.support.reference_writers import write_reference
from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.sinks import ByteSink as Sink
from tests.support.waiting import wait_for
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.reports import create_report
from uvm_reporting.database.runs import enqueue_run
from uvm_reporting.database.tables import assets, findings
from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.formats import Compression, ExportFormat
from uvm_reporting.domain.report_definition.parsing import parse_report_definition
from uvm_reporting.domain.runs import Delivery
from uvm_reporting.exports.driver_sql import driver_query
from uvm_reporting.exports.export_job import ExportJob, QueryPart
from uvm_reporting.exports.export_process import ExportProcesses, ExportProcessFailed, run_export_process
from uvm_reporting.exports.exporter import LOOKUP_MAX_VALUES, Exporter, _driver_database
from uvm_reporting.exports.query_compiler import compile_report_query, report_column_types
from uvm_reporting.exports.row_batches import row_batches

SECOND = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
FRACTION = datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
TRICKY_TEXT = {
    "t-empty": "",
    "t-null-word": "NULL",
    "t-unicode": "Überlauf 日本語 🚀 \u2018quotes\u2019",
    "t-comma": 'comma, "quoted", \\\\backslash\\\\',
    "t-lf": "line\nbreak",
    "t-crlf": "windows\r\nbreak\r",
    "t-control": "bell\x07 escape\x1b",
    "t-formula": '=HYPERLINK("http://x")',
    "t-minus": '-minus, "quoted"\r\nCRLF',
    "t-spaces": "  padded  ",
}


@pytest.fixture
def tricky_rows(engine: Engine, account: Account, findings_data: int) -> int:
    """Generated findings plus rows whose every column takes its awkward values: NULL next to
    the empty string, quotes, line breaks, control characters, formulas, fractions of a second,
    numbers that need 17 digits, old dates, a hostname missing from the join."""
    base: dict[str, Any] = {
        "severity": "High",
        "status": "Open",
        "asset_id": None,
        "description": None,
        "cvss_score": None,
        "cve": None,
        "first_seen": SECOND,
        "last_seen": SECOND,
        "due_date": None,
        "resolved_at": None,
    }
    rows: dict[str, dict[str, Any]] = {
        f"zz-{ident}": {**base, "title": value, "description": value} for ident, value in TRICKY_TEXT.items()
    }
    rows["zz-n-null"] = {**base, "title": "no description", "asset_id": "a-tricky"}
    rows["zz-n-empty"] = {**base, "title": "empty", "description": "", "cve": "", "asset_id": "missing"}
    rows["zz-n-third"] = {**base, "title": "a third", "cvss_score": 0.1 + 0.2, "due_date": date(2026, 12, 31)}
    rows["zz-n-whole"] = {**base, "title": "whole", "cvss_score": 10.0, "due_date": date(1999, 1, 1)}
    rows["zz-n-tiny"] = {**base, "title": "tiny", "cvss_score": -1.25e-7}
    rows["zz-n-huge"] = {**base, "title": "huge", "cvss_score": 1.7976931348623157e308}
    rows["zz-ts-fraction"] = {
        **base,
        "title": "fraction",
        "first_seen": FRACTION,
        "resolved_at": FRACTION + timedelta(microseconds=1),
        "last_seen": datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
    }
    rows["zz-ts-old"] = {
        **base,
        "title": "old",
        "first_seen": datetime(1890, 1, 1, tzinfo=UTC),
        "last_seen": datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        "due_date": date(1899, 12, 31),
    }
    with engine.begin() as connection:
        connection.execute(
            insert(assets),
            [
                {
                    "id": "a-tricky",
                    "account_id": account.id,
                    "hostname": 'host,"1"',
                    "first_seen": SECOND,
                    "last_seen": SECOND,
                }
            ],
        )
        connection.execute(
            insert(findings), [{**row, "id": ident, "account_id": account.id} for ident, row in rows.items()]
        )
    return findings_data + len(rows)


def export(
    engine: Engine,
    account: Account,
    report: dict[str, Any],
    export_format: str,
    tmp_path: Path,
    *,
    in_process: bool,
    compression: str | None = None,
    parallelism: int = 2,
    batch_size: int = 10_000,
    lookup_max_values: int = LOOKUP_MAX_VALUES,
) -> tuple[int, bytes]:
    """One run of ``report`` written to memory, in the export process or in this thread."""
    definition = parse_report_definition(report)
    run = enqueue_run(
        engine,
        account_id=account.id,
        report_id=create_report(engine, account.id, report).id,
        delivery=Delivery.DOWNLOAD,
        format=export_format,
        compression=compression,
        definition=definition.to_json(),
        requested_by="test",
    )
    executor = Exporter(
        engine,
        batch_size=batch_size,
        parallelism=parallelism,
        split_min_rows=1,
        export_process_min_rows=0 if in_process else 10**9,
        lookup_max_values=lookup_max_values,
    )
    sink = Sink()
    count = executor.write(run, sink)
    return count, bytes(sink.data)


def reference_export(
    engine: Engine,
    account: Account,
    report: dict[str, Any],
    export_format: str,
    *,
    compression: str | None = None,
    batch_size: int = 10_000,
    **_: Any,
) -> tuple[int, bytes]:
    """The report's rows as the worker's driver reads them, written by the reference writers."""
    definition = parse_report_definition(report)
    sink = Sink()
    count = write_reference(
        ExportFormat(export_format),
        Compression(compression) if compression else None,
        row_batches(engine, driver_query(compile_report_query(definition, account.id), engine.dialect), batch_size),
        report_column_types(definition),
        sink,
    )
    return count, bytes(sink.data)


def same_content(export_format: str, content: bytes, expected: bytes) -> bool:
    """Equal bytes; Parquet: equal tables; XLSX: equal cells on every sheet."""
    if export_format == "parquet":
        return bool(pq.read_table(io.BytesIO(content)).equals(pq.read_table(io.BytesIO(expected))))
    if export_format == "xlsx":
        return all_cells(content) == all_cells(expected)
    return content == expected


def all_cells(content: bytes) -> list[list[tuple[Any, ...]]]:
    workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    try:
        return [[tuple(row) for row in sheet.iter_rows(values_only=True)] for sheet in workbook.worksheets]
    finally:
        workbook.close()


def both_ways(
    engine: Engine, account: Account, report: dict[str, Any], export_format: str, tmp_path: Path, **options: Any
) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
    """The run written in the export process and in this thread; the thread's file must hold
    what the reference writers write from the same rows."""
    thread = export(engine, account, report, export_format, tmp_path, in_process=False, **options)
    reference = reference_export(engine, account, report, export_format, **options)
    assert thread[0] == reference[0]
    assert same_content(export_format, thread[1], reference[1])
    return export(engine, account, report, export_format, tmp_path, in_process=True, **options), thread


@pytest.mark.parametrize(
    ("export_format", "compression"),
    [("csv", None), ("ndjson", None), ("json", None), ("csv", "gzip"), ("ndjson", "gzip")],
)
def test_text_formats_are_byte_identical_to_the_row_writers(
    engine: Engine, account: Account, tricky_rows: int, *, export_format: str, compression: str | None, tmp_path: Path
) -> None:
    process, thread = both_ways(
        engine, account, ALL_FINDINGS_REPORT, export_format, tmp_path, compression=compression, batch_size=7
    )
    assert process[0] == thread[0] == tricky_rows
    assert process[1] == thread[1]
    text = gzip.decompress(process[1]) if compression else process[1]
    if export_format == "csv":
        assert text.count(b"'=HYPERLINK") == 2  # its title and its description
        rows = expected_findings_rows(engine, account.id)
        assert f"{rows[0][0]},{rows[0][1]},".encode() in text


def test_parquet_holds_the_row_writers_table(
    engine: Engine, account: Account, tricky_rows: int, tmp_path: Path
) -> None:
    process, thread = both_ways(engine, account, ALL_FINDINGS_REPORT, "parquet", tmp_path, batch_size=7)
    table, expected = (pq.read_table(io.BytesIO(content)) for _, content in (process, thread))
    assert process[0] == table.num_rows == tricky_rows
    assert table.schema.equals(expected.schema)
    assert table.equals(expected)
    by_id = {row["id"]: row for row in table.to_pylist()}
    assert by_id["zz-n-empty"]["description"] == ""
    assert by_id["zz-n-null"]["description"] is None
    assert by_id["zz-n-null"]["asset.hostname"] == 'host,"1"'
    assert by_id["zz-n-empty"]["asset.hostname"] is None
    assert by_id["zz-n-third"]["cvss_score"] == 0.1 + 0.2
    assert by_id["zz-t-formula"]["title"] == '=HYPERLINK("http://x")'  # verbatim outside spreadsheets
    assert by_id["zz-ts-fraction"]["last_seen"] == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)


ASSET_COLUMNS_REPORT = {
    **ALL_FINDINGS_REPORT,
    "columns": ["asset.criticality", "id", "asset.hostname", "title", "asset.first_seen", "asset.ip"],
}


@pytest.mark.parametrize(
    ("export_format", "lookup_max_values", "joined_by_the_export_process"),
    [("csv", LOOKUP_MAX_VALUES, True), ("ndjson", LOOKUP_MAX_VALUES, True), ("csv", 1, False)],
)
def test_asset_columns_joined_in_the_export_process_match_the_row_writers(
    engine: Engine,
    account: Account,
    other_account: Account,
    tricky_rows: int,
    *,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    export_format: str,
    lookup_max_values: int,
    joined_by_the_export_process: bool,
) -> None:
    """On PostgreSQL, assets that are only shown are looked up by the export process, from the
    account's own assets (another account's asset of the same id never shows); a lookup table
    over the limit leaves the join to the database. The bytes are the row writers' either way."""
    with engine.begin() as connection:
        connection.execute(
            insert(assets),
            [
                {
                    "id": "a-tricky",
                    "account_id": other_account.id,
                    "hostname": "THEIRS",
                    "criticality": "Low",
                    "first_seen": SECOND,
                    "last_seen": SECOND,
                }
            ],
        )
    with caplog.at_level(logging.INFO, logger="uvm_reporting.exports.exporter"):
        process, thread = both_ways(
            engine,
            account,
            ASSET_COLUMNS_REPORT,
            export_format,
            tmp_path,
            batch_size=7,
            lookup_max_values=lookup_max_values,
        )
    assert process == thread
    assert process[0] == tricky_rows
    assert b"THEIRS" not in process[1]
    assert b'host,\\"1\\"' in process[1] or b'"host,""1"""' in process[1]
    (lookups,) = re.findall(r"export process wrote \d+ rows .* (\d+) lookups", caplog.text)
    assert int(lookups) == (1 if joined_by_the_export_process and engine.dialect.name == "postgresql" else 0)


def test_an_account_without_assets_exports_empty_asset_columns(
    engine: Engine, other_account: Account, tmp_path: Path
) -> None:
    """Its lookup reads nothing (on PostgreSQL the driver returns a table without chunks)."""
    with engine.begin() as connection:
        connection.execute(
            insert(findings),
            [
                {
                    "id": f"f{index}",
                    "account_id": other_account.id,
                    "title": "t",
                    "asset_id": "a1" if index % 2 else None,
                    "severity": "High",
                    "status": "Open",
                    "first_seen": SECOND,
                    "last_seen": SECOND,
                }
                for index in range(3)
            ],
        )
    process, thread = both_ways(engine, other_account, ASSET_COLUMNS_REPORT, "csv", tmp_path)
    assert process == thread
    assert process[1].splitlines()[1:] == [b",f0,,t,,", b",f1,,t,,", b",f2,,t,,"]


def test_xlsx_holds_the_row_writers_cells(engine: Engine, account: Account, tricky_rows: int, tmp_path: Path) -> None:
    process, thread = both_ways(engine, account, ALL_FINDINGS_REPORT, "xlsx", tmp_path, batch_size=7)

    def cells(content: bytes) -> list[tuple[Any, ...]]:
        workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
        try:
            return [tuple(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]
        finally:
            workbook.close()

    assert process[0] == thread[0] == tricky_rows
    process_cells = cells(process[1])
    assert process_cells == cells(thread[1])
    by_id = {row[0]: row for row in process_cells[1:]}
    assert by_id["zz-t-formula"][2] == '\'=HYPERLINK("http://x")'


@pytest.mark.parametrize(
    "sort",
    [
        [{"field": "cvss_score", "direction": "desc"}],  # the scores' NULLs last, after every value
        [{"field": "resolved_at", "direction": "asc"}, {"field": "description", "direction": "desc"}],
        [{"field": "asset.hostname", "direction": "asc"}],
    ],
)
def test_columns_that_start_null_keep_their_types_in_every_order(
    engine: Engine, account: Account, tricky_rows: int, sort: list[dict[str, str]], tmp_path: Path
) -> None:
    """SQLite's driver takes a column's type from the first batch: batches of 2 rows start with
    NULLs in some columns, values follow."""
    report = {**ALL_FINDINGS_REPORT, "sort": sort}
    for export_format in ("csv", "parquet"):
        process, thread = both_ways(engine, account, report, export_format, tmp_path, batch_size=2)
        assert process[0] == thread[0] == tricky_rows
        if export_format == "csv":
            assert process[1] == thread[1]
        else:
            assert pq.read_table(io.BytesIO(process[1])).equals(pq.read_table(io.BytesIO(thread[1])))


def test_filter_values_stay_values(engine: Engine, account: Account, tricky_rows: int, tmp_path: Path) -> None:
    """Bound on SQLite, inlined by psycopg's quoting on PostgreSQL: quotes, backslashes and
    percent signs in a value never become SQL."""
    hostile = ["x'; DROP TABLE findings; --", 'comma, "quoted", \\\\backslash\\\\', "100%", "E'\\\\'"]
    report = {
        **ALL_FINDINGS_REPORT,
        "filters": [
            {"field": "title", "op": "in", "value": [*hostile, TRICKY_TEXT["t-comma"]]},
            {"field": "first_seen", "op": "gte", "value": "2000-01-01T00:00:00Z"},
        ],
    }
    process, thread = both_ways(engine, account, report, "csv", tmp_path)
    assert process == thread
    assert process[0] == 1
    assert b"zz-t-comma" in process[1]
    assert export(engine, account, ALL_FINDINGS_REPORT, "csv", tmp_path, in_process=True)[0] == tricky_rows


@pytest.mark.backends("sqlite")  # exports split into id ranges on SQLite only
@pytest.mark.parametrize("parallelism", [1, 3])
def test_sqlite_id_ranges_write_the_same_bytes(
    engine: Engine, account: Account, tricky_rows: int, parallelism: int, tmp_path: Path
) -> None:
    for export_format in ("csv", "ndjson", "json"):
        split = export(
            engine,
            account,
            ALL_FINDINGS_REPORT,
            export_format,
            tmp_path,
            in_process=True,
            parallelism=parallelism,
            batch_size=5,
        )
        thread = export(engine, account, ALL_FINDINGS_REPORT, export_format, tmp_path, in_process=False)
        assert split == thread


def test_no_rows_is_a_valid_file_in_every_format(
    engine: Engine, account: Account, tricky_rows: int, tmp_path: Path
) -> None:
    report = {**ALL_FINDINGS_REPORT, "filters": [{"field": "title", "op": "eq", "value": "nothing has this"}]}
    for export_format in ("csv", "ndjson", "json"):
        process, thread = both_ways(engine, account, report, export_format, tmp_path)
        assert process == thread
    process, thread = both_ways(engine, account, report, "parquet", tmp_path)
    assert process[0] == 0
    assert pq.read_table(io.BytesIO(process[1])).equals(pq.read_table(io.BytesIO(thread[1])))
    workbook = openpyxl.load_workbook(io.BytesIO(both_ways(engine, account, report, "xlsx", tmp_path)[0][1]))
    assert [cell.value for cell in workbook.worksheets[0][1]][:2] == ["id", "asset_id"]


# --- failures ---------------------------------------------------------------------------------


def job(engine: Engine, sql: str, export_format: ExportFormat = ExportFormat.CSV) -> ExportJob:
    return ExportJob(
        dialect=engine.dialect.name,
        database=_driver_database(engine),
        parts=(QueryPart(sql),),
        columns=(("n", FieldType.NUMBER),),
        format=export_format,
    )


def test_a_failing_query_is_query_failed(engine: Engine) -> None:
    with pytest.raises(ExportProcessFailed) as failure:
        run_export_process(job(engine, "SELECT no_such_function(1) AS n"), Sink())
    assert failure.value.run_error_code == "QUERY_FAILED"
    assert "operator log" in failure.value.message


def test_the_export_process_logs_in_the_format_of_its_worker(engine: Engine, capfd: pytest.CaptureFixture[str]) -> None:
    failing = dataclasses.replace(job(engine, "SELECT no_such_function(1) AS n"), log_format="json")
    with pytest.raises(ExportProcessFailed):
        run_export_process(failing, Sink())
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line of it is a JSON object
    assert any(record["message"].startswith("export failed: ") for record in records), lines


def test_the_export_process_never_writes(engine: Engine, account: Account) -> None:
    statement = (
        "DELETE FROM accounts"
        if engine.dialect.name == "sqlite"
        else "WITH gone AS (DELETE FROM accounts RETURNING 1) SELECT count(*)::float8 AS n FROM gone"
    )
    with pytest.raises(ExportProcessFailed) as failure:
        run_export_process(job(engine, statement), Sink())
    assert failure.value.run_error_code == "QUERY_FAILED"
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM accounts").scalar_one() >= 1


def slow_sql(engine: Engine) -> str:
    """A query that streams rows for minutes: time for a test to act on its process."""
    # A recursive query streams on both databases (generate_series() would be materialised first).
    number = "i * 1.0" if engine.dialect.name == "sqlite" else "i::float8"
    return (
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) "
        f"SELECT {number} AS n FROM n"
    )


def export_children() -> list[int]:
    """The export processes this test process started (on any of its threads)."""
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            found += [int(pid) for pid in (task / "children").read_text().split()]
        except OSError:
            continue
    return [pid for pid in found if b"uvm_reporting.exports.export_process" in _cmdline(pid)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _reapable(pid: int) -> bool:
    """Whether our child ``pid`` has ended, every thread of it (without reaping it)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


class SlowSink(Sink):
    """Takes its time, so the export process is still running when the test acts."""

    def write(self, data: bytes | memoryview, /) -> int:
        time.sleep(0.001)
        return super().write(data)


def test_a_killed_export_process_is_a_clear_failure(engine: Engine) -> None:
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            run_export_process(job(engine, slow_sql(engine)), SlowSink())
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    pid = wait_for(lambda: next(iter(export_children()), None), what="the export process")
    assert _driver_database(engine).encode() not in _cmdline(pid)  # the job (and any password) is not in ps
    os.kill(pid, signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive()
    assert isinstance(outcome[0], ExportProcessFailed)
    assert outcome[0].run_error_code == "INTERNAL"
    assert "killed by signal 9" in outcome[0].message
    assert export_children() == []


def test_a_sink_that_fails_stops_the_export_process(engine: Engine) -> None:
    class FullDisk(Sink):
        def write(self, _data: bytes | memoryview, /) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        run_export_process(job(engine, slow_sql(engine)), FullDisk())
    assert export_children() == []


def test_the_export_process_dies_with_its_worker(engine: Engine, tmp_path: Path) -> None:
    """A worker killed with SIGKILL runs no cleanup: the kernel ends its export process."""
    script = tmp_path / "worker.py"
    script.write_text(
        textwrap.dedent("""
        import sys, time
        from uvm_reporting.exports.export_job import ExportJob, QueryPart
        from uvm_reporting.exports.export_process import run_export_process
        job = ExportJob.from_json(sys.stdin.buffer.read())
        class Slow:
            def write(self, data):
                time.sleep(0.01)
                return len(data)
        run_export_process(job, Slow())
    """)
    )
    worker = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE)
    try:
        assert worker.stdin is not None
        worker.stdin.write(job(engine, slow_sql(engine)).to_json())
        worker.stdin.close()

        def export_process() -> int | None:
            children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
            return next(
                (int(pid) for pid in children if b"uvm_reporting.exports.export_process" in _cmdline(int(pid))), None
            )

        pid = wait_for(export_process, what="the worker's export process")
        worker.kill()
        worker.wait(30)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or _cmdline(pid) == b"", what="the export process to end")
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(30)


def test_a_job_never_shows_its_database_uri(engine: Engine) -> None:
    text = repr(job(engine, "SELECT 1 AS n"))
    assert _driver_database(engine) not in text
    assert "parts=1" in text
    assert json.loads(job(engine, "SELECT 1 AS n").to_json())["database"] == _driver_database(engine)


# --- the spare export process ------------------------------------------------------------------


def test_a_spare_export_process_waits_for_the_next_job_and_goes_with_close(engine: Engine) -> None:
    processes = ExportProcesses(keep_spare=True)
    try:
        outcome: list[int] = []
        # Asked from a thread that then ends: the spare it left must outlive it.
        asking = threading.Thread(
            target=lambda: outcome.append(processes.run(job(engine, "SELECT 1.5 AS n"), Sink()).rows)
        )
        asking.start()
        asking.join(60)
        assert outcome == [1]
        spares = export_children()
        assert len(spares) == 1
        second = Sink()
        assert processes.run(job(engine, "SELECT 2.5 AS n"), second).rows == 1
        assert bytes(second.data) == b"n\n2.5\n"
        assert spares[0] not in export_children()  # the spare ran it; another waits now
        assert len(export_children()) == 1
        dead = export_children()[0]
        os.kill(dead, signal.SIGKILL)  # a spare that died is replaced, not used
        wait_for(lambda: _reapable(dead), what="the killed spare to be dead")
        assert processes.run(job(engine, "SELECT 3.5 AS n"), Sink()).rows == 1
    finally:
        processes.close()
    assert export_children() == []
    with pytest.raises(RuntimeError, match="closed"):
        processes.run(job(engine, "SELECT 1 AS n"), Sink())
