"""The executable GraphQL schema: the checked-in SDL (``schema.graphql``) bound to resolvers.

Resolvers reach the use cases through the typed request context, never module globals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ariadne import MutationType, ObjectType, QueryType, ScalarType, make_executable_schema
from graphql import GraphQLResolveInfo, GraphQLSchema
from starlette.types import Scope

from uvm_reporting.api.audit_events import client_actor
from uvm_reporting.application.audit import AuditLog, parse_time
from uvm_reporting.application.report_runs import ReportRuns
from uvm_reporting.application.reports import Reports
from uvm_reporting.database.audit import EventFilter, StoredEvent
from uvm_reporting.database.reports import Report
from uvm_reporting.domain.audit import Actor
from uvm_reporting.domain.timestamps import format_utc
from uvm_reporting.errors import BadUserInput, NotFound

SCHEMA_FILE = Path(__file__).with_name("schema.graphql")


@dataclass(frozen=True, slots=True)
class GraphQLContext:
    """Who is calling (from the verified token) and the use cases they may reach."""

    account_id: str
    client_id: str
    report_runs: ReportRuns
    memory_only: bool = False
    """Answer from the in-process caches or raise NotInMemory (api/graphql_route.py)."""
    scope: Scope | None = None
    """The HTTP request's ASGI scope: its source IP and request id go into the audit log."""

    @property
    def reports(self) -> Reports:
        return self.report_runs.reports

    @property
    def actor(self) -> Actor:
        """The calling API client, as the audit log records it."""
        return client_actor(self.client_id, self.scope or {})

    @property
    def audit(self) -> AuditLog:
        return AuditLog(self.report_runs.engine)


def _context(info: GraphQLResolveInfo) -> GraphQLContext:
    context: GraphQLContext = info.context
    return context


query = QueryType()
mutation = MutationType()
report_type = ObjectType("Report")
json_scalar = ScalarType("JSON", serializer=lambda value: value, value_parser=lambda value: value)


@mutation.field("processReport")
def resolve_process_report(
    _: None,
    info: GraphQLResolveInfo,
    *,
    id: str,
    isPresignedUrl: bool | None = None,  # noqa: N803 - the spec's name
    format: str | None = None,
    compression: str | None = None,
    idempotencyKey: str | None = None,  # noqa: N803
    forceNew: bool | None = None,  # noqa: N803
) -> dict[str, Any]:
    context = _context(info)
    return context.report_runs.process_report(
        context.account_id,
        id,
        presigned_url=bool(isPresignedUrl),
        requested_by=context.client_id,
        download_format=format,
        download_compression=compression,
        actor=context.actor,
        idempotency_key=idempotencyKey,
        force_new=bool(forceNew),
    )


@mutation.field("cancelReportRun")
def resolve_cancel_report_run(_: None, info: GraphQLResolveInfo, runId: str) -> dict[str, Any]:  # noqa: N803
    context = _context(info)
    return context.report_runs.cancel_run(context.account_id, runId, client_id=context.client_id, actor=context.actor)


@mutation.field("createReport")
def resolve_create_report(_: None, info: GraphQLResolveInfo, definition: Any) -> Report:
    context = _context(info)
    return context.reports.create_report(context.account_id, _definition_object(definition), actor=context.actor)


@mutation.field("updateReport")
def resolve_update_report(_: None, info: GraphQLResolveInfo, id: str, definition: Any) -> Report:
    context = _context(info)
    return context.reports.update_report(context.account_id, id, _definition_object(definition), actor=context.actor)


@mutation.field("testReportDelivery")
def resolve_test_report_delivery(_: None, info: GraphQLResolveInfo, id: str) -> dict[str, Any]:
    context = _context(info)
    return context.reports.test_delivery(context.account_id, id)


def _definition_object(definition: Any) -> dict[str, Any]:
    if not isinstance(definition, dict):
        raise BadUserInput("definition must be a JSON object (see docs/report-definition.md).")
    return definition


def get_report_run_status(
    context: GraphQLContext,
    reportId: str | None = None,  # noqa: N803
    runId: str | None = None,  # noqa: N803
) -> dict[str, Any]:
    return context.report_runs.run_status(
        context.account_id, reportId, runId, client_id=context.client_id, memory_only=context.memory_only
    )


