"""API clients: the credentials an account's programs exchange for access tokens.

A client's secret is shown once, when the client is created; the store keeps only its
Argon2id hash. Revoking a client keeps its row (for audit) and stops new tokens at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from uvm_reporting.auth.client_secrets import (
    hash_secret,
    needs_rehash,
    new_client_id,
    new_client_secret,
    verify_dummy_secret,
    verify_secret,
)
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import BadUserInput, NotFound
from uvm_reporting.store.accounts import get_account
from uvm_reporting.store.tables import api_clients

_MAX_NAME_LENGTH = 200

# Every column but the secret's hash, so no ordinary read ever loads it.
_PUBLIC_COLUMNS = (
    api_clients.c.client_id,
    api_clients.c.account_id,
    api_clients.c.name,
    api_clients.c.created_at,
    api_clients.c.revoked_at,
)


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A client as the rest of the system sees it: never its secret, nor the secret's hash."""

    client_id: str
    account_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class CreatedClient:
    """A new client, with the only copy of its secret the system will ever hand out."""

    client_id: str
    client_secret: str = field(repr=False)
    account_id: str
    name: str
    created_at: datetime


def create_client(engine: Engine, account_id: str, name: str = "default") -> CreatedClient:
    """Create a client for ``account_id``; raises ``NotFound`` when the account does not exist."""
    name = name.strip()
    if not name:
        raise BadUserInput("An API client needs a non-empty name.")
    if len(name) > _MAX_NAME_LENGTH:
        raise BadUserInput(f"An API client's name has at most {_MAX_NAME_LENGTH} characters.")
    get_account(engine, account_id)
    secret = new_client_secret()
    created = CreatedClient(
        client_id=new_client_id(),
        client_secret=secret,
        account_id=account_id,
        name=name,
        # The column keeps milliseconds; returning the same value keeps create and list equal.
        created_at=_to_milliseconds(utc_now()),
    )
    with engine.begin() as connection:
        connection.execute(
            insert(api_clients).values(
                client_id=created.client_id,
                account_id=account_id,
                name=name,
                secret_hash=hash_secret(secret),
                created_at=created.created_at,
            )
        )
    return created


def revoke_client(engine: Engine, client_id: str) -> ClientRecord:
    """Revoke ``client_id`` (``NotFound`` if unknown). Revoking twice keeps the first time."""
    with engine.begin() as connection:
        connection.execute(
            update(api_clients)
            .where(api_clients.c.client_id == client_id, api_clients.c.revoked_at.is_(None))
            .values(revoked_at=_to_milliseconds(utc_now()))
        )
        row = connection.execute(select(*_PUBLIC_COLUMNS).where(api_clients.c.client_id == client_id)).one_or_none()
    if row is None:
        raise NotFound(f"API client {client_id} does not exist.")
    return _record(row)


def authenticate_client(engine: Engine, client_id: str, client_secret: str) -> ClientRecord | None:
    """The active client whose id and secret these are, or ``None``.

    Unknown, revoked and wrong-secret clients all take one Argon2 verification, so the
    response time does not tell which of them it was.
    """
    with engine.connect() as connection:
        row = connection.execute(
            select(api_clients.c.secret_hash, *_PUBLIC_COLUMNS).where(api_clients.c.client_id == client_id)
        ).one_or_none()
    if row is None:
        verify_dummy_secret(client_secret)
        return None
    if not verify_secret(row.secret_hash, client_secret) or row.revoked_at is not None:
        return None
    if needs_rehash(row.secret_hash):
        # The hashing parameters changed since this secret was stored: upgrade it now that
        # the plain secret is at hand.
        with engine.begin() as connection:
            connection.execute(
                update(api_clients)
                .where(api_clients.c.client_id == client_id)
                .values(secret_hash=hash_secret(client_secret))
            )
    return _record(row)


def get_active_client(engine: Engine, client_id: str) -> ClientRecord | None:
    """The client ``client_id`` if it exists and is not revoked."""
    with engine.connect() as connection:
        row = connection.execute(
            select(*_PUBLIC_COLUMNS).where(api_clients.c.client_id == client_id, api_clients.c.revoked_at.is_(None))
        ).one_or_none()
    return None if row is None else _record(row)


def list_clients(engine: Engine, account_id: str) -> list[ClientRecord]:
    """The account's clients, revoked ones included, oldest first (``NotFound`` if no account)."""
    get_account(engine, account_id)
    with engine.connect() as connection:
        rows = connection.execute(
            select(*_PUBLIC_COLUMNS)
            .where(api_clients.c.account_id == account_id)
            .order_by(api_clients.c.created_at, api_clients.c.client_id)
        ).all()
    return [_record(row) for row in rows]


def _record(row: Any) -> ClientRecord:
    return ClientRecord(
        client_id=row.client_id,
        account_id=row.account_id,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _to_milliseconds(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)
