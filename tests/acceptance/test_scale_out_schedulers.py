"""Three ``uvm-reporting scheduler`` processes racing over the same every-minute schedules: each fire
time gets exactly one run, the missed fire times of a backdated schedule are coalesced into one, and
the schedules go on minute by minute without a gap. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import collections
import re
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.support.cli import cli_process, stop_processes, wait_for_log
from tests.support.waiting import wait_for, wait_until
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.engine import open_database
from uvm_reporting.database.reports import Report, create_report
from uvm_reporting.database.tables import runs
from uvm_reporting.domain.timestamps import utc_now

REPORTS = 150  # more than one batch of a tick (100), and ticks long enough to overlap
SCHEDULERS = 3
MINUTE = timedelta(minutes=1)
# The schedulers must tick for the first time in the minute they were started in (start-up takes a
# second or two): closer than this to the next minute, the test waits for that minute first.
START_MARGIN = timedelta(seconds=12)
ENQUEUED = re.compile(r"enqueued run (\S+) of report (\S+) \(account \S+\) for fire time (\S+),")


def every_minute(number: int) -> dict[str, Any]:
    return {
        "name": f"Every minute {number}",
        "entity": "findings",
        "columns": ["id", "title", "severity"],
        "viewers": "public",
        "editors": "public",
        "schedule": {
            "format": "csv",
            "delivery": {
                "method": "s3",
                "bucket": "acme-exports",
                "path": "uvm",
                "region": "us-east-1",
                "role_arn": "arn:aws:iam::123456789012:role/uvm-export",
            },
            "frequency": "cron",
            "cron": "* * * * *",
            "active": True,
        },
    }


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def scheduled_for_by_report(engine: Engine) -> dict[str, list[datetime]]:
    by_report: dict[str, list[datetime]] = collections.defaultdict(list)
    with engine.connect() as connection:
        for report_id, scheduled_for in connection.execute(select(runs.c.report_id, runs.c.scheduled_for)):
            by_report[report_id].append(scheduled_for)
    return {report_id: sorted(times) for report_id, times in by_report.items()}


def every_report_reached(engine: Engine, fire_time: datetime) -> bool:
    seen = scheduled_for_by_report(engine)
    return len(seen) == REPORTS and all(times[-1] >= fire_time for times in seen.values())


def clear_of_the_next_minute() -> datetime:
    """Now, once at least START_MARGIN is left before the next whole minute."""
    now = utc_now()
    if minute_of(now) + MINUTE - now < START_MARGIN:
        wait_for(
            lambda: minute_of(utc_now()) > minute_of(now),
            timeout=START_MARGIN.total_seconds() + 5,
            what="the next minute",
        )
        now = utc_now()
    return now


# It waits for the next minute's fire time (up to two minutes): in the slow step of CI.
@pytest.mark.slow
def test_three_racing_schedulers_give_each_fire_time_exactly_one_run(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "var"
    engine = open_database(database_url)
    logs = [tmp_path / f"scheduler-{n}.log" for n in range(SCHEDULERS)]
    try:
        account = create_account(engine, "Acme Corp")
        long_ago = utc_now() - timedelta(minutes=30)
        reports: list[Report] = [
            create_report(engine, account.id, every_minute(n), now=long_ago) for n in range(REPORTS)
        ]
        assert all(r.next_fire_at is not None and r.next_fire_at <= long_ago + MINUTE for r in reports)

        # DEBUG: a scheduler then logs each fire time it found taken by another one.
        # No run quota: with no workers, the runs of 150 reports stay queued in one account.
        env = {
            "UVM_REPORTING_DATABASE_URL": database_url,
            "UVM_REPORTING_LOG_LEVEL": "DEBUG",
            "UVM_REPORTING_MAX_ACTIVE_RUNS_PER_ACCOUNT": "0",
        }
        started_at = clear_of_the_next_minute()
        first_fire_time = minute_of(started_at)  # the latest fire time at or before the start
        with ExitStack() as stack:
            schedulers = [
                stack.enter_context(cli_process(data_dir, log, "scheduler", "--interval", "0.5", env=env))
                for log in logs
            ]
            for log, process in zip(logs, schedulers, strict=True):
                wait_for_log(log, r"scheduler started", process=process)
            # Every report gets its coalesced run, then its run for the next minute, when the three
            # schedulers all find it due again at about the same moment.
            wait_until(
                lambda: every_report_reached(engine, first_fire_time + MINUTE),
                timeout=90,
                poll=0.25,
                what="a run of every report for the minute after the start",
            )
            stopped = stop_processes(schedulers, timeout=10)
        stopped_at = utc_now()
        times_by_report = scheduled_for_by_report(engine)
        with engine.connect() as connection:
            run_ids = {
                row.id: (row.report_id, row.scheduled_for)
                for row in connection.execute(select(runs.c.id, runs.c.report_id, runs.c.scheduled_for))
            }
    finally:
        engine.dispose()

    texts = [log.read_text() for log in logs]
    for text, (code, took) in zip(texts, stopped, strict=True):
        assert code == 0, text
        assert took < 5, f"a scheduler took {took:.1f}s to stop"
        assert "scheduler stopped" in text
        # Each conflict is settled by the conditional advance of next_fire_at, not by the unique
        # (report, fire time) constraint of runs.
        assert "has its run already" not in text
        for bad in ("ERROR", "CRITICAL", "Traceback"):
            assert bad not in text, text

    assert set(times_by_report) == {r.id for r in reports}
    last_fire_time = minute_of(stopped_at)
    for report_id, times in times_by_report.items():
        assert len(times) == len(set(times)), (report_id, times)  # one run per fire time
        assert times[0] == first_fire_time, (report_id, times, started_at)  # missed ones coalesced
        assert times == [first_fire_time + n * MINUTE for n in range(len(times))], (report_id, times)  # no gap
        assert times[-1] <= last_fire_time

    # Each run was enqueued by exactly one scheduler, as its log says.
    enqueued = [match for text in texts for match in ENQUEUED.findall(text)]
    counts = collections.Counter(run_id for run_id, _, _ in enqueued)
    assert set(counts) == set(run_ids)
    assert max(counts.values()) == 1
    for run_id, report_id, fire_time in enqueued:
        assert run_ids[run_id] == (report_id, datetime.fromisoformat(fire_time))
    print(
        f"{engine.dialect.name}: runs enqueued per scheduler: "
        + ", ".join(str(len(ENQUEUED.findall(text))) for text in texts)
        + "; fire times found taken by another scheduler: "
        + ", ".join(str(text.count("was taken by another scheduler")) for text in texts)
    )
