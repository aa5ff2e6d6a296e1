"""Large exports in parallel: the rows split into contiguous ranges of ids, one thread and one
database connection per range, written out in order.

The tools a user would otherwise run (``sqlite3 -csv``, ``psql \\copy``) use one core, and
most of an export's time is the database reading, joining and rendering rows. Both databases
do that work in parallel across connections: PostgreSQL runs one backend per connection, and
Python's sqlite3 module releases the GIL while SQLite steps through a statement.

Only a report ordered by its entity's id alone, without a limit, is split: then the ranges,
one after the other, hold exactly the rows of the single query in its order. The first range
streams straight to the destination; the others spool to temporary files (under ``TMPDIR``,
unlinked from the start, so nothing half-written is ever visible) and are appended in order
once the first is done. If one range fails, the others stop at their next write.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from itertools import pairwise
from typing import IO, Any

from sqlalchemy import ColumnElement, Engine, func, select

from uvm_reporting.domain.report_definition import ReportDefinition
from uvm_reporting.exports.formats.common import BinaryWriter
from uvm_reporting.store.tables import PLATFORM_TABLES

RangeWriter = Callable[[BinaryWriter, bool], int]
"""Writes one range's rows to the sink (with the header when the flag says it is the first);
returns the number of rows."""

_APPEND_BLOCK = 1 << 20


def split_by_id(engine: Engine, definition: ReportDefinition, account_id: str, parts: int,
                min_rows: int) -> list[ColumnElement[bool]] | None:
    """One condition per range of the entity's ids, in order; None when the export should run
    as one query (one part wanted, too few rows to pay off, or an order ranges cannot keep)."""
    if parts < 2 or definition.limit is not None or not _ordered_by_id_alone(definition):
        return None
    table = PLATFORM_TABLES[definition.entity]
    of_account = table.c.account_id == account_id
    with engine.connect() as connection:
        # Both lookups walk the (account_id, id) primary key, not the rows.
        total = connection.scalar(select(func.count()).select_from(table).where(of_account)) or 0
        if total < max(min_rows, parts):
            return None
        bounds = [connection.scalar(select(table.c.id).where(of_account).order_by(table.c.id)
                                    .offset(total * index // parts).limit(1))
                  for index in range(1, parts)]
    conditions: list[ColumnElement[bool]] = [table.c.id < bounds[0]]
    conditions += [(table.c.id >= low) & (table.c.id < high) for low, high in pairwise(bounds)]
    conditions.append(table.c.id >= bounds[-1])
    return conditions


def write_ranges(ranges: Sequence[RangeWriter], out: BinaryWriter) -> int:
    """Run every range at once; the first writes to ``out``, the rest are appended after it."""
    failed = threading.Event()

    def run(write: RangeWriter, sink: BinaryWriter, first: bool) -> int:
        try:
            return write(_StopOnFailure(sink, failed), first)
        except BaseException:
            failed.set()
            raise

    with ExitStack() as stack:
        spools = [stack.enter_context(tempfile.TemporaryFile(prefix="uvm-reporting-range-")) for _ in ranges[1:]]
        sinks: list[BinaryWriter] = [out, *spools]
        with ThreadPoolExecutor(max_workers=len(ranges), thread_name_prefix="export-range") as pool:
            futures = [pool.submit(run, write, sink, index == 0)
                       for index, (write, sink) in enumerate(zip(ranges, sinks, strict=True))]
            wait(futures)
        errors = [error for future in futures if (error := future.exception()) is not None]
        if errors:
            # The range that failed first, not one that stopped because of it.
            raise next((error for error in errors if not isinstance(error, _RangeFailed)), errors[0])
        for spool in spools:
            _append(spool, out)
    return sum(future.result() for future in futures)


def _ordered_by_id_alone(definition: ReportDefinition) -> bool:
    # The compiler appends "id ascending" to every sort; a sort that is only that, or empty, is it.
    return all(key.resolved.relation is None and key.field == "id" and key.direction == "asc"
               for key in definition.sort)


def _append(spool: IO[bytes], out: BinaryWriter) -> None:
    spool.seek(0)
    while block := spool.read(_APPEND_BLOCK):
        out.write(block)


class _RangeFailed(Exception):
    """Another range failed; this one stops writing."""


class _StopOnFailure:
    def __init__(self, sink: Any, failed: threading.Event) -> None:
        self._sink = sink
        self._failed = failed

    def write(self, data: bytes, /) -> int:
        if self._failed.is_set():
            raise _RangeFailed("another part of this export failed")
        return int(self._sink.write(data))
