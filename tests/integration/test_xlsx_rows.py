"""XLSX with the database computing Excel serial numbers (exports/xlsx_rows.py) holds the cells
the Python conversion made, to the last bit, on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Generator
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import openpyxl
import pytest
from sqlalchemy import Engine, QueuePool, insert, text
from xlsxwriter.utility import _datetime_to_excel_datetime  # what xlsxwriter's write_datetime() computes

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.report_definition import parse_report_definition
from uvm_reporting.domain.runs import Delivery
from uvm_reporting.exports.formats.common import as_date, naive_utc
from uvm_reporting.exports.formats.xlsx_writer import write_xlsx
from uvm_reporting.exports.query_compiler import compile_report_query, report_column_types
from uvm_reporting.exports.run_executor import RunExecutor
from uvm_reporting.exports.xlsx_rows import write_xlsx_export, xlsx_row_batches
from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.store.accounts import Account
from uvm_reporting.store.reports import create_report
from uvm_reporting.store.runs import enqueue_run
from uvm_reporting.store.tables import findings

from .conftest import ALL_FINDINGS_REPORT

EXCEL_DAY_ZERO = date(1899, 12, 30)


def around_serial(serial: int) -> list[datetime]:
    """Just before and after the day that starts at ``serial`` (a power of two: the double's
    exponent changes there)."""
    start = datetime.combine(EXCEL_DAY_ZERO + timedelta(days=serial), time(), UTC)
    return [start - timedelta(seconds=1), start, start + timedelta(seconds=1, microseconds=500_000)]


MOMENTS = [
    datetime(1899, 12, 31, tzinfo=UTC),
    datetime(1899, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(1900, 1, 1, tzinfo=UTC),  # xlsxwriter takes a day off here
    datetime(1900, 1, 1, 12, 0, 0, 1, tzinfo=UTC),
    datetime(1900, 2, 28, tzinfo=UTC),
    datetime(1900, 2, 28, 18, 30, 15, tzinfo=UTC),  # past serial 59: Excel's 1900-02-29
    datetime(1900, 2, 28, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1900, 3, 1, tzinfo=UTC),
    datetime(1900, 3, 1, 0, 0, 0, 1000, tzinfo=UTC),
    datetime(1850, 6, 15, 8, 0, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 250_000, tzinfo=UTC),
    *around_serial(32_768),
    *around_serial(65_536),
    datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
    datetime(2026, 3, 1, 12, 0, 7, tzinfo=timezone(timedelta(hours=2))),  # stored as UTC
    datetime(2026, 3, 1, 10, 0, 0, 123_456, tzinfo=UTC),
    datetime(2026, 3, 1, 23, 59, 59, 999_000, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 58, 999_999, tzinfo=UTC),  # at 59.999999 s the double is 10000-01-01
]
DAYS = [date(1000, 1, 1), date(1899, 12, 30), date(1899, 12, 31), date(1900, 1, 1), date(1900, 2, 28),
        date(1900, 3, 1), date(1989, 9, 18), date(2026, 2, 28), date(9999, 12, 31), None]


@pytest.fixture
def dated_rows(engine: Engine, account: Account) -> int:
    """Findings whose timestamps and dates sit on every edge of the serial arithmetic, plus
    NULLs and text that starts formulas."""
    rows = []
    for index, moment in enumerate(MOMENTS):
        rows.append({
            "account_id": account.id, "id": f"d-{index:03d}", "title": ["=1+1", "-x", "plain", "@A1"][index % 4],
            "severity": "Info", "status": "Open", "cvss_score": None if index % 3 else 7.5,
            "first_seen": moment, "last_seen": MOMENTS[-1 - index],
            "resolved_at": None if index % 2 else moment,
            "due_date": DAYS[index % len(DAYS)], "description": None if index % 5 else "+desc",
        })
    with engine.begin() as connection:
        connection.execute(insert(findings), rows)
    return len(rows)


@pytest.fixture
def fractional_text(engine: Engine, dated_rows: int) -> list[str]:
    """On SQLite, timestamps with milliseconds as the store writes them in precise columns."""
    texts = ["2026-03-01T10:00:00.001Z", "2026-03-01T23:59:59.999Z", "1900-03-01T00:00:00.500Z",
             "1900-02-28T12:00:00.125Z"]
    if engine.dialect.name == "sqlite":
        with engine.begin() as connection:
            for index, value in enumerate(texts):
                connection.execute(text("UPDATE findings SET last_seen = :value WHERE id = :id"),
                                   {"value": value, "id": f"d-{index:03d}"})
    return texts


def report(account_id: str) -> tuple[Any, list[tuple[str, FieldType]]]:
    definition = parse_report_definition(ALL_FINDINGS_REPORT)
    return compile_report_query(definition, account_id), report_column_types(definition)


def serial(value: Any, kind: FieldType) -> float:
    moment = naive_utc(value) if kind is FieldType.TIMESTAMP else datetime.combine(as_date(value), time())
    return float(_datetime_to_excel_datetime(moment, False, False))


def python_xlsx(engine: Engine, account_id: str, **options: Any) -> bytes:
    """The workbook from the values as the driver hands them over, converted in Python."""
    statement, columns = report(account_id)
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    sink = io.BytesIO()
    write_xlsx([rows], columns, sink, **options)
    return sink.getvalue()


def database_xlsx(engine: Engine, account_id: str, **options: Any) -> bytes:
    statement, columns = report(account_id)
    sink = io.BytesIO()
    count = write_xlsx_export(engine, statement, columns, sink, batch_rows=7, **options)
    assert count == len(MOMENTS)
    return sink.getvalue()


def parts(workbook: bytes) -> dict[str, bytes]:
    """Every part of the workbook but its creation time."""
    with zipfile.ZipFile(io.BytesIO(workbook)) as archive:
        return {name: archive.read(name) for name in archive.namelist() if name != "docProps/core.xml"}


def test_database_serials_are_xlsxwriters_to_the_last_bit(engine: Engine, account: Account, dated_rows: int,
                                                          fractional_text: list[str]) -> None:
    statement, columns = report(account.id)
    with engine.connect() as connection:
        expected = connection.execute(statement).all()
    rows = [row for batch in xlsx_row_batches(engine, statement, columns, batch_rows=4) for row in batch]
    assert len(rows) == len(expected) == dated_rows
    floats = 0
    for row, driver_row in zip(rows, expected, strict=True):
        for (name, kind), value, driver_value in zip(columns, row, driver_row, strict=True):
            if kind not in (FieldType.TIMESTAMP, FieldType.DATE) or driver_value is None:
                assert value == driver_value, name
                continue
            if isinstance(value, str):  # SQLite leaves days before 1900-03-01 to the writer
                assert engine.dialect.name == "sqlite"
                assert value < "1900-03-01"
                continue
            assert type(value) is float
            assert value.hex() == serial(driver_value, kind).hex(), (name, driver_value)
            floats += 1
    assert floats > len(rows)
    if engine.dialect.name == "sqlite":
        last_seen = [row[11] for row in rows[:4]]
        assert last_seen[:3] == [serial(value, FieldType.TIMESTAMP) for value in fractional_text[:3]]
        assert last_seen[3] == fractional_text[3]  # before 1900-03-01


def random_moments(count: int) -> list[datetime]:
    """Moments with fractions of a second: half in Excel's first days, where the fraction keeps
    most of its bits in the double and a step done otherwise than xlsxwriter's shows."""
    chance = random.Random(11)
    early, late = datetime(1899, 12, 31, tzinfo=UTC), datetime(2000, 1, 1, tzinfo=UTC)
    return [(early if index % 2 else late) + timedelta(seconds=chance.randrange(70 * 86_400 if index % 2 else 10**9),
                                                       microseconds=chance.randrange(10**6))
            for index in range(count)]


