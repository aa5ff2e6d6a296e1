"""Every export format read back by an independent reader: csv, json, gzip, pyarrow, openpyxl.

Rows go through the one renderer of each format as a small report's do (the driver's rows as
Arrow record batches, exports/renderers ``write_rows``), and must give what the reference
writers (tests/support/reference_writers) give for the same rows."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
import tracemalloc
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl.utils.escape import unescape

from tests.support.reference_writers import write_reference
from tests.support.sinks import ByteSink as Sink
from tests.support.sinks import CountingSink
from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.formats import (
    Compression,
    ExportFormat,
    content_type,
    file_extension,
    validate_format_options,
)
from uvm_reporting.errors import BadUserInput
from uvm_reporting.exports.formats import column_manifest
from uvm_reporting.exports.formula_safety import FORMULA_TRIGGERS, neutralise_formula
from uvm_reporting.exports.renderers import in_export_schema
from uvm_reporting.exports.renderers.parquet import arrow_schema, write_parquet_batches
from uvm_reporting.exports.renderers.xlsx import MAX_DATA_ROWS_PER_SHEET, write_xlsx
from uvm_reporting.exports.sources.driver_rows import record_batches, write_rows

COLUMNS = [
    ("id", FieldType.STRING),
    ("asset.hostname", FieldType.STRING),
    ("title", FieldType.TEXT),
    ("cvss_score", FieldType.NUMBER),
    ("first_seen", FieldType.TIMESTAMP),
    ("due_date", FieldType.DATE),
]
NAMES = [name for name, _ in COLUMNS]

AWKWARD = [
    "plain",
    'comma, "quoted"',
    "line\nbreak",
    "windows\r\nbreak",
    "Überlauf 日本語 🚀",
    '=HYPERLINK("http://evil.example","x")',
    "-2+3",
    "+1",
    "@SUM(A1:A2)",
    "\tleading tab",
    "\rleading carriage return",
    "_x0041_ looks like an OOXML escape",
    "",
]
NUMBERS = [9.8, -1.5, 0, None, 3, -1e-3, 10.0]
PLUS_TWO = timezone(timedelta(hours=2))


def _timestamp(index: int) -> tuple[Any, datetime | None]:
    """A timestamp as the database may hand it over, and the UTC moment it stands for."""
    moment = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC) + timedelta(days=index, seconds=index)
    match index % 4:
        case 0:
            return moment, moment
        case 1:
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ"), moment
        case 2:
            return moment.astimezone(PLUS_TWO), moment  # another zone: must come out as UTC
        case _:
            return None, None


def _date(index: int) -> tuple[Any, date | None]:
    day = date(2026, 4, 1) + timedelta(days=index)
    match index % 3:
        case 0:
            return day, day
        case 1:
            return day.isoformat(), day
        case _:
            return None, None


def _build() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Input rows, and the logical values each one must come back as."""
    given_rows, expected = [], []
    for index, text in enumerate(AWKWARD):
        hostname = None if index % 5 == 4 else AWKWARD[-1 - index]
        stamp, moment = _timestamp(index)
        day_value, day = _date(index)
        number = NUMBERS[index % len(NUMBERS)]
        given_rows.append((f"f-{index}", hostname, text, number, stamp, day_value))
        expected.append((f"f-{index}", hostname, text, number, moment, day))
    return given_rows, expected


ROWS, EXPECTED = _build()
BATCHES = [ROWS[:4], [], ROWS[4:9], ROWS[9:]]  # an empty batch on the way must be harmless


def export(
    fmt: ExportFormat,
    compression: Compression | None = None,
    batches: Sequence[Sequence[tuple[Any, ...]]] = BATCHES,
    columns: Sequence[tuple[str, FieldType]] = COLUMNS,
) -> bytes:
    sink = Sink()
    count = write_rows(fmt, compression, batches, columns, sink)
    assert count == sum(len(batch) for batch in batches)
    return bytes(sink.data)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_xlsx(data: bytes) -> dict[str, list[tuple[Any, ...]]]:
    """Every sheet's rows; inline strings unescaped, which openpyxl's read-only mode skips."""
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    try:
        return {
            sheet.title: [
                tuple(unescape(value) if isinstance(value, str) else value for value in row)
                for row in sheet.iter_rows(values_only=True)
            ]
            for sheet in workbook.worksheets
        }
    finally:
        workbook.close()


