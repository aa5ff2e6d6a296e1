"""``uvm-reporting accounts ...``: create and inspect tenants."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from uvm_reporting.cli import context
from uvm_reporting.cli.output import JsonOption, emit, reports_errors
from uvm_reporting.database.accounts import Account, account_counts, create_account, get_account, set_account_disabled
from uvm_reporting.domain.timestamps import format_utc
from uvm_reporting.settings import Settings
from uvm_reporting.storage.s3 import S3ClientFactory, trust_policy

accounts_app = typer.Typer(help="Create, inspect, disable and enable accounts (tenants).", no_args_is_help=True)


@accounts_app.command("create")
@reports_errors
def create(
    name: Annotated[str, typer.Option("--name", help="The account's display name.")], as_json: bool = JsonOption
) -> None:
    """Create an account and print its id."""
    account = create_account(context.database(), name)
    emit(
        {"id": account.id, "name": account.name, "created_at": account.created_at},
        as_json=as_json,
        text=f"Created account [bold]{account.name}[/]: {account.id}",
    )


@accounts_app.command("show")
@reports_errors
def show(account_id: Annotated[str, typer.Argument(help="The account id.")], as_json: bool = JsonOption) -> None:
    """Show an account, its counts, its ExternalId and the trust policy for the customer's IAM role."""
    engine = context.database()
    account = get_account(engine, account_id)
    counts = account_counts(engine, account_id)
    principal = deployment_principal(context.settings())
    policy = trust_policy(principal, account.external_id)
    emit(
        {
            "id": account.id,
            "name": account.name,
            "created_at": account.created_at,
            "disabled_at": account.disabled_at,
            "counts": counts,
            "external_id": account.external_id,
            "deployment_principal_arn": principal,
            "trust_policy": policy,
        },
        as_json=as_json,
        text=f"{account.name} ({account.id}): "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
        + f"\nExternalId: {account.external_id}\nTrust policy for your delivery role:\n"
        + json.dumps(policy, indent=2),
    )


@accounts_app.command("disable")
@reports_errors
def disable(account_id: Annotated[str, typer.Argument(help="The account id.")], as_json: bool = JsonOption) -> None:
    """Disable an account: its API clients get no tokens, and their tokens and download links stop
    working (within 2 seconds)."""
    _emit_state(set_account_disabled(context.database(), account_id, disabled=True), as_json=as_json)


@accounts_app.command("enable")
@reports_errors
def enable(account_id: Annotated[str, typer.Argument(help="The account id.")], as_json: bool = JsonOption) -> None:
    """Enable a disabled account again: its clients that were not revoked work again."""
    _emit_state(set_account_disabled(context.database(), account_id, disabled=False), as_json=as_json)


def _emit_state(account: Account, *, as_json: bool) -> None:
    disabled_at = None if account.disabled_at is None else format_utc(account.disabled_at, precise=True)
    emit(
        {"id": account.id, "name": account.name, "disabled_at": disabled_at},
        as_json=as_json,
        text=f"Account {account.name} ({account.id}) is "
        + ("enabled." if disabled_at is None else f"disabled since {disabled_at}."),
    )


UNKNOWN_PRINCIPAL = "arn:aws:iam::<this deployment's AWS account>:role/<its role>"


def deployment_principal(settings: Settings) -> str:
    """Our AWS principal for the trust policy: configured, else asked of STS, else a placeholder."""
    if settings.aws_principal_arn:
        return settings.aws_principal_arn
    try:
        return S3ClientFactory(settings.s3_endpoint_url, settings.aws_region).deployment_principal_arn()
    except Exception:  # noqa: BLE001 - no AWS identity configured: still show the policy's shape
        return UNKNOWN_PRINCIPAL
