"""`uvm-reporting data ...` commands: fill an account with generated or loaded platform data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from uvm_reporting.cli import context
from uvm_reporting.cli.output import JsonOption, emit, reports_errors
from uvm_reporting.database.accounts import get_account
from uvm_reporting.platform_data.generator import generate_platform_data
from uvm_reporting.platform_data.loader import load_platform_file

data_app = typer.Typer(help="Generate or load platform data (findings, assets).", no_args_is_help=True)

AccountOption = Annotated[str, typer.Option("--account", help="Id of the account to fill.")]


@data_app.command("generate")
@reports_errors
def generate(
    account: AccountOption,
    findings: Annotated[int, typer.Option("--findings", help="How many findings to generate.")],
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same rows.")] = 0,
    as_json: bool = JsonOption,
) -> None:
    """Generate realistic findings (and about one asset per 8 findings) into an empty account."""
    engine = context.database()
    get_account(engine, account)
    result = generate_platform_data(engine, account, findings, seed=seed)
    emit(
        {"account_id": account, "findings": result.findings, "assets": result.assets},
        as_json=as_json,
        text=f"Generated {result.findings} findings and {result.assets} assets in account {account}.",
    )


@data_app.command("load")
@reports_errors
def load(
    account: AccountOption,
    entity: Annotated[str, typer.Option("--entity", help="What the file holds: findings or assets.")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="An .ndjson, .jsonl or .csv file.")],
    as_json: bool = JsonOption,
) -> None:
    """Validate every row of FILE and load all of them, or none when any row is bad."""
    engine = context.database()
    get_account(engine, account)
    loaded = load_platform_file(engine, account, entity, file)
    emit(
        {"account_id": account, "entity": entity, "loaded": loaded},
        as_json=as_json,
        text=f"Loaded {loaded} {entity} from {file} into account {account}.",
    )
