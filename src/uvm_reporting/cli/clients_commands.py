"""`uvm-reporting clients ...` commands: create, revoke and list an account's API clients, and
rotate their secrets."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
from rich.markup import escape

from uvm_reporting.application.audit import operator_name
from uvm_reporting.auth.api_client_credentials import create_client, revoke_client_secret, rotate_client_secret
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


@clients_app.command("rotate-secret")
@reports_errors
def rotate_secret(
    client_id: Annotated[str, typer.Argument(help="The client to give a new secret.", show_default=False)],
    as_json: bool = JsonOption,
) -> None:
    """Give a client a second secret (shown only this once); the old one works until revoke-secret --old."""
    rotated = rotate_client_secret(context.database(), client_id, actor=Actor.operator(operator_name()))
    emit(
        _client_json(rotated.client)
        | {"account_id": rotated.client.account_id, "client_secret": rotated.client_secret},
        as_json=as_json,
        text=(
            f"New secret for API client {client_id}; the old secret keeps working until you revoke it.\n"
            f"client_secret: {rotated.client_secret}\n"
            "Store the secret now: it cannot be shown again. Once every program uses it, run:\n"
            f"  uvm-reporting clients revoke-secret {client_id} --old"
        ),
    )


@clients_app.command("revoke-secret")
@reports_errors
def revoke_secret(
    client_id: Annotated[str, typer.Argument(help="The rotating client.", show_default=False)],
    old: Annotated[
        bool, typer.Option("--old/--new", help="Revoke the old secret (rotation done) or the new one (undo).")
    ] = True,
    as_json: bool = JsonOption,
) -> None:
    """Revoke one of the two secrets a client holds while rotating (default: the old one)."""
    which: Literal["old", "new"] = "old" if old else "new"
    client = revoke_client_secret(context.database(), client_id, which, actor=Actor.operator(operator_name()))
    emit(
        _client_json(client) | {"account_id": client.account_id, "revoked_secret": which},
        as_json=as_json,
        text=f"The {which} secret of API client {client_id} is revoked; its other secret is the only one now.",
    )


@clients_app.command("list")
@reports_errors
def list_(account: AccountOption, as_json: bool = JsonOption) -> None:
    """List an account's API clients, revoked ones included."""
    clients = list_clients(context.database(), account)
    lines = [f"{len(clients)} API client(s) of account {account}:"] + [
        f"  {client.client_id}  {escape(client.name)}  created {format_utc(client.created_at)}  "
        + ("active" if client.revoked_at is None else f"revoked {format_utc(client.revoked_at)}")
        + ("  (two secrets: rotating)" if client.two_secrets and client.active else "")
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
        "secret_rotated_at": None
        if client.secret_rotated_at is None
        else format_utc(client.secret_rotated_at, precise=True),
        "active_secrets": 2 if client.two_secrets else 1,
    }
