"""Accounts share the run queue fairly: each has a cap of active runs, workers take accounts in
turns, and a queued run knows its place. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from tests.support.reports import ALL_FINDINGS_REPORT, DAILY_S3_SCHEDULE
from tests.support.runs import enqueue_download
from uvm_reporting.api.app import create_app
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.reports import Report, create_report
from uvm_reporting.database.runs import RUNS_CHANNEL, claim_next_run, complete_run, get_run, list_runs
from uvm_reporting.domain.runs import RunRecord, RunResult, RunState
from uvm_reporting.errors import QuotaExceeded, RunErrorCode
from uvm_reporting.scheduler import Scheduler
from uvm_reporting.services import Services, build_services
from uvm_reporting.settings import Settings

FLOOD = 200
# forceNew: each call queues a run of its own (identical requests would join the first).
PROCESS_REPORT = "mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true, forceNew: true)}"
GET_REPORT_RUN_STATUS = "query ($runId: String) { getReportRunStatus(runId: $runId) }"


@pytest.fixture
def big_report(engine: Engine, account: Account) -> Report:
    return create_report(engine, account.id, ALL_FINDINGS_REPORT)


@pytest.fixture
def small_report(engine: Engine, other_account: Account) -> Report:
    return create_report(engine, other_account.id, ALL_FINDINGS_REPORT)


def claim(engine: Engine, worker: str = "w") -> RunRecord | None:
    return claim_next_run(engine, worker, lease_seconds=60, max_attempts=3)


def claims_until(engine: Engine, run_id: str) -> list[RunRecord]:
    """Claim one run after another until ``run_id`` is claimed: every run claimed, in order."""
    claimed: list[RunRecord] = []
    while not claimed or claimed[-1].id != run_id:
        run = claim(engine)
        assert run is not None, f"run {run_id} was never claimed"
        claimed.append(run)
    return claimed


def finish(engine: Engine, run: RunRecord) -> None:
    assert complete_run(engine, run.id, run.worker_id or "w", RunResult(1, 1, "0" * 64, f"{run.id}.csv"))


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_a_small_accounts_run_waits_for_at_most_one_run_per_worker_behind_a_flood(
    engine: Engine, big_report: Report, small_report: Report, workers: int
) -> None:
    flood = [enqueue_download(engine, big_report) for _ in range(FLOOD)]
    busy = [claim(engine, f"w{n}") for n in range(workers)]  # every worker is exporting a flood run
    assert [run.id for run in busy if run] == [run.id for run in flood[:workers]]
    single = enqueue_download(engine, small_report)
    # As each worker comes free, it claims the next run; the small account's is among the next ones.
    claimed = claims_until(engine, single.id)
    flood_runs_ahead = [run for run in claimed if run.account_id == big_report.account_id]
    assert len(flood_runs_ahead) <= workers
    assert len(flood_runs_ahead) <= 1  # in fact at most one: the flood's run of the same round


def test_accounts_take_turns_and_each_accounts_runs_stay_in_order(
    engine: Engine, big_report: Report, small_report: Report
) -> None:
    big = [enqueue_download(engine, big_report) for _ in range(5)]
    small = [enqueue_download(engine, small_report) for _ in range(3)]
    order = [run.id for run in claims_until(engine, big[-1].id)]
    assert order == [big[0].id, small[0].id, big[1].id, small[1].id, big[2].id, small[2].id, big[3].id, big[4].id]


def test_an_account_that_comes_back_is_not_behind_its_own_finished_runs(
    engine: Engine, big_report: Report, small_report: Report
) -> None:
    # The small account ran many runs alone; later, it has to wait no longer than a newcomer.
    for _ in range(10):
        run = enqueue_download(engine, small_report)
        claimed = claim(engine)
        assert claimed is not None
        assert claimed.id == run.id
        finish(engine, claimed)
    flood = [enqueue_download(engine, big_report) for _ in range(20)]
    again = enqueue_download(engine, small_report)
    assert [run.id for run in claims_until(engine, again.id)] == [flood[0].id, again.id]


def test_concurrent_workers_claim_every_run_once_in_turns(
    engine: Engine, big_report: Report, small_report: Report
) -> None:
    queued = {enqueue_download(engine, big_report).id for _ in range(30)}
    queued |= {enqueue_download(engine, small_report).id for _ in range(5)}
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (run := claim(engine, name)) is not None:
            with lock:
                claimed.append(run.id)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(claimed) == sorted(queued)


def test_an_account_at_its_cap_gets_quota_exceeded_naming_the_cap(
    engine: Engine, big_report: Report, small_report: Report
) -> None:
    first = enqueue_download(engine, big_report, max_active_runs=3)
    enqueue_download(engine, big_report, max_active_runs=3)
    started = claim(engine)
    assert started is not None
    assert started.id == first.id  # running runs count too
    enqueue_download(engine, big_report, max_active_runs=3)
    with pytest.raises(QuotaExceeded) as refused:
        enqueue_download(engine, big_report, max_active_runs=3)
    assert refused.value.code == "QUOTA_EXCEEDED"
    assert "has 3 runs queued or running; the limit is 3 per account" in refused.value.message
    assert len(list_runs(engine, big_report.account_id, big_report.id)) == 3  # nothing was recorded
    # Another account has its own cap; a finished run makes room again.
    enqueue_download(engine, small_report, max_active_runs=3)
    finish(engine, started)
    enqueue_download(engine, big_report, max_active_runs=3)


def test_concurrent_requests_cannot_pass_the_cap_together(engine: Engine, big_report: Report) -> None:
    cap, attempts = 5, 16
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def requester() -> None:
        start.wait()
        for _ in range(attempts // 8):
            try:
                enqueue_download(engine, big_report, max_active_runs=cap)
                outcome = "queued"
            except QuotaExceeded:
                outcome = "refused"
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=requester) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["queued"] * cap + ["refused"] * (attempts - cap)
    assert len(list_runs(engine, big_report.account_id, big_report.id, limit=100)) == cap


def test_a_scheduled_run_over_the_cap_is_recorded_as_failed_not_dropped(engine: Engine, account: Account) -> None:
    definition = {
        **ALL_FINDINGS_REPORT,
        "schedule": DAILY_S3_SCHEDULE,
    }
    monday = datetime(2026, 3, 2, tzinfo=UTC)
    report = create_report(engine, account.id, definition, now=monday)
    enqueue_download(engine, report)  # the account's one allowed active run
    now = monday + timedelta(hours=7)
    created = Scheduler(engine, clock=lambda: now, max_active_runs=1).tick()
    assert len(created) == 1
    failed = get_run(engine, account.id, created[0].id)
    assert failed.state is RunState.FAILED
    assert failed.error_code == RunErrorCode.QUOTA_EXCEEDED
    assert failed.error_message is not None
    assert "the limit is 1 per account" in failed.error_message
    assert failed.scheduled_for == monday + timedelta(hours=6, minutes=30)
    assert claim(engine) is not None  # the queued run only: the failed one is never claimed
    assert claim(engine) is None


@pytest.mark.backends("postgresql")
def test_a_queued_run_wakes_the_workers_and_a_refused_one_does_not(
    engine: Engine, database_url: str, big_report: Report
) -> None:
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {RUNS_CHANNEL}")
        queued = enqueue_download(engine, big_report, max_active_runs=1)
        with pytest.raises(QuotaExceeded):
            enqueue_download(engine, big_report, max_active_runs=1)
        last = enqueue_download(engine, big_report)  # past the cap too, but not refused: after the refused one
        payloads = [n.payload for n in listener.notifies(timeout=10, stop_after=2)]
    assert payloads == [queued.id, last.id]


# --- Through the API --------------------------------------------------------------------------


@pytest.fixture
def capped_services(settings: Settings, engine: Engine) -> Services:
    return build_services(settings.model_copy(update={"max_active_runs_per_account": 2}), engine)


@pytest.fixture
def http(capped_services: Services) -> Iterator[TestClient]:
    # No workers: the runs stay queued while the test looks at them.
    with TestClient(create_app(capped_services, run_workers=False), base_url="http://127.0.0.1:8000") as client:
        yield client


def call(http: TestClient, services: Services, account_id: str, query: str, variables: dict[str, Any]) -> Any:
    client = create_client(services.engine, account_id)
    token = services.tokens.issue(client.client_id, account_id).access_token
    response = http.post(
        "/api/graphql",
        json={"query": query, "variables": variables},
        headers={"accountId": account_id, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_process_report_over_the_cap_is_a_quota_exceeded_error(
    http: TestClient, capped_services: Services, big_report: Report
) -> None:
    account_id = big_report.account_id
    for _ in range(2):
        assert "errors" not in call(http, capped_services, account_id, PROCESS_REPORT, {"id": big_report.id})
    body = call(http, capped_services, account_id, PROCESS_REPORT, {"id": big_report.id})
    assert body["data"] == {"processReport": None}
    error = body["errors"][0]
    assert error["extensions"]["code"] == "QUOTA_EXCEEDED"
    assert error["message"] == (
        f"Account {account_id} has 2 runs queued or running; the limit is 2 per account. "
        "Start this run when one of them has finished."
    )


def test_a_queued_run_reports_its_position_in_the_claim_order(
    http: TestClient, capped_services: Services, engine: Engine, big_report: Report, small_report: Report
) -> None:
    big = [enqueue_download(engine, big_report) for _ in range(3)]
    small = call(http, capped_services, small_report.account_id, PROCESS_REPORT, {"id": small_report.id})
    small_id = small["data"]["processReport"]["runId"]

    def position(report: Report, run_id: str) -> Any:
        body = call(http, capped_services, report.account_id, GET_REPORT_RUN_STATUS, {"runId": run_id})
        return body["data"]["getReportRunStatus"].get("queuePosition")

    # Claim order: big 1, small, big 2, big 3 (accounts take turns).
    assert position(small_report, small_id) == 2
    assert [position(big_report, run.id) for run in big] == [1, 3, 4]
    started = claim(engine)
    assert started is not None
    assert started.id == big[0].id
    capped_services.report_runs.run_changed(big_report.account_id, big[0].id)
    capped_services.report_runs.run_changed(small_report.account_id, small_id)
    assert position(small_report, small_id) == 1
    assert position(big_report, big[0].id) is None  # started: no longer queued
    described = capped_services.report_runs.describe(get_run(engine, big_report.account_id, big[2].id))
    assert described["queuePosition"] == 3  # behind the small account's run and its own second


def test_a_cron_firing_every_minute_is_refused_with_the_minimum(
    http: TestClient, capped_services: Services, account: Account
) -> None:
    schedule = {
        "format": "csv",
        "delivery": {
            "method": "s3",
            "bucket": "acme-exports",
            "region": "eu-west-1",
            "role_arn": "arn:aws:iam::123456789012:role/uvm-export",
        },
        "frequency": "cron",
        "cron": "* * * * *",
    }
    create = "mutation ($d: JSON!) { createReport(definition: $d) { id } }"
    body = call(http, capped_services, account.id, create, {"d": {**ALL_FINDINGS_REPORT, "schedule": schedule}})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == (
        'schedule.cron: "* * * * *" fires as often as every 1 minute; schedules may fire at most every 15 minutes'
    )
    every_quarter = {**schedule, "cron": "*/15 * * * *"}
    body = call(http, capped_services, account.id, create, {"d": {**ALL_FINDINGS_REPORT, "schedule": every_quarter}})
    assert "errors" not in body, body
