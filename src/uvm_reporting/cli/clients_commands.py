"""`uvm-reporting clients ...` commands: create, revoke and list an account's API clients."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from uvm_reporting.application.audit import operator_name
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.cli import context
from uvm_reporting.cli.output import JsonOption, emit, reports_errors
from uvm_reporting.database.api_clients import ClientRecord, list_clients, revoke_client
from uvm_reporting.domain.audit import Actor
from uvm_reporting.domain.timestamps import format_utc

clients_app = typer.Typer(help="Create, revoke and list API clients (OAuth2 client credentials).", no_args_is_help=True)

AccountOption = Annotated[str, typer.Option("--account", help="Id of the account the clients belong to.")]


@clients_app.command("create")
@reports_errors
def create(
    account: AccountOption,
    name: Annotated[str, typer.Option("--name", help="A label for the client.")] = "default",
    as_json: bool = JsonOption,
) -> None:
    """Create an API client and print its id and secret (the secret is shown only this once)."""
    created = create_client(context.database(), account, name, actor=Actor.operator(operator_name()))
    emit(
        {
            "client_id": created.client_id,
            "client_secret": created.client_secret,
            "account_id": created.account_id,
            "name": created.name,
        },
        as_json=as_json,
        text=(
            f'Created API client "{escape(created.name)}" for account {created.account_id}.\n'
            f"client_id:     {created.client_id}\n"
            f"client_secret: {created.client_secret}\n"
            "Store the secret now: it cannot be shown again."
        ),
    )


@clients_app.command("revoke")
@reports_errors
def revoke(
    client_id: Annotated[str, typer.Argument(help="The client to revoke.", show_default=False)],
    as_json: bool = JsonOption,
) -> None:
    """Revoke an API client: it can get no new tokens and its tokens stop working."""
    client = revoke_client(context.database(), client_id, actor=Actor.operator(operator_name()))
    assert client.revoked_at is not None
    emit(
        _client_json(client) | {"account_id": client.account_id},
        as_json=as_json,
        text=f"Client {client.client_id} (account {client.account_id}) is revoked since "
        f"{format_utc(client.revoked_at)}.",
    )


@clients_app.command("list")
@reports_errors
def list_(account: AccountOption, as_json: bool = JsonOption) -> None:
    """List an account's API clients, revoked ones included."""
    clients = list_clients(context.database(), account)
    lines = [f"{len(clients)} API client(s) of account {account}:"] + [
        f"  {client.client_id}  {escape(client.name)}  created {format_utc(client.created_at)}  "
        + ("active" if client.revoked_at is None else f"revoked {format_utc(client.revoked_at)}")
        for client in clients
    ]
    emit(
        {"account_id": account, "clients": [_client_json(client) for client in clients]},
        as_json=as_json,
        text="\n".join(lines),
    )


def _client_json(client: ClientRecord) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "created_at": format_utc(client.created_at, precise=True),
        "revoked_at": None if client.revoked_at is None else format_utc(client.revoked_at, precise=True),
    }
