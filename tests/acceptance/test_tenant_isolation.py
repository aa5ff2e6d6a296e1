"""Tenant isolation, proven against the real server on SQLite and PostgreSQL, for every GraphQL
operation and every HTTP route the server has, including those added after this test.

The caller is Acme, with its own valid token. It names, in every id argument of every root field
(tests/support/tenant_isolation.py fills them from the schema the server builds) and in every
path parameter of every route (read from the app's route table):

* Globex's objects: its account, client, public and private reports and finished runs. The
  answer must hold no data, nothing of Globex, and be the answer for an id that names nothing
  (but for the id itself): it must not tell whether the object exists.
* Acme's own private report, and a finished run of it: the answer must hold no data and nothing
  of the report (its name, the run's digest); an error saying it is private is fine.

Every operation is also sent with Globex's account id in the ``accountId`` header. Afterwards
Globex's rows and Acme's private report are exactly as they were: nothing was started or changed.
Queries are attacked before mutations and routes, so a record of the attack itself (an audit log
entry naming an id Acme sent) cannot be mistaken for a leak. Answers refused for their volume
(tenant_isolation.THROTTLED_CODES, 429) count as revealing nothing.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from graphql import build_schema as sdl_schema
from sqlalchemy import Engine
from starlette.routing import Route

from tests.support.tenant_isolation import (
    THROTTLED_CODES,
    CannotAttack,
    HttpRoute,
    Markers,
    Operation,
    Target,
    data_of,
    error_codes,
    http_routes,
    normalized,
    operations,
    parse_json,
    unknown_like,
)
from tests.support.tenants import Caller, Tenant, rows_of, secrets_of, two_tenant_server
from uvm_reporting.api.app import create_app
from uvm_reporting.api.graphql_schema import build_schema
from uvm_reporting.services import build_services
from uvm_reporting.settings import Settings

REVIEWED_ROUTES = {
    "/oauth2/token": "issues a token to the client whose credentials are sent; names no object",
    "/.well-known/jwks.json": "the public signing keys, the same for every account",
    "/api/graphql": "attacked operation by operation from the schema",
    "/healthz": "the deployment's status, version and region",
    "/readyz": "whether the database and the storage answer; names no object",
    "/metrics": "counts by state, error code, route template and status; no account, report or run ids",
}
"""Routes without a path parameter, each with why no account's data can leak through it."""


def foreign_targets(theirs: Tenant) -> list[Target]:
    return [
        Target("Globex's account", "account", theirs.account_id),
        Target("Globex's client", "client", theirs.client_id),
        Target("Globex's public report", "report", theirs.public_report.id),
        Target("Globex's private report", "report", theirs.private_report.id),
        Target("Globex's run of its public report", "run", theirs.public_run_id),
        Target("Globex's run of its private report", "run", theirs.private_run_id),
    ]


def own_private_targets(mine: Tenant) -> list[Target]:
    return [
        Target("Acme's private report", "report", mine.private_report.id),
        Target("Acme's run of its private report", "run", mine.private_run_id),
    ]


