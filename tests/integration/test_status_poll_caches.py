"""The status poll's one query and its caches: exact tenant isolation, bounded staleness of the
access checks (a revoked client, a report made private) and of a running run's status, fresh
links, answers from memory alone."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

from tests.support.clock import ManualClock as Clock
from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.runs import enqueue_download
from tests.support.waiting import wait_for
from uvm_reporting.api.bearer_auth import ActiveClients, BearerAuthError, authenticate_bearer
from uvm_reporting.application.report_runs import RUNNING_STATUS_TTL_SECONDS, ReportRuns
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.api_clients import get_active_client, revoke_client
from uvm_reporting.database.reports import Report, create_report, update_report
from uvm_reporting.database.runs import (
    claim_next_run,
    complete_run,
    fail_run,
    get_run,
    get_run_and_report_access,
)
from uvm_reporting.domain.runs import RunRecord, RunResult
from uvm_reporting.errors import Forbidden, NotFound, RunErrorCode
from uvm_reporting.expiring_cache import ExpiringCache, NotInMemory
from uvm_reporting.services import Services
from uvm_reporting.storage.download_links import SignedLink
from uvm_reporting.storage.result_storage import Download

TTL = 2.0
CLIENT_ID = "client-of-the-test"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def report(engine: Engine, account: Account) -> Report:
    return create_report(engine, account.id, ALL_FINDINGS_REPORT)


@pytest.fixture
def links() -> list[str]:
    """The run ids the test's ReportRuns signed a link for, one entry per link."""
    return []


@dataclasses.dataclass
class CountedLinks:
    """Download links that note which run each was made for (the storages' own links are
    tested in test_result_storage_contract.py)."""

    signed: list[str]
    links_without_io: bool = True

    def download_link(self, download: Download) -> SignedLink:
        self.signed.append(download.run_id)
        return SignedLink(
            url=f"https://links.example/{download.run_id}/{len(self.signed)}",
            expires_at=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=len(self.signed)),
        )


@pytest.fixture
def report_runs(services: Services, clock: Clock, links: list[str]) -> ReportRuns:
    return ReportRuns(
        engine=services.engine,
        signal=services.signal,
        links=CountedLinks(links),
        reports=services.reports,
        report_access=ExpiringCache(TTL, clock=clock),
        finished_runs=ExpiringCache(float("inf"), clock=clock),
        running_runs=ExpiringCache(RUNNING_STATUS_TTL_SECONDS, clock=clock),
    )


def queue(engine: Engine, report: Report) -> RunRecord:
    return enqueue_download(engine, report, requested_by=None)


def claim(engine: Engine, run: RunRecord) -> None:
    claimed = claim_next_run(engine, "test-worker", lease_seconds=60, max_attempts=3)
    assert claimed is not None
    assert claimed.id == run.id


def finish(engine: Engine, run: RunRecord) -> None:
    claim(engine, run)
    assert complete_run(
        engine,
        run.id,
        "test-worker",
        RunResult(row_count=3, size_bytes=30, sha256="ab" * 32, result_key=f"{run.id}.csv"),
    )


def make_private(engine: Engine, report: Report) -> None:
    update_report(engine, report.account_id, report.id, {**report.definition.to_json(), "viewers": "private"})


# -- the one query -------------------------------------------------------------------------------


def test_the_one_query_reads_the_same_run_as_get_run(engine: Engine, report: Report) -> None:
    run = queue(engine, report)
    finish(engine, run)
    record, public = get_run_and_report_access(engine, report.account_id, run.id)
    assert record == get_run(engine, report.account_id, run.id)
    assert record.definition == report.definition.to_json()
    assert record.finished_at is not None
    assert record.finished_at.tzinfo is not None
    assert public is True

    make_private(engine, report)
    assert get_run_and_report_access(engine, report.account_id, run.id)[1] is False


def test_the_one_query_finds_no_run_of_another_account(engine: Engine, report: Report, other_account: Account) -> None:
    run = queue(engine, report)
    with pytest.raises(NotFound):
        get_run_and_report_access(engine, other_account.id, run.id)
    with pytest.raises(NotFound):
        get_run_and_report_access(engine, report.account_id, "no-such-run")


# -- the client cache ----------------------------------------------------------------------------


def test_a_revoked_client_is_refused_once_the_ttl_has_passed(
    services: Services, account: Account, clock: Clock
) -> None:
    client = create_client(services.engine, account.id)
    clients = ActiveClients(
        lambda client_id: get_active_client(services.engine, client_id), ExpiringCache(TTL, clock=clock)
    )
    authorization = f"Bearer {services.tokens.issue(client.client_id, account.id).access_token}"
    assert authenticate_bearer(authorization, services.tokens, clients).account_id == account.id

    revoke_client(services.engine, client.client_id)
    clock.now += TTL - 0.01  # still trusted: the documented bound
    assert authenticate_bearer(authorization, services.tokens, clients).client_id == client.client_id
    clock.now += 0.01
    with pytest.raises(BearerAuthError, match="revoked"):
        authenticate_bearer(authorization, services.tokens, clients)


