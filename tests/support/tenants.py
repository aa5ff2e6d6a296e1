"""Two accounts on one server, each with public and private reports and finished runs: the world the
tenant-isolation and fuzz tests attack. Rows are written straight into the database before the
server starts; the server's workers run the queued runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import Engine, select

from tests.support.cli import running_server
from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.tenant_isolation import Markers
from tests.support.waiting import wait_for
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.reports import Report, create_report
from uvm_reporting.database.runs import enqueue_run, get_run
from uvm_reporting.database.tables import api_clients, reports, runs
from uvm_reporting.domain.runs import Delivery, RunRecord, RunState
from uvm_reporting.platform_data.generator import generate_platform_data

SERVER_ENV: dict[str, Any] = {}
"""Settings of the attacked server. Request, cost and rate limits stay at their defaults: the
attacks send one field per document and a few hundred requests, and an answer refused for its
volume (tenant_isolation.THROTTLED_CODES) counts as revealing nothing."""


@dataclass(frozen=True, slots=True)
class Tenant:
    """One account: its client's credentials, a public report with a finished download run, and a
    private report (Viewers private) with a finished run too."""

    account_id: str
    account_name: str
    external_id: str
    client_id: str
    client_secret: str
    public_report: Report
    private_report: Report
    public_run_id: str
    private_run_id: str

    def digests(self, engine: Engine) -> dict[str, str | None]:
        return {
            run_id: get_run(engine, self.account_id, run_id).sha256
            for run_id in (self.public_run_id, self.private_run_id)
        }


def create_tenant(engine: Engine, name: str, *, seed: int) -> Tenant:
    tag = uuid.uuid4().hex[:8]
    account = create_account(engine, f"{name} {tag}")
    generate_platform_data(engine, account.id, findings=6, seed=seed)
    public = create_report(engine, account.id, {**ALL_FINDINGS_REPORT, "name": f"{name} public report {tag}"})
    private = create_report(
        engine,
        account.id,
        {
            **ALL_FINDINGS_REPORT,
            "name": f"{name} private report {tag}",
            "columns": ALL_FINDINGS_REPORT["columns"][:3],
            "viewers": "private",
        },
    )
    client = create_client(engine, account.id, f"{name} client")
    public_run, private_run = (
        enqueue_run(
            engine,
            account_id=account.id,
            report_id=report.id,
            delivery=Delivery.DOWNLOAD,
            format="csv",
            definition=report.definition.to_json(),
            requested_by=client.client_id,
        )
        for report in (public, private)
    )
    return Tenant(
        account_id=account.id,
        account_name=account.name,
        external_id=account.external_id,
        client_id=client.client_id,
        client_secret=client.client_secret,
        public_report=public,
        private_report=private,
        public_run_id=public_run.id,
        private_run_id=private_run.id,
    )


def wait_until_runs_finished(engine: Engine, *tenants: Tenant) -> None:
    for tenant in tenants:
        for run_id in (tenant.public_run_id, tenant.private_run_id):

            def finished(run_id: str = run_id, account_id: str = tenant.account_id) -> RunRecord | None:
                run = get_run(engine, account_id, run_id)
                return run if run.state.is_final else None

            run = wait_for(finished, timeout=60, what=f"run {run_id} to finish")
            assert run.state is RunState.COMPLETED, run


def rows_of(engine: Engine, account_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every report, run and client row of an account (by table), to compare before and after an attack."""
    with engine.connect() as connection:
        return {
            table.name: [
                dict(row._mapping)
                for row in connection.execute(
                    select(table).where(table.c.account_id == account_id).order_by(*table.primary_key.columns)
                )
            ]
            for table in (reports, runs, api_clients)
        }


def secrets_of(engine: Engine, mine: Tenant, theirs: Tenant) -> Markers:
    """What no answer to ``mine`` may hold: anything of ``theirs``, and what ``mine``'s private report
    and its run hold."""
    markers = Markers()
    markers.add("Globex's account id", theirs.account_id)
    markers.add("Globex's account name", theirs.account_name)
    markers.add("Globex's ExternalId", theirs.external_id)
    markers.add("Globex's client id", theirs.client_id)
    markers.add("Globex's client secret", theirs.client_secret)
    markers.add("a Globex report id", theirs.public_report.id, theirs.private_report.id)
    markers.add("a Globex report name", theirs.public_report.definition.name, theirs.private_report.definition.name)
    markers.add("a Globex run id", theirs.public_run_id, theirs.private_run_id)
    markers.add("a Globex run's sha256", *theirs.digests(engine).values())
    markers.add("Acme's private report name", mine.private_report.definition.name)
    markers.add("the sha256 of Acme's run of its private report", mine.digests(engine)[mine.private_run_id])
    return markers


class Caller:
    """An HTTP client of the server holding one tenant's access token."""

    def __init__(self, base_url: str, tenant: Tenant) -> None:
        self.tenant = tenant
        self.http = httpx2.Client(base_url=base_url, timeout=30)
        answer = self.http.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": tenant.client_id,
                "client_secret": tenant.client_secret,
            },
        )
        assert answer.status_code == 200, answer.text
        self.token: str = answer.json()["access_token"]

    def headers(self, *, account_id: str | None = None, name: str = "attack") -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "accountId": account_id or self.tenant.account_id,
            "graphqlname": name,
        }

    def graphql(self, query: str, variables: dict[str, Any], *, account_id: str | None = None) -> httpx2.Response:
        return self.http.post(
            "/api/graphql",
            json={"query": query, "variables": variables},
            headers=self.headers(account_id=account_id),
        )

    def close(self) -> None:
        self.http.close()


@contextmanager
def two_tenant_server(data_dir: Path, engine: Engine, database_url: str) -> Iterator[tuple[str, Tenant, Tenant]]:
    """A server over ``database_url`` holding two tenants ("Acme", the caller, and "Globex", the
    other account) whose runs have finished; yields (base URL, Acme, Globex)."""
    mine = create_tenant(engine, "Acme", seed=1)
    theirs = create_tenant(engine, "Globex", seed=2)
    with running_server(data_dir, UVM_REPORTING_DATABASE_URL=database_url, **SERVER_ENV) as (base_url, _):
        wait_until_runs_finished(engine, mine, theirs)
        yield base_url, mine, theirs
