"""``uvm-reporting reports ...``: save report definitions (docs/report-definition.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from uvm_reporting.application.audit import operator_name
from uvm_reporting.cli import context
from uvm_reporting.cli.output import JsonOption, emit, reports_errors
from uvm_reporting.database.reports import Report, create_report, get_report, list_reports, update_report
from uvm_reporting.domain.audit import Actor
from uvm_reporting.errors import BadUserInput

reports_app = typer.Typer(help="Create, update and list reports.", no_args_is_help=True)

AccountOption = Annotated[str, typer.Option("--account", help="The account id.")]
FileOption = Annotated[
    Path, typer.Option("--file", help="The report definition, a JSON file.", exists=True, dir_okay=False, readable=True)
]


@reports_app.command("create")
@reports_errors
def create(account: AccountOption, file: FileOption, as_json: bool = JsonOption) -> None:
    """Validate a report definition and save it."""
    report = create_report(
        context.database(),
        account,
        _read_definition(file),
        actor=Actor.operator(operator_name()),
        min_schedule_interval=context.settings().min_schedule_interval,
    )
    emit(
        _summary(report),
        as_json=as_json,
        text=f"Created report [bold]{report.name}[/]: {report.id}"
        + ("" if report.is_public else " (private: not reachable through the API)"),
    )


@reports_app.command("update")
@reports_errors
def update(
    report_id: Annotated[str, typer.Argument(help="The report id.")],
    account: AccountOption,
    file: FileOption,
    as_json: bool = JsonOption,
) -> None:
    """Replace a report's definition."""
    report = update_report(
        context.database(),
        account,
        report_id,
        _read_definition(file),
        min_schedule_interval=context.settings().min_schedule_interval,
        actor=Actor.operator(operator_name()),
    )
    emit(_summary(report), as_json=as_json, text=f"Updated report [bold]{report.name}[/]: {report.id}")


@reports_app.command("show")
@reports_errors
def show(
    report_id: Annotated[str, typer.Argument(help="The report id.")], account: AccountOption, as_json: bool = JsonOption
) -> None:
    """Print a report's definition."""
    report = get_report(context.database(), account, report_id)
    emit(
        {**_summary(report), "definition": report.definition.to_json()},
        as_json=as_json,
        text=json.dumps(report.definition.to_json(), indent=2),
    )


@reports_app.command("test-delivery")
@reports_errors
def check_delivery_command(
    report_id: Annotated[str, typer.Argument(help="The report id.")], account: AccountOption, as_json: bool = JsonOption
) -> None:
    """Write and delete a canary object through the report's S3 delivery settings; say what fails."""
    from uvm_reporting.services import build_services  # noqa: PLC0415 - keeps other commands fast

    result = build_services(context.settings(), context.database()).reports.test_delivery(
        account, report_id, public_only=False
    )
    emit(
        result,
        as_json=as_json,
        text=("[green]Delivery works[/]: " if result["ok"] else f"[red]Delivery fails[/] ({result['code']}): ")
        + result["message"],
    )
    if not result["ok"]:
        raise typer.Exit(1)


@reports_app.command("list")
@reports_errors
def list_(account: AccountOption, as_json: bool = JsonOption) -> None:
    """List an account's reports."""
    reports = list_reports(context.database(), account)
    emit(
        {"account_id": account, "reports": [_summary(r) for r in reports]},
        as_json=as_json,
        text="\n".join(f"{r.id}  {'public ' if r.is_public else 'private'}  {r.name}" for r in reports)
        or "No reports.",
    )


def _read_definition(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadUserInput(f"{file}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise BadUserInput(f"{file}: a report definition is a JSON object")
    return data


def _summary(report: Report) -> dict[str, Any]:
    return {
        "id": report.id,
        "account_id": report.account_id,
        "name": report.name,
        "entity": report.definition.entity,
        "public": report.is_public,
        "schedule_active": bool(report.schedule and report.schedule.active),
        "next_fire_at": report.next_fire_at,
    }