# --- the renderer against the reference writers ----------------------------------------------

# The driver hands over doubles for numbers (an int would be written ``0`` by the reference
# JSON writer, ``0.0`` by the renderer and the export process alike).
FLOAT_BATCHES = [
    [(*row[:3], None if row[3] is None else float(row[3]), *row[4:]) for row in batch] for batch in BATCHES
]


@pytest.mark.parametrize("compression", [None, Compression.GZIP])
@pytest.mark.parametrize("fmt", [ExportFormat.CSV, ExportFormat.JSON, ExportFormat.NDJSON])
def test_text_formats_are_the_reference_writers_bytes(fmt: ExportFormat, compression: Compression | None) -> None:
    sink = Sink()
    assert write_reference(fmt, compression, FLOAT_BATCHES, COLUMNS, sink) == len(ROWS)
    assert export(fmt, compression, batches=FLOAT_BATCHES) == bytes(sink.data)


def test_parquet_is_the_reference_writers_table() -> None:
    sink = Sink()
    write_reference(ExportFormat.PARQUET, None, FLOAT_BATCHES, COLUMNS, sink)
    expected = pq.read_table(io.BytesIO(bytes(sink.data)))
    assert pq.read_table(io.BytesIO(export(ExportFormat.PARQUET, batches=FLOAT_BATCHES))).equals(expected)


def test_xlsx_is_the_reference_writers_workbook() -> None:
    sink = Sink()
    write_reference(ExportFormat.XLSX, None, FLOAT_BATCHES, COLUMNS, sink)
    assert read_xlsx(export(ExportFormat.XLSX, batches=FLOAT_BATCHES)) == read_xlsx(bytes(sink.data))


# --- CSV -----------------------------------------------------------------------------------


def test_csv_round_trip() -> None:
    table = list(csv.reader(io.StringIO(export(ExportFormat.CSV).decode("utf-8"), newline="")))
    assert table[0] == NAMES
    assert len(table) == len(EXPECTED) + 1
    for line, (ident, hostname, title, number, moment, day) in zip(table[1:], EXPECTED, strict=True):
        assert line[:3] == [ident, neutralise_formula(hostname or ""), neutralise_formula(title)]
        assert (float(line[3]) if line[3] else None) == number
        assert line[4] == (iso(moment) or "")
        assert line[5] == (day.isoformat() if day else "")
    assert table[1 + NUMBERS.index(-1.5)][3] == "-1.5"  # a negative number is not "neutralised"


# --- JSON and NDJSON -------------------------------------------------------------------------


def expected_objects() -> list[dict[str, Any]]:
    return [
        dict(zip(NAMES, (ident, hostname, title, number, iso(moment), day.isoformat() if day else None), strict=True))
        for ident, hostname, title, number, moment, day in EXPECTED
    ]


def test_json_is_one_array_of_objects_with_text_verbatim() -> None:
    data = export(ExportFormat.JSON)
    objects = json.loads(data.decode("utf-8"))
    assert objects == expected_objects()
    assert [list(item) for item in objects] == [NAMES] * len(ROWS)  # keys in column order
    assert objects[NUMBERS.index(-1.5)]["cvss_score"] == -1.5
    assert isinstance(objects[0]["cvss_score"], float)
    assert "日本語".encode() in data  # UTF-8 as is, not \u escapes


def test_ndjson_is_one_object_per_line() -> None:
    data = export(ExportFormat.NDJSON).decode("utf-8")
    assert data.endswith("\n")
    lines = data.split("\n")[:-1]  # not splitlines(): U+2028 and friends are not line ends here
    assert [json.loads(line) for line in lines] == expected_objects()


def test_empty_results_are_still_valid_documents() -> None:
    assert json.loads(export(ExportFormat.JSON, batches=[])) == []
    assert export(ExportFormat.NDJSON, batches=[]) == b""
    assert list(csv.reader(io.StringIO(export(ExportFormat.CSV, batches=[]).decode()))) == [NAMES]
    assert read_xlsx(export(ExportFormat.XLSX, batches=[])) == {"Sheet1": [tuple(NAMES)]}
    table = pq.read_table(io.BytesIO(export(ExportFormat.PARQUET, batches=[])))
    assert table.num_rows == 0
    assert table.schema.names == NAMES


