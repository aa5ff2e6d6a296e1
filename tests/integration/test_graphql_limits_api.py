"""GraphQL cost limits through the real ASGI app: refused before execution, off the event loop."""

from __future__ import annotations

import string
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import get_introspection_query
from graphql.language.parser import Parser
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.integration.test_graphql_api import Api, error_of
from uvm_reporting.api.app import create_app
from uvm_reporting.api.bearer_auth import ActiveClients
from uvm_reporting.api.graphql_route import GraphQLEndpoint
from uvm_reporting.api.graphql_schema import build_schema
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.reports import Report
from uvm_reporting.services import Services


@pytest.fixture
def http(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services), base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.fixture
def api(http: TestClient, services: Services, account: Account) -> Api:
    return Api(http, services, account.id)


def endpoint_of(http: TestClient) -> GraphQLEndpoint:
    routes = [route for route in http.app.routes if getattr(route, "path", "") == "/api/graphql"]  # type: ignore[attr-defined]
    endpoint: GraphQLEndpoint = routes[0].endpoint.__self__
    return endpoint


def codes_of(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body["errors"]]


def test_4000_aliases_are_refused_at_the_token_limit_however_the_whitespace_varies(api: Api) -> None:
    """The issue's case, as compact as the 64 KiB body limit needs it."""
    letters = string.ascii_letters
    aliases = [a + b + c for a in letters[:16] for b in letters for c in letters][:4000]
    for leading, separator in ((" ", " "), ("  ", " "), ("\n", ","), ("\t", ",")):
        document = leading + "{" + separator.join(f"{alias}:reports{{id}}" for alias in aliases) + "}"
        assert len(document) < 64 * 1024
        response = api.post(document)
        assert response.status_code == 400
        code, message = error_of(response.json())
        assert code == "GRAPHQL_TOO_MANY_TOKENS"
        assert "max_tokens=2000" in message
    prepared = endpoint_of(api.http).prepare
    assert prepared.cached(document) is None  # a refused document is not kept


def test_25_aliased_process_report_fields_start_no_run(api: Api, services: Services, public_report: Report) -> None:
    document = (
        "mutation ($id: String!) {"
        + " ".join(f"r{i}: processReport(id: $id, isPresignedUrl: true)" for i in range(25))
        + "}"
    )
    response = api.post(document, {"id": public_report.id})
    assert response.status_code == 400
    code, message = error_of(response.json())
    assert code == "GRAPHQL_TOO_MANY_RUN_FIELDS"
    assert "max_run_fields=1" in message
    assert services.report_runs.run_history(api.account_id, public_report.id, 100) == []
    assert api.process(public_report.id)["runId"]  # one per request still runs


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ("{ __schema { types { " + "ofType { " * 20 + "name" + " }" * 20 + " } } }", "GRAPHQL_TOO_DEEP"),
        ("{" + " ".join(f"t{i}: __typename" for i in range(31)) + "}", "GRAPHQL_TOO_MANY_ROOT_FIELDS"),
        (
            '{ reportRuns(reportId: "r") {' + " ".join(f"a{i}: runId" for i in range(31)) + "} }",
            "GRAPHQL_TOO_MANY_ALIASES",
        ),
        ('{ reportRuns(reportId: "r", limit: 101) { runId } }', "GRAPHQL_PAGE_SIZE_TOO_LARGE"),
        ("# comment\n" * 101 + "{ __typename }", "GRAPHQL_TOO_MANY_COMMENTS"),
    ],
)
def test_each_limit_has_its_own_code(api: Api, document: str, code: str) -> None:
    response = api.post(document)
    assert response.status_code == 400
    assert code in codes_of(response.json())


def test_a_page_size_given_as_a_variable_is_checked_before_execution(api: Api, public_report: Report) -> None:
    document = "query ($id: String!, $n: Int) { reportRuns(reportId: $id, limit: $n) { runId } }"
    response = api.post(document, {"id": public_report.id, "n": 1000})
    assert response.status_code == 400
    assert error_of(response.json())[0] == "GRAPHQL_PAGE_SIZE_TOO_LARGE"
    api.process(public_report.id)
    assert len(api.call(document, {"id": public_report.id, "n": 100})["data"]["reportRuns"]) == 1


def test_a_new_document_is_parsed_on_a_handler_thread_while_healthz_answers(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parse of a document the cache does not hold waits until /healthz has been answered:
    had it run on the event loop, /healthz could not be answered meanwhile."""
    parse = Parser.parse_document
    parsing = threading.Event()
    healthz_answered = threading.Event()
    parsed_on: list[tuple[str, bool]] = []

    def slow_parse(*args: Any, **kwargs: Any) -> Any:
        parsing.set()
        parsed_on.append((threading.current_thread().name, healthz_answered.wait(timeout=20)))
        return parse(*args, **kwargs)

    assert api.call("{ __typename }", {})["data"]  # the token's client is now cached: auth needs no thread
    monkeypatch.setattr(Parser, "parse_document", slow_parse)
    answers: list[Any] = []
    caller = threading.Thread(target=lambda: answers.append(api.post("{ reports { id } }")))
    caller.start()
    assert parsing.wait(timeout=20)
    assert api.http.get("/healthz").status_code == 200
    healthz_answered.set()
    caller.join(timeout=30)
    assert answers[0].status_code == 200
    assert answers[0].json() == {"data": {"reports": []}}
    assert parsed_on == [(parsed_on[0][0], True)]
    assert parsed_on[0][0].startswith("graphql")


@pytest.fixture
def closed_api(services: Services, account: Account) -> Iterator[Api]:
    endpoint = GraphQLEndpoint(
        build_schema(), services.tokens, ActiveClients.of(services.engine), services.report_runs, introspection=False
    )
    with TestClient(Starlette(routes=endpoint.routes()), base_url="http://127.0.0.1:8000") as client:
        yield Api(client, services, account.id)
    endpoint.close()


def test_introspection_can_be_turned_off(closed_api: Api, api: Api, public_report: Report) -> None:
    response = closed_api.post(get_introspection_query())
    assert response.status_code == 400
    assert set(codes_of(response.json())) == {"GRAPHQL_INTROSPECTION_DISABLED"}
    body = closed_api.call("{ __typename reports { id } }", {})
    assert body["data"] == {"__typename": "Query", "reports": [{"id": public_report.id}]}
    assert "errors" not in api.call(get_introspection_query(), {})  # on by default
