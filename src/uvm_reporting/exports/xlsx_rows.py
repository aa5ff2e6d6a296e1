"""XLSX exports with the Excel serial numbers of timestamps and dates computed by the database.

Excel holds a date-time as a number, its "serial": days since 1899-12-30 plus the fraction of
the day. xlsxwriter computes it per cell from a Python ``datetime``, which (with parsing the
value into one) costs about as much as writing the cell. Here the SELECT returns the serial
itself, computed with xlsxwriter's own floating-point steps
(``xlsxwriter.utility._datetime_to_excel_datetime``), so every cell holds the same double as
before, to the last bit:

    serial = days + (seconds + microseconds / 1e6) / 86400    (UTC wall clock, days from 1899-12-31)
    then 1 less on 1900-01-01, and 1 more once it is past 59   (Excel's 1900 leap-year quirk)

From 1900-03-01 on that is the arithmetic plus one day.

* SQLite: the store keeps timestamps as ``YYYY-MM-DDTHH:MM:SSZ`` (``.fffZ`` when precise,
  store.types) and dates as ``YYYY-MM-DD``, as the CSV fast path relies on too.
  ``julianday()`` counts whole milliseconds, all the store keeps. Values before 1900-03-01
  stay text and the writer converts them as it always has: SQLite's rows may mix types.
* PostgreSQL: every value's serial, the quirk included, in double precision; rows are fetched
  in binary, so no text round trip can change a double.

Text keeps its formula prefix from the writer: measured, ``neutralise_formula`` in Python costs
less per cell than the same test in SQLite and no more than in PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    Double,
    Engine,
    Integer,
    Select,
    String,
    Time,
    case,
    cast,
    func,
    literal_column,
    type_coerce,
)

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.fast_paths import bound_parameters, postgres_export_connection, sqlite_rows
from uvm_reporting.exports.formats.common import BinaryWriter
from uvm_reporting.exports.formats.xlsx_writer import MAX_DATA_ROWS_PER_SHEET, write_xlsx
from uvm_reporting.exports.sql_rendering import sql_constant

Columns = Sequence[tuple[str, FieldType]]

PLAIN_FROM = "1900-03-01"
"""From this day on a serial is the plain arithmetic plus one day; before it the quirk applies."""


def write_xlsx_export(engine: Engine, statement: Select[Any], columns: Columns, out: BinaryWriter, *,
                      batch_rows: int = 5000, rows_per_sheet: int = MAX_DATA_ROWS_PER_SHEET) -> int:
    """The report's ``statement`` as an XLSX workbook on ``out``; return the number of rows."""
    return write_xlsx(xlsx_row_batches(engine, statement, columns, batch_rows), columns, out,
                      rows_per_sheet=rows_per_sheet)


def xlsx_row_batches(engine: Engine, statement: Select[Any], columns: Columns,
                     batch_rows: int = 5000) -> Iterator[Sequence[Sequence[Any]]]:
    """The rows of ``statement`` as the driver's tuples, timestamps and dates as Excel serials
    (``float``; on SQLite a value before 1900-03-01 stays its text)."""
    dialect = engine.dialect.name
    shaped = statement.with_only_columns(*[
        _cell(column, kind, dialect).label(name)
        for column, (name, kind) in zip(statement.selected_columns, columns, strict=True)])
    if dialect == "sqlite":
        return sqlite_rows(engine, shaped, batch_rows)
    return _postgres_rows(engine, shaped, batch_rows)


def _cell(column: ColumnElement[Any], kind: FieldType, dialect: str) -> ColumnElement[Any]:
    if kind is FieldType.TIMESTAMP:
        return _sqlite_timestamp(column) if dialect == "sqlite" else _postgres_timestamp(column)
    if kind is FieldType.DATE:
        return _sqlite_date(column) if dialect == "sqlite" else _postgres_date(column)
    return column


def _integer(text: str) -> ColumnElement[Any]:
    """A constant of ours, written into the SQL (not a bound parameter)."""
    return literal_column(text, Integer)


def _double(text: str) -> ColumnElement[Any]:
    return literal_column(text, Double)


