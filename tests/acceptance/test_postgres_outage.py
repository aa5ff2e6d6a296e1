"""PostgreSQL stopped and started again under a running server, on a PostgreSQL server of the
test's own (tests/support/postgres_cluster.py): during the outage every request that needs the
database is answered 503 ``UNAVAILABLE`` with ``Retry-After`` within a second; queued runs are
not lost; once the database is back everything completes by itself, and the server never exits.

One run is held at the ``write`` fault point while the database stops, so its outcome is
recorded during the outage: it fails to, and the run is finished again once its lease expires."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.support.cli import running_server
from tests.support.postgres_cluster import postgres_bin, postgres_cluster
from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.waiting import wait_for
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.engine import open_database
from uvm_reporting.database.reports import create_report
from uvm_reporting.database.tables import runs
from uvm_reporting.platform_data.generator import generate_platform_data

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(postgres_bin() is None, reason="no PostgreSQL server programs to start a cluster with"),
]

RUNS = 12
FINDINGS = 200


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any], float]:
    """Status, headers, JSON body and seconds taken of a POST; error statuses included."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, answer_headers, payload = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, payload = error.code, error.headers, error.read()
    return status, {k.lower(): v for k, v in answer_headers.items()}, json.loads(payload), time.monotonic() - started


def test_postgres_restarted_under_load(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    gate = tmp_path / "write-gate"
    with postgres_cluster() as cluster:
        engine = open_database(cluster.url)
        try:
            account = create_account(engine, "Acme Corp")
            generate_platform_data(engine, account.id, findings=FINDINGS, seed=4)
            report = create_report(engine, account.id, ALL_FINDINGS_REPORT)
            client = create_client(engine, account.id)
        finally:
            engine.dispose()
        env = {
            "UVM_REPORTING_DATABASE_URL": cluster.url,
            "UVM_REPORTING_SCHEDULER_IN_SERVE": "false",
            "UVM_REPORTING_WORKER_THREADS": "1",
            "UVM_REPORTING_RUN_LEASE_SECONDS": "5",
            "UVM_REPORTING_MAX_ACTIVE_RUNS": "100",
            "UVM_REPORTING_FAULT_POINTS": f"write=pause:{gate}",
        }
        with running_server(data_dir, port=None, **env) as (base_url, server):
            token_request = urllib.parse.urlencode(
                {
                    "grant_type": "client_credentials",
                    "client_id": client.client_id,
                    "client_secret": client.client_secret,
                }
            ).encode()
            form = {"content-type": "application/x-www-form-urlencoded"}
            status, _, answer, _ = post(f"{base_url}/oauth2/token", token_request, form)
            assert status == 200, answer
            headers = {
                "content-type": "application/json",
                "accountId": account.id,
                "Authorization": f"Bearer {answer['access_token']}",
            }
            process = json.dumps(
                {
                    "query": "mutation ($id: String!) { processReport(id: $id, isPresignedUrl: true, forceNew: true) }",
                    "variables": {"id": report.id},
                }
            ).encode()
            queued = []
            for _ in range(RUNS):
                status, _, answer, _ = post(f"{base_url}/api/graphql", process, headers)
                assert status == 200, answer
                assert "errors" not in answer, answer
                queued.append(answer["data"]["processReport"]["runId"])
            wait_for(gate.with_name(gate.name + ".reached").exists, timeout=60, what="the first run to be under way")

            cluster.stop("immediate")
            gate.with_name(gate.name + ".release").touch()  # its outcome is recorded while the database is down
            outage = [
                post(f"{base_url}/api/graphql", process, headers),
                post(f"{base_url}/oauth2/token", token_request, form),
                post(f"{base_url}/api/graphql", process, headers),
            ]
            cluster.start()

            engine = open_database(cluster.url)
            try:

                def completed() -> int:
                    with engine.connect() as connection:
                        query = select(func.count()).select_from(runs).where(runs.c.state == "completed")
                        return int(connection.execute(query).scalar_one())

                wait_for(lambda: completed() == RUNS, timeout=120, what="every queued run to complete")
                with engine.connect() as connection:
                    rows = connection.execute(select(runs.c.id, runs.c.state, runs.c.row_count)).all()
            finally:
                engine.dispose()
            still_running = server.poll() is None
    for status, answer_headers, answer, seconds in outage:
        assert status == 503, answer
        assert answer_headers.get("retry-after") == "1"
        assert seconds < 1, f"answered after {seconds:.2f}s"
    graphql_answer, token_answer = outage[0][2], outage[1][2]
    assert graphql_answer["errors"][0]["extensions"]["code"] == "UNAVAILABLE", graphql_answer
    assert token_answer["error"] == "unavailable", token_answer
    assert still_running
    assert sorted(row.id for row in rows) == sorted(queued)  # none lost, none made twice
    assert {(row.state, row.row_count) for row in rows} == {("completed", FINDINGS)}
