"""The scheduler's writes: claim a report's due fire time and enqueue its run, atomically.

Advancing ``next_fire_at`` first claims the fire time: a scheduler that read the same row
finds it changed and does nothing (on PostgreSQL it waits for our row lock). ``updated_at``
must match too: a report edited since it was read is left to the next tick, which reads the
new definition and schedule. The unique (report, fire time) of runs backs this up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, Engine, true, update
from sqlalchemy.exc import IntegrityError

from uvm_reporting.database.reports import Report
from uvm_reporting.database.tables import reports
from uvm_reporting.domain.runs import RunRecord

log = logging.getLogger(__name__)

EnqueueRun = Callable[[Connection], RunRecord]
"""Inserts the fire time's run on the given connection (inside the claiming transaction)."""


def advance_and_enqueue(
    engine: Engine, report: Report, *, following: datetime, enqueue: EnqueueRun | None
) -> RunRecord | None:
    """Move ``report``'s next fire time from what was read to ``following`` and, when that
    wins, enqueue its run with ``enqueue`` (None: the schedule has no fire time to run). The
    new run, or None when another scheduler took the fire time, the report changed since it
    was read, or the fire time has its run already."""
    seen = report.next_fire_at
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection, connection.begin():
        advanced = connection.execute(
            update(reports)
            .where(
                reports.c.id == report.id,
                reports.c.next_fire_at == seen,
                reports.c.schedule_active == true(),
                reports.c.updated_at == report.updated_at,
            )
            .values(next_fire_at=following)
        ).rowcount
        if advanced != 1:
            log.debug("report %s: fire time %s was taken by another scheduler, or the report changed", report.id, seen)
            return None
        if enqueue is None:
            return None
        try:
            # A savepoint: if the fire time has its run already, keep the advance anyway, so the
            # report does not stay due on a fire time that can never be enqueued again.
            with connection.begin_nested():
                return enqueue(connection)
        except IntegrityError:
            log.info("report %s: its fire time has its run already", report.id)
            return None
