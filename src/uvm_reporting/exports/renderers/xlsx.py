"""XLSX via xlsxwriter in constant-memory mode: each row goes to disk as soon as it is complete.

The header row (bold, frozen) holds the column paths. Numbers are numbers; timestamps are
real Excel date-times and dates real dates. Excel has no time zones: timestamps hold the UTC
wall-clock time and their number format shows ``UTC`` after the time, so a reader is not
misled into taking them for local time. Text cells are formula-neutralised as in CSV (a
cell is written as a string, never a formula, but a user who edits it or saves the sheet as
CSV would otherwise revive the formula). Excel caps a cell at 32,767 characters; longer text
is cut there by xlsxwriter.

A timestamp or date arrives as its Excel serial number, a ``float`` (exports/renderers
computes them column-wise, exports/renderers/excel_serials.py), or, before 1900-03-01 where
Excel's calendar has its quirks, as a ``datetime`` or ``date`` (or its ISO text) for xlsxwriter
to convert; either way the cell holds the number Excel expects.

A sheet holds at most 1,048,576 rows; past that the rows continue on ``Sheet2`` and so on,
each sheet with its own header.

xlsxwriter writes to a path, so the workbook is built in a private temporary folder (under
the system's temporary directory, ``TMPDIR``) and then copied to ``out`` in chunks; the
folder is removed whatever happens.

Speed: xlsxwriter's own work per cell (the row's XML) is most of the time, so the loop around
it does as little as it can: the columns are grouped by type once, with no per-cell type
dispatch and no function of ours per cell, and each cell goes straight to the worksheet's
undecorated ``_write_string`` / ``_write_number`` (see ``_cell_writers``).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.formats.common import Batches, BinaryWriter, Columns
from uvm_reporting.exports.formula_safety import FORMULA_TRIGGERS

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
_TEXT_TYPES = (FieldType.STRING, FieldType.TEXT)


def write_xlsx(
    batches: Batches, columns: Columns, out: BinaryWriter, *, rows_per_sheet: int = MAX_DATA_ROWS_PER_SHEET
) -> int:
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


def naive_utc(value: datetime | str) -> datetime:
    """The UTC wall-clock time of a timestamp, without a zone (what spreadsheets hold)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def as_date(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(value) if isinstance(value, str) else value


def _midnight(value: date | str) -> datetime:
    # A date is the date-time at its midnight in Excel.
    return datetime.combine(as_date(value), time())


_CellWriter = Callable[..., Any]


def _cell_writers(sheet: Worksheet) -> tuple[_CellWriter, _CellWriter, _CellWriter]:
    """The sheet's string, number and date-time writers, without the public methods' decorator
    (it only turns "A1"-style cell names into numbers, and we pass numbers). Should a later
    xlsxwriter drop these private names, the public methods do the same work."""
    return (
        getattr(sheet, "_write_string", sheet.write_string),
        getattr(sheet, "_write_number", sheet.write_number),
        getattr(sheet, "_write_datetime", sheet.write_datetime),
    )


def _fill(workbook: xlsxwriter.Workbook, batches: Batches, columns: Columns, rows_per_sheet: int) -> int:
    header = workbook.add_format({"bold": True})
    formats = {
        FieldType.TIMESTAMP: (workbook.add_format({"num_format": TIMESTAMP_FORMAT}), naive_utc),
        FieldType.DATE: (workbook.add_format({"num_format": DATE_FORMAT}), _midnight),
    }
    # The columns by type, once: the loop below then does no per-cell type dispatch.
    texts = [index for index, (_, kind) in enumerate(columns) if kind in _TEXT_TYPES]
    numbers = [index for index, (_, kind) in enumerate(columns) if kind is FieldType.NUMBER]
    dated = [(index, *formats[kind]) for index, (_, kind) in enumerate(columns) if kind in formats]

    def new_sheet() -> Worksheet:
        sheet = workbook.add_worksheet()
        for index, (_, kind) in enumerate(columns):
            if kind in _WIDTHS:
                sheet.set_column(index, index, _WIDTHS[kind])
        sheet.freeze_panes(1, 0)
        for index, (name, _) in enumerate(columns):
            sheet.write_string(0, index, name, header)
        return sheet

    write_string, write_number, write_datetime = _cell_writers(new_sheet())
    sheet_row = 0  # data rows on the current sheet; the header is row 0
    rows = 0
    for batch in batches:
        for row in batch:
            if sheet_row == rows_per_sheet:
                write_string, write_number, write_datetime = _cell_writers(new_sheet())
                sheet_row = 0
            sheet_row += 1
            # A row reaches the file once the next one starts, so the order of its cells is free.
            for index in texts:
                value = row[index]
                if value is not None:
                    text = value if value.__class__ is str else str(value)
                    # neutralise_formula(), inline: this runs for every text cell.
                    write_string(sheet_row, index, "'" + text if text.startswith(FORMULA_TRIGGERS) else text)
            for index in numbers:
                value = row[index]
                if value is not None:
                    write_number(sheet_row, index, value)
            for index, cell_format, as_datetime in dated:
                value = row[index]
                if value is None:
                    continue
                if value.__class__ is float:  # already the Excel serial number (excel_serials.py)
                    write_number(sheet_row, index, value, cell_format)
                else:
                    write_datetime(sheet_row, index, as_datetime(value), cell_format)
        rows += len(batch)
    return rows
