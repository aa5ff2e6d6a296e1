"""The audit log's use cases: read an account's events a page at a time, record what changes
nothing else (tokens issued, downloads), and record authentication failures without letting a
flood of them fill the table.

To record an action that changes the database, write its event in the same transaction:
``uvm_reporting.database.audit.record_event(connection, AuditEvent(...))``. For one that changes
nothing (or whose change happens elsewhere, such as a key file written), call
``AuditLog(engine).record(AuditEvent(...))``, e.g. after a signing key rotated::

    AuditLog(engine).record(
        AuditEvent(None, Action.KEY_ROTATED, Actor.operator(operator_name()), "signing_key", new_kid)
    )
"""

from __future__ import annotations

import base64
import binascii
import getpass
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from uvm_reporting.database.audit import (
    EventFilter,
    StoredEvent,
    delete_events_before,
    list_events,
    record_event_now,
)
from uvm_reporting.domain.audit import Action, Actor, AuditEvent
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import BadUserInput

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
AUTH_FAILURE_WINDOW_SECONDS = 60.0
"""At most one ``auth.failed`` row per API client per window, per process; the row says how
many failures of that client were not recorded since the previous one (``suppressed``)."""
_KNOWN_CLIENTS_TRACKED = 10_000
NO_FILTER = EventFilter()


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[StoredEvent]
    cursors: list[str]
    has_next_page: bool

    @property
    def end_cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None


@dataclass
class AuditLog:
    engine: Engine

    def record(self, event: AuditEvent) -> None:
        """Record an action that changes nothing in the database (its own transaction)."""
        record_event_now(self.engine, event)

    def events(
        self,
        account_id: str | None,
        *,
        first: int | None = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        event_filter: EventFilter = NO_FILTER,
    ) -> EventPage:
        """A page of ``account_id``'s events, newest first, after the cursor ``after``."""
        first = DEFAULT_PAGE_SIZE if first is None else first
        if not 1 <= first <= MAX_PAGE_SIZE:
            raise BadUserInput(f"first must be between 1 and {MAX_PAGE_SIZE} (the page size limit); got {first}.")
        before = None if after is None else decode_cursor(after)
        rows = list_events(self.engine, account_id, limit=first + 1, event_filter=event_filter, before=before)
        page = rows[:first]
        return EventPage(page, [encode_cursor(event) for event in page], has_next_page=len(rows) > first)

    def delete_expired(self, retention_days: int, *, now: datetime | None = None) -> int:
        """Delete the events older than ``retention_days`` (0: keep them all); how many."""
        if retention_days <= 0:
            return 0
        return delete_events_before(self.engine, (now or utc_now()) - timedelta(days=retention_days))


def encode_cursor(event: StoredEvent) -> str:
    text = f"{event.occurred_at.isoformat()}|{event.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    bad = BadUserInput("after is not a cursor of this list; pass a pageInfo.endCursor as it was returned.")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, event_id = text.partition("|")
        occurred_at = datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad from None
    if occurred_at.tzinfo is None or not event_id:
        raise bad
    return occurred_at, event_id


def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO-8601 time with a zone (``2026-12-01T00:00:00Z``) of a filter, or None."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise BadUserInput(f"{name} must be an ISO-8601 time with a zone, such as 2026-12-01T00:00:00Z.")
    return parsed


def operator_name() -> str | None:
    """The local user running the CLI, recorded as the operator's actor id when known."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


@dataclass
class AuthFailures:
    """Records ``auth.failed`` for known API clients only: a failure naming no client has no
    account to file it under, and recording it would let anyone fill the table with made-up
    client ids (the access log still has every refused request). Per process, at most one row
    per client per ``window_seconds``; the next row counts the failures left out in between
    (``suppressed``)."""

    engine: Engine
    window_seconds: float = AUTH_FAILURE_WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    # client id -> [start of its window, failures left out in it]; the oldest go past the bound.
    _windows: OrderedDict[str, list[float]] = field(default_factory=OrderedDict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def failed(self, account_id: str, client_id: str, actor: Actor, *, endpoint: str, reason: str) -> bool:
        """Note a refused request of a known client; True when a row was written."""
        now = self.clock()
        with self._lock:
            window = self._windows.get(client_id)
            if window is not None and now - window[0] < self.window_seconds:
                window[1] += 1
                return False
            carried = int(window[1]) if window is not None else 0
            self._windows[client_id] = [now, 0]
            self._windows.move_to_end(client_id)
            while len(self._windows) > _KNOWN_CLIENTS_TRACKED:
                self._windows.popitem(last=False)
        details: dict[str, Any] = {"endpoint": endpoint, "reason": reason}
        if carried:
            details["suppressed"] = carried
        try:
            record_event_now(
                self.engine, AuditEvent(account_id, Action.AUTH_FAILED, actor, "api_client", client_id, details)
            )
        except Exception:  # an audit write must not turn a 401 into a 500
            log.exception("could not record an authentication failure of client %s", client_id)
        return True
