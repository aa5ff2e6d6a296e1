"""Hostile requests through the real ASGI app: malformed bodies and tokens get a 4xx, every error
answer names its request id, and an unexpected failure tells a client nothing internal."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from starlette.testclient import TestClient

from uvm_reporting.api import token_routes
from uvm_reporting.api.app import create_app
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.reports import Report
from uvm_reporting.services import Services

PROCESS_REPORT = "mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true)}"


@pytest.fixture
def http(services: Services) -> Iterator[TestClient]:
    # A failure must be answered by the app itself, not re-raised into the test.
    with TestClient(create_app(services, run_workers=False), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def headers(services: Services, account: Account) -> dict[str, str]:
    client = create_client(services.engine, account.id)
    token = services.tokens.issue(client.client_id, account.id).access_token
    return {"Content-Type": "application/json", "accountId": account.id, "Authorization": f"Bearer {token}"}


def graphql_error(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["errors"][0]
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    return error


DEEP = b"[" * 30_000 + b"]" * 30_000


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": ' + DEEP + b"}",  # was an uncaught RecursionError: 500
        b'{"query": "{ reports { id } }", "variables": {"x": ' + DEEP[:20_000] + DEEP[-20_000:] + b"}}",
        # A lone surrogate is valid JSON but no text: the answer echoing it could not be encoded.
        b'{"query": "mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true)}", '
        b'"variables": {"id": "\\ud800"}}',
        b"\xff\xfe{}",
        b"",
    ],
    ids=["deep-query", "deep-variables", "lone-surrogate", "not-utf-8", "empty"],
)
def test_a_malformed_body_is_a_400(http: TestClient, headers: dict[str, str], body: bytes) -> None:
    response = http.post("/api/graphql", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert graphql_error(response)["extensions"]["code"] == "BAD_REQUEST"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_token_with_an_unknown_kid_and_a_non_latin_1_issuer_is_a_401(http: TestClient, account: Account) -> None:
    forged = ".".join(
        [
            b64(json.dumps({"alg": "ES256", "kid": "not-ours"}).encode()),
            b64(json.dumps({"iss": "https://☃.example.com", "region": "☃\r\nX-Forged: 1"}).encode()),
            b64(b"signature"),
        ]
    )
    response = http.post(
        "/api/graphql",
        json={"query": PROCESS_REPORT, "variables": {"id": "r"}},
        headers={"accountId": account.id, "Authorization": f"Bearer {forged}"},
    )
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="uvm-reporting", error="invalid_token", error_description="')
    assert "example.com" not in challenge
    assert "x-forged" not in response.headers
    error = graphql_error(response)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "☃" not in error["message"]


def test_graphql_errors_name_the_request_id(http: TestClient, headers: dict[str, str], public_report: Report) -> None:
    response = http.post("/api/graphql", json={"query": PROCESS_REPORT, "variables": {"id": "nope"}}, headers=headers)
    assert response.status_code == 200
    assert graphql_error(response)["extensions"]["code"] == "NOT_FOUND"
    unauthenticated = http.post("/api/graphql", json={"query": PROCESS_REPORT})
    assert graphql_error(unauthenticated)["extensions"]["code"] == "UNAUTHENTICATED"


def test_other_refusals_name_the_request_id(http: TestClient) -> None:
    for response in (
        http.get("/no/such/route"),
        http.post("/oauth2/token", data={"grant_type": "password"}),
        http.get("/downloads/run-1?expires=1&signature=x"),
    ):
        assert response.status_code in (400, 403, 404, 405), response.text
        assert response.json()["requestId"] == response.headers["x-request-id"]
    assert http.get("/no/such/route").json()["error"] == "not_found"
    wrong_method = http.get("/api/graphql")
    assert wrong_method.status_code == 405
    assert graphql_error(wrong_method)["extensions"]["code"] == "METHOD_NOT_ALLOWED"


def test_an_unexpected_failure_is_a_500_that_leaks_nothing(
    http: TestClient, monkeypatch: pytest.MonkeyPatch, account: Account
) -> None:
    def broken_database(*_args: object) -> None:
        raise OperationalError(
            "SELECT secret_hash FROM api_clients WHERE client_id = ?", ("c",), Exception("/srv/var/db.sqlite3 locked")
        )

    assert not http.app.debug  # type: ignore[attr-defined] # Starlette's debug pages would show the traceback
    monkeypatch.setattr(token_routes, "authenticate_client", broken_database)
    response = http.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"}
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["requestId"] == response.headers["x-request-id"]
    assert body["error"] == "internal_server_error"
    for leak in ("SELECT", "api_clients", "/srv/", "Traceback", ".py"):
        assert leak not in response.text
