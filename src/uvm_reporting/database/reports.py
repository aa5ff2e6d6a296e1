"""Saved reports of an account: a validated definition plus its access settings.

A report with a schedule also carries, denormalised for the scheduler's index,
``schedule_active`` and ``next_fire_at`` (the next fire time, NULL when it has no active
schedule). Saving a report computes them; the scheduler advances ``next_fire_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, insert, literal, select, true, update

from uvm_reporting.database.accounts import get_account
from uvm_reporting.database.audit import record_event
from uvm_reporting.database.ids import new_id
from uvm_reporting.database.tables import reports
from uvm_reporting.database.types import UtcDateTime
from uvm_reporting.domain.audit import Action, Actor, AuditEvent, DetailValue
from uvm_reporting.domain.report_definition.model import ReportDefinition
from uvm_reporting.domain.report_definition.parsing import parse_report_definition
from uvm_reporting.domain.schedule.fire_times import next_fire_time
from uvm_reporting.domain.schedule.settings import ScheduleSettings
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import NotFound


@dataclass(frozen=True, slots=True)
class Report:
    id: str
    account_id: str
    definition: ReportDefinition
    created_at: datetime
    updated_at: datetime
    # When the scheduler next enqueues a run; None without an active schedule.
    next_fire_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def schedule(self) -> ScheduleSettings | None:
        return self.definition.schedule

    @property
    def is_public(self) -> bool:
        return self.definition.is_public


def create_report(
    engine: Engine,
    account_id: str,
    data: Mapping[str, Any],
    *,
    now: datetime | None = None,
    actor: Actor | None = None,
    min_schedule_interval: timedelta | None = None,
) -> Report:
    """Validate ``data`` against the catalog and save it; raises BadUserInput naming the problem.

    ``now`` (default: the clock) is when the schedule's first fire time is counted from;
    ``min_schedule_interval``, the shortest time its schedule may leave between two fire times.
    With ``actor``, the audit log records who created it, in the same transaction.
    """
    get_account(engine, account_id)
    definition = parse_report_definition(data, min_schedule_interval=min_schedule_interval)
    now = now or utc_now()
    report = Report(
        id=new_id(),
        account_id=account_id,
        definition=definition,
        created_at=now,
        updated_at=now,
        next_fire_at=_next_fire_at(definition, now),
    )
    with engine.begin() as connection:
        connection.execute(insert(reports).values(_row_values(report)))
        if actor is not None:
            record_event(connection, _report_event(report, Action.REPORT_CREATED, actor))
    return report


def update_report(
    engine: Engine,
    account_id: str,
    report_id: str,
    data: Mapping[str, Any],
    *,
    now: datetime | None = None,
    actor: Actor | None = None,
    min_schedule_interval: timedelta | None = None,
) -> Report:
    """Replace a report's definition; its next fire time is counted again from ``now``.

    A fire time that is already due but not yet enqueued is kept while the schedule stays
    active, so an edit in the seconds after a fire time does not lose that run (the scheduler
    then runs the new schedule's latest fire time up to now, if it has one since). With
    ``actor``, the audit log records the change (and whether access or schedule changed) in
    the same transaction.
    """
    existing = get_report(engine, account_id, report_id)
    definition = parse_report_definition(data, min_schedule_interval=min_schedule_interval)
    now = now or utc_now()
    report = Report(
        id=existing.id, account_id=account_id, definition=definition, created_at=existing.created_at, updated_at=now
    )
    values = _row_values(report)
    following = _next_fire_at(definition, now)
    if following is not None:
        # Decided in the UPDATE itself (right-hand sides see the row before the update), so a
        # scheduler advancing the row at the same moment is never overwritten with a stale value.
        due_and_pending = and_(reports.c.schedule_active == true(), reports.c.next_fire_at <= now)
        values["next_fire_at"] = case(
            (due_and_pending, reports.c.next_fire_at), else_=literal(following, UtcDateTime(precise=True))
        )
    row_filter = (reports.c.id == report_id, reports.c.account_id == account_id)
    with engine.begin() as connection:
        connection.execute(update(reports).where(*row_filter).values(values))
        next_fire_at = connection.execute(select(reports.c.next_fire_at).where(*row_filter)).scalar_one()
        updated = Report(
            id=report.id,
            account_id=account_id,
            definition=definition,
            created_at=report.created_at,
            updated_at=now,
            next_fire_at=next_fire_at,
        )
        if actor is not None:
            for event in _update_events(existing, updated, actor):
                record_event(connection, event)
    return updated


def get_report(engine: Engine, account_id: str, report_id: str) -> Report:
    """The report ``report_id`` of ``account_id``; another account's report is NotFound too."""
    with engine.connect() as connection:
        row = connection.execute(
            select(reports).where(reports.c.id == report_id, reports.c.account_id == account_id)
        ).one_or_none()
    if row is None:
        raise NotFound(f"Report {report_id} was not found in account {account_id}.", report_id=report_id)
    return _report_from_row(row)


def report_is_public(engine: Engine, account_id: str, report_id: str) -> bool:
    """Whether the report's Viewers and Editors are both public, without parsing its definition
    (a status poll asks this on every call); NotFound like ``get_report``."""
    with engine.connect() as connection:
        row = connection.execute(
            select(reports.c.viewers, reports.c.editors).where(
                reports.c.id == report_id, reports.c.account_id == account_id
            )
        ).one_or_none()
    if row is None:
        raise NotFound(f"Report {report_id} was not found in account {account_id}.", report_id=report_id)
    return is_public_access(row.viewers, row.editors)


def is_public_access(viewers: str, editors: str) -> bool:
    """The rule of ``ReportDefinition.is_public`` over a row's ``viewers`` and ``editors`` columns."""
    return viewers == "public" and editors == "public"


def list_reports(engine: Engine, account_id: str, *, public_only: bool = False) -> list[Report]:
    query = select(reports).where(reports.c.account_id == account_id).order_by(reports.c.created_at)
    if public_only:
        query = query.where(reports.c.viewers == "public", reports.c.editors == "public")
    with engine.connect() as connection:
        return [_report_from_row(row) for row in connection.execute(query)]


def due_schedules(engine: Engine, now: datetime, limit: int = 100) -> list[Report]:
    """Reports of every account whose active schedule has a fire time due by ``now``, oldest first.

    For the scheduler only: it spans tenants.
    """
    query = (
        select(reports)
        .where(reports.c.schedule_active == true(), reports.c.next_fire_at <= now)
        .order_by(reports.c.next_fire_at, reports.c.id)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [_report_from_row(row) for row in connection.execute(query)]


def _report_event(report: Report, action: Action, actor: Actor, **details: DetailValue) -> AuditEvent:
    schedule = report.schedule
    return AuditEvent(
        report.account_id,
        action,
        actor,
        "report",
        report.id,
        {
            "name": report.name[:200],
            "viewers": report.definition.viewers,
            "editors": report.definition.editors,
            "scheduleActive": bool(schedule and schedule.active),
            **details,
        },
    )


def _update_events(before: Report, after: Report, actor: Actor) -> list[AuditEvent]:
    """``report.updated``, plus ``report.access_changed`` and ``report.schedule_changed`` when
    the update changed them."""
    events = [_report_event(after, Action.REPORT_UPDATED, actor)]
    old, new = before.definition, after.definition
    if (old.viewers, old.editors) != (new.viewers, new.editors):
        events.append(
            _report_event(
                after, Action.REPORT_ACCESS_CHANGED, actor, previousViewers=old.viewers, previousEditors=old.editors
            )
        )
    old_schedule = old.schedule.to_json() if old.schedule else None
    new_schedule = new.schedule.to_json() if new.schedule else None
    if old_schedule != new_schedule:
        events.append(
            _report_event(
                after,
                Action.REPORT_SCHEDULE_CHANGED,
                actor,
                previousScheduleActive=bool(old.schedule and old.schedule.active),
                hadSchedule=old.schedule is not None,
                hasSchedule=new.schedule is not None,
            )
        )
    return events


def _next_fire_at(definition: ReportDefinition, now: datetime) -> datetime | None:
    schedule = definition.schedule
    if schedule is None or not schedule.active:
        return None
    return next_fire_time(schedule, now)


def _row_values(report: Report) -> dict[str, Any]:
    return {
        "id": report.id,
        "account_id": report.account_id,
        "name": report.definition.name,
        "entity": report.definition.entity,
        "definition": report.definition.to_json(),
        "viewers": report.definition.viewers,
        "editors": report.definition.editors,
        "schedule_active": report.schedule is not None and report.schedule.active,
        "next_fire_at": report.next_fire_at,
        "created_at": report.created_at,
        "updated_at": report.updated_at,
    }


def _report_from_row(row: Any) -> Report:
    return Report(
        id=row.id,
        account_id=row.account_id,
        definition=parse_report_definition(row.definition),
        created_at=row.created_at,
        updated_at=row.updated_at,
        next_fire_at=row.next_fire_at,
    )
