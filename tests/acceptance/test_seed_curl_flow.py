"""The spec's curl commands, verbatim but for the host and values, against the real server."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run_cli, running_server
from tests.support.expected_exports import expected_findings_rows
from tests.support.seed_commands import PROCESS_REPORT, TOKEN, bash, bash_json, fill, get_token, poll_until_finished
from uvm_reporting.database.engine import create_database_engine
from uvm_reporting.settings import Settings

EXAMPLES = Path(__file__).parents[2] / "examples" / "reports"


def set_up_account(data_dir: Path, findings: int) -> dict[str, str]:
    account = run_cli(data_dir, "accounts", "create", "--name", "Acme Corp")
    run_cli(data_dir, "data", "generate", "--account", account["id"], "--findings", str(findings))
    report = run_cli(
        data_dir, "reports", "create", "--account", account["id"], "--file", str(EXAMPLES / "all-findings.json")
    )
    client = run_cli(data_dir, "clients", "create", "--account", account["id"])
    return {
        "Account ID": account["id"],
        "Report ID": report["id"],
        "client ID": client["client_id"],
        "client secret": client["client_secret"],
    }


def test_token_process_report_status_and_download(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    ids = set_up_account(data_dir, findings=500)
    with running_server(data_dir) as (base_url, _):
        token = get_token(base_url, ids)
        started = bash_json(
            fill(
                PROCESS_REPORT,
                {
                    "URL": f"{base_url}/api/graphql",
                    "Account ID": ids["Account ID"],
                    "Bearer Token": token,
                    "Report ID": ids["Report ID"],
                },
            )
        )
        run_id = started["data"]["processReport"]["runId"]
        status = poll_until_finished(base_url, ids, token, run_id)
        assert status["status"] == "Completed", status
        assert status["rowCount"] == 500
        download = tmp_path / "report.csv"
        bash(f"curl -sf -o '{download}' '{status['presignedUrl']}'")
        again = poll_until_finished(base_url, ids, token, run_id)
        tampered = status["presignedUrl"].replace("signature=", "signature=x")
        refused = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", tampered],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    assert refused.stdout == "403"
    assert again["presignedUrl"].split("?")[0] == status["presignedUrl"].split("?")[0]

    content = download.read_bytes()
    assert len(content) == status["sizeBytes"]
    rows = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    engine = create_database_engine(Settings(data_dir=data_dir).database_url)
    try:
        assert rows[1:] == expected_findings_rows(engine, ids["Account ID"])
    finally:
        engine.dispose()
    titles = [row[2] for row in rows[1:]]
    assert any("\n" in t for t in titles)
    assert any('"' in t for t in titles)
    assert any("," in t for t in titles)
    assert any(any(ord(c) > 127 for c in t) for t in titles)


def test_a_token_of_one_region_is_refused_by_the_other(tmp_path: Path) -> None:
    us_ids = set_up_account(tmp_path / "us", findings=10)
    eu_ids = set_up_account(tmp_path / "eu", findings=10)
    with (
        running_server(tmp_path / "us", UVM_REPORTING_REGION="us01") as (us_url, _),
        running_server(tmp_path / "eu", UVM_REPORTING_REGION="eu") as (eu_url, _),
    ):
        eu_token = get_token(eu_url, eu_ids)
        us_token = get_token(us_url, us_ids)
        for token, ids, url in ((eu_token, eu_ids, us_url), (us_token, us_ids, eu_url)):
            command = fill(
                PROCESS_REPORT,
                {
                    "URL": f"{url}/api/graphql",
                    "Account ID": ids["Account ID"],
                    "Bearer Token": token,
                    "Report ID": ids["Report ID"],
                },
            )
            response = bash(command.replace("curl ", "curl -s -i ", 1))
            assert response.startswith("HTTP/1.1 401"), response
            assert 'error="invalid_token"' in response
            assert "region" in response


@pytest.fixture(scope="module")
def server_and_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """One server with an account and a client, for the tests that only ask it for tokens."""
    data_dir = tmp_path_factory.mktemp("token-server") / "var"
    ids = set_up_account(data_dir, findings=1)
    with running_server(data_dir) as (base_url, _):
        yield base_url, ids


@pytest.mark.parametrize("bad", ["client_secret=wrong", "grant_type=password"])
def test_bad_token_requests_are_refused_per_rfc_6749(server_and_client: tuple[str, dict[str, str]], bad: str) -> None:
    base_url, ids = server_and_client
    command = fill(
        TOKEN,
        {"URL": f"{base_url}/oauth2/token", "client ID": ids["client ID"], "client secret": ids["client secret"]},
    )
    key = bad.split("=", maxsplit=1)[0]
    command = re.sub(f"'{key}=[^']*'", f"'{bad}'", command)
    response = bash(command.replace("curl ", "curl -s -i ", 1))
    if key == "client_secret":
        assert response.startswith("HTTP/1.1 401")
        assert "www-authenticate" in response.lower()
        assert '"invalid_client"' in response
    else:
        assert response.startswith("HTTP/1.1 400")
        assert '"unsupported_grant_type"' in response