@query.field("getReportRunStatus")
def resolve_get_report_run_status(
    _: None,
    info: GraphQLResolveInfo,
    reportId: str | None = None,  # noqa: N803
    runId: str | None = None,  # noqa: N803
) -> dict[str, Any]:
    return get_report_run_status(_context(info), reportId=reportId, runId=runId)


DIRECT_QUERIES: dict[str, Callable[..., Any]] = {"getReportRunStatus": get_report_run_status}
"""Query fields whose use case can answer from the in-process caches alone (a status poll),
by name: each takes the context and the field's arguments, all nullable ``String``s, and
returns a ``JSON`` value (api/direct_queries.py calls them without the executor)."""


@query.field("reports")
def resolve_reports(_: None, info: GraphQLResolveInfo) -> list[Report]:
    context = _context(info)
    return context.reports.public_reports(context.account_id)


@query.field("report")
def resolve_report(_: None, info: GraphQLResolveInfo, id: str) -> Report | None:
    context = _context(info)
    try:
        return context.reports.public_report(context.account_id, id)
    except NotFound:
        return None


@query.field("reportRuns")
def resolve_report_runs(
    _: None,
    info: GraphQLResolveInfo,
    reportId: str,  # noqa: N803
    limit: int | None = None,  # an explicit null too: the default page
) -> list[dict[str, Any]]:
    context = _context(info)
    return context.report_runs.run_history(context.account_id, reportId, limit)


@query.field("auditEvents")
def resolve_audit_events(
    _: None,
    info: GraphQLResolveInfo,
    first: int | None = None,
    after: str | None = None,
    filter: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The caller's own account's events: an API client reads its account's log, never another's."""
    context = _context(info)
    given = filter or {}
    event_filter = EventFilter(
        actions=tuple(given.get("actions") or ()),
        actor_kind=given.get("actorKind"),
        actor_id=given.get("actorId"),
        target_kind=given.get("targetKind"),
        target_id=given.get("targetId"),
        since=parse_time(given.get("since"), "filter.since"),
        until=parse_time(given.get("until"), "filter.until"),
    )
    page = context.audit.events(context.account_id, first=first, after=after, event_filter=event_filter)
    return {
        "edges": [
            {"cursor": cursor, "node": _audit_event_json(event)}
            for event, cursor in zip(page.events, page.cursors, strict=True)
        ],
        "pageInfo": {"hasNextPage": page.has_next_page, "endCursor": page.end_cursor},
    }


def _audit_event_json(event: StoredEvent) -> dict[str, Any]:
    actor = event.actor
    return {
        "id": event.id,
        "occurredAt": format_utc(event.occurred_at, precise=True),
        "accountId": event.account_id,
        "action": event.action,
        "actor": {"kind": actor.kind.value, "id": actor.id},
        "target": None if event.target_kind is None else {"kind": event.target_kind, "id": event.target_id},
        "sourceIp": actor.source_ip,
        "requestId": actor.request_id,
        "details": event.details,
    }


report_type.set_field("name", lambda report, _info: report.definition.name)
report_type.set_field("entity", lambda report, _info: report.definition.entity)
report_type.set_field("viewers", lambda report, _info: report.definition.viewers)
report_type.set_field("editors", lambda report, _info: report.definition.editors)
report_type.set_field("columns", lambda report, _info: list(report.definition.columns))
report_type.set_field("definition", lambda report, _info: report.definition.to_json())
report_type.set_field("schedule", lambda report, _info: report.definition.to_json().get("schedule"))
report_type.set_field(
    "nextFireAt", lambda report, _info: format_utc(report.next_fire_at, precise=True) if report.next_fire_at else None
)
report_type.set_field("createdAt", lambda report, _info: format_utc(report.created_at, precise=True))
report_type.set_field("updatedAt", lambda report, _info: format_utc(report.updated_at, precise=True))


def build_schema() -> GraphQLSchema:
    return make_executable_schema(SCHEMA_FILE.read_text(encoding="utf-8"), query, mutation, report_type, json_scalar)
