"""The spec's three curl commands, as printed in reporting-api-export.md, and the calls that run them.

Only the placeholders are filled in. (In the spec, the processReport command ends its lines
with a doubled backslash, a rendering artifact that no shell accepts; here it is the single
line-continuation backslash the other two commands use.)
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

TOKEN = """curl --location '<URL>' \\
--header 'accept: application/json' \\
--header 'content-type: application/x-www-form-urlencoded' \\
--data-urlencode 'grant_type=client_credentials' \\
--data-urlencode 'client_id=<client ID>' \\
--data-urlencode 'client_secret=<client secret>'"""

PROCESS_REPORT = """curl --location '<URL>' \\
--header 'Content-Type: application/json' \\
--header 'accountId: <Account ID>' \\
--header 'graphqlname: processReport' \\
--header 'Authorization: Bearer <Bearer Token>' \\
--data '{"query":"mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true)}","variables":{"id":"<Report ID>"}}'"""

GET_REPORT_RUN_STATUS = """curl --location '<URL>' \\
--header 'Content-Type: application/json' \\
--header 'accountId: <Account ID>' \\
--header 'graphqlname: getReportRunStatus' \\
--header 'Authorization: Bearer <Bearer Token>' \\
--data '{"query":"query ($reportId: String, $runId: String) { getReportRunStatus(reportId: $reportId, runId: $runId) }","variables":{"reportId":"<report ID>", "runId":"<Run ID>"}}'"""


def fill(template: str, values: dict[str, str]) -> str:
    """Replace each ``<placeholder>`` of ``template``; every one must be filled."""
    for placeholder, value in values.items():
        assert f"<{placeholder}>" in template, placeholder
        template = template.replace(f"<{placeholder}>", value)
    assert "<" not in template, f"unfilled placeholder in {template}"
    return template


def bash(command: str) -> str:
    completed = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def bash_json(command: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(bash(command))
    return result


def get_token(base_url: str, ids: dict[str, str]) -> str:
    """The spec's token call with the client's id and secret: its access token."""
    response = bash_json(
        fill(
            TOKEN,
            {"URL": f"{base_url}/oauth2/token", "client ID": ids["client ID"], "client secret": ids["client secret"]},
        )
    )
    assert response["token_type"] == "Bearer"
    assert response["expires_in"] == 3600
    token: str = response["access_token"]
    return token


def poll_until_finished(base_url: str, ids: dict[str, str], token: str, run_id: str) -> dict[str, Any]:
    """The spec's getReportRunStatus until the run is no longer Running: its last answer."""
    command = fill(
        GET_REPORT_RUN_STATUS,
        {
            "URL": f"{base_url}/api/graphql",
            "Account ID": ids["Account ID"],
            "Bearer Token": token,
            "report ID": ids["Report ID"],
            "Run ID": run_id,
        },
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status: dict[str, Any] = bash_json(command)["data"]["getReportRunStatus"]
        if status["status"] != "Running":
            return status
        time.sleep(0.1)
    raise AssertionError("the run was still Running after 60s")


def process_without_link(base_url: str, ids: dict[str, str], token: str) -> dict[str, Any]:
    """The spec's processReport without ``isPresignedUrl``: the run delivers to the report's S3 target."""
    command = fill(
        PROCESS_REPORT,
        {
            "URL": f"{base_url}/api/graphql",
            "Account ID": ids["Account ID"],
            "Bearer Token": token,
            "Report ID": ids["Report ID"],
        },
    )
    command = command.replace("processReport(id:$id, isPresignedUrl: true)", "processReport(id:$id)")
    return bash_json(command)
