"""The scheduler on a real database, with a clock the tests move: one run per fire time, always."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from uvm_reporting.database.accounts import Account
from uvm_reporting.database.engine import create_database_engine
from uvm_reporting.database.reports import Report, create_report, due_schedules, get_report, update_report
from uvm_reporting.database.tables import reports, runs
from uvm_reporting.domain.runs import Delivery, RunRecord, RunState
from uvm_reporting.domain.schedule.fire_times import next_fire_time
from uvm_reporting.scheduler import Scheduler
from uvm_reporting.settings import Settings

ROLE = "arn:aws:iam::123456789012:role/uvm-export"
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, midnight UTC


class Clock:
    """The scheduler's clock: the test moves it, nothing sleeps."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def scheduled(name: str = "Daily export", **schedule: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "format": "csv",
        "compression": "gzip",
        "delivery": {
            "method": "s3",
            "bucket": "acme-exports",
            "path": "uvm/reports",
            "region": "eu-west-1",
            "role_arn": ROLE,
        },
        "frequency": "daily",
        "time": "06:30",
    }
    settings.update(schedule)
    return {"name": name, "entity": "findings", "columns": ["id", "title", "severity"], "schedule": settings}


def all_runs(engine: Engine, report_id: str | None = None) -> list[Any]:
    query = select(runs).order_by(runs.c.scheduled_for, runs.c.id)
    if report_id is not None:
        query = query.where(runs.c.report_id == report_id)
    with engine.connect() as connection:
        return list(connection.execute(query))


def run_every(scheduler: Scheduler, clock: Clock, until: datetime, step: timedelta) -> list[RunRecord]:
    return [run for _, run in ticks(scheduler, clock, until, step)]


def ticks(scheduler: Scheduler, clock: Clock, until: datetime, step: timedelta) -> list[tuple[datetime, RunRecord]]:
    """Tick every ``step`` until ``until``: each run created, with the time of the tick."""
    created: list[tuple[datetime, RunRecord]] = []
    while clock.now < until:
        clock.advance(step)
        created.extend((clock.now, run) for run in scheduler.tick())
    return created


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY)


@pytest.fixture
def scheduler(engine: Engine, clock: Clock) -> Scheduler:
    return Scheduler(engine, clock=clock)


def test_an_active_daily_schedule_gets_one_run_per_fire_time_over_a_week(
    engine: Engine, account: Account, clock: Clock, scheduler: Scheduler
) -> None:
    report = create_report(engine, account.id, scheduled(), now=clock.now)
    step = timedelta(minutes=15)
    ticked = ticks(scheduler, clock, MONDAY + timedelta(days=7), step)
    created = [run for _, run in ticked]

    fire_times = [MONDAY + timedelta(days=day, hours=6, minutes=30) for day in range(7)]
    assert [run.scheduled_for for run in created] == fire_times
    assert [row.scheduled_for for row in all_runs(engine)] == fire_times
    for run in created:
        assert run.state is RunState.QUEUED
        assert run.delivery is Delivery.S3
        assert run.account_id == account.id
        assert run.report_id == report.id
        assert run.format == "csv"
        assert run.compression == "gzip"
        assert run.requested_by is None
        assert run.definition == report.definition.to_json()
    for tick_time, run in ticked:
        # Queued by the first tick at or after its fire time.
        assert run.scheduled_for is not None
        assert run.scheduled_for <= tick_time < run.scheduled_for + step
        assert run.destination == {
            "bucket": "acme-exports",
            "key": f"uvm/reports/Daily-export-{run.scheduled_for.date().isoformat()}-{run.id}.csv.gz",
            "region": "eu-west-1",
            "role_arn": ROLE,
        }
    assert get_report(engine, account.id, report.id).next_fire_at == MONDAY + timedelta(days=7, hours=6, minutes=30)


def test_each_fire_time_is_enqueued_by_the_first_tick_at_or_after_it(
    engine: Engine, account: Account, clock: Clock, scheduler: Scheduler
) -> None:
    create_report(engine, account.id, scheduled(frequency="hourly", time="00:20"), now=clock.now)
    clock.now = MONDAY + timedelta(minutes=19)
    assert scheduler.tick() == []
    clock.now = MONDAY + timedelta(minutes=20)
    [run] = scheduler.tick()
    assert run.scheduled_for == clock.now
    assert scheduler.tick() == []  # the same moment again: nothing new
    clock.now = MONDAY + timedelta(hours=1, minutes=19, seconds=59)
    assert scheduler.tick() == []


