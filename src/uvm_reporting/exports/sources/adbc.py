"""Arrow record batches straight from the database, through ADBC's drivers (C/C++, no Python
object per value). Used only inside the export process (exports/export_process.py).

Why a process of its own: ADBC's SQLite driver carries its own copy of the SQLite library. Two
copies in one process break SQLite's POSIX file locks (closing the file in one copy drops the
locks the other holds) and can corrupt the database (sqlite.org/howtocorrupt.html, section
2.2.1). The export process opens the file through ADBC only.

* SQLite: the driver infers each column's type from the first batch, and a column that is NULL
  all through it would become int64 and fail on the first text or double that follows. So the
  statement is ``SELECT <one typed row> UNION ALL SELECT * FROM (<report query>)``, with a
  leading flag column that is 0 on that row and 1 on every other; the flag is checked on every
  batch (the typed row must come first, once) and dropped with the typed row.
  The connection is read-only, with a page cache big enough for the joined tables' upper
  levels: SQLite's 2 MB default makes every lookup of a joined row a system call.
* PostgreSQL: the driver streams ``COPY (<query>) TO STDOUT (FORMAT binary)`` into batches.
  It cannot stream a statement with bound parameters (it would hold the whole result), so the
  parameters arrive inlined as literals by psycopg (exports/driver_sql.py), as psycopg's own
  ``copy()`` does. A job's lookups (exports/sources/adbc_lookups.py) are read first, in the same
  REPEATABLE READ transaction: one snapshot for the rows and what they are joined with.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.export_job import LookupPart
from uvm_reporting.exports.sources.adbc_lookups import Lookup, joined

SQLITE_CACHE_KIB = 32 * 1024
"""Page cache of each SQLite export connection (the default is 2 MiB)."""
SQLITE_BUSY_MILLISECONDS = 30_000
PREFETCH_BATCHES = 2
POSTGRES_BATCH_BYTES = 4 << 20
"""About how much of PostgreSQL's COPY data goes into one batch (the driver's default is 16 MiB:
rendering holds a few copies of a batch at once, so smaller batches keep memory down)."""

_TYPED_ROW_FLAG = "uvm_typed_row"


class TypedRowMissing(RuntimeError):
    """SQLite did not return the typed row first: the batches cannot be trusted."""


def sqlite_batches(
    database: Path, sql: str, parameters: Sequence[Any], kinds: Sequence[FieldType], *, batch_rows: int
) -> Iterator[Any]:
    """The rows of ``sql`` (positional ``?`` parameters) as record batches, one column per
    ``kinds`` entry: text for text, timestamps and dates (as SQLite keeps them), double for
    numbers."""
    import adbc_driver_sqlite.dbapi  # noqa: PLC0415 - only the export process loads it

    with (
        contextlib.closing(adbc_driver_sqlite.dbapi.connect(f"{database.resolve().as_uri()}?mode=ro")) as connection,
        contextlib.closing(connection.cursor()) as cursor,
    ):
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MILLISECONDS}")
        cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_rows)})
        cursor.execute(_with_typed_row(sql, kinds), list(parameters))
        first = True
        for batch in cursor.fetch_record_batch():
            rows = batch
            if first:
                if len(batch) == 0 or batch.column(0)[0].as_py() != 0:
                    raise TypedRowMissing("SQLite returned the rows before the typed row")
                rows, first = batch.slice(1), False
            if len(rows) and pc.min(rows.column(0)).as_py() != 1:
                raise TypedRowMissing("SQLite returned the typed row again, or out of place")
            if len(rows):
                yield rows.drop_columns([_TYPED_ROW_FLAG])
        if first:
            raise TypedRowMissing("SQLite returned no rows at all, not even the typed row")


def _with_typed_row(sql: str, kinds: Sequence[FieldType]) -> str:
    typed = ", ".join(
        f"{'0.0' if kind is FieldType.NUMBER else chr(39) * 2} AS c{index}" for index, kind in enumerate(kinds)
    )
    # The report's compiled query (its values are bound parameters) and constants of ours.
    return f"SELECT 0 AS {_TYPED_ROW_FLAG}, {typed} UNION ALL SELECT 1, * FROM ({sql})"  # noqa: S608


def postgres_batches(
    uri: str, sql: str, lookups: Sequence[LookupPart] = (), columns: Sequence[str] = ()
) -> Iterator[Any]:
    """The rows of ``sql`` (no parameters: literals inlined) as record batches, streamed, in a
    read-only transaction; with ``lookups``, each batch has their columns joined and holds
    ``columns``, in that order."""
    import adbc_driver_postgresql.dbapi  # noqa: PLC0415 - only the export process loads it

    with (
        contextlib.closing(adbc_driver_postgresql.dbapi.connect(uri)) as connection,
        contextlib.closing(connection.cursor()) as cursor,
    ):
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        tables = []
        for lookup in lookups:
            cursor.execute(lookup.sql)
            tables.append(Lookup.from_table(lookup.key_column, cursor.fetch_arrow_table()))
        cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(POSTGRES_BATCH_BYTES)})
        cursor.execute(sql)
        batches = cursor.fetch_record_batch()
        yield from joined(batches, tables, columns) if tables else batches
        connection.rollback()


def prefetched(batches: Iterator[Any], depth: int = PREFETCH_BATCHES) -> Iterator[Any]:
    """``batches``, read up to ``depth`` ahead in a thread of their own, so that the database
    (and the driver's decoding, which releases the GIL) works while the caller renders. The
    reading thread ends, closing ``batches``, when the caller stops early."""
    items: queue.Queue[Any] = queue.Queue(depth)
    stop = threading.Event()
    end = object()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        items.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as error:  # noqa: BLE001 - raised again in the consuming thread
            failure.append(error)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
            while True:
                try:
                    items.put(end, timeout=0.1)
                    break
                except queue.Full:
                    if stop.is_set():
                        break

    thread = threading.Thread(target=produce, name="export-prefetch", daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not end:
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        thread.join()
