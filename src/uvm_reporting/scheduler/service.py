"""The scheduler: enqueues a run for each due fire time of every active schedule.

Each tick reads the reports whose ``next_fire_at`` has passed. For each, every fire time
missed up to now (the scheduler was down, or a tick came late) is coalesced into one run, for
the latest of them: an export is a snapshot of the current data, so replaying missed ones
would deliver the same file several times. A fire time whose account has its quota of active
runs already gets its run recorded as Failed (QUOTA_EXCEEDED), so the skipped delivery shows
in the report's runs instead of vanishing. In one transaction the scheduler advances
``next_fire_at`` past now, conditionally on it still being the value it read, and inserts the
run (database/schedules.py). Whoever advances the row first enqueues the run; the unique (report,
fire time) of runs backs that up, so any number of schedulers may tick at once and each fire
time gets one run. The run's ``run.started`` audit event is written in that same transaction.

Now and then (``PURGE_INTERVAL_SECONDS``) a tick also deletes the audit events older than the
retention; several schedulers doing so at once only share the work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial

from sqlalchemy import Connection, Engine

from uvm_reporting.application.audit import AuditLog
from uvm_reporting.application.report_runs import run_started
from uvm_reporting.database.audit import record_event
from uvm_reporting.database.reports import Report, due_schedules
from uvm_reporting.database.runs import enqueue_delivery
from uvm_reporting.database.schedules import advance_and_enqueue
from uvm_reporting.domain.audit import Actor
from uvm_reporting.domain.runs import RunRecord, RunState
from uvm_reporting.domain.schedule.fire_times import latest_fire_time_at_or_before, next_fire_time
from uvm_reporting.domain.schedule.settings import ScheduleSettings
from uvm_reporting.domain.timestamps import utc_now

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 15.0
BATCH_SIZE = 100
PURGE_INTERVAL_SECONDS = 3600.0


class Scheduler:
    """Turns due fire times into queued S3 runs; safe to run in several processes at once."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utc_now,
        on_enqueued: Callable[[], None] | None = None,
        audit_retention_days: int = 0,
        max_active_runs: int | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._on_enqueued = on_enqueued
        self._audit_retention_days = audit_retention_days
        self._next_purge_at: float | None = None  # monotonic; None: at the first tick
        self._max_active_runs = max_active_runs

    def tick(self) -> list[RunRecord]:
        """Enqueue what is due now; the runs this scheduler created (not those of others)."""
        now = self._clock()
        created: list[RunRecord] = []
        seen: set[str] = set()
        while True:
            batch = due_schedules(self._engine, now, limit=BATCH_SIZE)
            # A report whose turn failed stays due; skip it so the loop ends (next tick retries).
            fresh = [report for report in batch if report.id not in seen]
            for report in fresh:
                seen.add(report.id)
                run = self._fire(report, now)
                if run is not None:
                    created.append(run)
            if not fresh or len(batch) < BATCH_SIZE:
                break
        if created and self._on_enqueued is not None:
            self._on_enqueued()
        return created

    def run_forever(self, stop: threading.Event, interval_seconds: float = DEFAULT_INTERVAL_SECONDS) -> None:
        """Tick every ``interval_seconds`` until ``stop`` is set; a failed tick is logged, not fatal."""
        log.info("scheduler started; checking for due schedules every %gs", interval_seconds)
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the next tick retries; stopping would stop every schedule
                log.exception("scheduler tick failed; retrying in %gs", interval_seconds)
            self.purge_audit_events_if_due()
            stop.wait(interval_seconds)
        log.info("scheduler stopped")

    def purge_audit_events_if_due(self) -> int:
        """Delete the audit events past their retention, at most every ``PURGE_INTERVAL_SECONDS``
        (and at the first call); how many. A failure is logged and tried again next time."""
        if self._audit_retention_days <= 0:
            return 0
        now = time.monotonic()
        if self._next_purge_at is not None and now < self._next_purge_at:
            return 0
        self._next_purge_at = now + PURGE_INTERVAL_SECONDS
        try:
            deleted = AuditLog(self._engine).delete_expired(self._audit_retention_days, now=self._clock())
        except Exception:
            log.exception("deleting expired audit events failed; trying again in %gs", PURGE_INTERVAL_SECONDS)
            return 0
        if deleted:
            log.info("deleted %d audit events older than %d days", deleted, self._audit_retention_days)
        return deleted

    def _fire(self, report: Report, now: datetime) -> RunRecord | None:
        try:
            return self._enqueue_due(report, now)
        except Exception:  # one report's failure must not hold up the others
            log.exception("enqueueing the scheduled run of report %s failed; retrying next tick", report.id)
            return None

    def _enqueue_due(self, report: Report, now: datetime) -> RunRecord | None:
        schedule = report.schedule
        seen = report.next_fire_at
        if schedule is None or not schedule.active or seen is None:  # due_schedules returns none of these
            return None
        fire_at = latest_fire_time_at_or_before(schedule, now, not_before=seen)
        following = next_fire_time(schedule, now)
        # No fire time when the schedule changed since and none of its fire times fell in between.
        enqueue = None if fire_at is None else partial(self._enqueue, report, schedule, fire_at)
        run = advance_and_enqueue(self._engine, report, following=following, enqueue=enqueue)
        if run is None or fire_at is None:
            return None
        if run.state is RunState.FAILED:
            log.warning(
                "run %s of report %s (account %s) for fire time %s was not queued: %s",
                run.id,
                report.id,
                report.account_id,
                fire_at.isoformat(),
                run.error_message,
            )
            return run
        log.info(
            "enqueued run %s of report %s (account %s) for fire time %s, to s3://%s/%s; next fire time %s",
            run.id,
            report.id,
            report.account_id,
            fire_at.isoformat(),
            schedule.delivery.bucket,
            (run.destination or {}).get("key"),
            following.isoformat(),
        )
        return run

    def _enqueue(
        self, report: Report, schedule: ScheduleSettings, fire_at: datetime, connection: Connection
    ) -> RunRecord:
        run = enqueue_delivery(
            self._engine,
            report,
            schedule,
            at=fire_at,
            requested_by=None,
            scheduled_for=fire_at,
            connection=connection,
            max_active_runs=self._max_active_runs,
            fail_over_quota=True,
        )
        record_event(connection, run_started(run, Actor.scheduler()))
        return run
