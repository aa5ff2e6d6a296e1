from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.sinks import ByteSink as Sink
from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.formats import ExportFormat
from uvm_reporting.exports.formats.common import Batches, BinaryWriter, Columns
from uvm_reporting.exports.sources.driver_rows import write_rows

COLUMNS = [
    ("id", FieldType.STRING),
    ("title", FieldType.TEXT),
    ("cvss_score", FieldType.NUMBER),
    ("first_seen", FieldType.TIMESTAMP),
    ("due_date", FieldType.DATE),
]


def write_csv(batches: Batches, columns: Columns, out: BinaryWriter) -> int:
    """The CSV renderer, fed rows as the worker reads them for a small report."""
    return write_rows(ExportFormat.CSV, None, batches, columns, out)


def read_back(sink: Sink) -> list[list[str]]:
    return list(csv.reader(io.StringIO(sink.data.decode("utf-8"), newline="")))


def test_header_types_and_nulls() -> None:
    sink = Sink()
    rows = [
        ("f-1", 'Overflow, "quoted"\nsecond line', 9.8, datetime(2026, 3, 1, 10, 0, tzinfo=UTC), date(2026, 4, 1)),
        ("f-2", "Überlauf 日本語", None, "2026-03-02T11:30:00Z", None),
    ]
    count = write_csv([rows[:1], rows[1:]], COLUMNS, sink)
    assert count == 2
    assert read_back(sink) == [
        ["id", "title", "cvss_score", "first_seen", "due_date"],
        ["f-1", 'Overflow, "quoted"\nsecond line', "9.8", "2026-03-01T10:00:00Z", "2026-04-01"],
        ["f-2", "Überlauf 日本語", "", "2026-03-02T11:30:00Z", ""],
    ]
    assert sink.data.startswith(b"id,title,cvss_score,first_seen,due_date\n")


def test_text_cells_are_formula_safe_but_numbers_stay_numbers() -> None:
    sink = Sink()
    write_csv([[("=cmd|' /C calc'!A0", "-danger", -1.5, None, None)]], COLUMNS, sink)
    assert read_back(sink)[1][:3] == ["'=cmd|' /C calc'!A0", "'-danger", "-1.5"]


def test_an_empty_result_is_just_the_header() -> None:
    sink = Sink()
    assert write_csv([], COLUMNS, sink) == 0
    assert read_back(sink) == [["id", "title", "cvss_score", "first_seen", "due_date"]]


# No deadline: the first example pays Arrow's one-time kernel set-up, slow on a busy machine.
@settings(deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1), st.text()), max_size=20))
def test_any_text_round_trips_through_a_standard_reader(rows: list[tuple[str, str]]) -> None:
    columns = [("id", FieldType.STRING), ("title", FieldType.TEXT)]
    sink = Sink()
    write_csv([rows], columns, sink)
    expected = [
        [
            a if not a.startswith(("=", "+", "-", "@", "\t", "\r")) else "'" + a,
            b if not b.startswith(("=", "+", "-", "@", "\t", "\r")) else "'" + b,
        ]
        for a, b in rows
    ]
    assert read_back(sink)[1:] == expected