def test_an_inactive_schedule_gets_no_runs(
    engine: Engine, account: Account, clock: Clock, scheduler: Scheduler
) -> None:
    report = create_report(engine, account.id, scheduled(active=False), now=clock.now)
    assert report.next_fire_at is None
    assert run_every(scheduler, clock, MONDAY + timedelta(days=3), timedelta(hours=1)) == []
    assert all_runs(engine) == []
    with engine.connect() as connection:
        row = connection.execute(select(reports).where(reports.c.id == report.id)).one()
    assert (row.schedule_active, row.next_fire_at) == (False, None)


def test_a_report_without_schedule_is_never_due(
    engine: Engine, account: Account, clock: Clock, scheduler: Scheduler
) -> None:
    data = scheduled()
    del data["schedule"]
    report = create_report(engine, account.id, data, now=clock.now)
    assert report.next_fire_at is None
    assert run_every(scheduler, clock, MONDAY + timedelta(days=2), timedelta(hours=6)) == []


def test_a_scheduler_down_for_five_days_enqueues_one_coalesced_run_then_resumes(
    engine: Engine, account: Account, clock: Clock, scheduler: Scheduler
) -> None:
    report = create_report(engine, account.id, scheduled(), now=clock.now)
    clock.now = MONDAY + timedelta(hours=7)
    [monday] = scheduler.tick()
    assert monday.scheduled_for == MONDAY + timedelta(hours=6, minutes=30)

    clock.now = MONDAY + timedelta(days=5, hours=8)  # Saturday 08:00: Tuesday to Saturday were missed
    [coalesced] = scheduler.tick()
    assert coalesced.scheduled_for == MONDAY + timedelta(days=5, hours=6, minutes=30)
    assert scheduler.tick() == []
    assert get_report(engine, account.id, report.id).next_fire_at == MONDAY + timedelta(days=6, hours=6, minutes=30)

    created = run_every(scheduler, clock, MONDAY + timedelta(days=8), timedelta(minutes=30))
    assert [run.scheduled_for for run in created] == [
        MONDAY + timedelta(days=day, hours=6, minutes=30) for day in (6, 7)
    ]
    assert len(all_runs(engine)) == 4


def test_the_next_fire_time_is_on_the_report(
    engine: Engine, account: Account, clock: Clock, scheduler: Scheduler
) -> None:
    report = create_report(engine, account.id, scheduled(timezone="Europe/Berlin"), now=clock.now)
    first = MONDAY + timedelta(hours=5, minutes=30)  # 06:30 CET
    assert report.next_fire_at == first
    assert get_report(engine, account.id, report.id).next_fire_at == first
    assert [r.id for r in due_schedules(engine, first - timedelta(seconds=1))] == []
    assert [r.id for r in due_schedules(engine, first)] == [report.id]

    clock.now = first + timedelta(minutes=1)
    scheduler.tick()
    assert get_report(engine, account.id, report.id).next_fire_at == first + timedelta(days=1)
    assert due_schedules(engine, clock.now) == []


def test_a_report_edited_to_inactive_stops_firing_and_fires_again_when_reactivated(
    engine: Engine, account: Account, clock: Clock, scheduler: Scheduler
) -> None:
    report = create_report(engine, account.id, scheduled(), now=clock.now)
    assert len(run_every(scheduler, clock, MONDAY + timedelta(hours=12), timedelta(hours=1))) == 1

    paused = update_report(engine, account.id, report.id, scheduled(active=False), now=clock.now)
    assert paused.next_fire_at is None
    assert run_every(scheduler, clock, MONDAY + timedelta(days=3, hours=12), timedelta(hours=1)) == []

    resumed = update_report(engine, account.id, report.id, scheduled(), now=clock.now)
    assert resumed.next_fire_at == MONDAY + timedelta(days=4, hours=6, minutes=30)
    created = run_every(scheduler, clock, MONDAY + timedelta(days=5), timedelta(hours=1))
    assert [run.scheduled_for for run in created] == [MONDAY + timedelta(days=4, hours=6, minutes=30)]


