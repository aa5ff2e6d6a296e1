"""A map whose entries expire: how long a process trusts what it read from the database.

Access decisions (is a client active, is a report public) and run statuses are kept here.

A status poll would otherwise read the same rows on every call: is the token's API client
still active, is the report still public. Each answer is kept for ``ttl_seconds``, counted from
*before* the read, so a change made at time t (a client revoked, a report made private) is seen
by every API process from t + ttl on at the latest, whatever it read before. The keys carry the
account id wherever the answer depends on it, so an entry never answers for another account.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

ACCESS_TTL_SECONDS = 2.0
DEFAULT_MAX_ENTRIES = 4096

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")


class NotInMemory(Exception):
    """An answer asked for from memory only would need a database read (or other I/O)."""


class ExpiringCache(Generic[K, V]):
    """A thread-safe map whose entries expire ``ttl_seconds`` after they were read; past
    ``max_entries`` the least recently used go first. ``ttl_seconds=0`` keeps nothing."""

    def __init__(
        self,
        ttl_seconds: float = ACCESS_TTL_SECONDS,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._max_entries = max(1, max_entries)
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        # key -> when it was discarded: a read that began before then must not be kept.
        self._discarded: dict[K, float] = {}
        self._lock = threading.Lock()

    def get(self, key: K, default: D) -> V | D:
        """The value of ``key`` if it has not expired, else ``default``."""
        entry = self._fresh_entry(key)
        return default if entry is None else entry[1]

    def put(self, key: K, value: V, *, read_at: float) -> None:
        """Keep ``value``, read from the database at ``read_at`` (``clock()`` taken before the read)."""
        expires_at = read_at + self.ttl_seconds
        if expires_at <= self.clock():
            return
        with self._lock:
            discarded_at = self._discarded.get(key)
            if discarded_at is not None and read_at <= discarded_at:
                return  # read before the change that discarded it: already stale
            self._entries[key] = (expires_at, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        """The value of ``key``, read with ``load()`` when missing or expired. What ``load``
        raises (NotFound, say) goes to the caller and is not kept."""
        entry = self._fresh_entry(key)
        if entry is not None:
            return entry[1]
        read_at = self.clock()
        loaded = load()
        self.put(key, loaded, read_at=read_at)
        return loaded

    def discard(self, key: K) -> None:
        """Forget ``key``: the next read loads it again, and a value read before now (by a
        read still under way) is not kept."""
        now = self.clock()
        with self._lock:
            self._entries.pop(key, None)
            self._discarded[key] = now
            if len(self._discarded) > self._max_entries:
                # A value read before ``now - ttl`` would have expired anyway.
                horizon = now - self.ttl_seconds
                self._discarded = {k: at for k, at in self._discarded.items() if at > horizon}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _fresh_entry(self, key: K) -> tuple[float, V] | None:
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if now >= entry[0]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry
