"""``uvm-reporting audit list``: an account's audit log, newest first, for the operator."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from uvm_reporting.application.audit import MAX_PAGE_SIZE, AuditLog, parse_time
from uvm_reporting.cli import context
from uvm_reporting.cli.output import JsonOption, emit, reports_errors
from uvm_reporting.database.accounts import get_account
from uvm_reporting.database.audit import EventFilter, StoredEvent
from uvm_reporting.domain.timestamps import format_utc
from uvm_reporting.errors import BadUserInput

audit_app = typer.Typer(help="Read the audit log.", no_args_is_help=True)


@audit_app.command("list")
@reports_errors
def list_(
    *,
    account: Annotated[
        str | None, typer.Option("--account", help="The account whose events to list.", show_default=False)
    ] = None,
    deployment: Annotated[
        bool, typer.Option("--deployment", help="List the deployment-wide events (keys rotated) instead.")
    ] = False,
    action: Annotated[
        list[str] | None,
        typer.Option("--action", help="Only this action (repeatable); a prefix such as 'report.*' matches all of its."),
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Only events of this actor: KIND or KIND:ID (api_client:abc).")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="Events at or after this ISO-8601 time.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Events before this ISO-8601 time.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="At most this many events.")] = 50,
    as_json: bool = JsonOption,
) -> None:
    """List audit events, newest first."""
    if (account is None) == (not deployment):
        raise BadUserInput("Pass --account ID, or --deployment for the deployment-wide events.")
    engine = context.database()
    if account is not None:
        get_account(engine, account)  # NotFound names a mistyped id
    actor_kind, _, actor_id = (actor or "").partition(":")
    event_filter = EventFilter(
        actions=tuple(action or ()),
        actor_kind=actor_kind or None,
        actor_id=actor_id or None,
        since=parse_time(since, "--since"),
        until=parse_time(until, "--until"),
    )
    audit = AuditLog(engine)
    events: list[StoredEvent] = []
    after = None
    while len(events) < limit:
        page = audit.events(
            account, first=min(MAX_PAGE_SIZE, limit - len(events)), after=after, event_filter=event_filter
        )
        events.extend(page.events)
        if not page.has_next_page:
            break
        after = page.end_cursor
    emit(
        {"account_id": account, "events": [_event_json(event) for event in events]},
        as_json=as_json,
        text="\n".join(_event_line(event) for event in events) or "No audit events.",
    )


def _event_json(event: StoredEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "occurred_at": format_utc(event.occurred_at, precise=True),
        "account_id": event.account_id,
        "action": event.action,
        "actor": {"kind": event.actor.kind.value, "id": event.actor.id},
        "target": None if event.target_kind is None else {"kind": event.target_kind, "id": event.target_id},
        "source_ip": event.actor.source_ip,
        "request_id": event.actor.request_id,
        "details": event.details,
    }


def _event_line(event: StoredEvent) -> str:
    actor = event.actor.kind.value + (f":{event.actor.id}" if event.actor.id else "")
    target = f"{event.target_kind}:{event.target_id}" if event.target_kind else "-"
    return escape(
        f"{format_utc(event.occurred_at, precise=True)}  {event.action:<24} {actor}  {target}  "
        f"ip={event.actor.source_ip or '-'} request={event.actor.request_id or '-'}"
    )
