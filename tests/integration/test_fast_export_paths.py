"""The fast paths (COPY, database-rendered lines through ADBC) write what the Python
writers write, on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, insert

from tests.expected_exports import expected_findings_rows
from uvm_reporting.domain.report_definition import parse_report_definition
from uvm_reporting.domain.runs import Delivery
from uvm_reporting.exports.fast_paths import copy_csv_postgres, stream_lines
from uvm_reporting.exports.formats.csv_writer import write_csv
from uvm_reporting.exports.formats.json_writer import write_ndjson
from uvm_reporting.exports.query_compiler import compile_report_query, report_column_types
from uvm_reporting.exports.run_executor import RunExecutor
from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.store.accounts import Account
from uvm_reporting.store.ids import utc_now
from uvm_reporting.store.reports import create_report
from uvm_reporting.store.runs import enqueue_run
from uvm_reporting.store.tables import findings

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
