"""The cache of access decisions: expiry counted from before the read, LRU bound, nothing kept on errors."""

from __future__ import annotations

import pytest

from tests.support.clock import ManualClock as Clock
from uvm_reporting.errors import NotFound
from uvm_reporting.expiring_cache import ACCESS_TTL_SECONDS, ExpiringCache


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_the_documented_bound_is_a_few_seconds() -> None:
    assert 0 < ACCESS_TTL_SECONDS <= 5


def test_an_answer_is_reused_until_ttl_after_its_read_then_read_again(clock: Clock) -> None:
    cache: ExpiringCache[str, bool] = ExpiringCache(2.0, clock=clock)
    reads: list[str] = []

    def load() -> bool:
        reads.append("read")
        return True

    assert cache.get_or_load("k", load) is True
    clock.now += 1.999
    assert cache.get_or_load("k", load) is True
    assert len(reads) == 1
    clock.now += 0.001  # exactly ttl after the read: expired
    assert cache.get_or_load("k", load) is True
    assert len(reads) == 2


def test_the_ttl_counts_from_before_a_slow_read(clock: Clock) -> None:
    cache: ExpiringCache[str, str] = ExpiringCache(2.0, clock=clock)

    def slow_load() -> str:
        clock.now += 1.5  # the database took 1.5 s to answer
        return "old"

    cache.get_or_load("k", slow_load)
    clock.now += 0.5  # 2 s after the read started: a change made during the read is seen now
    assert cache.get("k", None) is None


def test_an_answer_read_too_long_ago_is_not_kept(clock: Clock) -> None:
    cache: ExpiringCache[str, str] = ExpiringCache(2.0, clock=clock)
    cache.put("k", "v", read_at=clock.now - 2.0)
    assert cache.get("k", "missing") == "missing"
    assert len(cache) == 0


def test_none_is_a_value_like_any_other(clock: Clock) -> None:
    cache: ExpiringCache[str, str | None] = ExpiringCache(2.0, clock=clock)
    calls = 0

    def load() -> None:
        nonlocal calls
        calls += 1

    assert cache.get_or_load("revoked", load) is None
    assert cache.get_or_load("revoked", load) is None
    assert calls == 1


def test_what_the_load_raises_reaches_the_caller_and_is_not_kept(clock: Clock) -> None:
    cache: ExpiringCache[str, bool] = ExpiringCache(2.0, clock=clock)

    def missing() -> bool:
        raise NotFound("no such report")

    with pytest.raises(NotFound):
        cache.get_or_load("k", missing)
    assert cache.get_or_load("k", lambda: True) is True


def test_a_zero_ttl_keeps_nothing(clock: Clock) -> None:
    cache: ExpiringCache[str, int] = ExpiringCache(0, clock=clock)
    values = iter(range(10))
    assert cache.get_or_load("k", lambda: next(values)) == 0
    assert cache.get_or_load("k", lambda: next(values)) == 1
    assert len(cache) == 0


def test_the_least_recently_used_entries_go_first(clock: Clock) -> None:
    cache: ExpiringCache[str, int] = ExpiringCache(2.0, max_entries=2, clock=clock)
    cache.put("a", 1, read_at=clock.now)
    cache.put("b", 2, read_at=clock.now)
    assert cache.get("a", None) == 1  # a is now the most recently used
    cache.put("c", 3, read_at=clock.now)
    assert (cache.get("a", None), cache.get("b", None), cache.get("c", None)) == (1, None, 3)
    assert len(cache) == 2


def test_keys_are_exact(clock: Clock) -> None:
    cache: ExpiringCache[tuple[str, str], bool] = ExpiringCache(2.0, clock=clock)
    cache.put(("account-a", "report-1"), True, read_at=clock.now)
    assert cache.get(("account-b", "report-1"), None) is None
    assert cache.get(("account-a", "report-2"), None) is None


def test_an_infinite_ttl_never_expires(clock: Clock) -> None:
    cache: ExpiringCache[str, str] = ExpiringCache(float("inf"), clock=clock)
    cache.put("k", "v", read_at=clock.now)
    clock.now += 10**9
    assert cache.get("k", None) == "v"


def test_a_discarded_key_is_read_again_and_a_read_begun_before_is_not_kept(clock: Clock) -> None:
    cache: ExpiringCache[str, str] = ExpiringCache(1.0, clock=clock)
    cache.put("run", "started", read_at=clock())
    read_at = clock()  # a poll begins its read...
    clock.now += 0.1
    cache.discard("run")  # ...the run finishes meanwhile...
    assert cache.get("run", None) is None
    cache.put("run", "started (read before the change)", read_at=read_at)  # ...and the poll's read lands
    assert cache.get("run", None) is None
    clock.now += 0.1
    cache.put("run", "completed", read_at=clock())  # read after the change: kept
    assert cache.get("run", None) == "completed"
