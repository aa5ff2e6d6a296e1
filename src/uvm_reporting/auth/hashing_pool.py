"""The small, bounded pool that checks client secrets, so a flood cannot take the whole process.

One Argon2 verification holds about 19 MiB and 30 ms of a core. Run on the shared thread pool,
a burst of token requests would queue without bound and hold the threads downloads and other
requests need. Here the work gets its own few threads and a short queue; when both are full,
``submit`` refuses at once (``HashingPoolBusy``) and the token endpoint answers 503 with
``Retry-After``, instead of making the caller, and everyone behind it, wait.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class HashingPoolBusy(Exception):
    """Every thread of the pool is busy and its queue is full."""


class HashingPool:
    """``threads`` threads, and at most ``queue`` more calls waiting for one."""

    def __init__(self, threads: int = 2, queue: int = 8) -> None:
        if threads < 1 or queue < 0:
            raise ValueError("a hashing pool needs at least one thread and a queue of zero or more")
        self.threads = threads
        self.capacity = threads + queue
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="secret-hashing")

    def submit(self, function: Callable[..., T], *args: object) -> Future[T]:
        """Run ``function(*args)`` on the pool; raises ``HashingPoolBusy`` at once when full."""
        if not self._slots.acquire(blocking=False):
            raise HashingPoolBusy
        try:
            future = self._executor.submit(function, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``submit``, awaited without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(function, *args))

    def close(self) -> None:
        self._executor.shutdown(wait=False)
