"""The audit log's rows: written in the transaction of the change they describe, read newest
first by account, deleted past their retention.

``record_event(connection, event)`` is the one way to write an event: call it on the connection
of the transaction that makes the change, so the change and its record commit (or roll back)
together. An action that changes nothing in the database (a token issued, a download) records
with ``record_event_now(engine, event)``, its own short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, delete, insert, or_, select

from uvm_reporting.database.ids import new_id
from uvm_reporting.database.tables import audit_events
from uvm_reporting.domain.audit import Actor, ActorKind, AuditEvent
from uvm_reporting.domain.timestamps import utc_now

_MAX_IP = 45
_MAX_REQUEST_ID = 64
PURGE_BATCH = 5000


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: str
    account_id: str | None
    occurred_at: datetime
    action: str
    actor: Actor
    target_kind: str | None
    target_id: str | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to list. ``actions`` are exact names, or prefixes ending in ``.*``
    (``report.*``); events between ``since`` (inclusive) and ``until`` (exclusive)."""

    actions: tuple[str, ...] = ()
    actor_kind: str | None = None
    actor_id: str | None = None
    target_kind: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def record_event(connection: Connection, event: AuditEvent, *, occurred_at: datetime | None = None) -> str:
    """Write ``event`` on ``connection`` (inside the caller's transaction); its id."""
    event_id = new_id()
    actor = event.actor
    connection.execute(
        insert(audit_events).values(
            id=event_id,
            account_id=event.account_id,
            occurred_at=occurred_at or utc_now(),
            action=event.action,
            actor_kind=actor.kind.value,
            actor_id=_clip(actor.id, 200),
            target_kind=event.target_kind,
            target_id=_clip(event.target_id, 200),
            source_ip=_clip(actor.source_ip, _MAX_IP),
            request_id=_clip(actor.request_id, _MAX_REQUEST_ID),
            details=dict(event.details),
        )
    )
    return event_id


def record_event_now(engine: Engine, event: AuditEvent, *, occurred_at: datetime | None = None) -> str:
    """``record_event`` in a transaction of its own, for actions that change nothing else."""
    with engine.begin() as connection:
        return record_event(connection, event, occurred_at=occurred_at)


def list_events(
    engine: Engine,
    account_id: str | None,
    *,
    limit: int,
    event_filter: EventFilter | None = None,
    before: tuple[datetime, str] | None = None,
) -> list[StoredEvent]:
    """Events of ``account_id`` (None: the deployment-wide ones), newest first, at most ``limit``,
    only those older than the (occurred_at, id) ``before`` when given (the cursor of a page)."""
    column = audit_events.c.account_id
    query = select(audit_events).where(column.is_(None) if account_id is None else column == account_id)
    conditions = _filter_conditions(event_filter or EventFilter())
    if before is not None:
        at, event_id = before
        conditions.append(
            or_(audit_events.c.occurred_at < at, and_(audit_events.c.occurred_at == at, audit_events.c.id < event_id))
        )
    query = query.where(*conditions).order_by(audit_events.c.occurred_at.desc(), audit_events.c.id.desc()).limit(limit)
    with engine.connect() as connection:
        return [_stored(row) for row in connection.execute(query)]


def delete_events_before(engine: Engine, cutoff: datetime, *, batch: int = PURGE_BATCH) -> int:
    """Delete every event older than ``cutoff``, ``batch`` rows per short transaction; how many.

    Safe with several callers at once: each batch deletes what it still finds (on PostgreSQL a
    row another caller is deleting is skipped, not waited for).
    """
    deleted = 0
    while True:
        ids = select(audit_events.c.id).where(audit_events.c.occurred_at < cutoff).limit(batch)
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                ids = ids.with_for_update(skip_locked=True)
            doomed = audit_events.c.id.in_(ids.scalar_subquery())
            count = connection.execute(delete(audit_events).where(doomed)).rowcount
        deleted += count
        if count < batch:
            return deleted


def _filter_conditions(event_filter: EventFilter) -> list[Any]:
    conditions: list[Any] = []
    if event_filter.actions:
        matches: list[ColumnElement[bool]] = []
        for action in event_filter.actions:
            if action.endswith(".*"):
                prefix = action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                matches.append(audit_events.c.action.like(prefix + "%", escape="\\"))
            else:
                matches.append(audit_events.c.action == action)
        conditions.append(or_(*matches))
    for column, value in (
        (audit_events.c.actor_kind, event_filter.actor_kind),
        (audit_events.c.actor_id, event_filter.actor_id),
        (audit_events.c.target_kind, event_filter.target_kind),
        (audit_events.c.target_id, event_filter.target_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if event_filter.since is not None:
        conditions.append(audit_events.c.occurred_at >= event_filter.since)
    if event_filter.until is not None:
        conditions.append(audit_events.c.occurred_at < event_filter.until)
    return conditions


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        id=row.id,
        account_id=row.account_id,
        occurred_at=row.occurred_at,
        action=row.action,
        actor=Actor(ActorKind(row.actor_kind), row.actor_id, row.source_ip, row.request_id),
        target_kind=row.target_kind,
        target_id=row.target_id,
        details=dict(row.details or {}),
    )


def _clip(value: str | None, length: int) -> str | None:
    return None if value is None else value[:length]
