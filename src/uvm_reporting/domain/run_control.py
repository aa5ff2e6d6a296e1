"""What a worker and the export it runs share while a run is in progress: the run's progress
(rows and bytes written so far) and whether it was cancelled.

The export's thread counts and checks between batches; the worker's heartbeat thread reads the
counts (and writes them to the runs table) and, when a cancel was asked for, sets the flag and
calls what the export registered to stop at once (an export process is killed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from uvm_reporting.errors import RunCancelled


class RunControl:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._rows = 0
        self._bytes = 0
        self._stoppers: list[Callable[[], None]] = []
        self._pollers: list[Callable[[], None]] = []

    @property
    def progress(self) -> tuple[int, int]:
        """``(rows, bytes)`` written so far; counts kept elsewhere (an export process's) are
        fetched first."""
        with self._lock:
            pollers = list(self._pollers)
        for poll in pollers:
            poll()
        with self._lock:
            return self._rows, self._bytes

    def add_rows(self, count: int) -> None:
        with self._lock:
            self._rows += count

    def set_rows(self, count: int) -> None:
        """The rows written so far, as a count kept elsewhere (an export process) reports it."""
        with self._lock:
            self._rows = max(self._rows, count)

    def add_bytes(self, count: int) -> None:
        with self._lock:
            self._bytes += count

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Mark the run cancelled and stop what the export registered (once)."""
        with self._lock:
            if self._cancelled.is_set():
                return
            self._cancelled.set()
            stoppers = list(self._stoppers)
        for stop in stoppers:
            stop()

    def check(self) -> None:
        """Raise ``RunCancelled`` once the run was cancelled: called between batches."""
        if self._cancelled.is_set():
            raise RunCancelled("The run was cancelled.")

    @contextmanager
    def polled_with(self, poll: Callable[[], None]) -> Iterator[None]:
        """While the block runs, reading ``progress`` calls ``poll`` first (which reports a count
        kept elsewhere with ``set_rows``), in the reader's thread."""
        with self._lock:
            self._pollers.append(poll)
        try:
            yield
        finally:
            with self._lock:
                self._pollers.remove(poll)

    @contextmanager
    def stopped_by(self, stop: Callable[[], None]) -> Iterator[None]:
        """While the block runs, a cancel calls ``stop`` (at once, if cancelled already)."""
        with self._lock:
            self._stoppers.append(stop)
            cancelled = self._cancelled.is_set()
        if cancelled:
            stop()
        try:
            yield
        finally:
            with self._lock:
                self._stoppers.remove(stop)
