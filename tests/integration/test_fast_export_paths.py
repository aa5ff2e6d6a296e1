"""The fast paths (COPY, database-rendered lines, Arrow batches parsed from the database's CSV)
write what the Python writers write, on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import struct
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, create_engine, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from tests.expected_exports import expected_findings_rows
from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.report_definition import parse_report_definition
from uvm_reporting.domain.runs import Delivery
from uvm_reporting.exports import arrow_batches
from uvm_reporting.exports.arrow_batches import csv_record_batches, postgres_record_batches, record_batches
from uvm_reporting.exports.fast_paths import copy_csv_postgres, stream_lines
from uvm_reporting.exports.formats.csv_writer import write_csv
from uvm_reporting.exports.formats.json_writer import write_ndjson
from uvm_reporting.exports.formats.parquet_writer import write_parquet
from uvm_reporting.exports.query_compiler import compile_report_query, report_column_types
from uvm_reporting.exports.run_executor import RunExecutor
from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.store.accounts import Account
from uvm_reporting.store.ids import utc_now
from uvm_reporting.store.reports import create_report
from uvm_reporting.store.runs import enqueue_run
from uvm_reporting.store.tables import assets, findings

from .conftest import ALL_FINDINGS_REPORT


class Sink:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes) -> int:
        return self.buffer.write(data)


def python_export(engine: Engine, definition: Any, account_id: str, kind: str) -> bytes:
    sink = Sink()
    statement = compile_report_query(definition, account_id)
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    (write_csv if kind == "csv" else write_ndjson)([rows], report_column_types(definition), sink)
    return sink.buffer.getvalue()


def fast_export(engine: Engine, definition: Any, account_id: str, kind: str) -> tuple[int, bytes]:
    sink = Sink()
    statement = compile_report_query(definition, account_id)
    columns = report_column_types(definition)
    if kind == "csv" and engine.dialect.name == "postgresql":
        count = copy_csv_postgres(engine, statement, columns, sink)
    else:
        count = stream_lines(engine, statement, columns, sink, kind=kind)
    return count, sink.buffer.getvalue()


@pytest.fixture
def awkward_rows(engine: Engine, account: Account, findings_data: int) -> int:
    """Generated findings plus cells that start formulas and whole-number scores."""
    now = utc_now().replace(microsecond=0)
    extra = [
        {"id": "zz-1", "title": "=HYPERLINK(\"http://x\")", "severity": "Critical", "status": "Open",
         "cvss_score": 10.0, "first_seen": now, "last_seen": now, "description": "-minus, \"quoted\"\r\nCRLF"},
        {"id": "zz-2", "title": "@SUM(A1)", "severity": "Info", "status": "Open", "cvss_score": 0.0,
         "first_seen": now, "last_seen": now, "description": "+plus\ttab"},
    ]
    with engine.begin() as connection:
        connection.execute(insert(findings), [{**row, "account_id": account.id} for row in extra])
    return findings_data + len(extra)


def test_fast_csv_is_byte_identical_to_the_python_writer(engine: Engine, account: Account,
                                                         awkward_rows: int) -> None:
    definition = parse_report_definition(ALL_FINDINGS_REPORT)
    count, fast = fast_export(engine, definition, account.id, "csv")
    assert count == awkward_rows
    assert fast == python_export(engine, definition, account.id, "csv")
    assert b"\n\"'=HYPERLINK" in fast or b",\"'=HYPERLINK" in fast
    assert b",10," in fast


def test_fast_ndjson_holds_the_same_values(engine: Engine, account: Account, awkward_rows: int) -> None:
    severe_or_info = {"field": "severity", "op": "in", "value": ["Critical", "Info"]}
    definition = parse_report_definition({**ALL_FINDINGS_REPORT, "filters": [severe_or_info]})
    count, fast = fast_export(engine, definition, account.id, "ndjson")
    expected = [json.loads(line) for line in python_export(engine, definition, account.id, "ndjson").splitlines()]
    lines = fast.decode("utf-8").splitlines()
    assert count == len(lines) == len(expected)
    assert [json.loads(line) for line in lines] == expected
    assert list(json.loads(lines[0])) == list(ALL_FINDINGS_REPORT["columns"])


def test_filter_values_are_bound_on_the_fast_paths(engine: Engine, account: Account, awkward_rows: int) -> None:
    definition = parse_report_definition({**ALL_FINDINGS_REPORT, "filters": [
        {"field": "title", "op": "eq", "value": "x'; DROP TABLE findings; --"},
        {"field": "first_seen", "op": "gte", "value": "2000-01-01T00:00:00Z"}]})
    count, fast = fast_export(engine, definition, account.id, "csv")
    assert count == 0
    assert fast.count(b"\n") == 1  # the header only
    assert fast_export(engine, parse_report_definition(ALL_FINDINGS_REPORT), account.id, "csv")[0] == awkward_rows


@pytest.mark.parametrize("export_format", ["csv", "json", "ndjson", "xlsx", "parquet"])
def test_every_format_holds_every_row_on_either_database(engine: Engine, account: Account, awkward_rows: int,
                                                         export_format: str, tmp_path: Path) -> None:
    definition = parse_report_definition(ALL_FINDINGS_REPORT)
    run = enqueue_run(engine, account_id=account.id, report_id=create_report(engine, account.id,
                                                                               ALL_FINDINGS_REPORT).id,
                      delivery=Delivery.DOWNLOAD, format=export_format, definition=definition.to_json(),
                      requested_by="test")
    sink = Sink()
    count = RunExecutor(engine, LocalFolderStorage(tmp_path / "unused")).write(run, sink)
    content = sink.buffer.getvalue()
    records = read_back(export_format, content)
    expected = {row[0]: row for row in expected_findings_rows(engine, account.id)}
    assert count == awkward_rows == len(records)
    assert [r["id"] for r in records] == sorted(expected, key=lambda i: i)  # the report sorts by id
    by_id = {r["id"]: r for r in records}
    critical = by_id["zz-1"]
    assert float(critical["cvss_score"]) == 10.0
    assert str(critical["first_seen"]).replace(" ", "T").rstrip("Z").removesuffix("+00:00") == \
        expected["zz-1"][10].rstrip("Z")
    title = critical["title"]
    assert title == ("'=HYPERLINK(\"http://x\")" if export_format in ("csv", "xlsx") else "=HYPERLINK(\"http://x\")")


def read_back(export_format: str, content: bytes) -> list[dict[str, Any]]:
    if export_format == "csv":
        return list(csv.DictReader(io.StringIO(content.decode("utf-8"), newline="")))
    if export_format == "json":
        records: list[dict[str, Any]] = json.loads(content)
        return records
    if export_format == "ndjson":
        return [json.loads(line) for line in content.decode("utf-8").splitlines()]
    if export_format == "parquet":
        table = pq.read_table(io.BytesIO(content))
        assert str(table.schema.field("first_seen").type) == "timestamp[us, tz=UTC]"
        return table.to_pylist()  # type: ignore[no-any-return]
    workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    header = [str(cell) for cell in rows[0]]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


# --- Parquet: Arrow batches parsed from the database's CSV ---------------------------------------

SECOND = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
FRACTION = datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
TRICKY_TEXT = {
    "t-empty": "",
    "t-null-word": "NULL",
    "t-na": "N/A",
    "t-nan": "NaN",
    "t-unicode": "Überlauf 日本語 🚀 \u2018quotes\u2019",
    "t-comma": 'comma, "quoted", \\\\backslash\\\\',
    "t-lf": "line\nbreak",
    "t-crlf": "windows\r\nbreak\r",
    "t-formula": "=HYPERLINK(\"http://x\")",
    "t-spaces": "  padded  ",
    "t-dot": "\\.",
}


@pytest.fixture
def tricky_rows(engine: Engine, account: Account) -> dict[str, dict[str, Any]]:
    """Findings whose every column type takes its awkward values: NULL next to the empty
    string and to text that reads like a null, quotes, line breaks, unicode, fractions of a
    second, numbers that need 17 digits, dates."""
    base: dict[str, Any] = {"severity": "High", "status": "Open", "asset_id": None, "description": None,
                            "cvss_score": None, "cve": None, "first_seen": SECOND, "last_seen": SECOND,
                            "due_date": None, "resolved_at": None}
    rows: dict[str, dict[str, Any]] = {ident: {**base, "title": value, "description": value}
                                       for ident, value in TRICKY_TEXT.items()}
    rows["n-null"] = {**base, "title": "no description", "description": None, "cve": None}
    rows["n-empty"] = {**base, "title": "empty description", "description": "", "cve": ""}
    rows["n-third"] = {**base, "title": "a third", "cvss_score": 0.1 + 0.2, "due_date": date(2026, 12, 31)}
    rows["n-whole"] = {**base, "title": "whole", "cvss_score": 10.0, "due_date": date(1999, 1, 1)}
    rows["n-tiny"] = {**base, "title": "tiny", "cvss_score": -1.25e-7}
    rows["n-huge"] = {**base, "title": "huge", "cvss_score": 1.7976931348623157e308}
    rows["n-zero"] = {**base, "title": "zero", "cvss_score": 0.0}
    rows["ts-fraction"] = {**base, "title": "fraction", "first_seen": FRACTION,
                           "resolved_at": FRACTION + timedelta(microseconds=1),
                           "last_seen": datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))}
    rows["ts-old"] = {**base, "title": "old", "first_seen": datetime(1970, 1, 1, tzinfo=UTC),
                      "last_seen": datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)}
    with engine.begin() as connection:
        connection.execute(insert(assets), [{"id": "a-1", "account_id": account.id, "hostname": "host,\"1\"",
                                            "first_seen": SECOND, "last_seen": SECOND}])
        rows["n-null"]["asset_id"] = "a-1"
        rows["n-empty"]["asset_id"] = "missing"  # the joined hostname is NULL
        connection.execute(insert(findings), [{**row, "id": ident, "account_id": account.id}
                                              for ident, row in rows.items()])
    return rows


def run_parquet(engine: Engine, account: Account, report: dict[str, Any], tmp_path: Path,
                export_engine: Engine | None = None) -> tuple[int, bytes]:
    definition = parse_report_definition(report)
    run = enqueue_run(engine, account_id=account.id, report_id=create_report(engine, account.id, report).id,
                      delivery=Delivery.DOWNLOAD, format="parquet", definition=definition.to_json(),
                      requested_by="test")
    sink = Sink()
    count = RunExecutor(export_engine or engine, LocalFolderStorage(tmp_path / "unused")).write(run, sink)
    return count, sink.buffer.getvalue()


def python_parquet(engine: Engine, report: dict[str, Any], account_id: str) -> Any:
    """Parquet as the Python writer makes it from the rows SQLAlchemy returns (aware datetimes)."""
    definition = parse_report_definition(report)
    with engine.connect() as connection:
        rows = connection.execute(compile_report_query(definition, account_id)).all()
    sink = Sink()
    write_parquet([rows], report_column_types(definition), sink)
    return pq.read_table(io.BytesIO(sink.buffer.getvalue()))


def test_parquet_from_the_database_csv_equals_the_python_writer(engine: Engine, account: Account,
                                                                tricky_rows: dict[str, dict[str, Any]],
                                                                tmp_path: Path) -> None:
    count, content = run_parquet(engine, account, ALL_FINDINGS_REPORT, tmp_path)
    table = pq.read_table(io.BytesIO(content))
    expected = python_parquet(engine, ALL_FINDINGS_REPORT, account.id)
    assert count == table.num_rows == len(tricky_rows)
    assert table.schema.equals(expected.schema)
    assert table.equals(expected)

    by_id = {row["id"]: row for row in table.to_pylist()}
    for ident, value in TRICKY_TEXT.items():  # verbatim: no formula prefix, nothing read as null
        assert (by_id[ident]["title"], by_id[ident]["description"]) == (value, value)
    assert by_id["n-null"]["description"] is None
    assert by_id["n-null"]["cve"] is None
    assert by_id["n-null"]["asset.hostname"] == "host,\"1\""
    assert by_id["n-empty"]["description"] == ""
    assert by_id["n-empty"]["cve"] == ""
    assert by_id["n-empty"]["asset.hostname"] is None
    assert by_id["n-third"]["cvss_score"] == 0.1 + 0.2  # exact, not 0.3
    assert by_id["n-whole"]["cvss_score"] == 10.0
    assert by_id["n-tiny"]["cvss_score"] == -1.25e-7
    assert by_id["n-huge"]["cvss_score"] == 1.7976931348623157e308
    assert by_id["n-zero"]["cvss_score"] == 0.0
    assert by_id["t-empty"]["cvss_score"] is None
    assert by_id["n-third"]["due_date"] == date(2026, 12, 31)
    assert by_id["n-whole"]["due_date"] == date(1999, 1, 1)
    assert by_id["t-empty"]["due_date"] is None
    assert by_id["t-empty"]["resolved_at"] is None
    # SQLite keeps timestamps to the second (store.types); PostgreSQL keeps microseconds.
    keeps_fraction = engine.dialect.name == "postgresql"
    assert by_id["ts-fraction"]["first_seen"] == (FRACTION if keeps_fraction else SECOND)
    assert by_id["ts-fraction"]["resolved_at"] == (FRACTION + timedelta(microseconds=1) if keeps_fraction
                                                   else SECOND)
    assert by_id["ts-fraction"]["last_seen"] == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert by_id["ts-old"]["first_seen"] == datetime(1970, 1, 1, tzinfo=UTC)
    assert by_id["ts-old"]["last_seen"] == datetime(1969, 12, 31, 23, 59, 59, 500000 if keeps_fraction else 0,
                                                    tzinfo=UTC)
    assert str(table.schema.field("first_seen").type) == "timestamp[us, tz=UTC]"


def test_parquet_numbers_read_back_as_the_same_doubles(engine: Engine, account: Account, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Doubles across the whole range, and SQLite records printed in several printf() groups."""
    monkeypatch.setattr(arrow_batches, "_PRINTF_FIELDS", 4)
    numbers = random.Random(7)
    scores = [struct.unpack("<d", numbers.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(300)]
    scores = [score for score in scores if math.isfinite(score)] + [numbers.uniform(0, 10) for _ in range(300)]
    scores += [5e-324, -0.0, 1e16, 123456789012345678.0, float("inf"), float("-inf")]
    with engine.begin() as connection:
        connection.execute(insert(findings), [
            {"id": f"n-{index:04d}", "account_id": account.id, "title": "t", "severity": "Low", "status": "Open",
             "cvss_score": score, "first_seen": SECOND, "last_seen": SECOND} for index, score in enumerate(scores)])
    count, content = run_parquet(engine, account, ALL_FINDINGS_REPORT, tmp_path)
    table = pq.read_table(io.BytesIO(content))
    assert count == len(scores)
    assert table.equals(python_parquet(engine, ALL_FINDINGS_REPORT, account.id))
    assert table.column("cvss_score").to_pylist() == scores


def test_parquet_keeps_a_row_whose_only_column_is_null(engine: Engine, account: Account,
                                                        tricky_rows: dict[str, dict[str, Any]],
                                                        tmp_path: Path) -> None:
    """A one-column CSV record holding NULL is an empty line, which must not be skipped."""
    report = {**ALL_FINDINGS_REPORT, "columns": ["description"]}
    count, content = run_parquet(engine, account, report, tmp_path)
    table = pq.read_table(io.BytesIO(content))
    assert count == table.num_rows == len(tricky_rows)
    assert table.equals(python_parquet(engine, report, account.id))
    assert table.column("description").null_count == sum(row["description"] is None for row in tricky_rows.values())


def test_parquet_of_no_rows_has_the_schema(engine: Engine, account: Account, tricky_rows: dict[str, dict[str, Any]],
                                           tmp_path: Path) -> None:
    report = {**ALL_FINDINGS_REPORT, "filters": [{"field": "title", "op": "eq", "value": "nothing has this"}]}
    count, content = run_parquet(engine, account, report, tmp_path)
    table = pq.read_table(io.BytesIO(content))
    assert count == table.num_rows == 0
    assert table.schema.equals(python_parquet(engine, report, account.id).schema)


def test_parquet_ignores_the_session_time_zone_and_date_style(engine: Engine, account: Account,
                                                              tricky_rows: dict[str, dict[str, Any]],
                                                              tmp_path: Path) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("session settings are PostgreSQL's")
    odd = create_engine(engine.url, connect_args={
        "options": "-c TimeZone=America/St_Johns -c DateStyle=SQL,DMY -c extra_float_digits=-15"})
    try:
        with odd.connect() as connection:
            assert connection.execute(text("SELECT 0.1::float8 + 0.2::float8")).scalar_one() != 0.1 + 0.2
            assert "/" in connection.execute(text("SELECT current_date::text")).scalar_one()
        content = run_parquet(engine, account, ALL_FINDINGS_REPORT, tmp_path, export_engine=odd)[1]
        table = pq.read_table(io.BytesIO(content))
    finally:
        odd.dispose()
    assert table.equals(python_parquet(engine, ALL_FINDINGS_REPORT, account.id))


def test_parquet_stops_copy_early_and_the_connection_stays_usable(engine: Engine, account: Account,
                                                                  findings_data: int) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    definition = parse_report_definition(ALL_FINDINGS_REPORT)
    statement = compile_report_query(definition, account.id)
    columns = report_column_types(definition)
    batches = postgres_record_batches(engine, statement, columns)
    first = next(batches)
    assert first.num_rows > 0
    batches.close()  # a writer that failed: the producer thread ends the COPY and hands the connection back
    for _ in range(10):  # more than the pool holds: none of them is left in COPY
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM findings")).scalar_one() == findings_data
    assert sum(batch.num_rows for batch in postgres_record_batches(engine, statement, columns)) == findings_data


def test_csv_batches_read_ahead_a_bounded_number_of_blocks() -> None:
    """The CSV reader pulls blocks as it goes: neither the reader nor the producer holds the
    whole output, and stopping early closes the producer's source."""
    pulled: list[int] = []
    closed: list[bool] = []
    line = b'"some text, quoted",1.5,2026-03-01T10:00:00Z\n'

    def blocks() -> Iterator[bytes]:
        try:
            for index in range(1000):
                pulled.append(index)
                yield line * 20_000  # about 1 MB
        finally:
            closed.append(True)

    columns = [("text", FieldType.TEXT), ("number", FieldType.NUMBER), ("when", FieldType.TIMESTAMP)]
    batches = csv_record_batches(blocks(), columns)
    rows = 0
    for batch in batches:
        rows += batch.num_rows
        if rows >= 200_000:
            break
    read_ahead = 32 * arrow_batches.READ_BYTES // len(line * 20_000) + 1  # Arrow's background reader
    assert len(pulled) <= 10 + arrow_batches.QUEUE_BLOCKS + read_ahead + 2
    batches.close()
    assert closed == [True]
    assert batch.schema == pa.schema([("text", pa.string()), ("number", pa.float64()),
                                      ("when", pa.timestamp("us", tz="UTC"))])


def test_csv_batches_raise_what_the_producer_raised() -> None:
    def blocks() -> Iterator[bytes]:
        yield b'"a",1,2026-03-01\n'
        raise RuntimeError("the database went away")

    columns = [("text", FieldType.TEXT), ("number", FieldType.NUMBER), ("day", FieldType.DATE)]
    with pytest.raises(RuntimeError, match="the database went away"):
        list(csv_record_batches(blocks(), columns))


def test_a_failing_query_raises_a_sqlalchemy_error(engine: Engine) -> None:
    """The worker reports SQLAlchemy errors as QUERY_FAILED: the driver's are wrapped."""
    statement = select(func.no_such_function(1).label("x"))
    with pytest.raises(DBAPIError, match="no_such_function"):
        list(record_batches(engine, statement, [("x", FieldType.NUMBER)]))