def test_json_writes_null_for_numbers_json_cannot_express() -> None:
    columns = [("score", FieldType.NUMBER)]
    batches = [[(float("nan"),), (float("inf"),), (-float("inf"),), (1.5,)]]
    assert json.loads(export(ExportFormat.JSON, batches=batches, columns=columns)) == [
        {"score": None},
        {"score": None},
        {"score": None},
        {"score": 1.5},
    ]


# --- gzip --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [ExportFormat.CSV, ExportFormat.JSON, ExportFormat.NDJSON])
def test_gzip_holds_exactly_the_plain_export(fmt: ExportFormat) -> None:
    compressed = export(fmt, Compression.GZIP)
    assert compressed[:2] == b"\x1f\x8b"
    assert gzip.decompress(compressed) == export(fmt)
    assert export(fmt, Compression.GZIP) == compressed  # no time stamp or name: same rows, same bytes


def test_gzip_streams_rather_than_buffering() -> None:
    sink = Sink()
    seen_before_end: list[int] = []

    def batches() -> Iterator[list[tuple[Any, ...]]]:
        for start in range(0, 60_000, 1000):
            yield [
                (f"f-{n}", f"host-{n}", f"title {n} {n * 7919 % 104729}", float(n), None, None)
                for n in range(start, start + 1000)
            ]
        seen_before_end.append(len(sink.data))

    write_rows(ExportFormat.CSV, Compression.GZIP, batches(), COLUMNS, sink)
    assert seen_before_end[0] > 0
    assert len(sink.data) > seen_before_end[0]
    with gzip.open(io.BytesIO(bytes(sink.data)), "rt", encoding="utf-8", newline="") as text:
        assert sum(1 for _ in csv.reader(text)) == 60_001


# --- Parquet -------------------------------------------------------------------------------------


def test_parquet_round_trip_and_schema() -> None:
    table = pq.read_table(io.BytesIO(export(ExportFormat.PARQUET)))
    assert table.schema.names == NAMES
    assert [field.type for field in table.schema] == [
        pa.string(),
        pa.string(),
        pa.string(),
        pa.float64(),
        pa.timestamp("us", tz="UTC"),
        pa.date32(),
    ]
    rows = table.to_pylist()
    for row, (ident, hostname, title, number, moment, day) in zip(rows, EXPECTED, strict=True):
        assert [row["id"], row["asset.hostname"], row["title"]] == [ident, hostname, title]  # verbatim
        assert row["cvss_score"] == number
        assert row["first_seen"] == moment
        assert row["first_seen"] is None or row["first_seen"].utcoffset() == timedelta(0)
        assert row["due_date"] == day


def test_parquet_gathers_batches_into_row_groups() -> None:
    batches = [
        [(f"f-{n}", None, "t", float(n), "2026-03-01T10:00:00Z", "2026-03-01") for n in range(s, s + 4)]
        for s in range(0, 40, 4)
    ]
    sink = Sink()
    schema = arrow_schema(COLUMNS)
    arrow = (in_export_schema(batch, schema) for batch in record_batches(batches, COLUMNS))
    assert write_parquet_batches(arrow, COLUMNS, sink, rows_per_group=10) == 40
    parquet = pq.ParquetFile(io.BytesIO(bytes(sink.data)))
    sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)]
    assert sizes == [12, 12, 12, 4]
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    assert parquet.read().column("id").to_pylist() == [f"f-{n}" for n in range(40)]


# --- XLSX ------------------------------------------------------------------------------------------


def test_xlsx_round_trip_with_real_types() -> None:
    data = export(ExportFormat.XLSX)
    sheets = read_xlsx(data)
    assert list(sheets) == ["Sheet1"]
    header, *rows = sheets["Sheet1"]
    assert header == tuple(NAMES)
    for row, (ident, hostname, title, number, moment, day) in zip(rows, EXPECTED, strict=True):
        assert row[:3] == (ident, None if hostname is None else neutralise_formula(hostname), neutralise_formula(title))
        assert row[3] == number
        assert row[3] is None or isinstance(row[3], int | float)
        assert row[4] == (None if moment is None else moment.replace(tzinfo=None))  # naive UTC
        assert row[5] == (None if day is None else datetime(day.year, day.month, day.day))

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    try:
        cells = next(workbook.worksheets[0].iter_rows(min_row=2, max_row=2))
        # "d": a number cell with a date format, which is what an Excel date-time is.
        assert [cell.data_type for cell in cells] == ["s", "s", "s", "n", "d", "d"]
        assert cells[4].is_date
        assert "UTC" in cells[4].number_format
        assert cells[5].is_date
        assert cells[5].number_format == "yyyy-mm-dd"
    finally:
        workbook.close()


