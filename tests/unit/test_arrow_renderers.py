"""The Arrow renderers write the bytes the reference writers write.

The reference writers (tests/support/reference_writers) write each format from Python rows,
value by value; the renderers (exports/renderers) must agree with them on every value:
generated rows cover text with every character that needs quoting or escaping, formula
triggers, NULL next to the empty string, doubles across their whole range, timestamps of any
unit and zone (as PostgreSQL's driver hands them over) and SQLite's stored text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xlsxwriter.utility import _datetime_to_excel_datetime  # what xlsxwriter's write_datetime() computes

from tests.support.reference_writers import write_csv, write_json, write_ndjson
from tests.support.sinks import ByteSink as Sink
from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.formats import ExportFormat
from uvm_reporting.domain.timestamps import format_utc
from uvm_reporting.exports.renderers.csv import csv_header, csv_records, record_bytes
from uvm_reporting.exports.renderers.excel_serials import date_serials, timestamp_serials
from uvm_reporting.exports.renderers.json_array import JsonArrayFromLines
from uvm_reporting.exports.renderers.ndjson import ndjson_records
from uvm_reporting.exports.renderers.text_cells import cells_holding
from uvm_reporting.exports.renderers.xlsx import naive_utc
from uvm_reporting.exports.sources.driver_rows import write_rows

Columns = Sequence[tuple[str, FieldType]]

COLUMNS: Columns = [
    ("id", FieldType.STRING),
    ("title", FieldType.TEXT),
    ("cvss_score", FieldType.NUMBER),
    ("first_seen", FieldType.TIMESTAMP),
    ("due_date", FieldType.DATE),
    ("asset.hostname", FieldType.STRING),
]

SPECIAL_TEXT = [
    "",
    "plain",
    'comma, "quoted"',
    "line\nbreak",
    "windows\r\nbreak\r",
    "tab\there",
    "=SUM(A1)",
    "+1",
    "-2",
    "@x",
    "\tlead",
    "\rlead",
    "back\\slash",
    "ctrl\x01\x1f\x7f",
    "\b\f",
    "Überlauf 日本語 🚀",
    "\u2028",
    "'already'",
    "NULL",
    " padded ",
]
SPECIAL_NUMBERS = [
    0.0,
    -0.0,
    10.0,
    9.8,
    0.1 + 0.2,
    1e15,
    1e16,
    123456789012345.6,
    9007199254740993.0,
    1.5e-7,
    1e-4,
    9.99e-5,
    -3.0,
    5e-324,
    1.7976931348623157e308,
    1e22,
    float("inf"),
    float("-inf"),
    float("nan"),
]

texts = st.one_of(st.none(), st.sampled_from(SPECIAL_TEXT), st.text(max_size=12))
numbers = st.one_of(st.none(), st.sampled_from(SPECIAL_NUMBERS), st.floats(allow_nan=True, allow_infinity=True))
moments = st.one_of(
    st.none(), st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))
)
days = st.one_of(st.none(), st.dates(min_value=date(1000, 1, 1)))
rows = st.lists(st.tuples(texts, texts, numbers, moments, days, texts), max_size=40)


def arrow_batch(rows: Sequence[tuple[Any, ...]], columns: Columns, *, sqlite: bool = False) -> Any:
    """The rows as the export process's driver hands them over: PostgreSQL's types, or
    SQLite's (timestamps and dates as the stored ISO text)."""
    arrays = []
    for index, (_, kind) in enumerate(columns):
        values = [row[index] for row in rows]
        if kind is FieldType.NUMBER:
            arrays.append(pa.array(values, pa.float64()))
        elif kind is FieldType.TIMESTAMP and sqlite:
            arrays.append(pa.array([None if v is None else format_utc(v) for v in values], pa.string()))
        elif kind is FieldType.TIMESTAMP:
            arrays.append(pa.array(values, pa.timestamp("us", tz="UTC")))
        elif kind is FieldType.DATE and sqlite:
            arrays.append(pa.array([None if v is None else v.isoformat() for v in values], pa.string()))
        elif kind is FieldType.DATE:
            arrays.append(pa.array(values, pa.date32()))
        else:
            arrays.append(pa.array(values, pa.string()))
    return pa.RecordBatch.from_arrays(arrays, names=[f"c{index}" for index in range(len(columns))])


def row_writer_bytes(writer: Any, rows: Sequence[tuple[Any, ...]], columns: Columns) -> bytes:
    sink = Sink()
    writer([rows], columns, sink)
    return bytes(sink.data)


def rendered(render: Any, rows: Sequence[tuple[Any, ...]], columns: Columns, **shape: bool) -> bytes:
    return bytes(record_bytes(render(arrow_batch(rows, columns, **shape), columns)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, sqlite=st.booleans())
def test_csv_records_are_the_csv_writers_bytes(rows: list[tuple[Any, ...]], sqlite: bool) -> None:
    expected = row_writer_bytes(write_csv, rows, COLUMNS)
    assert csv_header(COLUMNS) + rendered(csv_records, rows, COLUMNS, sqlite=sqlite) == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, sqlite=st.booleans())
