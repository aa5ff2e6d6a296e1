"""The GraphQL endpoint through the real ASGI app: the spec's documents and every error."""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from graphql import build_client_schema, build_schema, execute_sync, get_introspection_query, print_schema
from sqlalchemy import update
from starlette.testclient import TestClient

from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.runs import enqueue_download
from tests.support.waiting import wait_for
from uvm_reporting.api import graphql_route
from uvm_reporting.api.app import create_app
from uvm_reporting.api.download_routes import ACCESS_ENDED
from uvm_reporting.api.graphql_route import GraphQLEndpoint
from uvm_reporting.api.graphql_schema import SCHEMA_FILE
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import Account, set_account_disabled
from uvm_reporting.database.api_clients import revoke_client
from uvm_reporting.database.reports import Report, update_report
from uvm_reporting.database.tables import runs as runs_table
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import RunErrorCode
from uvm_reporting.expiring_cache import ACCESS_TTL_SECONDS
from uvm_reporting.services import Services

PROCESS_REPORT = "mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true)}"
# forceNew: a run of its own, where an identical request would join the one still queued.
PROCESS_NEW_RUN = "mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true, forceNew: true)}"
GET_REPORT_RUN_STATUS = (
    "query ($reportId: String, $runId: String) { getReportRunStatus(reportId: $reportId, runId: $runId) }"
)


