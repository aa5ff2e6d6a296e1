"""A client rotates its secret: two active secrets, then the old one is revoked."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from uvm_reporting.auth.api_client_credentials import (
    authenticate_client,
    create_client,
    revoke_client_secret,
    rotate_client_secret,
)
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.api_clients import list_clients, revoke_client
from uvm_reporting.database.tables import api_clients
from uvm_reporting.errors import Conflict, NotFound


def test_both_secrets_work_until_the_old_one_is_revoked(engine: Engine, account: Account) -> None:
    created = create_client(engine, account.id, "ci")
    rotated = rotate_client_secret(engine, created.client_id)
    assert rotated.client_secret != created.client_secret
    assert rotated.client.two_secrets
    assert rotated.client.secret_rotated_at is not None
    assert authenticate_client(engine, created.client_id, created.client_secret) is not None
    assert authenticate_client(engine, created.client_id, rotated.client_secret) is not None
    assert authenticate_client(engine, created.client_id, "uvms_wrong") is None

    with pytest.raises(Conflict, match="revoke-secret"):
        rotate_client_secret(engine, created.client_id)  # at most two at once

    done = revoke_client_secret(engine, created.client_id, "old")
    assert not done.two_secrets
    assert authenticate_client(engine, created.client_id, created.client_secret) is None
    assert authenticate_client(engine, created.client_id, rotated.client_secret) is not None
    with pytest.raises(Conflict, match="only one secret"):
        revoke_client_secret(engine, created.client_id, "old")
    (listed,) = list_clients(engine, account.id)
    assert listed.active
    assert not listed.two_secrets


def test_revoking_the_new_secret_undoes_the_rotation(engine: Engine, account: Account) -> None:
    created = create_client(engine, account.id, "ci")
    rotated = rotate_client_secret(engine, created.client_id)
    revoke_client_secret(engine, created.client_id, "new")
    assert authenticate_client(engine, created.client_id, rotated.client_secret) is None
    assert authenticate_client(engine, created.client_id, created.client_secret) is not None


def test_only_hashes_are_stored_and_revoked_or_unknown_clients_cannot_rotate(engine: Engine, account: Account) -> None:
    created = create_client(engine, account.id, "ci")
    rotated = rotate_client_secret(engine, created.client_id)
    with engine.connect() as connection:
        row = connection.execute(select(api_clients).where(api_clients.c.client_id == created.client_id)).one()
    assert created.client_secret not in str(tuple(row))
    assert rotated.client_secret not in str(tuple(row))
    assert row.previous_secret_hash.startswith("$argon2id$")

    revoke_client(engine, created.client_id)
    assert authenticate_client(engine, created.client_id, rotated.client_secret) is None
    other = create_client(engine, account.id, "other")
    revoke_client(engine, other.client_id)
    with pytest.raises(Conflict, match="revoked"):
        rotate_client_secret(engine, other.client_id)
    with pytest.raises(NotFound):
        rotate_client_secret(engine, "uvmc_nobody")