def test_xlsx_header_is_bold() -> None:
    workbook = openpyxl.load_workbook(io.BytesIO(export(ExportFormat.XLSX)))  # styles need the full reader
    try:
        sheet = workbook.worksheets[0]
        assert all(cell.font.b for cell in sheet[1])
        assert not sheet["A2"].font.b
        assert sheet.freeze_panes == "A2"
    finally:
        workbook.close()


def test_xlsx_continues_on_new_sheets_each_with_the_header() -> None:
    rows = [(f"f-{n}", None, "=1+1", float(n), None, None) for n in range(12)]
    sink = Sink()
    assert write_xlsx([rows[:7], rows[7:]], COLUMNS, sink, rows_per_sheet=5) == 12
    sheets = read_xlsx(bytes(sink.data))
    assert list(sheets) == ["Sheet1", "Sheet2", "Sheet3"]
    assert [len(sheet) for sheet in sheets.values()] == [6, 6, 3]
    assert all(sheet[0] == tuple(NAMES) for sheet in sheets.values())
    assert [row[0] for sheet in sheets.values() for row in sheet[1:]] == [f"f-{n}" for n in range(12)]
    assert sheets["Sheet3"][1][2] == "'=1+1"


def test_xlsx_exactly_full_sheets_leave_no_empty_sheet() -> None:
    sink = Sink()
    write_xlsx([[(f"f-{n}", None, None, None, None, None) for n in range(10)]], COLUMNS, sink, rows_per_sheet=5)
    assert list(read_xlsx(bytes(sink.data))) == ["Sheet1", "Sheet2"]


def test_xlsx_leaves_no_temporary_files_whether_it_succeeds_or_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def failing() -> Iterator[list[tuple[Any, ...]]]:
        yield ROWS
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="database went away"):
        write_xlsx(failing(), COLUMNS, Sink())
    assert list(tmp_path.iterdir()) == []
    sink = Sink()
    write_xlsx(BATCHES, COLUMNS, sink)
    assert list(tmp_path.iterdir()) == []
    assert sink.data[:2] == b"PK"


def test_xlsx_rejects_a_sheet_limit_excel_cannot_hold() -> None:
    with pytest.raises(ValueError, match="rows_per_sheet"):
        write_xlsx([], COLUMNS, Sink(), rows_per_sheet=MAX_DATA_ROWS_PER_SHEET + 1)
    assert MAX_DATA_ROWS_PER_SHEET + 1 == 2**20  # Excel's row limit, header included


# --- Formula safety across formats (property) --------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=30), min_size=1, max_size=4))
def test_spreadsheet_formats_neutralise_text_while_json_keeps_it(texts: list[str]) -> None:
    columns = [("id", FieldType.STRING), ("title", FieldType.TEXT)]
    batches = [[(text, text) for text in texts]]

    csv_rows = list(
        csv.reader(io.StringIO(export(ExportFormat.CSV, batches=batches, columns=columns).decode(), newline=""))
    )[1:]
    xlsx_rows = read_xlsx(export(ExportFormat.XLSX, batches=batches, columns=columns))["Sheet1"][1:]
    json_rows = json.loads(export(ExportFormat.JSON, batches=batches, columns=columns))

    for cell in [cell for row in csv_rows + xlsx_rows for cell in row if cell is not None]:
        assert not cell.startswith(FORMULA_TRIGGERS)
    assert csv_rows == [[neutralise_formula(text)] * 2 for text in texts]
    assert [row["title"] for row in json_rows] == texts
    assert [row["id"] for row in json_rows] == texts


# --- Format options --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [ExportFormat.XLSX, ExportFormat.PARQUET])
def test_gzip_is_refused_for_formats_compressed_inside(fmt: ExportFormat) -> None:
    with pytest.raises(BadUserInput, match="which are compressed already; it applies to csv, json, ndjson"):
        validate_format_options(fmt, Compression.GZIP)
    with pytest.raises(BadUserInput):
        write_rows(fmt, Compression.GZIP, [], COLUMNS, Sink())


