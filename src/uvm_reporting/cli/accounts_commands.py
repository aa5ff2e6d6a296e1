"""``uvm-reporting accounts ...``: create and inspect tenants."""

from __future__ import annotations

from typing import Annotated

import typer

from uvm_reporting.cli import context
from uvm_reporting.cli.output import JsonOption, emit, reports_errors
from uvm_reporting.store.accounts import account_counts, create_account, get_account

accounts_app = typer.Typer(help="Create and inspect accounts (tenants).", no_args_is_help=True)


@accounts_app.command("create")
@reports_errors
def create(name: Annotated[str, typer.Option("--name", help="The account's display name.")],
           as_json: bool = JsonOption) -> None:
    """Create an account and print its id."""
    account = create_account(context.database(), name)
    emit({"id": account.id, "name": account.name, "created_at": account.created_at}, as_json=as_json,
         text=f"Created account [bold]{account.name}[/]: {account.id}")


@accounts_app.command("show")
@reports_errors
def show(account_id: Annotated[str, typer.Argument(help="The account id.")], as_json: bool = JsonOption) -> None:
    """Show an account and how many records it holds."""
    engine = context.database()
    account = get_account(engine, account_id)
    counts = account_counts(engine, account_id)
    emit({"id": account.id, "name": account.name, "created_at": account.created_at, "counts": counts},
         as_json=as_json,
         text=f"{account.name} ({account.id}): " + ", ".join(f"{n} {k}" for k, n in counts.items()))
