"""Arrow record batches for Parquet exports, parsed in C++ from CSV the database writes.

Why: building Arrow arrays from Python rows made a Python object per cell, and that was most
of a Parquet export's time. Here the database renders CSV and ``pyarrow.csv.open_csv`` parses
it straight into the export's Arrow schema (explicit column types, no inference):

* PostgreSQL: ``COPY (<report query>) TO STDOUT (FORMAT csv)`` over the raw typed columns,
  with TimeZone UTC, DateStyle ISO and exact float output set for the transaction. No Python
  object per cell; psycopg hands over one ``memoryview`` per row, joined into blocks.
* SQLite: one printf() per record in SQL (SQLite's own quoting, see ``_sqlite_csv_line``),
  through Python's own sqlite3 module: a second SQLite library in the process (ADBC's driver)
  breaks SQLite's file locks (see fast_paths). One Python string per row.

ADBC's PostgreSQL driver is not used either: with a bound parameter (the account id is
always one) it held the whole result in memory.

NULL and the empty string stay apart: text is quoted wherever a NULL could be mistaken for
it (PostgreSQL's COPY writes NULL as an unquoted empty field and the empty string as ``""``),
and only an unquoted field is ever read as NULL, so text such as "NULL", "N/A" or "NaN"
stays text. Text stays verbatim (no formula prefix): Parquet is not opened as a spreadsheet.

Memory stays flat: a producer thread reads the database's output in blocks of
``BLOCK_BYTES`` into a queue ``QUEUE_BLOCKS`` deep, and the CSV reader pulls from it (Arrow
itself reads at most 32 reads of ``READ_BYTES`` ahead), while the caller writes the batches it
has, so reading the database overlaps with parsing and writing. At most a few MiB of CSV are
in memory at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import ColumnElement, Engine, Select, func
from sqlalchemy.exc import DBAPIError

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.fast_paths import bound_parameters, copy_blocks, postgres_export_connection, sqlite_rows
from uvm_reporting.exports.formats.parquet_writer import arrow_schema
from uvm_reporting.exports.sql_rendering import sql_constant

Columns = Sequence[tuple[str, FieldType]]
RecordBatches = Generator[Any, None, None]
"""``pyarrow.RecordBatch`` items; closing the generator early ends the database read."""

BLOCK_BYTES = 128 << 10
"""About how much CSV the producer hands over at a time."""
QUEUE_BLOCKS = 4
"""How many blocks the producer may be ahead of the CSV reader."""
READ_BYTES = 256 << 10
"""What the CSV reader asks for at a time: more than a block, so a block goes over whole (no
copy). Arrow reads up to 32 of these ahead of the parser (its background reader's fixed
queue). Measured at 200k rows: larger blocks (1 MiB) took more memory and more time."""
_SQLITE_ROWS_PER_FETCH = 2_000
_PRINTF_FIELDS = 100  # SQLite functions take at most 127 arguments
# UTC gives timestamps their shortest text (Arrow would read any offset right); DateStyle ISO
# is the one form Arrow reads; 3 extra float digits is exact output on every version.
_POSTGRES_SETTINGS = (
    "SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true),"
    " set_config('extra_float_digits', '3', true)"
)


def record_batches(engine: Engine, statement: Select[Any], columns: Columns) -> RecordBatches:
    """The report's rows as record batches of ``arrow_schema(columns)``, streamed."""
    if engine.dialect.name == "sqlite":
        return sqlite_record_batches(engine, statement, columns)
    return postgres_record_batches(engine, statement, columns)


def postgres_record_batches(engine: Engine, statement: Select[Any], columns: Columns) -> RecordBatches:
    """The report's rows as record batches of the export's Arrow schema (PostgreSQL)."""
    compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    sql = f"COPY ({compiled.string}) TO STDOUT (FORMAT csv)"
    yield from csv_record_batches(_copy_blocks(engine, sql, bound_parameters(compiled, engine.dialect)), columns)


def sqlite_record_batches(engine: Engine, statement: Select[Any], columns: Columns) -> RecordBatches:
    """The report's rows as record batches of the export's Arrow schema (SQLite)."""
    line = _sqlite_csv_line(list(statement.selected_columns), [kind for _, kind in columns])
    lines = statement.with_only_columns(line.label("line"))
    yield from csv_record_batches(_sqlite_blocks(engine, lines), columns, quote_char="'", null_texts=("", "NULL"))


def csv_record_batches(blocks: Iterator[bytes], columns: Columns, *, quote_char: str = '"',
                       null_texts: Sequence[str] = ("",)) -> RecordBatches:
    """Record batches in the export's schema from CSV records without a header, in which
    text is quoted whenever a NULL could be mistaken for it: an unquoted field that is one of
    ``null_texts`` is NULL, a quoted one never is. ``blocks`` is read in a producer thread and
    closed there, early if the caller stops early (closes this generator)."""
    schema = arrow_schema(columns)
    names = [f"c{index}" for index in range(len(columns))]  # positional: the schema names the columns
    with closing(_Prefetched(blocks)) as stream:
        if stream.at_end():
            return  # Arrow refuses an empty CSV file; no rows is no batches
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(column_names=names, block_size=READ_BYTES,
                                            # Measured: threads here cost memory and gained nothing.
                                            use_threads=False),
            # A one-column record holding NULL is an empty line: not to be skipped.
            parse_options=pacsv.ParseOptions(quote_char=quote_char, newlines_in_values=True,
                                              ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict(zip(names, schema.types, strict=True)),
                null_values=list(null_texts), strings_can_be_null=True, quoted_strings_can_be_null=False),
        )
        with closing(reader):
            for batch in reader:
                yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)


