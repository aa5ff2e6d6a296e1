"""Parts of one export written at once, in order: the first streams straight to the
destination, the others spool to temporary files (under ``TMPDIR``, unlinked from the start, so
nothing half-written is ever visible) and are appended in order once the first is done. If one
part fails, the others stop at their next write.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from typing import IO, Any

from uvm_reporting.exports.formats.common import BinaryWriter

PartWriter = Callable[[BinaryWriter, bool], int]
"""Writes one part's rows to the sink (with the header when the flag says it is the first);
returns the number of rows."""

_APPEND_BLOCK = 1 << 20


def write_parts(parts: Sequence[PartWriter], out: BinaryWriter) -> int:
    """Run every part at once; the first writes to ``out``, the rest are appended after it."""
    failed = threading.Event()

    def run(write: PartWriter, sink: BinaryWriter, first: bool) -> int:
        try:
            return write(_StopOnFailure(sink, failed), first)
        except BaseException:
            failed.set()
            raise

    with ExitStack() as stack:
        spools = [stack.enter_context(tempfile.TemporaryFile(prefix="uvm-reporting-part-")) for _ in parts[1:]]
        sinks: list[BinaryWriter] = [out, *spools]
        with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="export-part") as pool:
            futures = [
                pool.submit(run, write, sink, index == 0)
                for index, (write, sink) in enumerate(zip(parts, sinks, strict=True))
            ]
            wait(futures)
        errors = [error for future in futures if (error := future.exception()) is not None]
        if errors:
            # The part that failed first, not one that stopped because of it.
            raise next((error for error in errors if not isinstance(error, _PartFailed)), errors[0])
        for spool in spools:
            _append(spool, out)
    return sum(future.result() for future in futures)


def _append(spool: IO[bytes], out: BinaryWriter) -> None:
    spool.seek(0)
    while block := spool.read(_APPEND_BLOCK):
        out.write(block)


class _PartFailed(Exception):
    """Another part failed; this one stops writing."""


class _StopOnFailure:
    def __init__(self, sink: Any, failed: threading.Event) -> None:
        self._sink = sink
        self._failed = failed

    def write(self, data: bytes | memoryview, /) -> int:
        if self._failed.is_set():
            raise _PartFailed("another part of this export failed")
        return int(self._sink.write(data))