def test_an_edit_moves_the_next_fire_time(engine: Engine, account: Account, clock: Clock, scheduler: Scheduler) -> None:
    report = create_report(engine, account.id, scheduled(), now=clock.now)
    moved = update_report(engine, account.id, report.id, scheduled(time="05:00"), now=clock.now)
    assert moved.next_fire_at == MONDAY + timedelta(hours=5)
    created = run_every(scheduler, clock, MONDAY + timedelta(hours=12), timedelta(minutes=10))
    assert [run.scheduled_for for run in created] == [MONDAY + timedelta(hours=5)]


def test_an_edit_just_after_a_fire_time_keeps_that_run(
    engine: Engine, account: Account, clock: Clock, scheduler: Scheduler
) -> None:
    report = create_report(engine, account.id, scheduled(), now=clock.now)
    fire = MONDAY + timedelta(hours=6, minutes=30)
    clock.now = fire + timedelta(seconds=5)  # due, but no tick yet
    edited = scheduled()
    edited["schedule"]["delivery"]["bucket"] = "acme-new-exports"
    assert update_report(engine, account.id, report.id, edited, now=clock.now).next_fire_at == fire
    [run] = scheduler.tick()
    assert run.scheduled_for == fire
    assert run.destination is not None
    assert run.destination["bucket"] == "acme-new-exports"


