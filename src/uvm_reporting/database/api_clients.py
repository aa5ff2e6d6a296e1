"""API clients' rows: the credentials an account's programs exchange for access tokens.

The store keeps only a secret's Argon2id hash, made by auth/api_client_credentials.py, which
creates and authenticates clients. Revoking a client keeps its row (for audit) and stops new
tokens at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from uvm_reporting.database.accounts import get_account
from uvm_reporting.database.audit import record_event
from uvm_reporting.database.tables import api_clients
from uvm_reporting.domain.audit import Action, Actor, AuditEvent
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import NotFound

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


def insert_client(
    engine: Engine,
    *,
    client_id: str,
    account_id: str,
    name: str,
    secret_hash: str,
    created_at: datetime,
    actor: Actor | None = None,
) -> None:
    """Store a new client; the caller hashed its secret (auth/api_client_credentials.py). With
    ``actor``, the audit log records who created it, in the same transaction."""
    with engine.begin() as connection:
        connection.execute(
            insert(api_clients).values(
                client_id=client_id, account_id=account_id, name=name, secret_hash=secret_hash, created_at=created_at
            )
        )
        if actor is not None:
            event = AuditEvent(account_id, Action.CLIENT_CREATED, actor, "api_client", client_id, {"name": name})
            record_event(connection, event)


def revoke_client(engine: Engine, client_id: str, *, actor: Actor | None = None) -> ClientRecord:
    """Revoke ``client_id`` (``NotFound`` if unknown). Revoking twice keeps the first time. With
    ``actor``, the audit log records the revocation (not a repeated one) in the same transaction."""
    with engine.begin() as connection:
        revoked = connection.execute(
            update(api_clients)
            .where(api_clients.c.client_id == client_id, api_clients.c.revoked_at.is_(None))
            .values(revoked_at=to_milliseconds(utc_now()))
        ).rowcount
        row = connection.execute(select(*_PUBLIC_COLUMNS).where(api_clients.c.client_id == client_id)).one_or_none()
        if row is not None and revoked == 1 and actor is not None:
            event = AuditEvent(
                row.account_id, Action.CLIENT_REVOKED, actor, "api_client", client_id, {"name": row.name}
            )
            record_event(connection, event)
    if row is None:
        raise NotFound(f"API client {client_id} does not exist.")
    return _record(row)


def client_with_secret_hash(engine: Engine, client_id: str) -> tuple[ClientRecord, str] | None:
    """The client ``client_id``, revoked or not, with its secret's hash: for authentication only."""
    with engine.connect() as connection:
        row = connection.execute(
            select(api_clients.c.secret_hash, *_PUBLIC_COLUMNS).where(api_clients.c.client_id == client_id)
        ).one_or_none()
    return None if row is None else (_record(row), row.secret_hash)


def replace_secret_hash(engine: Engine, client_id: str, secret_hash: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(api_clients).where(api_clients.c.client_id == client_id).values(secret_hash=secret_hash)
        )


def get_client(engine: Engine, client_id: str) -> ClientRecord | None:
    """The client ``client_id``, revoked or not, without its secret's hash."""
    with engine.connect() as connection:
        row = connection.execute(select(*_PUBLIC_COLUMNS).where(api_clients.c.client_id == client_id)).one_or_none()
    return None if row is None else _record(row)


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


def to_milliseconds(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)
