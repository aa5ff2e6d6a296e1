"""The audit log through the real ASGI app: what is recorded, by whom, from where; who may read
it (auditEvents); pagination; retention; and that nothing secret is ever written."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from tests.support.clock import ManualClock
from tests.support.reports import ALL_FINDINGS_REPORT, DAILY_S3_SCHEDULE
from tests.support.waiting import wait_for
from uvm_reporting.api.app import create_app
from uvm_reporting.application.audit import AuditLog, AuthFailures
from uvm_reporting.auth.api_client_credentials import CreatedClient, create_client
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.api_clients import revoke_client
from uvm_reporting.database.audit import EventFilter, delete_events_before, record_event, record_event_now
from uvm_reporting.database.reports import Report, create_report
from uvm_reporting.database.tables import audit_events
from uvm_reporting.domain.audit import Action, Actor, ActorKind, AuditEvent, DetailValue
from uvm_reporting.scheduler import Scheduler
from uvm_reporting.services import Services

PROCESS_REPORT = "mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true)}"
STATUS = "query ($runId: String) { getReportRunStatus(runId: $runId) }"
AUDIT_EVENTS = """
query ($first: Int, $after: String, $filter: AuditEventFilter) {
  auditEvents(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id occurredAt accountId action actor { kind id } target { kind id }
                          sourceIp requestId details } }
    pageInfo { hasNextPage endCursor }
  }
}"""
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TEST_CLIENT_IP = "testclient"  # what Starlette's TestClient puts in the ASGI scope's client


class Caller:
    """An API client of one account that gets its token over HTTP, as a customer does."""

    def __init__(self, http: TestClient, services: Services, account_id: str) -> None:
        self.http = http
        self.account_id = account_id
        self.client: CreatedClient = create_client(services.engine, account_id)
        response = self.token_response(self.client.client_secret)
        assert response.status_code == 200, response.text
        self.token = response.json()["access_token"]
        self.token_request_id = response.headers["x-request-id"]

    def token_response(self, secret: str) -> Any:
        return self.http.post(
            "/oauth2/token",
            headers=FORM,
            data={"grant_type": "client_credentials", "client_id": self.client.client_id, "client_secret": secret},
        )

    def post(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        return self.http.post(
            "/api/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {self.token}", "accountId": self.account_id},
        )

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.post(query, variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    def events(self, **variables: Any) -> dict[str, Any]:
        connection: dict[str, Any] = self.data(AUDIT_EVENTS, variables)["auditEvents"]
        return connection

    def nodes(self, **variables: Any) -> list[dict[str, Any]]:
        return [edge["node"] for edge in self.events(first=100, **variables)["edges"]]


@pytest.fixture
def http(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services), base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.fixture
def caller(http: TestClient, services: Services, account: Account) -> Caller:
    return Caller(http, services, account.id)


def rows(engine: Engine, **where: Any) -> list[Any]:
    query = select(audit_events).order_by(audit_events.c.occurred_at, audit_events.c.id)
    for name, value in where.items():
        query = query.where(audit_events.c[name] == value)
    with engine.connect() as connection:
        return list(connection.execute(query))


def only(events: list[dict[str, Any]], action: str) -> dict[str, Any]:
    matching = [event for event in events if event["action"] == action]
    assert len(matching) == 1, events
    return matching[0]


def test_a_token_issued_is_recorded_with_its_client_ip_and_request_id(caller: Caller) -> None:
    event = only(caller.nodes(), "token.issued")
    assert event["accountId"] == caller.account_id
    assert event["actor"] == {"kind": "api_client", "id": caller.client.client_id}
    assert event["target"] == {"kind": "api_client", "id": caller.client.client_id}
    assert event["sourceIp"] == TEST_CLIENT_IP
    assert event["requestId"] == caller.token_request_id
    assert event["details"] == {"expiresIn": 3600}
    occurred = datetime.fromisoformat(event["occurredAt"])
    assert abs(occurred - datetime.now(UTC)) < timedelta(minutes=1)


def test_refused_token_requests_are_recorded_for_known_clients_only_and_at_most_once_a_minute(
    caller: Caller, engine: Engine
) -> None:
    before = len(rows(engine))
    for _ in range(3):
        assert caller.token_response("wrong-secret").status_code == 401
    failures = rows(engine, action="auth.failed")
    assert len(failures) == 1
    assert failures[0].account_id == caller.account_id
    assert failures[0].actor_id == caller.client.client_id
    assert failures[0].details == {"endpoint": "token", "reason": "invalid_secret"}
    assert failures[0].source_ip == TEST_CLIENT_IP
    # A flood of made-up client ids names no account: none of it reaches the table.
    for number in range(20):
        response = caller.http.post(
            "/oauth2/token",
            headers=FORM,
            data={"grant_type": "client_credentials", "client_id": f"junk-{number}", "client_secret": "x"},
        )
        assert response.status_code == 401
    assert len(rows(engine)) == before + 1


def test_auth_failures_carry_the_count_left_out_of_the_previous_window(engine: Engine, account: Account) -> None:
    clock = ManualClock()
    failures = AuthFailures(engine, window_seconds=60, clock=clock)
    actor = Actor.api_client("c1", source_ip="192.0.2.1")
    assert failures.failed(account.id, "c1", actor, endpoint="token", reason="invalid_secret")
    assert not failures.failed(account.id, "c1", actor, endpoint="token", reason="invalid_secret")
    assert not failures.failed(account.id, "c1", actor, endpoint="token", reason="invalid_secret")
    assert failures.failed(account.id, "c2", actor, endpoint="token", reason="invalid_secret")  # its own window
    clock.now += 60
    assert failures.failed(account.id, "c1", actor, endpoint="token", reason="invalid_secret")
    details = [row.details for row in rows(engine, action="auth.failed", target_id="c1")]
    assert sorted(details, key=len) == [
        {"endpoint": "token", "reason": "invalid_secret"},
        {"endpoint": "token", "reason": "invalid_secret", "suppressed": 2},
    ]


def test_a_revoked_clients_bearer_token_is_recorded_as_an_auth_failure(
    caller: Caller, engine: Engine, services: Services
) -> None:
    revoke_client(engine, caller.client.client_id)

    def refused() -> Any:
        response = caller.post("{ reports { id } }")
        return response if response.status_code == 401 else None

    response = wait_for(refused, what="the revocation to reach the API")
    failure = rows(engine, action="auth.failed")[-1]
    assert failure.account_id == caller.account_id
    assert failure.target_id == caller.client.client_id
    assert failure.details == {"endpoint": "graphql", "reason": "revoked_client"}
    assert failure.request_id == response.headers["x-request-id"]


def test_a_run_started_and_downloaded_is_recorded_with_who_did_it(
    caller: Caller, public_report: Report, engine: Engine
) -> None:
    started = caller.post(PROCESS_REPORT, {"id": public_report.id})
    run_id = started.json()["data"]["processReport"]["runId"]

    def completed() -> dict[str, Any] | None:
        status: dict[str, Any] = caller.data(STATUS, {"runId": run_id})["getReportRunStatus"]
        return status if status["status"] == "Completed" else None

    link = urlsplit(wait_for(completed, what="the run to complete")["presignedUrl"])
    download = caller.http.get(f"{link.path}?{link.query}")
    assert download.status_code == 200
    # A download manager's later ranges are the same download: not recorded again.
    assert caller.http.get(f"{link.path}?{link.query}", headers={"Range": "bytes=100-"}).status_code == 206

    events = caller.nodes(filter={"targetKind": "run"})
    run_started = only(events, "run.started")
    assert run_started["target"] == {"kind": "run", "id": run_id}
    assert run_started["actor"] == {"kind": "api_client", "id": caller.client.client_id}
    assert run_started["requestId"] == started.headers["x-request-id"]
    assert run_started["sourceIp"] == TEST_CLIENT_IP
    assert run_started["details"] == {"reportId": public_report.id, "delivery": "download", "format": "csv"}
    downloaded = only(events, "run.downloaded")
    assert downloaded["target"] == {"kind": "run", "id": run_id}
    assert downloaded["actor"] == {"kind": "api_client", "id": caller.client.client_id}
    assert downloaded["requestId"] == download.headers["x-request-id"]
    assert downloaded["details"]["via"] == "download_link"


def test_a_refused_run_records_nothing(caller: Caller, private_report: Report, engine: Engine) -> None:
    body = caller.post(PROCESS_REPORT, {"id": private_report.id}).json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert rows(engine, action="run.started") == []


def test_a_scheduled_run_is_recorded_as_started_by_the_scheduler(engine: Engine, account: Account) -> None:
    now = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    definition = {
        **ALL_FINDINGS_REPORT,
        "schedule": DAILY_S3_SCHEDULE,
    }
    report = create_report(engine, account.id, definition, now=now)
    clock_now = now + timedelta(hours=1)
    [run] = Scheduler(engine, clock=lambda: clock_now).tick()
    [event] = rows(engine, action="run.started")
    assert (event.account_id, event.actor_kind, event.actor_id) == (account.id, "scheduler", None)
    assert (event.target_kind, event.target_id) == ("run", run.id)
    assert event.details["reportId"] == report.id
    assert event.details["scheduledFor"] == "2026-03-02T06:30:00.000Z"
    assert event.source_ip is None


def test_report_changes_record_settings_access_and_schedule(caller: Caller, findings_data: int) -> None:
    created = caller.data("mutation ($d: JSON!) { createReport(definition: $d) { id } }", {"d": ALL_FINDINGS_REPORT})
    report_id = created["createReport"]["id"]
    renamed = {**ALL_FINDINGS_REPORT, "name": "Renamed"}
    caller.data(
        "mutation ($i: String!, $d: JSON!) { updateReport(id: $i, definition: $d) { id } }",
        {"i": report_id, "d": renamed},
    )
    private = {**renamed, "editors": "private"}
    caller.data(
        "mutation ($i: String!, $d: JSON!) { updateReport(id: $i, definition: $d) { id } }",
        {"i": report_id, "d": private},
    )

    events = caller.nodes(filter={"targetId": report_id})
    assert [event["action"] for event in reversed(events)] == [
        "report.created",
        "report.updated",
        "report.updated",
        "report.access_changed",
    ] or [event["action"] for event in reversed(events)] == [
        "report.created",
        "report.updated",
        "report.access_changed",
        "report.updated",
    ]
    access = only(events, "report.access_changed")
    assert access["details"]["editors"] == "private"
    assert access["details"]["previousEditors"] == "public"
    assert access["actor"]["id"] == caller.client.client_id
    assert all(event["requestId"] and event["sourceIp"] == TEST_CLIENT_IP for event in events)
    assert caller.nodes(filter={"actions": ["report.*"]}) == events


def test_a_schedule_change_is_recorded(caller: Caller, public_report: Report) -> None:
    schedule = DAILY_S3_SCHEDULE
    caller.data(
        "mutation ($i: String!, $d: JSON!) { updateReport(id: $i, definition: $d) { id } }",
        {"i": public_report.id, "d": {**ALL_FINDINGS_REPORT, "schedule": schedule}},
    )
    event = only(caller.nodes(), "report.schedule_changed")
    assert event["target"] == {"kind": "report", "id": public_report.id}
    assert event["details"]["scheduleActive"] is True
    assert event["details"]["hadSchedule"] is False


def test_another_accounts_events_are_never_visible(
    caller: Caller, http: TestClient, services: Services, other_account: Account
) -> None:
    other = Caller(http, services, other_account.id)
    record_event_now(
        services.engine,
        AuditEvent(None, Action.KEY_ROTATED, Actor.operator("root"), "signing_key", "k2"),
    )
    mine = caller.nodes()
    theirs = other.nodes()
    assert {event["accountId"] for event in mine} == {caller.account_id}
    assert {event["accountId"] for event in theirs} == {other_account.id}
    assert not {event["id"] for event in mine} & {event["id"] for event in theirs}
    # Their ids as filters, their cursors as 'after': still only this account's events.
    assert caller.nodes(filter={"actorId": other.client.client_id}) == []
    assert caller.nodes(filter={"targetId": other.client.client_id}) == []
    their_cursor = other.events(first=1)["pageInfo"]["endCursor"]
    assert {edge["node"]["accountId"] for edge in caller.events(first=100, after=their_cursor)["edges"]} <= {
        caller.account_id
    }
    # The accountId header must be the token's account (the API refuses any other).
    refused = http.post(
        "/api/graphql",
        json={"query": AUDIT_EVENTS, "variables": {}},
        headers={"Authorization": f"Bearer {caller.token}", "accountId": other_account.id},
    ).json()
    assert refused["data"] is None
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_pages_follow_each_other_by_cursor_newest_first(caller: Caller, engine: Engine) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    actor = Actor.operator("root")
    for minute in range(7):
        record_event_now(
            engine,
            AuditEvent(caller.account_id, "client.created", actor, "api_client", f"c{minute}"),
            occurred_at=base + timedelta(minutes=minute),
        )
    # Two at the same moment: the cursor still separates them.
    record_event_now(
        engine,
        AuditEvent(caller.account_id, "client.created", actor, "api_client", "c3b"),
        occurred_at=base + timedelta(minutes=3),
    )
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = caller.events(first=3, after=after, filter={"actions": ["client.created"]})
        seen.extend(edge["node"]["target"]["id"] for edge in page["edges"])
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        after = page["pageInfo"]["endCursor"]
    assert pages == 3
    assert len(set(seen)) == len(seen) == 8
    assert (seen[0], seen[-1]) == ("c6", "c0")
    window = caller.nodes(
        filter={"since": "2026-01-01T00:02:00Z", "until": "2026-01-01T00:04:00Z", "actorKind": "operator"}
    )
    assert sorted(event["target"]["id"] for event in window) == ["c2", "c3", "c3b"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 0}, "first must be between 1 and 100"),
        ({"after": "not-a-cursor"}, "after is not a cursor"),
        ({"filter": {"since": "yesterday"}}, "filter.since must be an ISO-8601 time"),
    ],
)
def test_bad_arguments_are_named(caller: Caller, variables: dict[str, Any], message: str) -> None:
    body = caller.post(AUDIT_EVENTS, variables).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in body["errors"][0]["message"]


def test_a_page_over_the_limit_is_refused_before_execution(caller: Caller) -> None:
    response = caller.post(AUDIT_EVENTS, {"first": 101})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PAGE_SIZE_TOO_LARGE"


def test_retention_deletes_old_events_only(engine: Engine, account: Account) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    actor = Actor.operator()
    for days in (400, 366, 364, 1):
        record_event_now(
            engine,
            AuditEvent(account.id, "client.created", actor, "api_client", f"{days}d"),
            occurred_at=now - timedelta(days=days),
        )
    scheduler = Scheduler(engine, clock=lambda: now, audit_retention_days=365)
    assert scheduler.purge_audit_events_if_due() == 2
    assert scheduler.purge_audit_events_if_due() == 0  # not again before the hour is up
    assert sorted(row.target_id for row in rows(engine)) == ["1d", "364d"]
    assert (
        Scheduler(engine, clock=lambda: now + timedelta(days=400), audit_retention_days=0).purge_audit_events_if_due()
        == 0
    )
    assert len(rows(engine)) == 2


def test_retention_deletes_in_batches_while_other_schedulers_do_the_same(engine: Engine, account: Account) -> None:
    old = datetime(2020, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        for number in range(60):
            record_event(
                connection,
                AuditEvent(account.id, "client.created", Actor.operator(), "api_client", str(number)),
                occurred_at=old,
            )
    record_event_now(engine, AuditEvent(account.id, "client.created", Actor.operator(), "api_client", "kept"))
    cutoff = old + timedelta(seconds=1)
    with ThreadPoolExecutor(3) as pool:
        counts = list(pool.map(lambda _: delete_events_before(engine, cutoff, batch=7), range(3)))
    assert sum(counts) == 60
    assert [row.target_id for row in rows(engine)] == ["kept"]


def test_nothing_secret_is_recorded(caller: Caller, public_report: Report, engine: Engine, services: Services) -> None:
    assert caller.token_response("a-wrong-secret-guess").status_code == 401
    run_id = caller.data(PROCESS_REPORT, {"id": public_report.id})["processReport"]["runId"]

    def completed() -> dict[str, Any] | None:
        status: dict[str, Any] = caller.data(STATUS, {"runId": run_id})["getReportRunStatus"]
        return status if status["status"] == "Completed" else None

    link = urlsplit(wait_for(completed, what="the run to complete")["presignedUrl"])
    assert caller.http.get(f"{link.path}?{link.query}").status_code == 200
    signature = parse_qs(link.query)["signature"][0]
    revoke_client(engine, caller.client.client_id, actor=Actor.operator("root"))

    table = "\n".join(repr(tuple(row)) for row in rows(engine))
    assert {"token.issued", "auth.failed", "run.started", "run.downloaded", "client.revoked"} <= {
        row.action for row in rows(engine)
    }
    for secret in (caller.client.client_secret, caller.token, signature, "a-wrong-secret-guess"):
        assert secret not in table
    # The token's signature alone neither.
    assert caller.token.rsplit(".", 1)[1] not in table


@pytest.mark.parametrize(
    "key", ["client_secret", "accessToken", "password", "signature", "Authorization", "privateKey"]
)
def test_an_event_refuses_details_that_name_a_secret(key: str) -> None:
    with pytest.raises(ValueError, match="must not record secrets"):
        AuditEvent("a", "client.created", Actor(ActorKind.OPERATOR), details={key: "x"})


def test_an_event_takes_ids_and_counts_of_secrets() -> None:
    details: dict[str, DetailValue] = {"secretId": "s2", "token_count": 3, "keyKind": "signing"}
    assert AuditEvent("a", "client.secret_added", Actor(ActorKind.OPERATOR), details=details).details == details


def test_the_log_reads_through_the_use_case_with_filters(engine: Engine, account: Account) -> None:
    record_event_now(engine, AuditEvent(account.id, "report.created", Actor.operator("ann"), "report", "r1"))
    record_event_now(engine, AuditEvent(account.id, "client.created", Actor.operator("bob"), "api_client", "c1"))
    page = AuditLog(engine).events(account.id, first=10, event_filter=EventFilter(actor_id="ann"))
    assert [event.target_id for event in page.events] == ["r1"]
    assert not page.has_next_page


def test_client_creation_and_revocation_are_recorded_once_in_their_transaction(
    engine: Engine, account: Account
) -> None:
    operator = Actor.operator("root")
    created = create_client(engine, account.id, "nightly", actor=operator)
    revoke_client(engine, created.client_id, actor=operator)
    revoke_client(engine, created.client_id, actor=operator)  # already revoked: nothing changes, nothing recorded
    events = sorted((row.action, row.actor_kind, row.actor_id, row.target_id, row.details) for row in rows(engine))
    assert events == [
        ("client.created", "operator", "root", created.client_id, {"name": "nightly"}),
        ("client.revoked", "operator", "root", created.client_id, {"name": "nightly"}),
    ]
