"""Render export values inside the database, so the fast paths move finished text.

The same rules as the Python writers (exports/formats): timestamps as ISO-8601 UTC with a
``Z``, dates as ``YYYY-MM-DD``, numbers as their shortest text without a trailing ``.0``,
text cells that start a spreadsheet formula prefixed with ``'``. On PostgreSQL the text of a
timestamp or number depends on session settings; POSTGRES_EXPORT_SETTINGS pins them, and
every export transaction applies it. Every literal here is a
bound parameter or a constant of ours written as a SQL literal (``sql_constant``); report
values never become SQL text.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, Integer, String, Text, case, cast, func, literal_column, or_, type_coerce

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.formula_safety import FORMULA_TRIGGERS

POSTGRES_EXPORT_SETTINGS = (
    "SET LOCAL DateStyle = 'ISO, YMD'",  # timestamp text as YYYY-MM-DD HH:MM:SS
    "SET LOCAL extra_float_digits = 1",  # float8 text as the shortest exact form
    "SET LOCAL cursor_tuple_fraction = 1.0",  # an export reads every row: plan for all of them
)


def sql_constant(value: str) -> ColumnElement[Any]:
    """One of our own constant strings as a SQL literal: keeps the statement's parameters to the
    report's values (hundreds of bound commas and quotes would slow every export down)."""
    return literal_column("'" + value.replace("'", "''") + "'", String)


def render_text(column: ColumnElement[Any], field_type: FieldType, dialect: str) -> ColumnElement[Any]:
    """``column`` as the text an export prints; NULL stays NULL."""
    if field_type is FieldType.TIMESTAMP:
        if dialect == "postgresql":
            # The UTC wall-clock time's own text output cut to whole seconds, with T and Z:
            # several times cheaper per value than to_char(). Its form depends on DateStyle,
            # which POSTGRES_EXPORT_SETTINGS pins to ISO.
            wall_clock = cast(func.timezone("UTC", column), Text)
            return func.replace(func.left(wall_clock, 19), sql_constant(" "), sql_constant("T")) + sql_constant("Z")
        return type_coerce(column, String)  # SQLite keeps exactly this text (store.types)
    if field_type is FieldType.DATE:
        return cast(column, Text) if dialect == "postgresql" else type_coerce(column, String)
    if field_type is FieldType.NUMBER:
        if dialect == "postgresql":
            return cast(column, Text)  # float8 output is already the shortest round-trip text
        integral = column == cast(column, Integer)
        return case((integral, cast(cast(column, Integer), Text)), else_=cast(column, Text))
    text = type_coerce(column, String)
    return formula_prefix(text, dialect) + text


def formula_prefix(text: ColumnElement[Any], dialect: str = "sqlite") -> ColumnElement[Any]:
    """``'`` when ``text`` would start a spreadsheet formula, else the empty string."""
    if dialect == "postgresql":
        # ascii() of the first character compared as integers: no substring, no collation.
        codes = [literal_column(str(ord(trigger)), Integer) for trigger in FORMULA_TRIGGERS]
        return case((func.ascii(text).in_(codes), sql_constant("'")), else_=sql_constant(""))
    triggers = [sql_constant(trigger) for trigger in FORMULA_TRIGGERS]
    return case((func.substr(text, 1, 1).in_(triggers), sql_constant("'")), else_=sql_constant(""))


def csv_field(column: ColumnElement[Any], field_type: FieldType, dialect: str) -> ColumnElement[Any]:
    """One field of a CSV record, with RFC 4180 minimal quoting (SQLite).

    Numbers, timestamps and dates as rendered never hold a comma, quote or line break. Text is
    searched with instr() (several times cheaper in SQLite than one GLOB with a character
    class); each branch evaluates the formula prefix at most once (SQLite evaluates a repeated
    sub-expression every time it appears).
    """
    if field_type not in (FieldType.STRING, FieldType.TEXT):
        return func.coalesce(render_text(column, field_type, dialect), sql_constant(""))
    text = type_coerce(column, String)
    needs_quotes = or_(*[func.instr(text, sql_constant(char)) > 0 for char in (",", '"', "\n", "\r")])
    # The prefix holds no double quote, so quoting the raw text after it is the same as
    # quoting the prefixed text.
    quoted = (sql_constant('"') + formula_prefix(text) + func.replace(text, sql_constant('"'), sql_constant('""'))
              + sql_constant('"'))
    return func.coalesce(case((needs_quotes, quoted), else_=formula_prefix(text) + text), sql_constant(""))


def csv_line(columns: list[ColumnElement[Any]], types: list[FieldType], dialect: str) -> ColumnElement[Any]:
    """One CSV record ending in LF (SQLite: ``||`` concatenation, C speed, no Python per row)."""
    line: ColumnElement[Any] = csv_field(columns[0], types[0], dialect)
    for column, field_type in zip(columns[1:], types[1:], strict=True):
        line = line + sql_constant(",") + csv_field(column, field_type, dialect)
    return line + sql_constant("\n")


def ndjson_line(names: list[str], columns: list[ColumnElement[Any]], types: list[FieldType],
                dialect: str) -> ColumnElement[Any]:
    """One JSON object with typed values, in column order, ending in LF."""
    if dialect == "sqlite":
        pairs: list[Any] = []
        for name, column, field_type in zip(names, columns, types, strict=True):
            pairs += [sql_constant(name), _json_value(column, field_type, dialect)]
        return func.json_object(*pairs) + sql_constant("\n")
    parts: list[ColumnElement[Any]] = []
    for index, (name, column, field_type) in enumerate(zip(names, columns, types, strict=True)):
        value = _json_value(column, field_type, dialect)
        key = sql_constant(("{" if index == 0 else ",") + json.dumps(name) + ":")
        parts.append(key + func.coalesce(cast(func.to_json(value), Text), sql_constant("null")))
    line = parts[0]
    for part in parts[1:]:
        line = line + part
    return line + sql_constant("}")  # PostgreSQL: COPY ends each row with LF itself


def _json_value(column: ColumnElement[Any], field_type: FieldType, dialect: str) -> ColumnElement[Any]:
    # JSON keeps numbers as numbers and text verbatim: no spreadsheet opens it as formulas.
    if field_type is FieldType.NUMBER:
        return column
    if field_type in (FieldType.STRING, FieldType.TEXT):
        return type_coerce(column, String)
    return render_text(column, field_type, dialect)