def _serial(days: ColumnElement[Any], seconds: ColumnElement[Any], micros: ColumnElement[Any]) -> ColumnElement[Any]:
    """xlsxwriter's arithmetic, step by step: ``days + (seconds + micros / 1e6) / 86400``.

    The parts must be whole numbers that the database turns into doubles here (SQLite does so
    where an integer meets a double, PostgreSQL needs casts); typing them as doubles keeps
    SQLAlchemy's ``/`` a plain division.
    """
    days, seconds, micros = (type_coerce(part, Double) for part in (days, seconds, micros))
    return days + (seconds + micros / _double("1000000.0")) / _double("86400.0")


# --- SQLite -----------------------------------------------------------------------------------


def _sqlite_timestamp(column: ColumnElement[Any]) -> ColumnElement[Any]:
    text = type_coerce(column, String)
    # Milliseconds since 1899-12-31 00:00. julianday() counts whole milliseconds and its
    # double is off by far less than one (about 0.04 today), so rounding restores them.
    # SQLite evaluates each use of this expression again: three julianday() calls still cost
    # less than one substr() parse of the text.
    millis = cast((func.julianday(text) - _double("2415019.5")) * _double("86400000.0") + _double("0.5"), Integer)
    serial = _serial(millis // _integer("86400000"), (millis % _integer("86400000")) // _integer("1000"),
                     (millis % _integer("1000")) * _integer("1000"))
    return case((text >= sql_constant(PLAIN_FROM), serial + _double("1.0")), else_=text)


def _sqlite_date(column: ColumnElement[Any]) -> ColumnElement[Any]:
    text = type_coerce(column, String)
    # A date is its midnight: whole days since 1899-12-31, plus the quirk's day.
    return case((text >= sql_constant(PLAIN_FROM), func.julianday(text) - _double("2415018.5")), else_=text)


# --- PostgreSQL -------------------------------------------------------------------------------


def _postgres_timestamp(column: ColumnElement[Any]) -> ColumnElement[Any]:
    wall_clock = func.timezone(sql_constant("UTC"), column)  # a timestamp without time zone
    day = cast(wall_clock, Date)
    days = type_coerce(day - literal_column("DATE '1899-12-31'"), Integer)
    # Microseconds since midnight: date_part()'s double is off by far less than one.
    micros = cast(func.date_part(sql_constant("epoch"), cast(wall_clock, Time)) * _integer("1000000"), BigInteger)
    serial = _serial(cast(days, Double), cast(micros // _integer("1000000"), Double),
                     cast(micros % _integer("1000000"), Double))
    return _postgres_quirk(wall_clock, day, serial)


def _postgres_date(column: ColumnElement[Any]) -> ColumnElement[Any]:
    days = type_coerce(column - literal_column("DATE '1899-12-31'"), Integer)
    return _postgres_quirk(column, column, cast(days, Double))


def _postgres_quirk(moment: ColumnElement[Any], day: ColumnElement[Any],
                    serial: ColumnElement[Any]) -> ColumnElement[Any]:
    """xlsxwriter's steps after the arithmetic; the first branch is every value from 1900-03-01."""
    return case(
        (moment >= literal_column(f"DATE '{PLAIN_FROM}'"), serial + _double("1.0")),
        (day == literal_column("DATE '1900-01-01'"), serial - _double("1.0")),
        (serial > _double("59.0"), serial + _double("1.0")),
        else_=serial)


def _postgres_rows(engine: Engine, statement: Select[Any], batch_rows: int) -> Iterator[Sequence[Sequence[Any]]]:
    """Rows through a server-side cursor as the driver's tuples (no SQLAlchemy row objects),
    in binary: doubles arrive as they are, whatever ``extra_float_digits`` says."""
    compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    with postgres_export_connection(engine) as connection, \
            connection.cursor(name="uvm_xlsx_rows", binary=True) as cursor:
        cursor.execute(compiled.string, bound_parameters(compiled, engine.dialect))
        while rows := cursor.fetchmany(batch_rows):
            yield rows