def test_a_token_naming_another_account_than_its_clients_is_refused(
    services: Services, account: Account, other_account: Account
) -> None:
    client = create_client(services.engine, account.id)
    clients = ActiveClients.of(services.engine)
    good = f"Bearer {services.tokens.issue(client.client_id, account.id).access_token}"
    forged = f"Bearer {services.tokens.issue(client.client_id, other_account.id).access_token}"
    assert authenticate_bearer(good, services.tokens, clients).account_id == account.id  # now cached
    with pytest.raises(BearerAuthError):
        authenticate_bearer(forged, services.tokens, clients)


# -- finished runs and report access -------------------------------------------------------------


def test_a_running_runs_status_is_kept_for_the_running_ttl_then_read_again(
    engine: Engine, report: Report, report_runs: ReportRuns, clock: Clock, links: list[str]
) -> None:
    run = queue(engine, report)
    assert report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)["state"] == "queued"
    claim(engine, run)  # by a worker of another process: nobody tells this one
    clock.now += RUNNING_STATUS_TTL_SECONDS - 0.01
    assert report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)["state"] == "queued"
    clock.now += 0.01
    assert report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)["state"] == "started"
    assert len(report_runs.finished_runs) == 0
    assert complete_run(engine, run.id, "test-worker", RunResult(3, 30, "ab" * 32, f"{run.id}.csv"))
    clock.now += RUNNING_STATUS_TTL_SECONDS
    status = report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)
    assert (status["status"], status["rowCount"]) == ("Completed", 3)
    assert links == [run.id]


def test_a_run_changed_by_a_worker_of_this_process_is_read_again_at_once(
    engine: Engine, report: Report, report_runs: ReportRuns
) -> None:
    run = queue(engine, report)
    assert report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)["state"] == "queued"
    claim(engine, run)
    report_runs.run_changed(report.account_id, run.id)
    assert report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)["state"] == "started"
    assert complete_run(engine, run.id, "test-worker", RunResult(3, 30, "ab" * 32, f"{run.id}.csv"))
    report_runs.run_changed(report.account_id, run.id)
    assert report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)["status"] == "Completed"


def test_the_workers_of_serve_tell_its_status_caches(
    services: Services, report: Report, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wired in services: a run that this process's pool starts and finishes is seen to by the
    next poll. The running TTL is an hour here: only the pool's word can refresh the cache."""
    monkeypatch.setattr(services.report_runs, "running_runs", ExpiringCache(3600.0))
    run = queue(services.engine, report)
    assert (
        services.report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)["state"] == "queued"
    )
    pool = services.worker_pool(threads=1)
    pool.start()
    try:
        answer = wait_for(
            lambda: (
                (status := services.report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID))[
                    "status"
                ]
                != "Running"
                and status
            ),
            what="the run to be seen finished",
        )
    finally:
        pool.stop(10)
    assert answer["status"] == "Completed"


# -- answers from memory alone ---------------------------------------------------------------------


def test_memory_only_answers_what_the_caches_hold_and_says_when_it_cannot(
    engine: Engine, report: Report, report_runs: ReportRuns, clock: Clock
) -> None:
    done = queue(engine, report)
    finish(engine, done)
    running = queue(engine, report)
    for run in (running, done):
        with pytest.raises(NotInMemory):  # nothing cached yet
            report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID, memory_only=True)
        expected = report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)
        from_memory = report_runs.run_status(
            report.account_id, report.id, run.id, client_id=CLIENT_ID, memory_only=True
        )
        assert {k: v for k, v in from_memory.items() if not k.startswith("presignedUrl")} == {
            k: v for k, v in expected.items() if not k.startswith("presignedUrl")
        }
    assert "presignedUrl" in report_runs.run_status(
        report.account_id, report.id, done.id, client_id=CLIENT_ID, memory_only=True
    )
    clock.now += RUNNING_STATUS_TTL_SECONDS
    with pytest.raises(NotInMemory):
        report_runs.run_status(report.account_id, report.id, running.id, client_id=CLIENT_ID, memory_only=True)
    clock.now += TTL  # the report's access, which a finished run's answer needs, has expired
    with pytest.raises(NotInMemory):
        report_runs.run_status(report.account_id, report.id, done.id, client_id=CLIENT_ID, memory_only=True)
    with pytest.raises(NotInMemory):  # a report's latest run is always a query
        report_runs.run_status(report.account_id, report.id, None, client_id=CLIENT_ID, memory_only=True)


def test_memory_only_never_makes_a_link_that_may_need_io(
    engine: Engine, report: Report, report_runs: ReportRuns
) -> None:
    presigning = dataclasses.replace(report_runs, links=CountedLinks([], links_without_io=False))  # our storage on S3
    run = queue(engine, report)
    finish(engine, run)
    assert presigning.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)["status"] == "Completed"
    with pytest.raises(NotInMemory):
        presigning.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID, memory_only=True)