def test_a_report_edited_after_the_scheduler_read_it_is_enqueued_as_edited(
    engine: Engine, account: Account, clock: Clock, scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = create_report(engine, account.id, scheduled(), now=clock.now)
    fire = MONDAY + timedelta(hours=6, minutes=30)
    clock.now = fire + timedelta(seconds=5)
    read_before_the_edit = due_schedules(engine, clock.now)
    edited = scheduled()
    edited["schedule"]["delivery"]["bucket"] = "acme-new-exports"
    update_report(engine, account.id, report.id, edited, now=clock.now)

    monkeypatch.setattr("uvm_reporting.scheduler.service.due_schedules", lambda *_, **__: read_before_the_edit)
    assert scheduler.tick() == []  # the row changed since it was read: left for the next tick
    monkeypatch.undo()
    [run] = scheduler.tick()
    assert run.scheduled_for == fire
    assert run.destination is not None
    assert run.destination["bucket"] == "acme-new-exports"
    assert run.definition == get_report(engine, account.id, report.id).definition.to_json()


def test_a_fire_time_that_has_its_run_already_is_skipped_and_the_schedule_advances(
    engine: Engine, account: Account, clock: Clock, scheduler: Scheduler
) -> None:
    report = create_report(engine, account.id, scheduled(), now=clock.now)
    fire = MONDAY + timedelta(hours=6, minutes=30)
    clock.now = fire
    [run] = scheduler.tick()
    # As if a slow writer had put back the fire time the scheduler just enqueued.
    with engine.begin() as connection:
        connection.execute(update(reports).where(reports.c.id == report.id).values(next_fire_at=fire))
    assert scheduler.tick() == []
    assert [row.id for row in all_runs(engine)] == [run.id]
    assert get_report(engine, account.id, report.id).next_fire_at == fire + timedelta(days=1)


def test_on_enqueued_is_called_once_per_tick_that_created_runs(engine: Engine, account: Account, clock: Clock) -> None:
    calls: list[datetime] = []
    scheduler = Scheduler(engine, clock=clock, on_enqueued=lambda: calls.append(clock.now))
    for name in ("One", "Two"):
        create_report(engine, account.id, scheduled(name), now=clock.now)
    clock.now = MONDAY + timedelta(hours=6)
    assert scheduler.tick() == []
    clock.now = MONDAY + timedelta(hours=7)
    assert len(scheduler.tick()) == 2
    assert scheduler.tick() == []
    assert calls == [MONDAY + timedelta(hours=7)]


def test_schedules_of_every_account_are_served_oldest_first(
    engine: Engine, account: Account, other_account: Account, clock: Clock, scheduler: Scheduler
) -> None:
    late = create_report(engine, account.id, scheduled("Late", time="06:45"), now=clock.now)
    early = create_report(engine, other_account.id, scheduled("Early", time="06:15"), now=clock.now)
    clock.now = MONDAY + timedelta(hours=7)
    assert [r.id for r in due_schedules(engine, clock.now)] == [early.id, late.id]
    assert [r.id for r in due_schedules(engine, clock.now, limit=1)] == [early.id]
    created = scheduler.tick()
    assert [(run.report_id, run.account_id) for run in created] == [(early.id, other_account.id), (late.id, account.id)]


def test_more_due_reports_than_one_batch_are_all_enqueued_in_one_tick(
    engine: Engine, account: Account, clock: Clock, scheduler: Scheduler
) -> None:
    for number in range(105):
        create_report(engine, account.id, scheduled(f"Report {number}"), now=clock.now)
    clock.now = MONDAY + timedelta(hours=7)
    assert len(scheduler.tick()) == 105
    assert scheduler.tick() == []


def test_run_forever_ticks_until_stopped(engine: Engine, account: Account, clock: Clock) -> None:
    create_report(engine, account.id, scheduled(), now=clock.now)
    clock.now = MONDAY + timedelta(hours=7)
    stop = threading.Event()
    # The first tick that enqueues stops the loop, so the long interval is never waited out.
    Scheduler(engine, clock=clock, on_enqueued=stop.set).run_forever(stop, interval_seconds=3600)
    assert len(all_runs(engine)) == 1


def test_a_failing_tick_is_logged_and_does_not_end_the_loop(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    calls = 0

    def failing_clock() -> datetime:
        nonlocal calls
        calls += 1
        if calls == 2:
            stop.set()
        raise RuntimeError("clock broke")

    with caplog.at_level(logging.ERROR, logger="uvm_reporting.scheduler.service"):
        # Between ticks the loop waits on the event; a zero interval keeps the test instant.
        Scheduler(engine, clock=failing_clock).run_forever(stop, interval_seconds=0)
    assert calls == 2
    assert [r.getMessage() for r in caplog.records] == ["scheduler tick failed; retrying in 0s"] * 2


# --- several schedulers at once -----------------------------------------------------------------


def race(settings: Settings, clock: Clock, schedulers: int, steps: int, step: timedelta) -> list[RunRecord]:
    """``schedulers`` schedulers, each with its own engine (as separate processes would have),
    tick at the same moment, ``steps`` times; the clock moves between rounds."""
    engines = [create_database_engine(settings.database_url) for _ in range(schedulers)]
    barrier = threading.Barrier(schedulers + 1, timeout=60)
    created: list[RunRecord] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def ticker(engine: Engine) -> None:
        scheduler = Scheduler(engine, clock=clock)
        for _ in range(steps):
            barrier.wait()
            try:
                runs_created = scheduler.tick()
            except BaseException as error:  # noqa: BLE001 - reported by the test below
                errors.append(error)
                runs_created = []
            with lock:
                created.extend(runs_created)
            barrier.wait()

    threads = [threading.Thread(target=ticker, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    try:
        for _ in range(steps):
            barrier.wait()  # all tick now
            barrier.wait()  # all are done
            clock.advance(step)
    finally:
        for thread in threads:
            thread.join(60)
        for engine in engines:
            engine.dispose()
    assert errors == []
    return created


@pytest.mark.parametrize("schedulers", [2, 3])
def test_concurrent_schedulers_create_exactly_one_run_per_fire_time(
    engine: Engine, settings: Settings, account: Account, clock: Clock, schedulers: int
) -> None:
    reports: list[Report] = [
        create_report(engine, account.id, scheduled("Hourly", frequency="hourly", time="00:00"), now=clock.now),
        create_report(
            engine, account.id, scheduled("Quarterly", frequency="cron", time=None, cron="*/15 * * * *"), now=clock.now
        ),
        create_report(engine, account.id, scheduled("Daily", time="00:30"), now=clock.now),
    ]
    clock.now = MONDAY + timedelta(minutes=1)
    steps, step = 48, timedelta(minutes=15)  # 12 hours
    created = race(settings, clock, schedulers, steps, step)

    end = MONDAY + timedelta(minutes=1) + (steps - 1) * step
    stored = all_runs(engine)
    # No duplicates: every run a scheduler reports exists, once, and no other run exists.
    assert Counter(run.id for run in created) == Counter(row.id for row in stored)
    assert len({(row.report_id, row.scheduled_for) for row in stored}) == len(stored)
    # No gaps: every fire time of every schedule up to the last tick has its run.
    for report in reports:
        assert report.schedule is not None
        expected = []
        fire = MONDAY
        while (fire := next_fire_time(report.schedule, fire)) <= end:
            expected.append(fire)
        assert [row.scheduled_for for row in stored if row.report_id == report.id] == expected, report.name
    assert {row.state for row in stored} == {RunState.QUEUED.value}
    assert len(stored) == 11 + 47 + 1  # hourly 01:00-11:00, quarter-hourly 00:15-11:45, daily 00:30
