"""The spec's three curl commands, as printed in reporting-api-export.md.

Only the placeholders are filled in. (In the spec, the processReport command ends its lines
with a doubled backslash, a rendering artifact that no shell accepts; here it is the single
line-continuation backslash the other two commands use.)
"""

from __future__ import annotations

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
