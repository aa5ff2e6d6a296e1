"""The XLSX writer's cells: Excel serial numbers given for timestamps and dates make the same
cells as the date-times themselves; text, numbers and NULLs as ever."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import openpyxl
import xlsxwriter
from openpyxl.utils.escape import unescape
from xlsxwriter.utility import _datetime_to_excel_datetime  # what xlsxwriter's write_datetime() computes

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.renderers.xlsx import _cell_writers, as_date, naive_utc, write_xlsx

COLUMNS = [
    ("name", FieldType.STRING),
    ("at", FieldType.TIMESTAMP),
    ("on", FieldType.DATE),
    ("score", FieldType.NUMBER),
    ("note", FieldType.TEXT),
]

MOMENTS: list[Any] = [
    datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
    "2026-03-01T10:00:00Z",
    "2026-03-01T10:00:00.123Z",
    datetime(2026, 3, 1, 12, 0, 0, 654_321, tzinfo=timezone(timedelta(hours=2))),
    datetime(1900, 1, 1, 6, 0, tzinfo=UTC),
    datetime(1900, 2, 28, 18, 0, tzinfo=UTC),
    datetime(1900, 3, 1, tzinfo=UTC),
    datetime(1899, 12, 30, 12, 0, tzinfo=UTC),
    None,
]
DAYS: list[Any] = [
    date(2026, 3, 1),
    "2026-03-02",
    date(1900, 1, 1),
    date(1900, 2, 28),
    "1900-03-01",
    None,
    date(1899, 12, 31),
    date(9999, 12, 31),
    None,
]
TEXTS: list[Any] = ["=1+1", "+1", "-2", "@A1", "\tx", "\rx", "'=already quoted", "", 42]


def serial(value: Any, kind: FieldType) -> float | None:
    if value is None:
        return None
    moment = naive_utc(value) if kind is FieldType.TIMESTAMP else datetime.combine(as_date(value), time())
    return float(_datetime_to_excel_datetime(moment, False, False))


def workbook(rows: list[tuple[Any, ...]], **options: Any) -> bytes:
    sink = io.BytesIO()
    assert write_xlsx([rows[:4], [], rows[4:]], COLUMNS, sink, **options) == len(rows)
    return sink.getvalue()


def parts(data: bytes) -> dict[str, bytes]:
    """Every part of the workbook but its creation time."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist() if name != "docProps/core.xml"}


def rows_of(data: bytes) -> list[tuple[Any, ...]]:
    reader = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    try:
        return [
            tuple(unescape(value) if isinstance(value, str) else value for value in row)
            for sheet in reader.worksheets
            for row in sheet.iter_rows(min_row=2, values_only=True)
        ]
    finally:
        reader.close()


ROWS = [
    (f"n-{index}", moment, day, 1.5 * index if index % 3 else None, text)
    for index, (moment, day, text) in enumerate(zip(MOMENTS, DAYS, TEXTS, strict=True))
]


def test_serial_numbers_make_the_same_cells_as_date_times() -> None:
    as_serials = [
        (name, serial(moment, FieldType.TIMESTAMP), serial(day, FieldType.DATE), score, text)
        for name, moment, day, score, text in ROWS
    ]
    assert all(isinstance(row[1], float) for row in as_serials[:-1])
    assert parts(workbook(as_serials)) == parts(workbook(ROWS))
    assert parts(workbook(as_serials, rows_per_sheet=2)) == parts(workbook(ROWS, rows_per_sheet=2))


def test_cells_hold_the_values_formats_and_nulls() -> None:
    data = workbook(ROWS)
    rows = rows_of(data)
    assert [row[1] for row in rows[:4]] == [
        datetime(2026, 3, 1, 10, 0),
        datetime(2026, 3, 1, 10, 0),
        datetime(2026, 3, 1, 10, 0, 0, 123_000),
        datetime(2026, 3, 1, 10, 0, 0, 654_000),
    ]  # openpyxl reads milliseconds
    assert rows[6][1] == datetime(1900, 3, 1)
    assert [row[2] for row in rows[:2]] == [datetime(2026, 3, 1), datetime(2026, 3, 2)]
    assert rows[4][2] == datetime(1900, 3, 1)
    assert [row[3] for row in rows] == [score for _, _, _, score, _ in ROWS]
    assert rows[-1][1:3] == (None, None)  # NULL: no cell at all
    assert [row[4] for row in rows] == ["'=1+1", "'+1", "'-2", "'@A1", "'\tx", "'\rx", "'=already quoted", "", "42"]

    reader = openpyxl.load_workbook(io.BytesIO(data))  # formats need the full reader
    try:
        sheet = reader.worksheets[0]
        assert sheet["B2"].number_format == 'yyyy-mm-dd hh:mm:ss "UTC"'
        assert sheet["C2"].number_format == "yyyy-mm-dd"
        assert sheet["D3"].number_format == "General"
        assert sheet["A1"].font.b
        assert not sheet["A2"].font.b
    finally:
        reader.close()


def test_a_text_column_writes_every_value_as_a_string() -> None:
    class Label(str):
        pass

    rows = [("a", None, None, None, Label("=x")), ("b", None, None, None, 3.5), ("c", None, None, None, None)]
    assert [row[4] for row in rows_of(workbook(rows))] == ["'=x", "3.5", None]


def test_cells_go_straight_to_the_undecorated_writers() -> None:
    book = xlsxwriter.Workbook(io.BytesIO(), {"in_memory": True})
    try:
        sheet = book.add_worksheet()
        assert [writer.__name__ for writer in _cell_writers(sheet)] == [
            "_write_string",
            "_write_number",
            "_write_datetime",
        ]
    finally:
        book.close()