class Api:
    """A caller of one account with a valid token."""

    def __init__(self, http: TestClient, services: Services, account_id: str) -> None:
        self.http = http
        self.account_id = account_id
        client = create_client(services.engine, account_id)
        self.client_id = client.client_id
        self.token = services.tokens.issue(client.client_id, account_id).access_token

    def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        name: str = "x",
        headers: dict[str, str] | None = None,
    ) -> Any:
        sent = {
            "Content-Type": "application/json",
            "accountId": self.account_id,
            "graphqlname": name,
            "Authorization": f"Bearer {self.token}",
            **(headers or {}),
        }
        return self.http.post("/api/graphql", json={"query": query, "variables": variables or {}}, headers=sent)

    def call(self, query: str, variables: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        response = self.post(query, variables, **kwargs)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def process(self, report_id: str) -> dict[str, Any]:
        body = self.call(PROCESS_REPORT, {"id": report_id}, name="processReport")
        assert "errors" not in body, body
        result: dict[str, Any] = body["data"]["processReport"]
        return result

    def status(self, report_id: str | None, run_id: str | None) -> dict[str, Any]:
        return self.call(GET_REPORT_RUN_STATUS, {"reportId": report_id, "runId": run_id}, name="getReportRunStatus")


@pytest.fixture
def http(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services), base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.fixture
def api(http: TestClient, services: Services, account: Account) -> Api:
    return Api(http, services, account.id)


def error_of(body: dict[str, Any]) -> tuple[str, str]:
    assert body.get("errors"), body
    error = body["errors"][0]
    return error["extensions"]["code"], error["message"]


def test_the_spec_flow_ends_with_a_download_of_the_whole_report(api: Api, public_report: Report) -> None:
    started = api.process(public_report.id)
    assert started["reportId"] == public_report.id
    assert started["status"] == "Running"
    assert started["state"] == "queued"

    def completed() -> dict[str, Any] | None:
        status: dict[str, Any] = api.status(public_report.id, started["runId"])["data"]["getReportRunStatus"]
        assert status["status"] in ("Running", "Completed"), status
        return status if status["status"] == "Completed" else None

    status = wait_for(completed, what="the run to complete")
    assert status["rowCount"] == 120
    assert status["format"] == "csv"
    assert status["sizeBytes"] > 0
    assert status["createdAt"] <= status["startedAt"] <= status["finishedAt"]
    assert "resultFilePath" not in status
    url = urlsplit(status["presignedUrl"])
    assert status["presignedUrl"].startswith("http://127.0.0.1:8000/downloads/")
    download = api.http.get(f"{url.path}?{url.query}")
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in download.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8"), newline="")))
    assert len(rows) == 121
    assert len(download.content) == status["sizeBytes"]

    tampered = api.http.get(f"{url.path}?{url.query}".replace("expires=", "expires=9"))
    assert tampered.status_code == 403


def test_only_report_id_gives_the_latest_run(api: Api, public_report: Report) -> None:
    api.process(public_report.id)
    second = api.process(public_report.id)
    status = api.status(public_report.id, None)["data"]["getReportRunStatus"]
    assert status["runId"] == second["runId"]


def test_the_server_serves_exactly_the_checked_in_schema(api: Api) -> None:
    body = api.call(get_introspection_query(), {})
    served = print_schema(build_client_schema(body["data"]))
    assert served == print_schema(build_schema(SCHEMA_FILE.read_text()))


def test_typed_report_queries_list_only_public_reports(api: Api, public_report: Report, private_report: Report) -> None:
    body = api.call("{ reports { id name viewers columns } }", {})
    assert [r["id"] for r in body["data"]["reports"]] == [public_report.id]
    assert body["data"]["reports"][0]["columns"][-1] == "asset.hostname"
    api.process(public_report.id)
    runs = api.call(
        "query ($id: String!) { reportRuns(reportId: $id) { runId status state format } }", {"id": public_report.id}
    )["data"]["reportRuns"]
    assert len(runs) == 1
    assert runs[0]["status"] == "Running" or runs[0]["status"] == "Completed"


@pytest.mark.parametrize(("limit", "expected"), [(None, 3), (2, 2), (0, 1), (-5, 1), (100, 3)])
def test_report_runs_takes_any_limit_even_null(
    api: Api, public_report: Report, limit: int | None, expected: int
) -> None:
    """An explicit ``limit: null`` means the default page; a limit under 1 is brought to 1 (over
    the page-size limit, 100, is refused before execution: tests/integration/test_graphql_limits_api.py)."""
    for _ in range(3):
        queued = api.call(PROCESS_NEW_RUN, {"id": public_report.id})
        assert queued["data"]["processReport"]["joined"] is False, queued
    body = api.call(
        "query ($id: String!, $limit: Int) { reportRuns(reportId: $id, limit: $limit) { runId } }",
        {"id": public_report.id, "limit": limit},
    )
    assert "errors" not in body, body
    assert len(body["data"]["reportRuns"]) == expected


def test_an_id_or_a_definition_holding_nul_is_an_ordinary_error(api: Api, public_report: Report) -> None:
    """PostgreSQL cannot store or even compare text holding NUL (U+0000): such an id names nothing,
    as on SQLite, and such a definition is refused with what to fix."""
    nul_id = f"{public_report.id}\x00"
    for kind, document in [
        ("Run", "query ($id: String) { getReportRunStatus(runId: $id) }"),
        ("Report", "query ($id: String) { getReportRunStatus(reportId: $id) }"),
        ("Report", "query ($id: String!) { reportRuns(reportId: $id) { runId } }"),
        ("Report", PROCESS_REPORT),
        ("Report", "mutation ($id: String!) { testReportDelivery(id: $id) }"),
    ]:
        assert error_of(api.call(document, {"id": nul_id})) == (
            "NOT_FOUND",
            f"{kind} {nul_id} was not found in account {api.account_id}.",
        )
    assert api.call("query ($id: String!) { report(id: $id) { id } }", {"id": nul_id}) == {"data": {"report": None}}
    created = api.call(
        "mutation ($d: JSON!) { createReport(definition: $d) { id } }",
        {"d": {**ALL_FINDINGS_REPORT, "name": "a\x00b", "filters": [{"field": "title", "op": "eq", "value": "\x00"}]}},
    )
    code, message = error_of(created)
    assert code == "BAD_USER_INPUT"
    assert "name: must not contain the NUL character (U+0000)" in message
    assert "filters[0].value: must not contain the NUL character (U+0000)" in message


# --- errors -------------------------------------------------------------------------------


def test_no_token_is_a_401_with_a_bearer_challenge(http: TestClient, account: Account) -> None:
    response = http.post("/api/graphql", json={"query": PROCESS_REPORT}, headers={"accountId": account.id})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="uvm-reporting"'
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("authorization", ["Bearer not.a.jwt", "Basic dXNlcjpwYXNz", "Bearer "])
def test_an_invalid_token_is_a_401_invalid_token(http: TestClient, account: Account, authorization: str) -> None:
    response = http.post(
        "/api/graphql",
        json={"query": PROCESS_REPORT},
        headers={"accountId": account.id, "Authorization": authorization},
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_revoked_clients_token_stops_working(api: Api, services: Services, public_report: Report) -> None:
    assert "errors" not in api.status(public_report.id, api.process(public_report.id)["runId"])
    revoke_client(services.engine, api.client_id)

    def refused() -> Any:
        response = api.post(GET_REPORT_RUN_STATUS, {"reportId": public_report.id})
        return response if response.status_code == 401 else None

    # Each process trusts what it read about a client for ACCESS_TTL_SECONDS (test_status_poll_caches
    # pins the bound down with a fake clock).
    response = wait_for(refused, timeout=ACCESS_TTL_SECONDS + 10, what="the revoked client to be refused")
    assert "revoked" in response.headers["www-authenticate"]


def test_one_access_log_line_per_call_names_the_operation(
    api: Api, public_report: Report, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = api.process(public_report.id)["runId"]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        api.status(public_report.id, run_id)
    lines = [
        record.getMessage()
        for record in caplog.records
        if record.name == "uvm_reporting.access" or record.name.startswith("uvm_reporting.api")
    ]
    assert len(lines) == 1, lines
    assert '"POST /api/graphql" 200' in lines[0]
    assert f"graphql=getReportRunStatus account={api.account_id} client={api.client_id}" in lines[0]
    assert "graphqlname='getReportRunStatus'" in lines[0]


def test_every_answer_carries_a_request_id_that_its_log_line_carries(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        first = api.http.post("/api/graphql", content=b"not json", headers={"Authorization": f"Bearer {api.token}"})
        second = api.http.post("/api/graphql", content=b"{}", headers={"Authorization": f"Bearer {api.token}"})
    request_ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert len(set(request_ids)) == 2
    assert all(len(request_id) == 16 for request_id in request_ids)
    access = [record.getMessage() for record in caplog.records if record.name == "uvm_reporting.access"]
    assert [line.split(" ", 1)[0] for line in access] == request_ids


def test_an_account_header_of_another_account_is_forbidden(
    api: Api, public_report: Report, other_account: Account
) -> None:
    body = api.call(PROCESS_REPORT, {"id": public_report.id}, headers={"accountId": other_account.id})
    code, message = error_of(body)
    assert code == "FORBIDDEN"
    assert other_account.id in message
    assert body["data"] is None


def test_a_missing_account_header_is_named(api: Api, public_report: Report) -> None:
    response = api.http.post(
        "/api/graphql",
        json={"query": PROCESS_REPORT, "variables": {"id": public_report.id}},
        headers={"Authorization": f"Bearer {api.token}"},
    )
    code, message = error_of(response.json())
    assert code == "BAD_USER_INPUT"
    assert "accountId" in message


def test_a_report_of_another_account_is_not_found(
    http: TestClient, services: Services, public_report: Report, other_account: Account
) -> None:
    stranger = Api(http, services, other_account.id)
    code, message = error_of(stranger.call(PROCESS_REPORT, {"id": public_report.id}))
    assert code == "NOT_FOUND"
    assert public_report.id in message


def test_a_run_of_another_account_is_not_found(
    api: Api, http: TestClient, services: Services, public_report: Report, other_account: Account
) -> None:
    run_id = api.process(public_report.id)["runId"]
    stranger = Api(http, services, other_account.id)
    code, _ = error_of(stranger.status(None, run_id))
    assert code == "NOT_FOUND"


def test_unknown_report_and_run_ids_are_not_found(api: Api, public_report: Report) -> None:
    assert error_of(api.call(PROCESS_REPORT, {"id": "no-such-report"}))[0] == "NOT_FOUND"
    assert error_of(api.status(public_report.id, "no-such-run"))[0] == "NOT_FOUND"
    code, message = error_of(api.status(public_report.id, None))
    assert code == "NOT_FOUND"
    assert "no runs yet" in message
    assert error_of(api.status(None, None))[0] == "BAD_USER_INPUT"


def test_a_run_asked_for_under_another_report_is_not_found(
    api: Api, public_report: Report, services: Services, account: Account
) -> None:
    run_id = api.process(public_report.id)["runId"]
    assert error_of(api.status("another-report", run_id))[0] == "NOT_FOUND"


def test_a_private_report_is_forbidden_with_the_way_out(api: Api, private_report: Report) -> None:
    code, message = error_of(api.call(PROCESS_REPORT, {"id": private_report.id}))
    assert code == "FORBIDDEN"
    assert "Public" in message


def test_without_a_download_link_a_report_needs_delivery_settings(api: Api, public_report: Report) -> None:
    code, message = error_of(api.call("mutation ($id: String!) {processReport(id:$id)}", {"id": public_report.id}))
    assert code == "BAD_USER_INPUT"
    assert "isPresignedUrl" in message


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "BAD_REQUEST"),
        (b'["query"]', 400, "BAD_REQUEST"),
        (b'{"variables": {}}', 400, "BAD_REQUEST"),
        (b'{"query": "mutation {processReport(id:"}', 400, "GRAPHQL_PARSE_FAILED"),
        (b'{"query": "{ noSuchField }"}', 400, "GRAPHQL_VALIDATION_FAILED"),
        (b'{"query": "mutation ($id: String!) {processReport(id:$id)}", "variables": {}}', 200, "BAD_USER_INPUT"),
    ],
)
def test_malformed_requests_get_a_clear_error(api: Api, body: bytes, status: int, code: str) -> None:
    response = api.http.post(
        "/api/graphql",
        content=body,
        headers={
            "Content-Type": "application/json",
            "accountId": api.account_id,
            "Authorization": f"Bearer {api.token}",
        },
    )
    assert response.status_code == status
    assert error_of(response.json())[0] == code


def test_a_graphqlname_that_does_not_match_does_not_break_the_call(api: Api, public_report: Report) -> None:
    body = api.call(PROCESS_REPORT, {"id": public_report.id}, name="somethingElse")
    assert body["data"]["processReport"]["runId"]


def test_the_same_document_is_parsed_once(api: Api, public_report: Report) -> None:
    for _ in range(3):
        api.status(public_report.id, None)
    endpoint_cache = [route for route in api.http.app.routes if getattr(route, "path", "") == "/api/graphql"]  # type: ignore[attr-defined]
    assert endpoint_cache
    prepare = endpoint_cache[0].endpoint.__self__.prepare
    assert prepare.hits >= 2
    assert prepare.misses == 1


def test_a_download_link_may_ask_for_another_format(api: Api, public_report: Report) -> None:
    document = (
        'mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true, format: "ndjson", compression: "gzip")}'
    )
    started = api.call(document, {"id": public_report.id})["data"]["processReport"]

    def completed() -> dict[str, Any] | None:
        status: dict[str, Any] = api.status(public_report.id, started["runId"])["data"]["getReportRunStatus"]
        return status if status["status"] != "Running" else None

    status = wait_for(completed, what="the ndjson run to finish")
    assert (status["status"], status["format"]) == ("Completed", "ndjson")
    url = urlsplit(status["presignedUrl"])
    download = api.http.get(f"{url.path}?{url.query}")
    assert download.headers["content-type"] == "application/gzip"
    assert download.headers["content-disposition"].endswith('.ndjson.gz"')
    lines = gzip.decompress(download.content).decode("utf-8").splitlines()
    assert len(lines) == 120
    assert json.loads(lines[0])["id"] == "finding-0000001"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ('isPresignedUrl: true, format: "pdf"', "not one of csv"),
        ('isPresignedUrl: true, format: "parquet", compression: "gzip"', "gzip"),
        ('isPresignedUrl: true, compression: "zip"', "gzip"),
        ('format: "csv"', "isPresignedUrl"),
    ],
)
def test_bad_format_choices_are_named(api: Api, public_report: Report, arguments: str, message: str) -> None:
    body = api.call(f"mutation ($id: String!) {{processReport(id:$id, {arguments})}}", {"id": public_report.id})
    code, text = error_of(body)
    assert code == "BAD_USER_INPUT"
    assert message in text


