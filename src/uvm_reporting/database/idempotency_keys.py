"""processReport's idempotency keys: a key of an account names the run its first request got.

A key lives ``lifetime`` from its first use (``UVM_REPORTING_IDEMPOTENCY_KEY_SECONDS``). It is
read and written inside the transaction that queues the run, after the account's enqueues are
serialised (``lock_account_enqueues``), so two requests with one key see each other: the second
finds the first one's key. A key past its time is ignored by the look-up, replaced by the next
request that uses it, and deleted by ``delete_expired_idempotency_keys`` (the cleanup job).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, select

from uvm_reporting.database.tables import idempotency_keys

MAX_KEY_LENGTH = 255  # the column's width


@dataclass(frozen=True, slots=True)
class StoredIdempotencyKey:
    request_hash: str
    run_id: str
    joined: bool
    expires_at: datetime


def find_idempotency_key(
    connection: Connection, account_id: str, key: str, now: datetime
) -> StoredIdempotencyKey | None:
    """The live key ``key`` of ``account_id``, or None (never used, or past its time)."""
    row = connection.execute(
        select(
            idempotency_keys.c.request_hash,
            idempotency_keys.c.run_id,
            idempotency_keys.c.joined,
            idempotency_keys.c.expires_at,
        ).where(
            idempotency_keys.c.account_id == account_id,
            idempotency_keys.c.key == key,
            idempotency_keys.c.expires_at > now,
        )
    ).one_or_none()
    if row is None:
        return None
    return StoredIdempotencyKey(row.request_hash, row.run_id, row.joined, row.expires_at)


def remember_idempotency_key(
    connection: Connection,
    account_id: str,
    key: str,
    *,
    request_hash: str,
    run_id: str,
    joined: bool,
    now: datetime,
    lifetime: timedelta,
) -> None:
    """Record that ``key`` of ``account_id`` names ``run_id`` until ``now + lifetime``, in the
    caller's transaction. An expired row of the same key is replaced; a live one raises
    IntegrityError (the caller looked it up first, so only a racing request gets there)."""
    connection.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.account_id == account_id,
            idempotency_keys.c.key == key,
            idempotency_keys.c.expires_at <= now,
        )
    )
    connection.execute(
        insert(idempotency_keys).values(
            account_id=account_id,
            key=key,
            request_hash=request_hash,
            run_id=run_id,
            joined=joined,
            created_at=now,
            expires_at=now + lifetime,
        )
    )


def count_expired_idempotency_keys(engine: Engine, now: datetime) -> int:
    """How many keys are past their time (what ``delete_expired_idempotency_keys`` would delete)."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(idempotency_keys).where(idempotency_keys.c.expires_at <= now)
            ).scalar_one()
        )


def delete_expired_idempotency_keys(engine: Engine, now: datetime) -> int:
    """Delete every key past its time (for the cleanup job); returns how many went."""
    with engine.begin() as connection:
        result = connection.execute(delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now))
    return result.rowcount
