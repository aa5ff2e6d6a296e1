"""XLSX via xlsxwriter in constant-memory mode: each row goes to disk as soon as it is complete.

The header row (bold, frozen) holds the column paths. Numbers are numbers; timestamps are
real Excel date-times and dates real dates. Excel has no time zones: timestamps hold the UTC
wall-clock time and their number format shows ``UTC`` after the time, so a reader is not
misled into taking them for local time. Text cells are formula-neutralised as in CSV (a
cell is written as a string, never a formula, but a user who edits it or saves the sheet as
CSV would otherwise revive the formula). Excel caps a cell at 32,767 characters; longer text
is cut there by xlsxwriter.

A sheet holds at most 1,048,576 rows; past that the rows continue on ``Sheet2`` and so on,
each sheet with its own header.

xlsxwriter writes to a path, so the workbook is built in a private temporary folder (under
the system's temporary directory, ``TMPDIR``) and then copied to ``out`` in chunks; the
folder is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from datetime import datetime, time
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.formats.common import Batches, BinaryWriter, Columns, as_date, naive_utc
from uvm_reporting.exports.formula_safety import neutralise_formula

EXCEL_MAX_ROWS = 1_048_576
MAX_DATA_ROWS_PER_SHEET = EXCEL_MAX_ROWS - 1
"""Data rows that fit on one sheet below its header row."""

TIMESTAMP_FORMAT = 'yyyy-mm-dd hh:mm:ss "UTC"'
DATE_FORMAT = "yyyy-mm-dd"
_COPY_CHUNK = 256 * 1024

_WORKBOOK_OPTIONS = {
    "constant_memory": True,
    # Cell types come from the catalog, never from guessing at the text.
    "strings_to_numbers": False,
    "strings_to_formulas": False,
    "strings_to_urls": False,
    # Excel has no NaN: an error cell shows "not a number" instead of failing the run.
    "nan_inf_to_errors": True,
}

# Column widths (in characters) that show a whole date-time or date instead of "#####".
_WIDTHS = {FieldType.TIMESTAMP: 24, FieldType.DATE: 11}

CellWriter = Callable[[Worksheet, int, int, Any], None]


def _cell_writers(columns: Columns, timestamp: Format, day: Format) -> list[tuple[int, CellWriter]]:
    def text(sheet: Worksheet, row: int, col: int, value: Any) -> None:
        sheet.write_string(row, col, neutralise_formula(value if isinstance(value, str) else str(value)))

    def number(sheet: Worksheet, row: int, col: int, value: Any) -> None:
        sheet.write_number(row, col, value)

    def moment(sheet: Worksheet, row: int, col: int, value: Any) -> None:
        sheet.write_datetime(row, col, naive_utc(value), timestamp)

    def calendar_day(sheet: Worksheet, row: int, col: int, value: Any) -> None:
        # A date is the date-time at its midnight in Excel.
        sheet.write_datetime(row, col, datetime.combine(as_date(value), time()), day)

    by_type: dict[FieldType, CellWriter] = {
        FieldType.STRING: text, FieldType.TEXT: text, FieldType.NUMBER: number,
        FieldType.TIMESTAMP: moment, FieldType.DATE: calendar_day,
    }
    return [(index, by_type[kind]) for index, (_, kind) in enumerate(columns)]


def write_xlsx(batches: Batches, columns: Columns, out: BinaryWriter, *,
               rows_per_sheet: int = MAX_DATA_ROWS_PER_SHEET) -> int:
    """Write every row to an XLSX workbook streamed to ``out``; return the number of rows.

    ``rows_per_sheet`` data rows go on a sheet before the next one starts (Excel's limit by
    default).
    """
    if not 1 <= rows_per_sheet <= MAX_DATA_ROWS_PER_SHEET:
        raise ValueError(f"rows_per_sheet must be 1 to {MAX_DATA_ROWS_PER_SHEET}, got {rows_per_sheet}")
    with tempfile.TemporaryDirectory(prefix="uvm-xlsx-") as folder:
        path = Path(folder) / "export.xlsx"
        workbook = xlsxwriter.Workbook(str(path), {**_WORKBOOK_OPTIONS, "tmpdir": folder})
        try:
            rows = _fill(workbook, batches, columns, rows_per_sheet)
        except BaseException:
            # Closing releases xlsxwriter's open row files; its own error must not hide ours.
            with contextlib.suppress(Exception):
                workbook.close()
            raise
        workbook.close()
        with path.open("rb") as workbook_file:
            while chunk := workbook_file.read(_COPY_CHUNK):
                out.write(chunk)
    return rows


def _fill(workbook: xlsxwriter.Workbook, batches: Batches, columns: Columns, rows_per_sheet: int) -> int:
    header = workbook.add_format({"bold": True})
    writers = _cell_writers(columns, workbook.add_format({"num_format": TIMESTAMP_FORMAT}),
                            workbook.add_format({"num_format": DATE_FORMAT}))

    def new_sheet() -> Worksheet:
        sheet = workbook.add_worksheet()
        for index, (_, kind) in enumerate(columns):
            if kind in _WIDTHS:
                sheet.set_column(index, index, _WIDTHS[kind])
        sheet.freeze_panes(1, 0)
        for index, (name, _) in enumerate(columns):
            sheet.write_string(0, index, name, header)
        return sheet

    sheet = new_sheet()
    sheet_row = 0  # data rows on the current sheet; the header is row 0
    rows = 0
    for batch in batches:
        for row in batch:
            if sheet_row == rows_per_sheet:
                sheet = new_sheet()
                sheet_row = 0
            sheet_row += 1
            for index, write in writers:
                value = row[index]
                if value is not None:
                    write(sheet, sheet_row, index, value)
        rows += len(batch)
    return rows
