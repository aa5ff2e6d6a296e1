"""One export job, inside the export process: ADBC record batches -> exports/renderers -> ``out``.

The job's parts (one query, or SQLite id ranges of a text format) are read through ADBC
(exports/sources/adbc.py) and rendered by the one renderer of the job's format, which the
worker uses for small reports too. A part read alone is read ahead in a thread of its own, so
reading the next batch overlaps with rendering this one: the drivers and the kernels release
the GIL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from uvm_reporting import fault_points
from uvm_reporting.exports.export_job import ExportJob, QueryPart
from uvm_reporting.exports.formats.common import BinaryWriter
from uvm_reporting.exports.renderers import write_batches
from uvm_reporting.exports.sources.adbc import postgres_batches, prefetched, sqlite_batches


def write_job(job: ExportJob, out: BinaryWriter, on_rows: Callable[[int], None] | None = None) -> int:
    """Write the job's rows to ``out`` in its format (gzipped if asked); return the row count.
    ``on_rows`` is told the rows read so far after each batch (the run's progress)."""
    parts = [_batches(job, part) for part in job.parts]
    if on_rows is not None:
        counter = _RowCounter(on_rows)
        parts = [counter.counted(part) for part in parts]
    return write_batches(job.format, job.compression, job.columns, parts, out, read_ahead=prefetched)


class _RowCounter:
    """The rows of every part read so far; parts may be read by threads of their own."""

    def __init__(self, on_rows: Callable[[int], None]) -> None:
        self._on_rows = on_rows
        self._rows = 0
        self._lock = threading.Lock()

    def counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            with self._lock:
                self._rows += batch.num_rows
                self._on_rows(self._rows)
            fault_points.reached("batch")
            yield batch


def _batches(job: ExportJob, part: QueryPart) -> Iterator[Any]:
    if job.dialect == "sqlite":
        return sqlite_batches(
            Path(job.database), part.sql, part.parameters, [kind for _, kind in job.columns], batch_rows=job.batch_rows
        )
    return postgres_batches(job.database, part.sql, job.lookups, [name for name, _ in job.columns])
