"""API clients' rows: the credentials an account's programs exchange for access tokens.

The store keeps only a secret's Argon2id hash, made by auth/api_client_credentials.py, which
creates and authenticates clients. Revoking a client keeps its row (for audit) and stops new
tokens at once. While a client rotates its secret it has two: ``secret_hash`` (the newest) and
``previous_secret_hash``, until one of them is revoked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine, insert, select, update

from uvm_reporting.database.accounts import get_account
from uvm_reporting.database.audit import record_event
from uvm_reporting.database.tables import accounts, api_clients
from uvm_reporting.domain.audit import Action, Actor, AuditEvent
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import Conflict, NotFound

# Every column but the secret's hash, so no ordinary read ever loads it.
_PUBLIC_COLUMNS = (
    api_clients.c.client_id,
    api_clients.c.account_id,
    api_clients.c.name,
    api_clients.c.created_at,
    api_clients.c.revoked_at,
    api_clients.c.secret_rotated_at,
    api_clients.c.previous_secret_hash.is_not(None).label("two_secrets"),
)
# Whether the client's account is disabled, read with the client.
_ACCOUNT_DISABLED = accounts.c.disabled_at.is_not(None).label("account_disabled")
_WITH_ACCOUNT = api_clients.join(accounts, accounts.c.id == api_clients.c.account_id)

SecretSlot = Literal["old", "new"]


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A client as the rest of the system sees it: never its secret, nor the secret's hash."""

    client_id: str
    account_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None
    account_disabled: bool = False
    secret_rotated_at: datetime | None = None
    """When its newest secret was made; None: the secret it was created with."""
    two_secrets: bool = False
    """Whether the secret before the newest still works (a rotation not finished)."""

    @property
    def active(self) -> bool:
        """Not revoked, and its account not disabled: it may get tokens and use them."""
        return self.revoked_at is None and not self.account_disabled


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


def client_with_secret_hash(engine: Engine, client_id: str) -> tuple[ClientRecord, dict[SecretSlot, str]] | None:
    """The client ``client_id``, revoked or not, with the hashes of its active secrets (the
    newest, and the one before while a rotation is not finished): for authentication only."""
    with engine.connect() as connection:
        row = connection.execute(
            select(api_clients.c.secret_hash, api_clients.c.previous_secret_hash, *_PUBLIC_COLUMNS, _ACCOUNT_DISABLED)
            .select_from(_WITH_ACCOUNT)
            .where(api_clients.c.client_id == client_id)
        ).one_or_none()
    if row is None:
        return None
    hashes: dict[SecretSlot, str] = {"new": row.secret_hash}
    if row.previous_secret_hash is not None:
        hashes["old"] = row.previous_secret_hash
    return _record(row), hashes


def replace_secret_hash(engine: Engine, client_id: str, secret_hash: str, slot: SecretSlot = "new") -> None:
    """Store a new hash of the same secret (parameters upgraded) in its slot."""
    column = "secret_hash" if slot == "new" else "previous_secret_hash"
    with engine.begin() as connection:
        connection.execute(
            update(api_clients)
            .where(api_clients.c.client_id == client_id, api_clients.c[column].is_not(None))
            .values({column: secret_hash})
        )


def add_secret_hash(
    engine: Engine, client_id: str, secret_hash: str, rotated_at: datetime, *, actor: Actor | None = None
) -> ClientRecord:
    """Make ``secret_hash`` the client's newest secret; the current one keeps working as the old one.
    With ``actor``, the audit log records it in the same transaction.

    ``Conflict`` when the client already has two secrets or is revoked; ``NotFound`` when unknown."""
    with engine.begin() as connection:
        changed = connection.execute(
            update(api_clients)
            .where(
                api_clients.c.client_id == client_id,
                api_clients.c.revoked_at.is_(None),
                api_clients.c.previous_secret_hash.is_(None),
            )
            .values(
                previous_secret_hash=api_clients.c.secret_hash,
                secret_hash=secret_hash,
                secret_rotated_at=to_milliseconds(rotated_at),
            )
        ).rowcount
        row = connection.execute(select(*_PUBLIC_COLUMNS).where(api_clients.c.client_id == client_id)).one_or_none()
        if row is not None and changed and actor is not None:
            event = AuditEvent(row.account_id, Action.CLIENT_SECRET_ADDED, actor, "api_client", client_id, {})
            record_event(connection, event)
    if row is None:
        raise NotFound(f"API client {client_id} does not exist.")
    client = _record(row)
    if not changed:
        if not client.active:
            raise Conflict(f"API client {client_id} is revoked; create a new client instead.")
        raise Conflict(
            f"API client {client_id} already has two active secrets. Revoke one first: "
            f"`uvm-reporting clients revoke-secret {client_id} --old` once every program uses the new secret."
        )
    return client


def drop_secret_hash(engine: Engine, client_id: str, slot: SecretSlot, *, actor: Actor | None = None) -> ClientRecord:
    """Revoke one of a rotating client's two secrets: ``old`` (the rotation is done) or ``new``
    (the rotation is undone, the old secret is the only one again). With ``actor``, the audit
    log records it in the same transaction.

    ``Conflict`` when the client has only one secret (revoke the client instead)."""
    values: dict[str, Any] = {"previous_secret_hash": None}
    if slot == "new":
        values["secret_hash"] = api_clients.c.previous_secret_hash
    with engine.begin() as connection:
        changed = connection.execute(
            update(api_clients)
            .where(api_clients.c.client_id == client_id, api_clients.c.previous_secret_hash.is_not(None))
            .values(values)
        ).rowcount
        row = connection.execute(select(*_PUBLIC_COLUMNS).where(api_clients.c.client_id == client_id)).one_or_none()
        if row is not None and changed and actor is not None:
            event = AuditEvent(
                row.account_id, Action.CLIENT_SECRET_REVOKED, actor, "api_client", client_id, {"slot": slot}
            )
            record_event(connection, event)
    if row is None:
        raise NotFound(f"API client {client_id} does not exist.")
    if not changed:
        raise Conflict(
            f"API client {client_id} has only one secret. To stop it, revoke the client: "
            f"`uvm-reporting clients revoke {client_id}`."
        )
    return _record(row)


def get_client(engine: Engine, client_id: str) -> ClientRecord | None:
    """The client ``client_id``, revoked or not, without its secret's hash."""
    with engine.connect() as connection:
        row = connection.execute(select(*_PUBLIC_COLUMNS).where(api_clients.c.client_id == client_id)).one_or_none()
    return None if row is None else _record(row)


def get_active_client(engine: Engine, client_id: str) -> ClientRecord | None:
    """The client ``client_id`` if it exists, is not revoked and its account is not disabled."""
    with engine.connect() as connection:
        row = connection.execute(
            select(*_PUBLIC_COLUMNS)
            .select_from(_WITH_ACCOUNT)
            .where(
                api_clients.c.client_id == client_id,
                api_clients.c.revoked_at.is_(None),
                accounts.c.disabled_at.is_(None),
            )
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
        account_disabled=bool(getattr(row, "account_disabled", False)),
        secret_rotated_at=row.secret_rotated_at,
        two_secrets=bool(row.two_secrets),
    )


def to_milliseconds(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)