def test_parquet_refusal_says_why() -> None:
    with pytest.raises(BadUserInput, match='"gzip" does not apply to parquet files, which are compressed already'):
        validate_format_options(ExportFormat.PARQUET, Compression.GZIP)


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_every_format_without_compression_is_valid(fmt: ExportFormat) -> None:
    validate_format_options(fmt, None)


@pytest.mark.parametrize(
    ("fmt", "compression", "extension", "media_type"),
    [
        (ExportFormat.CSV, None, "csv", "text/csv; charset=utf-8"),
        (ExportFormat.CSV, Compression.GZIP, "csv.gz", "application/gzip"),
        (ExportFormat.JSON, None, "json", "application/json"),
        (ExportFormat.JSON, Compression.GZIP, "json.gz", "application/gzip"),
        (ExportFormat.NDJSON, None, "ndjson", "application/x-ndjson"),
        (ExportFormat.NDJSON, Compression.GZIP, "ndjson.gz", "application/gzip"),
        (ExportFormat.XLSX, None, "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (ExportFormat.PARQUET, None, "parquet", "application/vnd.apache.parquet"),
    ],
)
def test_extension_and_content_type(
    fmt: ExportFormat, compression: Compression | None, extension: str, media_type: str
) -> None:
    validate_format_options(fmt, compression)
    assert file_extension(fmt, compression) == extension
    assert content_type(fmt, compression) == media_type


def test_column_manifest_uses_format_independent_types() -> None:
    assert column_manifest(COLUMNS) == [
        {"name": "id", "type": "string"},
        {"name": "asset.hostname", "type": "string"},
        {"name": "title", "type": "string"},
        {"name": "cvss_score", "type": "number"},
        {"name": "first_seen", "type": "timestamp"},
        {"name": "due_date", "type": "date"},
    ]


# --- Memory stays flat ------------------------------------------------------------------------------------


def generated_batches(
    rows: int, sink: CountingSink, seen_before_end: list[int], batch_size: int = 1000
) -> Iterator[list[tuple[Any, ...]]]:
    """Rows made on demand, so that only what a writer keeps stays alive."""
    for start in range(0, rows, batch_size):
        yield [
            (
                f"f-{n:08d}",
                f"host-{n % 997}.example.com",
                f'Finding {n}: buffer overflow, "quoted"',
                n % 100 / 10,
                f"2026-03-01T{n % 24:02d}:00:00Z",
                "2026-04-01",
            )
            for n in range(start, min(start + batch_size, rows))
        ]
    seen_before_end.append(sink.size)


def peak_memory(fmt: ExportFormat, compression: Compression | None, rows: int) -> tuple[int, bool]:
    """Peak traced allocation while exporting ``rows``, and whether output left before the input ended."""
    sink = CountingSink()
    seen_before_end: list[int] = []
    already_tracing = tracemalloc.is_tracing()
    if not already_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        assert write_rows(fmt, compression, generated_batches(rows, sink, seen_before_end), COLUMNS, sink) == rows
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        if not already_tracing:
            tracemalloc.stop()
    return peak, seen_before_end[0] > 0


@pytest.mark.parametrize(
    ("fmt", "compression", "small", "large"),
    [
        (ExportFormat.CSV, None, 25_000, 100_000),
        (ExportFormat.CSV, Compression.GZIP, 25_000, 100_000),
        (ExportFormat.JSON, None, 25_000, 100_000),
        (ExportFormat.NDJSON, None, 25_000, 100_000),
        (ExportFormat.PARQUET, None, 25_000, 100_000),
        # xlsxwriter is the slow one: the same fourfold growth on fewer rows.
        (ExportFormat.XLSX, None, 5_000, 20_000),
    ],
)
def test_memory_does_not_grow_with_the_row_count(
    fmt: ExportFormat, compression: Compression | None, small: int, large: int
) -> None:
    # Holding every row would take tens of megabytes here against a peak of about one.
    peak_memory(fmt, compression, 1000)  # first-use allocations (imports, caches) out of the way
    small_peak, _ = peak_memory(fmt, compression, small)
    large_peak, streamed = peak_memory(fmt, compression, large)
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)
    if fmt is not ExportFormat.XLSX:  # XLSX is assembled in a temporary file, then copied
        assert streamed, "nothing was written before the last batch was read"
