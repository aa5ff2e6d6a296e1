"""Accounts: the tenants. Every other record hangs off one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from uvm_reporting.database.ids import new_id
from uvm_reporting.database.tables import accounts, api_clients, assets, findings, reports
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import BadUserInput, NotFound


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    external_id: str
    created_at: datetime
    disabled_at: datetime | None = None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


def new_external_id() -> str:
    """The ExternalId for sts:AssumeRole: 192 random bits, generated here, never customer input."""
    return secrets.token_hex(24)


def create_account(engine: Engine, name: str) -> Account:
    name = name.strip()
    if not name:
        raise BadUserInput("An account needs a non-empty name.")
    account = Account(id=new_id(), name=name, external_id=new_external_id(), created_at=utc_now())
    with engine.begin() as connection:
        connection.execute(
            insert(accounts).values(
                id=account.id, name=account.name, external_id=account.external_id, created_at=account.created_at
            )
        )
    return account


def get_account(engine: Engine, account_id: str) -> Account:
    with engine.connect() as connection:
        row = connection.execute(select(accounts).where(accounts.c.id == account_id)).one_or_none()
    if row is None:
        raise NotFound(f"Account {account_id} does not exist.")
    return _account(row)


def set_account_disabled(engine: Engine, account_id: str, *, disabled: bool) -> Account:
    """Disable (or enable again) ``account_id``: while disabled, its API clients get no tokens
    and their tokens and download links are refused. Disabling twice keeps the first time."""
    now = utc_now()
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    with engine.begin() as connection:
        change = update(accounts).where(accounts.c.id == account_id)
        if disabled:
            change = change.where(accounts.c.disabled_at.is_(None))
        connection.execute(change.values(disabled_at=now if disabled else None))
    return get_account(engine, account_id)


def find_account_by_name(engine: Engine, name: str) -> Account | None:
    with engine.connect() as connection:
        row = connection.execute(
            select(accounts).where(accounts.c.name == name).order_by(accounts.c.created_at).limit(1)
        ).one_or_none()
    return None if row is None else _account(row)


def account_counts(engine: Engine, account_id: str) -> dict[str, int]:
    """How many records of each kind an account holds (for `accounts show` and the demo)."""
    with engine.connect() as connection:
        return {
            table.name: connection.execute(
                select(func.count()).select_from(table).where(table.c.account_id == account_id)
            ).scalar_one()
            for table in (findings, assets, reports, api_clients)
        }


def _account(row: Any) -> Account:
    return Account(
        id=row.id, name=row.name, external_id=row.external_id, created_at=row.created_at, disabled_at=row.disabled_at
    )
