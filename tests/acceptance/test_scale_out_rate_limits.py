"""Rate limits hold across the API processes of a scale-out deployment: two ``serve
--no-workers`` processes on one PostgreSQL database count in its ``rate_limit_counters`` table,
so a client or an account that spreads its requests over both gets no more than the limit."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from contextlib import ExitStack
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.support.cli import running_server
from tests.support.ports import free_port
from tests.support.postgres import cloned_database
from tests.support.reports import ALL_FINDINGS_REPORT
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.engine import open_database
from uvm_reporting.database.reports import create_report
from uvm_reporting.platform_data.generator import generate_platform_data

TOKENS_PER_CLIENT = 4
PROCESS_REPORTS_PER_ACCOUNT = 3
PROCESS_REPORT = "mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true)}"


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Message, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def ask_token(base_url: str, client_id: str, client_secret: str) -> tuple[int, Message, dict[str, Any]]:
    form = urlencode({"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret})
    return post(f"{base_url}/oauth2/token", form.encode(), {"content-type": "application/x-www-form-urlencoded"})


def process_report(base_url: str, token: str, account_id: str, report_id: str) -> dict[str, Any]:
    status, _, body = post(
        f"{base_url}/api/graphql",
        json.dumps({"query": PROCESS_REPORT, "variables": {"id": report_id}}).encode(),
        {"content-type": "application/json", "authorization": f"Bearer {token}", "accountId": account_id},
    )
    assert status == 200, body
    return body


def test_limits_hold_across_two_api_processes_on_one_database(tmp_path: Path, postgres_template: str) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    with cloned_database(postgres_template) as database_url, ExitStack() as stack:
        engine = open_database(database_url)
        try:
            account = create_account(engine, "Acme Corp")
            generate_platform_data(engine, account.id, findings=10, seed=1)
            report = create_report(engine, account.id, ALL_FINDINGS_REPORT)
            client = create_client(engine, account.id)
        finally:
            engine.dispose()
        ports = [free_port(), free_port()]
        while ports[1] == ports[0]:
            ports[1] = free_port()
        # The same settings for both processes; the first one's address stands for the load balancer's.
        env = {
            "UVM_REPORTING_DATABASE_URL": database_url,
            "UVM_REPORTING_PUBLIC_URL": f"http://127.0.0.1:{ports[0]}",
            "UVM_REPORTING_SCHEDULER_IN_SERVE": "false",
            "UVM_REPORTING_TOKEN_REQUESTS_PER_MINUTE_PER_CLIENT": str(TOKENS_PER_CLIENT),
            "UVM_REPORTING_PROCESS_REPORTS_PER_MINUTE_PER_ACCOUNT": str(PROCESS_REPORTS_PER_ACCOUNT),
        }
        apis = [
            stack.enter_context(running_server(data_dir, "serve", "--no-workers", port=port, **env))[0]
            for port in ports
        ]

        # Token requests for one client, alternating between the two processes.
        answers = [ask_token(apis[n % 2], client.client_id, client.client_secret) for n in range(TOKENS_PER_CLIENT)]
        assert [status for status, _, _ in answers] == [200] * TOKENS_PER_CLIENT
        token = answers[0][2]["access_token"]
        for api in apis:  # the limit is spent on both, though each process saw only half of it
            status, headers, body = ask_token(api, client.client_id, client.client_secret)
            assert status == 429, body
            assert body["error"] == "too_many_requests"
            assert 1 <= int(headers["retry-after"]) <= 60

        # processReport for one account, alternating the same way.
        for n in range(PROCESS_REPORTS_PER_ACCOUNT):
            started = process_report(apis[n % 2], token, account.id, report.id)
            assert started["data"]["processReport"]["runId"], started
        for api in apis:
            refused = process_report(api, token, account.id, report.id)
            error = refused["errors"][0]
            assert error["extensions"]["code"] == "RATE_LIMITED", refused
            assert 1 <= error["extensions"]["retryAfter"] <= 60
