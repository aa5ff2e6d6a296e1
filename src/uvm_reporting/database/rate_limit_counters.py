"""Rate-limit counters in the deployment's own database, as a storage of the ``limits`` library.

Every API process of a scale-out deployment already shares its PostgreSQL database, so the
counters live there: nothing new to run. One row per counter key; ``incr`` is a single atomic
upsert (``INSERT .. ON CONFLICT DO UPDATE .. RETURNING``), which restarts a counter whose
window has ended, so concurrent requests in several processes never lose a count. Only the
fixed-window strategy is supported (``limits.FixedWindowRateLimiter``).

Times are epoch seconds of the calling process's clock; the few seconds machines may differ by
only shift a window's edge. Rows of ended windows are deleted now and then by ``incr``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from limits.storage import Storage
from sqlalchemy import Engine, case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from uvm_reporting.database.tables import rate_limit_counters as counters

PURGE_INTERVAL_SECONDS = 60.0


class DatabaseRateLimitStorage(Storage):
    """Fixed-window counters in the ``rate_limit_counters`` table (PostgreSQL or SQLite)."""

    STORAGE_SCHEME = None  # built with an engine, never from a URI

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._engine = engine
        self._clock = clock
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._purged_at = clock()
        self._purge_lock = threading.Lock()

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._clock()
        insert = self._insert(counters).values(key=key, count=amount, expires_at=now + expiry)
        ended = counters.c.expires_at <= now
        upsert = insert.on_conflict_do_update(
            index_elements=[counters.c.key],
            set_={
                "count": case((ended, insert.excluded.count), else_=counters.c.count + insert.excluded.count),
                "expires_at": case((ended, insert.excluded.expires_at), else_=counters.c.expires_at),
            },
        ).returning(counters.c.count)
        with self._engine.begin() as connection:
            count = connection.execute(upsert).scalar_one()
        self._purge_now_and_then(now)
        return int(count)

    def get(self, key: str) -> int:
        now = self._clock()
        with self._engine.connect() as connection:
            count = connection.execute(
                select(counters.c.count).where(counters.c.key == key, counters.c.expires_at > now)
            ).scalar_one_or_none()
        return int(count or 0)

    def get_expiry(self, key: str) -> float:
        now = self._clock()
        with self._engine.connect() as connection:
            expires_at = connection.execute(
                select(counters.c.expires_at).where(counters.c.key == key, counters.c.expires_at > now)
            ).scalar_one_or_none()
        return float(expires_at) if expires_at is not None else now

    def check(self) -> bool:
        try:
            with self._engine.connect() as connection:
                connection.execute(select(func.count()).select_from(counters)).scalar_one()
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self._engine.begin() as connection:
            return connection.execute(delete(counters)).rowcount

    def clear(self, key: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(delete(counters).where(counters.c.key == key))

    def _purge_now_and_then(self, now: float) -> None:
        """Delete ended windows' rows at most once a minute per process, so keys that are never
        seen again (a flood of junk client ids) do not pile up."""
        if now - self._purged_at < PURGE_INTERVAL_SECONDS or not self._purge_lock.acquire(blocking=False):
            return
        try:
            self._purged_at = now
            with self._engine.begin() as connection:
                connection.execute(delete(counters).where(counters.c.expires_at <= now))
        finally:
            self._purge_lock.release()