def test_serials_of_fractional_seconds_are_exact(engine: Engine, account: Account) -> None:
    moments = random_moments(400)
    sqlite = engine.dialect.name == "sqlite"
    # SQLite: the store's precise form, milliseconds (written as text; findings keep seconds).
    values: list[Any] = [moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
                         for moment in moments] if sqlite else moments
    with engine.begin() as connection:
        connection.execute(insert(findings), [
            {"account_id": account.id, "id": f"r-{index:04d}", "title": "t", "severity": "Low", "status": "Open",
             "first_seen": moments[0], "last_seen": moments[0]} for index in range(len(moments))])
        connection.execute(text("UPDATE findings SET first_seen = :value WHERE account_id = :account AND id = :id"),
                           [{"value": value, "account": account.id, "id": f"r-{index:04d}"}
                            for index, value in enumerate(values)])
    statement, columns = report(account.id)
    first_seen = [row[10] for batch in xlsx_row_batches(engine, statement, columns) for row in batch]
    serials = [value for value in first_seen if isinstance(value, float)]
    assert len(first_seen) == len(values)
    assert len(serials) >= len(values) // 2
    assert [value if isinstance(value, str) else value.hex() for value in first_seen] == [
        value if isinstance(value, str) and value < "1900-03-01" else serial(value, FieldType.TIMESTAMP).hex()
        for value in values]


