"""Creating API clients and checking their credentials.

A client's secret is shown once, when the client is created; only its Argon2id hash is
stored (database/api_clients.py keeps the rows). To change a secret without downtime, a client
gets a second one (``rotate_client_secret``, shown once too); both work until one is revoked
(``revoke_client_secret``), so its programs can move to the new secret one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from uvm_reporting.auth.client_secrets import (
    hash_secret,
    needs_rehash,
    new_client_id,
    new_client_secret,
    verify_dummy_secret,
    verify_secret,
)
from uvm_reporting.database.accounts import get_account
from uvm_reporting.database.api_clients import (
    ClientRecord,
    SecretSlot,
    add_secret_hash,
    client_with_secret_hash,
    drop_secret_hash,
    insert_client,
    replace_secret_hash,
    to_milliseconds,
)
from uvm_reporting.domain.audit import Actor
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import BadUserInput

_MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class CreatedClient:
    """A new client, with the only copy of its secret the system will ever hand out."""

    client_id: str
    client_secret: str = field(repr=False)
    account_id: str
    name: str
    created_at: datetime


def create_client(
    engine: Engine, account_id: str, name: str = "default", *, actor: Actor | None = None
) -> CreatedClient:
    """Create a client for ``account_id``; raises ``NotFound`` when the account does not exist.
    With ``actor``, the audit log records who created it (never the secret)."""
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
        created_at=to_milliseconds(utc_now()),
    )
    insert_client(
        engine,
        client_id=created.client_id,
        account_id=account_id,
        name=name,
        secret_hash=hash_secret(secret),
        created_at=created.created_at,
        actor=actor,
    )
    return created


@dataclass(frozen=True, slots=True)
class RotatedSecret:
    """A client's new secret (its only copy ever handed out); the old one works until revoked."""

    client: ClientRecord
    client_secret: str = field(repr=False)


def rotate_client_secret(engine: Engine, client_id: str, *, actor: Actor | None = None) -> RotatedSecret:
    """Give ``client_id`` a new secret beside its current one (``Conflict`` if it has two already)."""
    secret = new_client_secret()
    client = add_secret_hash(engine, client_id, hash_secret(secret), utc_now(), actor=actor)
    return RotatedSecret(client, secret)


def revoke_client_secret(
    engine: Engine, client_id: str, which: SecretSlot = "old", *, actor: Actor | None = None
) -> ClientRecord:
    """Revoke the ``old`` secret of a rotating client (or the ``new`` one, to undo the rotation)."""
    return drop_secret_hash(engine, client_id, which, actor=actor)


def authenticate_client(engine: Engine, client_id: str, client_secret: str) -> ClientRecord | None:
    """The active client whose id and secret these are, or ``None``.

    Unknown, revoked and wrong-secret clients all take one Argon2 verification, so the
    response time does not tell which of them it was.
    """
    # PostgreSQL cannot compare text holding NUL: such an id names no client, on every database.
    found = None if "\x00" in client_id else client_with_secret_hash(engine, client_id)
    if found is None:
        verify_dummy_secret(client_secret)
        return None
    client, hashes = found
    # The newest secret first: once a rotation is done, programs send that one.
    slot = next((slot for slot, secret_hash in hashes.items() if verify_secret(secret_hash, client_secret)), None)
    if slot is None or not client.active:
        return None
    if needs_rehash(hashes[slot]):
        # The hashing parameters changed since this secret was stored: upgrade it now that
        # the plain secret is at hand.
        replace_secret_hash(engine, client_id, hash_secret(client_secret), slot)
    return client