def test_a_finished_run_is_answered_from_memory_with_a_fresh_link(
    engine: Engine, report: Report, report_runs: ReportRuns, services: Services, links: list[str]
) -> None:
    run = queue(engine, report)
    finish(engine, run)
    first = report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)
    assert len(report_runs.finished_runs) == 1
    second = report_runs.run_status(report.account_id, None, run.id, client_id=CLIENT_ID)
    assert links == [run.id, run.id]
    assert first["presignedUrl"] != second["presignedUrl"]
    assert first["presignedUrlExpiresAt"] != second["presignedUrlExpiresAt"]
    # Apart from the link, the same document, with the keys in the same order as an uncached answer.
    fixed = {key: value for key, value in first.items() if not key.startswith("presignedUrl")}
    assert {key: value for key, value in second.items() if not key.startswith("presignedUrl")} == fixed
    uncached = dataclasses.replace(report_runs, report_access=ExpiringCache(0), finished_runs=ExpiringCache(0))
    assert list(uncached.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)) == list(first)
    assert services.report_runs.describe(get_run(engine, report.account_id, run.id)) == fixed


def test_a_finished_run_polled_again_within_the_ttl_costs_no_query(
    engine: Engine, report: Report, report_runs: ReportRuns
) -> None:
    run = queue(engine, report)
    finish(engine, run)
    report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)
    running = queue(engine, report)
    checkouts: list[object] = []

    def count(*args: object) -> None:
        checkouts.append(args)

    event.listen(engine, "checkout", count)
    try:
        assert (
            report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)["status"] == "Completed"
        )
        finished_checkouts = len(checkouts)
        assert (
            report_runs.run_status(report.account_id, report.id, running.id, client_id=CLIENT_ID)["status"] == "Running"
        )
    finally:
        event.remove(engine, "checkout", count)
    assert finished_checkouts == 0
    assert len(checkouts) == 1  # a running run: one query


def test_a_failed_run_is_kept_too(engine: Engine, report: Report, report_runs: ReportRuns) -> None:
    run = queue(engine, report)
    claim(engine, run)
    assert fail_run(engine, run.id, "test-worker", RunErrorCode.QUERY_FAILED, "boom")
    status = report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)
    assert (status["status"], status["errorCode"]) == ("Failed", "QUERY_FAILED")
    assert len(report_runs.finished_runs) == 1


def test_cached_runs_never_answer_for_another_account(
    engine: Engine, report: Report, report_runs: ReportRuns, other_account: Account
) -> None:
    run = queue(engine, report)
    finish(engine, run)
    report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)  # cached for its own account
    for report_id in (report.id, None):
        with pytest.raises(NotFound):
            report_runs.run_status(other_account.id, report_id, run.id, client_id=CLIENT_ID)
    with pytest.raises(NotFound):  # the report's access is cached for its account only, too
        report_runs.run_status(other_account.id, report.id, None, client_id=CLIENT_ID)


def test_a_run_of_another_report_is_not_found_from_memory_either(
    engine: Engine, report: Report, report_runs: ReportRuns, account: Account
) -> None:
    other_report = create_report(engine, account.id, {**ALL_FINDINGS_REPORT, "name": "Other"})
    run = queue(engine, report)
    finish(engine, run)
    report_runs.run_status(account.id, report.id, run.id, client_id=CLIENT_ID)
    with pytest.raises(NotFound, match="does not belong"):
        report_runs.run_status(account.id, other_report.id, run.id, client_id=CLIENT_ID)


def test_a_report_made_private_hides_a_running_run_once_the_running_ttl_has_passed(
    engine: Engine, report: Report, report_runs: ReportRuns, clock: Clock
) -> None:
    run = queue(engine, report)
    report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)
    make_private(engine, report)
    clock.now += RUNNING_STATUS_TTL_SECONDS
    with pytest.raises(Forbidden, match="private"):
        report_runs.run_status(report.account_id, report.id, run.id, client_id=CLIENT_ID)


@pytest.mark.parametrize("by", ["run", "report"])
def test_a_report_made_private_hides_finished_runs_once_the_ttl_has_passed(
    engine: Engine, report: Report, report_runs: ReportRuns, clock: Clock, by: str
) -> None:
    run = queue(engine, report)
    finish(engine, run)
    ids: dict[str, Any] = {"run": (report.id, run.id), "report": (report.id, None)}
    report_runs.run_status(report.account_id, *ids[by], client_id=CLIENT_ID)
    make_private(engine, report)
    clock.now += TTL - 0.01
    assert report_runs.run_status(report.account_id, *ids[by], client_id=CLIENT_ID)["status"] == "Completed"
    clock.now += 0.01
    with pytest.raises(Forbidden, match="private"):
        report_runs.run_status(report.account_id, *ids[by], client_id=CLIENT_ID)