def test_ndjson_records_are_the_ndjson_writers_bytes(rows: list[tuple[Any, ...]], sqlite: bool) -> None:
    assert rendered(ndjson_records, rows, COLUMNS, sqlite=sqlite) == row_writer_bytes(write_ndjson, rows, COLUMNS)


@settings(max_examples=100, deadline=None)
@given(rows=rows, cut=st.integers(min_value=0))
def test_json_array_from_records_is_the_json_writers_bytes(rows: list[tuple[Any, ...]], cut: int) -> None:
    lines = rendered(ndjson_records, rows, COLUMNS)
    cut %= len(lines) + 1
    sink = Sink()
    array = JsonArrayFromLines(sink)
    array.write(lines[:cut])  # appended parts arrive in blocks cut anywhere
    array.write(lines[cut:])
    array.finish()
    assert bytes(sink.data) == row_writer_bytes(write_json, rows, COLUMNS)


def driver_rows(rows: Sequence[tuple[Any, ...]], *, sqlite: bool) -> list[tuple[Any, ...]]:
    """The rows as the worker's driver hands them over: PostgreSQL's Python types, or SQLite's
    (timestamps and dates as the stored ISO text)."""
    if not sqlite:
        return list(rows)
    return [
        tuple(
            format_utc(value)
            if isinstance(value, datetime)
            else value.isoformat()
            if isinstance(value, date)
            else value
            for value in row
        )
        for row in rows
    ]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, sqlite=st.booleans(), fmt=st.sampled_from([ExportFormat.CSV, ExportFormat.NDJSON, ExportFormat.JSON]))
def test_a_small_reports_rows_render_as_the_reference_writers_bytes(
    rows: list[tuple[Any, ...]], sqlite: bool, fmt: ExportFormat
) -> None:
    given_rows = driver_rows(rows, sqlite=sqlite)
    batches = [given_rows[:7], [], given_rows[7:]]
    sink = Sink()
    assert write_rows(fmt, None, batches, COLUMNS, sink) == len(rows)
    reference = {ExportFormat.CSV: write_csv, ExportFormat.NDJSON: write_ndjson, ExportFormat.JSON: write_json}[fmt]
    assert bytes(sink.data) == row_writer_bytes(reference, given_rows, COLUMNS)


@pytest.mark.parametrize("value", ["", None, "x", "a,b"])
def test_a_one_column_csv_record_is_never_an_empty_line(value: str | None) -> None:
    columns = [("description", FieldType.TEXT)]
    rows = [(value,), ("after",)]
    assert rendered(csv_records, rows, columns) == row_writer_bytes(write_csv, rows, columns)[len(b"description\n") :]


def test_every_special_text_in_one_batch() -> None:
    rows = [(text, text, None, None, None, text) for text in SPECIAL_TEXT]
    assert csv_header(COLUMNS) + rendered(csv_records, rows, COLUMNS) == row_writer_bytes(write_csv, rows, COLUMNS)
    assert rendered(ndjson_records, rows, COLUMNS) == row_writer_bytes(write_ndjson, rows, COLUMNS)


def test_every_special_number_in_one_batch() -> None:
    rows = [("n", "t", number, None, None, None) for number in SPECIAL_NUMBERS]
    csv_text = rendered(csv_records, rows, COLUMNS).decode()
    assert csv_header(COLUMNS) + csv_text.encode() == row_writer_bytes(write_csv, rows, COLUMNS)
    assert [line.split(",")[2] for line in csv_text.splitlines()][:4] == ["0", "0", "10", "9.8"]
    assert rendered(ndjson_records, rows, COLUMNS) == row_writer_bytes(write_ndjson, rows, COLUMNS)


def test_timestamps_of_other_units_and_zones_are_written_in_utc_to_the_second() -> None:
    columns = [("first_seen", FieldType.TIMESTAMP)]
    moment = datetime(2026, 3, 1, 12, 0, 7, 999_999, tzinfo=timezone(timedelta(hours=2)))
    for arrow_type in (pa.timestamp("us", tz="Europe/Paris"), pa.timestamp("ns", tz="UTC"), pa.timestamp("s")):
        values = pa.array(
            [moment.astimezone(UTC).replace(tzinfo=None if arrow_type.tz is None else UTC), None], arrow_type
        )
        batch = pa.RecordBatch.from_arrays([values], names=["c0"])
        assert bytes(record_bytes(csv_records(batch, columns))) == b'2026-03-01T10:00:07Z\n""\n'


def test_timestamps_outside_four_digit_years_are_written_as_python_writes_them() -> None:
    columns = [("first_seen", FieldType.TIMESTAMP)]
    rows = [(datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),), (datetime(2026, 1, 1, tzinfo=UTC),)]
    assert rendered(ndjson_records, rows, columns) == row_writer_bytes(write_ndjson, rows, columns)