def _copy_blocks(engine: Engine, sql: str, parameters: dict[str, Any]) -> Iterator[bytes]:
    with postgres_export_connection(engine) as connection, _as_query_error(engine, sql), \
            connection.cursor() as cursor:
        cursor.execute(_POSTGRES_SETTINGS)  # for this transaction only, over the export's own
        with cursor.copy(sql, parameters) as copy:
            for _, block in copy_blocks(copy, BLOCK_BYTES):
                yield block


def _sqlite_blocks(engine: Engine, lines: Select[Any]) -> Iterator[bytes]:
    with _as_query_error(engine, str(lines.compile(dialect=engine.dialect))):
        for rows in sqlite_rows(engine, lines, _SQLITE_ROWS_PER_FETCH):
            yield "".join([row[0] for row in rows]).encode("utf-8")


@contextmanager
def _as_query_error(engine: Engine, sql: str) -> Iterator[None]:
    """The driver's errors as SQLAlchemy's, which the worker reports as a failed query
    (QUERY_FAILED), as it did when these rows came through SQLAlchemy."""
    dbapi = engine.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as error:
        raise DBAPIError.instance(sql, None, error, dbapi.Error, dialect=engine.dialect) from error


def _sqlite_csv_line(selected: list[ColumnElement[Any]], kinds: list[FieldType]) -> ColumnElement[Any]:
    """One record ending in LF, made by one printf() in SQLite's own quoting, for a reader
    whose quote character is ``'`` and whose NULL is a bare ``NULL`` or nothing:

    * text: ``%Q`` quotes it in single quotes (doubling them), and prints NULL as bare ``NULL``;
    * numbers: quote() prints NULL the same way and a double as text that reads back as the
      same double (CAST to text keeps only 15 digits, which does not always);
    * timestamps and dates: ``%s``, the stored ISO text (store.types) as it is, NULL as nothing.

    ``||`` would copy the growing line once per field, and a CASE per NULL check cost as much
    again: this is what made SQLite's CSV cheaper than its raw rows. Wide reports join groups
    of fields, as printf() takes at most 127 arguments."""
    formats = ["%Q" if kind in (FieldType.STRING, FieldType.TEXT) else "%s" for kind in kinds]
    values = [func.quote(column) if kind is FieldType.NUMBER else column
              for column, kind in zip(selected, kinds, strict=True)]
    parts = [func.printf(sql_constant(",".join(formats[start:start + _PRINTF_FIELDS])),
                         *values[start:start + _PRINTF_FIELDS])
             for start in range(0, len(values), _PRINTF_FIELDS)]
    line: ColumnElement[Any] = parts[0]
    for part in parts[1:]:
        line = line + sql_constant(",") + part
    return line + sql_constant("\n")


_END = object()


class _Prefetched:
    """A read-only file object over ``blocks``, which a producer thread runs at most
    ``QUEUE_BLOCKS`` blocks ahead. ``close()`` stops the producer (which closes ``blocks`` in
    its own thread, ending a COPY early) and raises what it raised."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_BLOCKS)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._block = b""
        self._offset = 0
        self._ended = False
        self.closed = False
        self._thread = threading.Thread(target=self._produce, name="export-csv-producer", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            try:
                for block in self._blocks:
                    if not self._put(block):
                        break
            finally:
                close = getattr(self._blocks, "close", None)
                if close is not None:
                    close()  # here, in the thread that ran it: a generator ends its COPY and connection
        except Exception as error:  # noqa: BLE001 - raised again in the reading thread
            self._error = error
        self._put(_END)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _next_block(self) -> bool:
        while not self._ended and self._offset >= len(self._block):
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                # Closed while Arrow's reading thread still asks for more: that is the end.
                self._ended = self._stop.is_set()
                continue
            if item is _END:
                self._ended = True
                if self._error is not None:
                    raise self._error
            else:
                self._block, self._offset = item, 0
        return self._offset < len(self._block)

    def at_end(self) -> bool:
        return not self._next_block()

    def read(self, size: int = -1) -> bytes:
        if not self._next_block():
            return b""
        start = self._offset
        if start == 0 and (size < 0 or size >= len(self._block)):
            self._offset = len(self._block)
            return self._block  # the whole block, not a copy: the usual case
        end = len(self._block) if size < 0 else min(len(self._block), start + size)
        self._offset = end
        return self._block[start:end]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        self._thread.join()
        if self._error is not None and not self._ended:
            raise self._error
