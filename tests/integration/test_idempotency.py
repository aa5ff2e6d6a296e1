"""processReport's idempotency keys and joining of identical runs, through the GraphQL API and the
use case, on SQLite and PostgreSQL: a retried request never starts a second export."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from tests.support.reports import ALL_FINDINGS_REPORT, DAILY_S3_SCHEDULE
from uvm_reporting.api.app import create_app
from uvm_reporting.application import report_runs as report_runs_module
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.idempotency_keys import delete_expired_idempotency_keys, find_idempotency_key
from uvm_reporting.database.reports import Report, create_report, update_report
from uvm_reporting.database.runs import claim_next_run, complete_run, enqueue_delivery, fail_run, get_run
from uvm_reporting.database.tables import audit_events, idempotency_keys, runs
from uvm_reporting.domain.audit import Action
from uvm_reporting.domain.runs import RunResult
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import RunErrorCode
from uvm_reporting.services import Services, build_services
from uvm_reporting.settings import Settings

PROCESS_REPORT = """mutation ($id: String!, $key: String, $format: String, $forceNew: Boolean) {
  processReport(id: $id, isPresignedUrl: true, format: $format, idempotencyKey: $key, forceNew: $forceNew)
}"""


@pytest.fixture
def capped_services(settings: Settings, engine: Engine) -> Services:
    # A cap of 2 active runs: a joined request must not count against it.
    return build_services(settings.model_copy(update={"max_active_runs_per_account": 2}), engine)


@pytest.fixture
def http(capped_services: Services) -> Iterator[TestClient]:
    # No workers: runs stay queued until a test claims them.
    with TestClient(create_app(capped_services, run_workers=False), base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.fixture
def other_report(engine: Engine, other_account: Account) -> Report:
    return create_report(engine, other_account.id, ALL_FINDINGS_REPORT)


Process = Callable[..., dict[str, Any]]


@pytest.fixture
def process(http: TestClient, capped_services: Services) -> Process:
    """processReport as an API client of the report's account (one client per account)."""
    tokens: dict[str, str] = {}

    def call(report: Report, **variables: Any) -> dict[str, Any]:
        account_id = report.account_id
        if account_id not in tokens:
            client = create_client(capped_services.engine, account_id)
            tokens[account_id] = capped_services.tokens.issue(client.client_id, account_id).access_token
        response = http.post(
            "/api/graphql",
            json={"query": PROCESS_REPORT, "variables": {"id": report.id, **variables}},
            headers={"accountId": account_id, "Authorization": f"Bearer {tokens[account_id]}"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return call


def answer(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["processReport"]
    return result


def error_code(body: dict[str, Any]) -> str:
    assert body["data"] == {"processReport": None}, body
    code: str = body["errors"][0]["extensions"]["code"]
    return code


def count_runs(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(runs)).scalar_one())


def audit_actions(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return [row.action for row in connection.execute(select(audit_events.c.action))]


def claim(engine: Engine) -> None:
    assert claim_next_run(engine, "w", lease_seconds=60, max_attempts=3) is not None


# --- Idempotency keys ------------------------------------------------------------------------


def test_the_same_key_with_the_same_arguments_answers_the_same_run(
    process: Process, public_report: Report, engine: Engine
) -> None:
    first = answer(process(public_report, key="retry-1"))
    assert first["joined"] is False
    assert first["state"] == "queued"
    claim(engine)
    again = answer(process(public_report, key="retry-1"))
    # The same run, with its status now; the default format spelled out is the same request.
    assert again == {**first, "state": "started"}
    assert answer(process(public_report, key="retry-1", format="csv"))["runId"] == first["runId"]
    assert count_runs(engine) == 1
    assert audit_actions(engine).count(Action.RUN_STARTED.value) == 1


def test_the_same_key_with_other_arguments_is_refused(process: Process, public_report: Report, engine: Engine) -> None:
    first = answer(process(public_report, key="k"))
    for other in ({"format": "json"}, {"forceNew": True}):
        body = process(public_report, key="k", **other)
        assert error_code(body) == "IDEMPOTENCY_KEY_REUSED"
        assert "idempotencyKey was used with other arguments" in body["errors"][0]["message"]
    assert count_runs(engine) == 1
    assert answer(process(public_report, key="k"))["runId"] == first["runId"]


def test_keys_belong_to_their_account(
    process: Process, public_report: Report, other_report: Report, engine: Engine
) -> None:
    mine = answer(process(public_report, key="shared-key"))
    theirs = answer(process(other_report, key="shared-key"))
    assert theirs["runId"] != mine["runId"]
    assert theirs["joined"] is False
    assert get_run(engine, other_report.account_id, theirs["runId"]).report_id == other_report.id
    # Another account's report under one's own key is unknown, not a replay of anything.
    foreign = process(dataclasses.replace(other_report, account_id=public_report.account_id), key="shared-key")
    assert error_code(foreign) == "NOT_FOUND"


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\tinside", "nul\x00"])
def test_a_key_too_long_or_unprintable_is_a_bad_input(
    process: Process, public_report: Report, engine: Engine, key: str
) -> None:
    body = process(public_report, key=key)
    assert error_code(body) == "BAD_USER_INPUT"
    assert "idempotencyKey must be 1 to 255 printable characters" in body["errors"][0]["message"]
    assert count_runs(engine) == 0


def test_a_key_of_255_characters_is_kept(process: Process, public_report: Report) -> None:
    key = "é" * 255  # characters, not bytes
    assert answer(process(public_report, key=key))["runId"] == answer(process(public_report, key=key))["runId"]


def test_an_expired_key_is_free_again_and_the_cleanup_deletes_expired_keys(
    capped_services: Services, public_report: Report, engine: Engine
) -> None:
    report_runs = capped_services.report_runs
    report_runs.idempotency_key_lifetime = timedelta(0)  # expired as soon as it is written

    def start(export_format: str) -> dict[str, Any]:
        return report_runs.process_report(
            public_report.account_id,
            public_report.id,
            presigned_url=True,
            requested_by="c",
            download_format=export_format,
            idempotency_key="old",
        )

    first = start("csv")
    second = start("json")  # not IDEMPOTENCY_KEY_REUSED: the first use is past its time
    assert second["runId"] != first["runId"]
    report_runs.idempotency_key_lifetime = timedelta(days=1)
    assert start("json")["runId"] == second["runId"]  # the replaced row lives a day

    assert delete_expired_idempotency_keys(engine, utc_now()) == 0
    assert delete_expired_idempotency_keys(engine, utc_now() + timedelta(days=1, seconds=1)) == 1
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(idempotency_keys)).scalar_one() == 0


def test_concurrent_requests_with_one_key_make_one_run(capped_services: Services, public_report: Report) -> None:
    answers = race(capped_services, public_report, threads=8, idempotency_key="same", force_new=True)
    assert len({result["runId"] for result in answers}) == 1
    assert count_runs(capped_services.engine) == 1


def test_a_key_that_a_racing_request_wrote_first_answers_the_winners_run(
    capped_services: Services, public_report: Report, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unique key is the last guard: a request that missed the winner's key in its look-up
    (as if the two were not serialised) gets the winner's run, not an error."""
    report_runs = capped_services.report_runs

    def start() -> dict[str, Any]:
        return report_runs.process_report(
            public_report.account_id, public_report.id, presigned_url=True, requested_by="c", idempotency_key="k"
        )

    winner = start()
    missed = iter([True])
    monkeypatch.setattr(
        report_runs_module,
        "find_idempotency_key",
        lambda *args: None if next(missed, False) else find_idempotency_key(*args),
    )
    assert start()["runId"] == winner["runId"]
    assert count_runs(capped_services.engine) == 1


# --- Joining ---------------------------------------------------------------------------------


def test_an_identical_request_joins_a_queued_or_started_run(
    process: Process, public_report: Report, engine: Engine
) -> None:
    first = answer(process(public_report))
    joined = answer(process(public_report))
    assert joined == {**first, "joined": True}
    claim(engine)
    assert answer(process(public_report)) == {**first, "state": "started", "joined": True}
    assert count_runs(engine) == 1
    # Who asked is on record, but the run started once.
    assert sorted(audit_actions(engine)) == [Action.RUN_JOINED.value] * 2 + [Action.RUN_STARTED.value]


def test_joining_uses_no_quota_and_force_new_queues_a_run(
    process: Process, public_report: Report, engine: Engine
) -> None:
    first = answer(process(public_report))
    forced = answer(process(public_report, forceNew=True))
    assert forced["runId"] != first["runId"]
    assert forced["joined"] is False
    # The cap (2) is reached: an identical request still joins the oldest run; a new one is refused.
    assert answer(process(public_report))["runId"] == first["runId"]
    assert error_code(process(public_report, forceNew=True)) == "QUOTA_EXCEEDED"
    assert count_runs(engine) == 2


def test_a_request_with_other_options_does_not_join(
    process: Process, public_report: Report, other_report: Report, engine: Engine
) -> None:
    csv = answer(process(public_report))
    json_run = answer(process(public_report, format="json"))
    assert json_run["runId"] != csv["runId"]
    assert json_run["joined"] is False
    assert answer(process(other_report))["joined"] is False  # another account's identical report
    assert count_runs(engine) == 3


def test_a_changed_definition_does_not_join(
    process: Process, public_report: Report, engine: Engine, capped_services: Services
) -> None:
    first = answer(process(public_report))
    capped_services.reports.update_report(
        public_report.account_id, public_report.id, {**ALL_FINDINGS_REPORT, "columns": ["id", "title"]}
    )
    assert answer(process(public_report))["runId"] != first["runId"]


@pytest.mark.parametrize("outcome", ["completed", "failed"])
def test_a_finished_run_is_not_joined(process: Process, public_report: Report, engine: Engine, outcome: str) -> None:
    first = answer(process(public_report))
    claimed = claim_next_run(engine, "w", lease_seconds=60, max_attempts=3)
    assert claimed is not None
    if outcome == "completed":
        assert complete_run(engine, claimed.id, "w", RunResult(1, 1, "0" * 64, f"{claimed.id}.csv"))
    else:
        assert fail_run(engine, claimed.id, "w", RunErrorCode.QUERY_FAILED, "no")
    fresh = answer(process(public_report))
    assert fresh["runId"] != first["runId"]
    assert fresh["joined"] is False


def test_a_keyed_request_may_join_and_its_key_then_names_the_joined_run(
    process: Process, public_report: Report, engine: Engine
) -> None:
    first = answer(process(public_report))
    keyed = answer(process(public_report, key="k"))
    assert keyed == {**first, "joined": True}
    assert answer(process(public_report, key="k")) == keyed  # a replay says what the first answer said
    assert count_runs(engine) == 1


def test_concurrent_identical_requests_join_one_run(capped_services: Services, public_report: Report) -> None:
    answers = race(capped_services, public_report, threads=8)
    assert len({result["runId"] for result in answers}) == 1
    assert sorted(result["joined"] for result in answers) == [False] + [True] * 7
    assert count_runs(capped_services.engine) == 1


def race(services: Services, report: Report, *, threads: int, **options: Any) -> list[dict[str, Any]]:
    """``threads`` processReport calls of ``report`` released together; their answers (an error
    of any of them is raised here)."""
    start = threading.Barrier(threads)

    def request() -> dict[str, Any]:
        start.wait()
        return services.report_runs.process_report(
            report.account_id, report.id, presigned_url=True, requested_by="c", **options
        )

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(request) for _ in range(threads)]
        return [future.result(timeout=60) for future in futures]


def test_an_s3_delivery_joins_its_twin_but_not_a_scheduled_run_or_a_download(
    services: Services, engine: Engine, account: Account, findings_data: int
) -> None:
    report = create_report(engine, account.id, {**ALL_FINDINGS_REPORT, "schedule": DAILY_S3_SCHEDULE})
    assert report.schedule is not None
    report_runs = services.report_runs
    scheduled = enqueue_delivery(
        engine, report, report.schedule, at=utc_now(), requested_by=None, scheduled_for=utc_now()
    )

    def start(*, presigned_url: bool) -> dict[str, Any]:
        return report_runs.process_report(account.id, report.id, presigned_url=presigned_url, requested_by="c")

    delivery = start(presigned_url=False)
    assert delivery["runId"] != scheduled.id  # a schedule's fire time is its own run
    assert start(presigned_url=False) == {**delivery, "joined": True}
    download = start(presigned_url=True)
    assert download["runId"] not in {delivery["runId"], scheduled.id}
    assert download["joined"] is False


def test_a_retried_s3_delivery_is_the_same_request_after_its_schedule_changed(
    services: Services, engine: Engine, account: Account, findings_data: int
) -> None:
    report = create_report(engine, account.id, {**ALL_FINDINGS_REPORT, "schedule": DAILY_S3_SCHEDULE})

    def start() -> dict[str, Any]:
        return services.report_runs.process_report(
            account.id, report.id, presigned_url=False, requested_by="c", idempotency_key="delivery-1"
        )

    first = start()
    update_report(
        engine, account.id, report.id, {**ALL_FINDINGS_REPORT, "schedule": {**DAILY_S3_SCHEDULE, "format": "json"}}
    )
    assert start()["runId"] == first["runId"]  # the caller's arguments did not change
