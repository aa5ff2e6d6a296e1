"""The fast paths (COPY, database-rendered lines through ADBC) write what the Python
writers write, on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from uvm_reporting.domain.report_definition import parse_report_definition
from uvm_reporting.exports.fast_paths import copy_csv_postgres, stream_lines
from uvm_reporting.exports.formats.csv_writer import write_csv
from uvm_reporting.exports.formats.json_writer import write_ndjson
from uvm_reporting.exports.query_compiler import compile_report_query, report_column_types
from uvm_reporting.store.accounts import Account
from uvm_reporting.store.ids import utc_now
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