def test_database_serials_make_the_same_workbook(engine: Engine, account: Account, dated_rows: int,
                                                 fractional_text: list[str]) -> None:
    workbook = database_xlsx(engine, account.id)
    assert parts(workbook) == parts(python_xlsx(engine, account.id))

    sheet = openpyxl.load_workbook(io.BytesIO(workbook), read_only=True).worksheets[0]
    header, *rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == dated_rows
    by_name = [dict(zip(header, row, strict=True)) for row in rows]
    assert by_name[0]["title"] == "'=1+1"
    assert by_name[1]["title"] == "'-x"
    assert by_name[1]["resolved_at"] is None
    assert by_name[1]["cvss_score"] is None
    first_seen = [row["first_seen"] for row in by_name]
    # openpyxl reads the serials back with its own arithmetic, to the millisecond.
    assert first_seen[MOMENTS.index(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))] == datetime(2026, 3, 1, 10, 0)
    assert first_seen[MOMENTS.index(datetime(1900, 3, 1, tzinfo=UTC))] == datetime(1900, 3, 1)
    assert by_name[5]["due_date"] == datetime(1900, 3, 1)


def test_sheets_roll_over_the_same_way(engine: Engine, account: Account, dated_rows: int) -> None:
    workbook = database_xlsx(engine, account.id, rows_per_sheet=5)
    assert parts(workbook) == parts(python_xlsx(engine, account.id, rows_per_sheet=5))
    reader = openpyxl.load_workbook(io.BytesIO(workbook), read_only=True)
    sheets = [list(sheet.iter_rows(values_only=True)) for sheet in reader.worksheets]
    assert [len(rows) - 1 for rows in sheets] == [min(5, dated_rows - start) for start in range(0, dated_rows, 5)]
    assert all(rows[0] == sheets[0][0] for rows in sheets)
    assert [row[0] for rows in sheets for row in rows[1:]] == [f"d-{index:03d}" for index in range(dated_rows)]


def test_an_xlsx_run_uses_the_database_serials(engine: Engine, account: Account, dated_rows: int,
                                               tmp_path: Path) -> None:
    definition = parse_report_definition(ALL_FINDINGS_REPORT)
    run = enqueue_run(engine, account_id=account.id,
                      report_id=create_report(engine, account.id, ALL_FINDINGS_REPORT).id,
                      delivery=Delivery.DOWNLOAD, format="xlsx", definition=definition.to_json(), requested_by="test")
    sink = io.BytesIO()
    assert RunExecutor(engine, LocalFolderStorage(tmp_path / "unused"), batch_size=3).write(run, sink) == dated_rows
    assert parts(sink.getvalue()) == parts(python_xlsx(engine, account.id))


def test_a_filtered_report_binds_its_values_as_the_report_query(engine: Engine, account: Account,
                                                                 dated_rows: int) -> None:
    filtered = {**ALL_FINDINGS_REPORT, "filters": [
        {"field": "title", "op": "in", "value": ["=1+1", "plain", "-x"]},
        {"field": "first_seen", "op": "gte", "value": "1900-01-01T12:00:00Z"},
        {"field": "due_date", "op": "between", "value": ["1899-12-31", "2026-12-31"]},
        {"field": "id", "op": "contains", "value": "d-0"},
    ], "sort": [{"field": "first_seen", "direction": "desc"}]}
    definition = parse_report_definition(filtered)
    statement, columns = compile_report_query(definition, account.id), report_column_types(definition)
    with engine.connect() as connection:
        expected = connection.execute(statement).all()
    assert 3 < len(expected) < dated_rows
    sink, python = io.BytesIO(), io.BytesIO()
    assert write_xlsx_export(engine, statement, columns, sink) == len(expected)
    write_xlsx([expected], columns, python)
    assert parts(sink.getvalue()) == parts(python.getvalue())


def test_stopping_early_gives_the_connection_back(engine: Engine, account: Account, dated_rows: int) -> None:
    statement, columns = report(account.id)
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    batches = cast(Generator[Any, None, None], xlsx_row_batches(engine, statement, columns, batch_rows=2))
    assert len(next(batches)) == 2
    assert pool.checkedout() == 1
    batches.close()  # as when writing the workbook fails: the cursor is closed, the transaction rolled back
    assert pool.checkedout() == 0
    assert sum(len(batch) for batch in xlsx_row_batches(engine, statement, columns)) == dated_rows
