"""The demo: an account with generated data, a public report and fresh API client credentials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console
from sqlalchemy import Engine

from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import account_counts, create_account, find_account_by_name
from uvm_reporting.database.reports import create_report, list_reports
from uvm_reporting.domain.catalog import FINDINGS
from uvm_reporting.platform_data.generator import generate_platform_data
from uvm_reporting.settings import Settings

DEMO_ACCOUNT_NAME = "Demo Account"
DEMO_REPORT: dict[str, Any] = {
    "name": "All findings with host names",
    "entity": "findings",
    "columns": [field.name for field in FINDINGS.fields] + ["asset.hostname"],
    "sort": [{"field": "id", "direction": "asc"}],
    "viewers": "public",
    "editors": "public",
}


@dataclass(frozen=True, slots=True)
class DemoAccount:
    account_id: str
    report_id: str
    report_name: str
    findings: int
    client_id: str
    client_secret: str


def prepare_demo(engine: Engine, *, findings: int) -> DemoAccount:
    """Reuse the demo account and report when they exist; always issue new client credentials
    (a secret is shown once and never stored in plain text, so an old one cannot be printed)."""
    account = find_account_by_name(engine, DEMO_ACCOUNT_NAME) or create_account(engine, DEMO_ACCOUNT_NAME)
    if account_counts(engine, account.id)["findings"] == 0:
        generate_platform_data(engine, account.id, findings=findings, seed=0)
    report = next((r for r in list_reports(engine, account.id) if r.name == DEMO_REPORT["name"]), None)
    if report is None:
        report = create_report(engine, account.id, DEMO_REPORT)
    client = create_client(engine, account.id, name="demo")
    return DemoAccount(
        account_id=account.id,
        report_id=report.id,
        report_name=report.name,
        findings=account_counts(engine, account.id)["findings"],
        client_id=client.client_id,
        client_secret=client.client_secret,
    )


def demo_curl_lines(demo: DemoAccount, base_url: str) -> list[str]:
    """The spec's three calls with our host and the demo's values filled in."""
    token = (
        f"TOKEN=$(curl -s --location '{base_url}/oauth2/token' \\\n"
        "--header 'accept: application/json' \\\n"
        "--header 'content-type: application/x-www-form-urlencoded' \\\n"
        "--data-urlencode 'grant_type=client_credentials' \\\n"
        f"--data-urlencode 'client_id={demo.client_id}' \\\n"
        f"--data-urlencode 'client_secret={demo.client_secret}' "
        "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
    )
    process = (
        f"RUN_ID=$(curl -s --location '{base_url}/api/graphql' \\\n"
        "--header 'Content-Type: application/json' \\\n"
        f"--header 'accountId: {demo.account_id}' \\\n"
        "--header 'graphqlname: processReport' \\\n"
        '--header "Authorization: Bearer $TOKEN" \\\n'
        '--data \'{"query":"mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true)}",'
        f'"variables":{{"id":"{demo.report_id}"}}}}\' '
        '| python3 -c \'import json,sys; print(json.load(sys.stdin)["data"]["processReport"]["runId"])\')'
    )
    status = (
        f"curl --location '{base_url}/api/graphql' \\\n"
        "--header 'Content-Type: application/json' \\\n"
        f"--header 'accountId: {demo.account_id}' \\\n"
        "--header 'graphqlname: getReportRunStatus' \\\n"
        '--header "Authorization: Bearer $TOKEN" \\\n'
        '--data \'{"query":"query ($reportId: String, $runId: String) { getReportRunStatus(reportId: '
        '$reportId, runId: $runId) }","variables":{"reportId":"'
        f'{demo.report_id}", "runId":"\'"$RUN_ID"\'"}}}}\''
    )
    return [token, process, status]


def print_demo_instructions(demo: DemoAccount, settings: Settings) -> None:
    console = Console(highlight=False, soft_wrap=True)
    base = settings.public_url
    console.print(f"\n[bold]uvm-reporting demo[/] serving {base} (region {settings.region})\n")
    console.print(f"  Account ID     {demo.account_id}")
    console.print(f"  Report ID      {demo.report_id}  ({demo.report_name}, public, {demo.findings} findings)")
    console.print(f"  Client ID      {demo.client_id}")
    console.print(f"  Client secret  {demo.client_secret}  (shown once; a new client is made each start)\n")
    titles = [
        "1. Get a token (valid one hour):",
        "2. Start a run with a download link:",
        "3. Poll its status; when Completed, presignedUrl is the download link:",
    ]
    for title, line in zip(titles, demo_curl_lines(demo, base), strict=True):
        console.print(f"[bold]{title}[/]")
        console.print(line, markup=False)
        console.print()
