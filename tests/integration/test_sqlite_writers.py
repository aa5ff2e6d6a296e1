"""The writers of one process queue on a lock for SQLite's single write lock (database/engine.py),
instead of polling for it in SQLite's busy handler; readers never take it."""

from __future__ import annotations

import threading
from functools import partial

import pytest
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from tests.support.waiting import wait_until
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.engine import FifoLock, sqlite_write_lock
from uvm_reporting.database.tables import accounts, reports
from uvm_reporting.domain.timestamps import utc_now

pytestmark = pytest.mark.backends("sqlite")  # PostgreSQL has row locks: nothing to queue for


def write_lock(engine: Engine) -> FifoLock:
    return sqlite_write_lock(str(make_url(str(engine.url)).database))


def rename(engine: Engine, account: Account, name: str) -> None:
    with engine.begin() as connection:
        connection.execute(update(accounts).where(accounts.c.id == account.id).values(name=name))


def test_reads_leave_it_free_and_a_write_holds_it_until_its_transaction_ends(engine: Engine, account: Account) -> None:
    lock = write_lock(engine)
    with engine.connect() as connection:
        connection.execute(select(accounts.c.name)).all()
        assert not lock.locked()
    with engine.connect() as connection:
        with connection.begin():
            connection.execute(update(accounts).where(accounts.c.id == account.id).values(name="Renamed"))
            assert lock.locked()
        assert not lock.locked()  # committed: free while the connection is still checked out
        with connection.begin():
            connection.execute(update(accounts).where(accounts.c.id == account.id).values(name="Renamed again"))
            assert lock.locked()
            connection.rollback()
        assert not lock.locked()
        assert connection.execute(select(accounts.c.name)).scalar_one() == "Renamed"
    assert not lock.locked()
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection, connection.begin():
        assert lock.locked()  # BEGIN IMMEDIATE takes SQLite's write lock: ours first
    assert not lock.locked()


def test_a_failed_write_gives_it_back(engine: Engine, account: Account) -> None:
    lock = write_lock(engine)

    def failing_write() -> None:
        with engine.begin() as connection:
            connection.execute(update(accounts).where(accounts.c.id == account.id).values(name="Never"))
            raise RuntimeError("the transaction fails after its write")

    with pytest.raises(RuntimeError):
        failing_write()
    assert not lock.locked()
    rename(engine, account, "Afterwards")
    with engine.connect() as connection:
        assert connection.execute(select(accounts.c.name)).scalar_one() == "Afterwards"


def test_a_commit_that_fails_raises_and_gives_it_back(engine: Engine) -> None:
    lock = write_lock(engine)
    now = utc_now()

    def orphan_report() -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")  # checked at COMMIT
            connection.execute(
                insert(reports).values(
                    id="orphan",
                    account_id="no-such-account",
                    name="Orphan",
                    entity="findings",
                    definition={},
                    viewers="public",
                    editors="public",
                    created_at=now,
                    updated_at=now,
                )
            )

    with pytest.raises(IntegrityError):
        orphan_report()
    assert not lock.locked()
    with engine.connect() as connection:
        assert connection.execute(select(reports.c.id).where(reports.c.id == "orphan")).first() is None


def test_a_second_writer_waits_for_the_first_to_commit(engine: Engine, account: Account) -> None:
    lock = write_lock(engine)
    second_done = threading.Event()

    def second_writer() -> None:
        with engine.begin() as connection:
            connection.execute(
                update(accounts).where(accounts.c.id == account.id).values(name=accounts.c.name + " then second")
            )
        second_done.set()

    with engine.begin() as connection:
        connection.execute(update(accounts).where(accounts.c.id == account.id).values(name="first"))
        thread = threading.Thread(target=second_writer)
        thread.start()
        assert lock.locked()
        assert not second_done.wait(0.2)  # it queues behind the open transaction
    wait_until(second_done.is_set, timeout=10, what="the second writer to commit")
    thread.join(10)
    assert not lock.locked()
    with engine.connect() as connection:
        assert connection.execute(select(accounts.c.name)).scalar_one() == "first then second"


def in_line(lock: FifoLock, count: int) -> bool:
    return len(lock._waiters) == count


def test_the_lock_goes_to_its_waiters_in_the_order_they_came() -> None:
    lock = FifoLock()
    assert lock.acquire(timeout=1)
    order: list[int] = []
    threads = []

    def waiter(number: int) -> None:
        assert lock.acquire(timeout=30)
        order.append(number)
        lock.release()

    for number in range(5):
        threads.append(threading.Thread(target=waiter, args=(number,)))
        threads[-1].start()
        wait_until(partial(in_line, lock, number + 1), timeout=10, what=f"waiter {number} in line")
    lock.release()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4]
    assert not lock.locked()
    assert lock.acquire(timeout=0)


def test_a_waiter_that_gives_up_leaves_the_line() -> None:
    lock = FifoLock()
    assert lock.acquire(timeout=1)
    assert not lock.acquire(timeout=0.05)
    lock.release()
    assert not lock.locked()