def test_sliced_batches_render_only_their_own_rows() -> None:
    rows = [(f"id-{i}", "a,b" if i % 2 else "=x", float(i), None, None, "h\n") for i in range(10)]
    batch = arrow_batch(rows, COLUMNS).slice(3, 4)
    assert csv_header(COLUMNS) + bytes(record_bytes(csv_records(batch, COLUMNS))) == row_writer_bytes(
        write_csv, rows[3:7], COLUMNS
    )
    assert bytes(record_bytes(ndjson_records(batch, COLUMNS))) == row_writer_bytes(write_ndjson, rows[3:7], COLUMNS)


def test_an_empty_batch_renders_nothing() -> None:
    batch = arrow_batch([], COLUMNS)
    assert bytes(record_bytes(csv_records(batch, COLUMNS))) == b""
    assert bytes(record_bytes(ndjson_records(batch, COLUMNS))) == b""


# --- Excel serials ------------------------------------------------------------------------------

EXCEL_DAY_ZERO = date(1899, 12, 30)


def around_serial(serial: int) -> list[datetime]:
    """Just before and after the day that starts at ``serial`` (a power of two: the double's
    exponent changes there)."""
    start = datetime.combine(EXCEL_DAY_ZERO + timedelta(days=serial), datetime.min.time(), UTC)
    return [start - timedelta(seconds=1), start, start + timedelta(seconds=1, microseconds=500_000)]


MOMENTS = [
    datetime(1899, 12, 31, tzinfo=UTC),
    datetime(1900, 1, 1, tzinfo=UTC),
    datetime(1900, 1, 1, 12, 0, 0, 1, tzinfo=UTC),
    datetime(1900, 2, 28, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1900, 3, 1, tzinfo=UTC),
    datetime(1900, 3, 1, 0, 0, 0, 1000, tzinfo=UTC),
    datetime(1850, 6, 15, 8, 0, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 250_000, tzinfo=UTC),
    *around_serial(32_768),
    *around_serial(65_536),
    datetime(2026, 3, 1, 12, 0, 7, tzinfo=timezone(timedelta(hours=2))),
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
]


def xlsxwriters_serial(value: datetime | date) -> float:
    moment = naive_utc(value) if isinstance(value, datetime) else datetime.combine(value, datetime.min.time())
    return float(_datetime_to_excel_datetime(moment, False, True))


@settings(max_examples=200, deadline=None)
@given(
    extra=st.lists(
        st.datetimes(min_value=datetime(1900, 3, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)),
        max_size=30,
    )
)
def test_timestamp_serials_are_xlsxwriters_to_the_last_bit(extra: list[datetime]) -> None:
    moments: list[datetime | None] = [*MOMENTS, *extra, None]
    serials = timestamp_serials(pa.array(moments, pa.timestamp("us", tz="UTC")))
    from_text = timestamp_serials(
        pa.array(
            [None if m is None else m.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for m in moments], pa.string()
        )
    )
    for moment, serial, parsed in zip(moments, serials, from_text, strict=True):
        if moment is None:
            assert serial is None
            assert parsed is None
        elif moment.astimezone(UTC) < datetime(1900, 3, 1, tzinfo=UTC):
            assert serial == naive_utc(moment) == parsed  # left to xlsxwriter, which has more rules there
        else:
            assert isinstance(serial, float)
            assert serial == xlsxwriters_serial(moment) == parsed
            assert not math.isnan(serial)


def test_date_serials_are_xlsxwriters_to_the_last_bit() -> None:
    days = [date(1900, 2, 28), date(1900, 3, 1), date(1999, 1, 1), date(2026, 12, 31), date(9999, 12, 31), None]
    for values in (pa.array(days, pa.date32()), pa.array([None if d is None else d.isoformat() for d in days])):
        serials = date_serials(values)
        assert serials[0] == datetime(1900, 2, 28)
        assert serials[1:5] == [xlsxwriters_serial(day) for day in days[1:5] if day is not None]
        assert serials[5] is None


@given(
    texts=st.lists(st.none() | st.text(alphabet=st.sampled_from(list('ab,"\n\r\t\x00\x1f\\é日'))), max_size=30),
    start=st.integers(min_value=0, max_value=30),
    candidates=st.sampled_from(
        [frozenset(b',"\r\n'), frozenset(range(0x20)) | {ord('"'), ord("\\")}, frozenset(b"a"), frozenset()]
    ),
)
def test_cells_holding_finds_exactly_the_values_with_a_candidate_byte(
    texts: list[str | None], start: int, candidates: frozenset[int]
) -> None:
    values = pa.array(texts, pa.string()).slice(start)
    mask, present = cells_holding(values, candidates)
    encoded = [None if text is None else text.encode() for text in texts[start:]]
    assert mask.tolist() == [text is not None and any(byte in candidates for byte in text) for text in encoded]
    assert present == {byte for text in encoded if text is not None for byte in text if byte in candidates}


def test_cells_holding_with_more_hits_than_one_per_eight_bytes() -> None:
    texts = [",,,,", "", None, "a", '"\n', "", "x,"]
    mask, present = cells_holding(pa.array(texts, pa.string()), frozenset(b',"\r\n'))
    assert mask.tolist() == [True, False, False, False, True, False, True]
    assert present == frozenset(b',"\n')