def test_other_accounts_ids_and_own_private_reports_reveal_nothing(
    settings: Settings, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    with two_tenant_server(settings.data_dir, engine, database_url) as (base_url, mine, theirs):
        theirs_before = rows_of(engine, theirs.account_id)
        private_before = private_rows(engine, mine)
        attack = Attack(Caller(base_url, mine), secrets_of(engine, mine, theirs), theirs)
        try:
            for operation in operations(build_schema()):
                attack.operation(operation, foreign_targets(theirs), own_private_targets(mine))
            routes = http_routes(app_routes(tmp_path, database_url), REVIEWED_ROUTES)
            attack.routes(routes, foreign_targets(theirs), own_private_targets(mine))
            attack.token_endpoint()
        finally:
            attack.caller.close()

        assert attack.problems == [], "\n".join(attack.problems)
        assert attack.attacked_operations, "no operation was attacked"
        assert rows_of(engine, theirs.account_id) == theirs_before, "Globex's reports, runs or clients changed"
        assert private_rows(engine, mine) == private_before, "Acme's private report changed or ran"


def test_the_attacks_fill_every_operation_and_route_of_this_server(tmp_path: Path) -> None:
    """Without a server: every root field and route is one the attacks can fill (else CannotAttack
    says what to add), so a new one is attacked, or named, before it ships."""
    for operation in operations(build_schema()):
        for target in (None, Target("some report", "report", "r"), Target("some run", "run", "u")):
            document, _ = operation.request(target)
            assert operation.name in document
    database_url = f"sqlite:///{tmp_path / 'routes.sqlite3'}"
    assert {route.path for route in http_routes(app_routes(tmp_path, database_url), REVIEWED_ROUTES)} >= set(
        REVIEWED_ROUTES
    )


def test_a_new_route_or_an_unfillable_argument_fails_with_what_to_add() -> None:
    async def endpoint(_: Any) -> None: ...

    with pytest.raises(CannotAttack, match="REVIEWED_ROUTES"):
        http_routes([Route("/api/secrets", endpoint)], REVIEWED_ROUTES)
    schema = sdl_schema("scalar Date type Query { runsSince(reportId: String!, since: Date!): [String!]! }")
    (operation,) = operations(schema)
    with pytest.raises(CannotAttack, match="scalar Date"):
        operation.request(Target("some report", "report", "r"))


def app_routes(tmp_path: Path, database_url: str) -> list[Any]:
    """The route table of the app as ``serve`` builds it (local storage: the download route is in)."""
    settings = Settings(data_dir=tmp_path / "routes-var", database_url=database_url, region="us01")
    services = build_services(settings)
    try:
        return list(create_app(services, run_workers=False).routes)
    finally:
        services.engine.dispose()


def private_rows(engine: Engine, tenant: Tenant) -> list[dict[str, Any]]:
    """The row of ``tenant``'s private report and those of its runs."""
    rows = rows_of(engine, tenant.account_id)
    report_id = tenant.private_report.id
    return [row for row in rows["reports"] if row["id"] == report_id] + [
        row for row in rows["runs"] if row["report_id"] == report_id
    ]


class Attack:
    """Sends the attacks as one caller and collects every leak found, with the request and answer."""

    def __init__(self, caller: Caller, markers: Markers, theirs: Tenant) -> None:
        self.caller = caller
        self.markers = markers
        self.theirs = theirs
        self.problems: list[str] = []
        self.attacked_operations: list[str] = []
        self._link_query = ""

    # GraphQL

    def operation(self, operation: Operation, foreign: list[Target], own_private: list[Target]) -> None:
        self.attacked_operations.append(operation.label)
        self._with_other_account_header(operation)
        if not operation.id_arguments():
            document, variables = operation.request(None)
            answer = self.caller.graphql(document, variables)
            self._check(f"{operation.label} {variables}", answer, sent_ids=[])
            return
        for target in foreign:
            document, variables = operation.request(target)
            answer = self.caller.graphql(document, variables)
            where = f"{operation.label} {variables} naming {target.label}"
            if not self._check(where, answer, sent_ids=[target.id], field_name=operation.name):
                continue
            unknown = unknown_like(target)
            unknown_document, unknown_variables = operation.request(Target("an unknown id", target.kind, unknown))
            unknown_answer = self.caller.graphql(unknown_document, unknown_variables)
            self._check_same(where, answer, target.id, unknown_answer, unknown)
        for target in own_private:
            document, variables = operation.request(target)
            answer = self.caller.graphql(document, variables)
            self._check(f"{operation.label} {variables} naming {target.label}", answer, [target.id], operation.name)

    def _with_other_account_header(self, operation: Operation) -> None:
        target = Target("Globex's public report", "report", self.theirs.public_report.id)
        document, variables = operation.request(target if operation.id_arguments() else None)
        answer = self.caller.graphql(document, variables, account_id=self.theirs.account_id)
        where = f"{operation.label} {variables} with Globex's accountId header"
        if self._check(where, answer, [self.theirs.account_id, target.id], operation.name):
            body = parse_json(answer.text)
            if not error_codes(body):
                self.problems.append(f"{where}: answered without an error: {answer.status_code} {answer.text}")

    # HTTP routes

    def routes(self, routes: list[HttpRoute], foreign: list[Target], own_private: list[Target]) -> None:
        for route in routes:
            for method in route.methods:
                if not route.params:
                    answer = self.caller.http.request(method, route.path, headers=self.caller.headers())
                    self._check(f"{method} {route.path}", answer, sent_ids=[])
                    continue
                for target in [*foreign, *own_private]:
                    answer = self._route(method, route, target.id)
                    where = f"{method} {route.url(target.id)} naming {target.label}"
                    if not self._check(where, answer, [target.id]):
                        continue
                    if answer.status_code < 400:
                        self.problems.append(f"{where}: answered {answer.status_code}: {answer.text[:300]}")
                    elif target in foreign:
                        unknown = unknown_like(target)
                        self._check_same(where, answer, target.id, self._route(method, route, unknown), unknown)

    def _route(self, method: str, route: HttpRoute, value: str) -> httpx2.Response:
        """A request naming ``value`` in every path parameter, with every credential Acme holds:
        its token and account id, and the signature of a download link of its own run."""
        return self.caller.http.request(
            method, f"{route.url(value)}?{self.link_query()}", headers=self.caller.headers()
        )

    def link_query(self) -> str:
        """The query string (expires, signature) of a fresh download link of Acme's public run."""
        if not self._link_query:
            answer = self.caller.graphql(
                "query ($runId: String) { getReportRunStatus(runId: $runId) }",
                {"runId": self.caller.tenant.public_run_id},
            )
            self._link_query = urlsplit(answer.json()["data"]["getReportRunStatus"]["presignedUrl"]).query
        return self._link_query

    def token_endpoint(self) -> None:
        """Globex's client id with Acme's secret: refused as an unknown client id is."""
        secret = self.caller.tenant.client_secret

        def token(client_id: str) -> httpx2.Response:
            form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
            return self.caller.http.post("/oauth2/token", data=form)

        where = "POST /oauth2/token with Globex's client id and Acme's secret"
        answer = token(self.theirs.client_id)
        if self._check(where, answer, [self.theirs.client_id]):
            if answer.status_code < 400:
                self.problems.append(f"{where}: answered {answer.status_code}: {answer.text[:300]}")
            unknown = str(uuid.uuid4())
            self._check_same(where, answer, self.theirs.client_id, token(unknown), unknown)

    # checks

    def _check(self, where: str, answer: httpx2.Response, sent_ids: list[str], field_name: str | None = None) -> bool:
        """No server error, nothing of the markers, and no data for ``field_name``; False when a
        problem was found."""
        found: list[str] = []
        if answer.status_code >= 500:
            found.append(f"server error {answer.status_code}")
        leaked = self.markers.found_in(normalized(answer.text, sent_ids))
        if leaked:
            found.append(f"reveals {', '.join(leaked)}")
        if field_name is not None and not _empty(data_of(parse_json(answer.text), field_name)):
            found.append("answered with data")
        if found:
            self.problems.append(f"{where}: {'; '.join(found)}: {answer.status_code} {answer.text[:500]}")
        return not found

    def _check_same(
        self, where: str, answer: httpx2.Response, sent: str, unknown_answer: httpx2.Response, unknown: str
    ) -> None:
        """The answer naming an object of another account is the answer naming nothing."""
        throttled = {429, 503} & {answer.status_code, unknown_answer.status_code} or THROTTLED_CODES & (
            error_codes(parse_json(answer.text)) | error_codes(parse_json(unknown_answer.text))
        )
        if throttled:
            return  # refused for its volume: says nothing of the object either way
        seen = (answer.status_code, normalized(answer.text, [sent]))
        expected = (unknown_answer.status_code, normalized(unknown_answer.text, [unknown]))
        if seen != expected:
            self.problems.append(
                f"{where}: the answer tells the object exists:\n  for it:      {seen}\n  for unknown: {expected}"
            )


def _empty(data: Any) -> bool:
    """Whether an answer's data holds nothing: null, an empty list, or a connection without edges
    (a list filtered by another account's id, e.g. auditEvents, finds nothing)."""
    if data in (None, [], {}):
        return True
    return isinstance(data, dict) and data.get("edges") == []