def test_a_report_made_private_hides_its_runs(api: Api, services: Services, public_report: Report) -> None:
    run_id = api.process(public_report.id)["runId"]
    update_report(
        services.engine,
        public_report.account_id,
        public_report.id,
        {**public_report.definition.to_json(), "viewers": "private"},
    )
    for report_id, wanted_run in ((public_report.id, run_id), (None, run_id), (public_report.id, None)):
        code, message = error_of(api.status(report_id, wanted_run))
        assert code == "FORBIDDEN"
        assert "private" in message


def test_a_poll_the_caches_can_answer_never_leaves_the_event_loop(
    api: Api, public_report: Report, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Once a finished run, its report's access and the token's client are cached, a poll is
    answered without a handler thread or the database; anything else still gets both."""
    run_id = api.process(public_report.id)["runId"]
    wait_for(
        lambda: api.status(public_report.id, run_id)["data"]["getReportRunStatus"]["status"] == "Completed",
        what="the run to complete",
    )

    def no_thread(*_args: Any) -> Any:
        raise AssertionError("this request went to a handler thread")

    monkeypatch.setattr(GraphQLEndpoint, "_handle_sync", no_thread)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        status = api.status(public_report.id, run_id)["data"]["getReportRunStatus"]
    assert status["status"] == "Completed"
    assert status["presignedUrl"].startswith("http://127.0.0.1:8000/downloads/")  # a fresh link all the same
    access = [record.getMessage() for record in caplog.records if record.name == "uvm_reporting.access"]
    assert len(access) == 1
    assert access[0].count("graphql=getReportRunStatus") == 1

    with caplog.at_level(logging.ERROR):  # a mutation never answers from memory
        assert api.post(PROCESS_REPORT, {"id": public_report.id}).status_code == 500
    assert "this request went to a handler thread" in caplog.text


_RUN, _REPORT = "RUN_ID", "REPORT_ID"


@pytest.mark.parametrize(
    ("document", "variables", "direct"),
    [
        (GET_REPORT_RUN_STATUS, {"reportId": _REPORT, "runId": _RUN}, True),
        (GET_REPORT_RUN_STATUS, {"runId": _RUN}, True),
        ('{ status: getReportRunStatus(runId: "RUN_ID") }', {}, True),
        ('query Poll($r: String = "RUN_ID") { getReportRunStatus(runId: $r, reportId: null) }', {}, True),
        ("query ($r: String!) { getReportRunStatus(runId: $r) }", {"r": _RUN, "unused": 5}, True),
        ("query ($r: String!) { getReportRunStatus(runId: $r) }", {}, False),  # a required variable missing
        ("query ($r: String!) { getReportRunStatus(runId: $r) }", {"r": None}, False),
        ("query ($r: String) { getReportRunStatus(runId: $r) }", {"r": 5}, False),  # not a string
        ("query ($r: String) { getReportRunStatus(runId: $r) }", {"r": "no-such-run"}, False),  # NOT_FOUND
        ('query ($r: String) { getReportRunStatus(reportId: "REPORT_ID", runId: $r) }', {}, True),  # the latest run
        ('{ getReportRunStatus(runId: "RUN_ID") @include(if: true) }', {}, False),
        ('{ getReportRunStatus(runId: "RUN_ID") __typename }', {}, False),
    ],
)
def test_a_poll_answered_without_the_executor_reads_as_the_executors_answer(  # noqa: PLR0917 - parameters
    api: Api,
    public_report: Report,
    monkeypatch: pytest.MonkeyPatch,
    document: str,
    variables: dict[str, Any],
    direct: bool,
) -> None:
    """The plain status poll skips graphql-core's executor (api/direct_queries.py); any request
    that plan does not fit, or whose answer is an error, goes to the executor: the answers match."""
    run_id = api.process(public_report.id)["runId"]
    wait_for(
        lambda: api.status(public_report.id, run_id)["data"]["getReportRunStatus"]["status"] == "Completed",
        what="the run to complete",
    )
    document = document.replace(_RUN, run_id).replace(_REPORT, public_report.id)
    variables = {
        name: {_RUN: run_id, _REPORT: public_report.id}.get(value, value) if isinstance(value, str) else value
        for name, value in variables.items()
    }
    executed: list[str] = []
    execute = execute_sync

    def counted(*args: Any, **kwargs: Any) -> Any:
        executed.append(document)
        return execute(*args, **kwargs)

    monkeypatch.setattr(graphql_route, "execute_sync", counted)
    answered = api.call(document, variables)
    assert bool(executed) is not direct

    if direct:
        status = next(iter(answered["data"].values()))
        assert (status["runId"], status["status"]) == (run_id, "Completed")
        assert status["presignedUrl"].startswith("http://127.0.0.1:8000/downloads/")
    else:
        assert answered.get("errors") or "__typename" in answered["data"] or "@include" in document

    monkeypatch.setattr(graphql_route, "_answer_directly", lambda *_args: None)
    by_the_executor = api.call(document, variables)
    assert _without_links(answered) == _without_links(by_the_executor)


def _without_links(body: dict[str, Any]) -> dict[str, Any]:
    """The answer without its download link, which is fresh on every call (expiry in whole seconds),
    and without its errors' request ids, which are too."""
    link = ("presignedUrl", "presignedUrlExpiresAt")
    data = {
        key: {k: v for k, v in value.items() if k not in link} if isinstance(value, dict) else value
        for key, value in (body.get("data") or {}).items()
    }
    errors = [
        {**error, "extensions": {k: v for k, v in error["extensions"].items() if k != "requestId"}}
        for error in body.get("errors", ())
    ]
    return {**body, "data": data, **({"errors": errors} if errors else {})}


def _download_link(api: Api, report: Report) -> str:
    """The path and query of a finished download run's link, as ``api``'s client got it."""
    run_id = api.process(report.id)["runId"]

    def completed() -> dict[str, Any] | None:
        status: dict[str, Any] = api.status(report.id, run_id)["data"]["getReportRunStatus"]
        return status if status["status"] == "Completed" else None

    url = urlsplit(wait_for(completed, what="the run to complete")["presignedUrl"])
    assert f"client={api.client_id}" in url.query
    return f"{url.path}?{url.query}"


def _refused_link(api: Api, link: str) -> Any:
    """Wait until ``link`` is refused; each process trusts what it read about a client or a report
    for ACCESS_TTL_SECONDS (test_status_poll_caches pins the bound down with a fake clock)."""
    response = wait_for(
        lambda: (answer := api.http.get(link)).status_code != 200 and answer,
        timeout=ACCESS_TTL_SECONDS + 10,
        what="the download link to be refused",
    )
    assert response.status_code == 403, response.text
    body = response.json()
    assert (body["error"], body["message"]) == ("forbidden", ACCESS_ENDED)
    assert body["requestId"] == response.headers["x-request-id"]
    return response


def test_a_download_link_stops_working_once_its_client_is_revoked(
    api: Api, services: Services, public_report: Report
) -> None:
    """Before, a link kept working for its whole lifetime (up to 7 days) after revocation."""
    link = _download_link(api, public_report)
    assert api.http.get(link).status_code == 200
    revoke_client(services.engine, api.client_id)
    _refused_link(api, link)


def test_a_download_link_stops_working_while_its_account_is_disabled(
    api: Api, services: Services, public_report: Report
) -> None:
    link = _download_link(api, public_report)
    set_account_disabled(services.engine, api.account_id, disabled=True)
    _refused_link(api, link)
    assert api.post(GET_REPORT_RUN_STATUS, {"reportId": public_report.id}).status_code == 401  # its tokens too
    set_account_disabled(services.engine, api.account_id, disabled=False)
    wait_for(lambda: api.http.get(link).status_code == 200, timeout=ACCESS_TTL_SECONDS + 10, what="the link again")


def test_a_download_link_stops_working_once_its_report_is_made_private(
    api: Api, services: Services, public_report: Report
) -> None:
    link = _download_link(api, public_report)
    update_report(
        services.engine,
        public_report.account_id,
        public_report.id,
        {**public_report.definition.to_json(), "viewers": "private"},
    )
    _refused_link(api, link)


def test_a_link_issued_to_one_client_does_not_name_another(
    api: Api, http: TestClient, services: Services, public_report: Report
) -> None:
    link = _download_link(api, public_report)
    other = Api(http, services, api.account_id)
    swapped = link.replace(f"client={api.client_id}", f"client={other.client_id}")
    refused = http.get(swapped)
    assert refused.status_code == 403
    assert "signature" in refused.json()["message"]
    revoke_client(services.engine, api.client_id)
    _refused_link(api, link)
    other_link = _download_link(other, public_report)  # a client still active keeps its own links
    assert http.get(other_link).status_code == 200


@pytest.mark.parametrize("value", [1.5, -(10**20), "ten", True])
def test_a_variable_of_the_wrong_type_is_the_callers_error(api: Api, public_report: Report, value: Any) -> None:
    """graphql-core wraps a value's coercion error in a GraphQLError: the caller's input, not a crash."""
    body = api.call(
        "query ($id: String!, $limit: Int) { reportRuns(reportId: $id, limit: $limit) { runId } }",
        {"id": public_report.id, "limit": value},
    )
    code, message = error_of(body)
    assert code == "BAD_USER_INPUT", body
    assert "$limit" in message


def test_a_run_waiting_to_be_retried_tells_when_and_why(api: Api, services: Services, public_report: Report) -> None:
    due = utc_now() + timedelta(hours=1)  # the server's own workers leave it alone
    # Queued as a worker's retry_run leaves it, in one transaction: the server's workers never
    # see the run before it waits (a claim of theirs would race this test's own).
    with services.engine.begin() as connection:
        run = enqueue_download(services.engine, public_report, connection=connection)
        connection.execute(
            update(runs_table)
            .where(runs_table.c.id == run.id)
            .values(
                attempts=1,
                next_attempt_at=due,
                error_code=RunErrorCode.DELIVERY_FAILED.value,
                error_message="S3 answered 503",
            )
        )
    status = api.status(None, run.id)["data"]["getReportRunStatus"]
    assert status["state"] == "queued"
    assert status["attempts"] == 1
    assert abs(datetime.fromisoformat(status["nextAttemptAt"]) - due) < timedelta(milliseconds=1)
    assert (status["lastErrorCode"], status["lastErrorMessage"]) == ("DELIVERY_FAILED", "S3 answered 503")
    assert "queuePosition" not in status
    fields = "runId state attempts nextAttemptAt lastErrorCode lastErrorMessage queuePosition errorCode"
    runs = api.call(f"query ($id: String!) {{ reportRuns(reportId: $id) {{ {fields} }} }}", {"id": public_report.id})
    assert runs["data"]["reportRuns"] == [
        {
            "runId": run.id,
            "state": "queued",
            "attempts": 1,
            "nextAttemptAt": status["nextAttemptAt"],
            "lastErrorCode": "DELIVERY_FAILED",
            "lastErrorMessage": "S3 answered 503",
            "queuePosition": None,
            "errorCode": None,
        }
    ]
