"""Exports that never build a Python object per row.

* PostgreSQL, CSV: ``COPY (<report query>) TO STDOUT (FORMAT csv, HEADER)``; the server
  formats and quotes, we pass the bytes on.
* SQLite (CSV, NDJSON) and PostgreSQL (NDJSON): the database renders each record as one
  line of text. On PostgreSQL the lines stream through COPY as well. On SQLite they come
  through Python's own sqlite3 module, joined per batch: a second copy of the SQLite library
  in the process (as ADBC's SQLite driver would bring) breaks SQLite's file locks and can
  corrupt the database (sqlite.org/howtocorrupt.html, section 2.2.1).

Both stream: ADBC's PostgreSQL driver was tried for Arrow batches, but with a bound
parameter (the account id is always one) it holds the whole result in memory.

Parameters stay parameters: sqlite3 binds them; psycopg's ``copy()`` binds them
client-side with its own quoting (PostgreSQL's COPY takes no server-side parameters).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any

from sqlalchemy import Engine, Select

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.formats.common import BinaryWriter
from uvm_reporting.exports.sql_rendering import POSTGRES_EXPORT_SETTINGS, csv_line, ndjson_line, render_text

LINE = "line"


def copy_csv_postgres(engine: Engine, statement: Select[Any], columns: Sequence[tuple[str, FieldType]],
                      out: BinaryWriter, *, header: bool = True) -> int:
    """Stream the report as CSV through COPY; return the number of rows."""
    rendered = _with_text_columns(statement, columns, "postgresql")
    compiled = rendered.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    sql = f"COPY ({compiled.string}) TO STDOUT WITH (FORMAT csv, HEADER {'true' if header else 'false'})"
    with postgres_export_connection(engine) as connection, connection.cursor() as cursor:
        with cursor.copy(sql, bound_parameters(compiled, engine.dialect)) as copy:
            for _, block in copy_blocks(copy):
                out.write(block)
        return int(cursor.rowcount)


@contextmanager
def postgres_export_connection(engine: Engine) -> Iterator[Any]:
    """The driver's connection of a pooled one, in a transaction with POSTGRES_EXPORT_SETTINGS,
    rolled back once read (an export only reads; after an error or an early close, the pool's
    reset on return rolls back)."""
    with closing(engine.raw_connection()) as pooled:
        connection = pooled.driver_connection
        assert connection is not None  # a pooled connection always has one
        for setting in POSTGRES_EXPORT_SETTINGS:
            connection.execute(setting)
        yield connection
        connection.rollback()


def copy_blocks(copy: Iterable[Any], block_bytes: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """COPY data, which libpq hands over one whole row at a time, joined into blocks of about
    ``block_bytes``: (number of rows, bytes). Hashing, writing and parsing then happen per
    block, not per row; the rows (psycopg's buffers) are joined, not copied one by one."""
    pending: list[Any] = []
    size = 0
    for row in copy:
        pending.append(row)
        size += len(row)
        if size >= block_bytes:
            yield len(pending), b"".join(pending)
            pending, size = [], 0
    if pending:
        yield len(pending), b"".join(pending)


def stream_lines(engine: Engine, statement: Select[Any], columns: Sequence[tuple[str, FieldType]],
                 out: BinaryWriter, *, kind: str, header: bool = True) -> int:
    """Stream CSV (``kind="csv"``, header first unless ``header`` is false) or NDJSON lines
    rendered by the database."""
    dialect = engine.dialect.name
    if kind == "csv":
        if dialect != "sqlite":
            raise ValueError("CSV lines are rendered on SQLite; PostgreSQL uses COPY")
        line = csv_line(list(statement.selected_columns), [t for _, t in columns], dialect)
        if header:
            out.write(_csv_header(columns))
    else:
        line = ndjson_line([name for name, _ in columns], list(statement.selected_columns),
                           [t for _, t in columns], dialect)
    lines = statement.with_only_columns(line.label(LINE))
    rows = 0
    for count, chunk in _line_chunks(engine, lines):
        rows += count
        out.write(chunk)
    return rows


def sqlite_rows(engine: Engine, statement: Select[Any], batch_rows: int) -> Iterator[list[Any]]:
    """Rows of ``statement`` in batches, through the DB-API cursor: no SQLAlchemy row objects."""
    compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    by_name = bound_parameters(compiled, engine.dialect)
    with closing(engine.raw_connection()) as pooled:
        cursor = pooled.cursor()
        try:
            cursor.execute(compiled.string, [by_name[name] for name in compiled.positiontup or ()])
            while rows := cursor.fetchmany(batch_rows):
                yield list(rows)
        finally:
            cursor.close()
            pooled.rollback()


def _csv_header(columns: Sequence[tuple[str, FieldType]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([name for name, _ in columns])
    return buffer.getvalue().encode("utf-8")


def _line_chunks(engine: Engine, statement: Select[Any], batch_rows: int = 10_000) -> Iterator[tuple[int, bytes]]:
    """(number of lines, their UTF-8 bytes) per batch of the single-column ``statement``."""
    if engine.dialect.name == "sqlite":
        for rows in sqlite_rows(engine, statement, batch_rows):
            yield len(rows), "".join([row[0] for row in rows]).encode("utf-8")
        return
    # COPY's text format ends each row with LF and doubles every backslash; a rendered JSON
    # line holds no raw tab, CR or LF (JSON escapes them), so halving the backslashes gives the
    # line back. Blocks hold whole rows, so no pair is ever split and a block can be unescaped
    # at once.
    compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    sql = f"COPY ({compiled.string}) TO STDOUT"
    with postgres_export_connection(engine) as connection, connection.cursor() as cursor, \
            cursor.copy(sql, bound_parameters(compiled, engine.dialect)) as copy:
        for count, block in copy_blocks(copy):
            yield count, block.replace(b"\\\\", b"\\")


def _with_text_columns(statement: Select[Any], columns: Sequence[tuple[str, FieldType]],
                       dialect: str) -> Select[Any]:
    rendered = [render_text(column, field_type, dialect).label(name)
                for column, (name, field_type) in zip(statement.selected_columns, columns, strict=True)]
    return statement.with_only_columns(*rendered)


def bound_parameters(compiled: Any, dialect: Any) -> dict[str, Any]:
    """Parameter values as the driver must receive them (after our types' bind processing)."""
    values: dict[str, Any] = compiled.construct_params()
    for name, bind in compiled.binds.items():
        if name in values:
            processor = bind.type.bind_processor(dialect)
            if processor is not None:
                values[name] = processor(values[name])
    return values
