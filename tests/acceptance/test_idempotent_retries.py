"""A client whose connection drops before it reads processReport's answer retries with the same
idempotencyKey and gets the same run: the real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from tests.support.cli import run_cli, running_server
from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.seed_commands import get_token, poll_until_finished
from tests.support.waiting import wait_for
from uvm_reporting.database.engine import open_database
from uvm_reporting.database.tables import runs

PROCESS_REPORT = (
    "mutation ($id: String!, $key: String) {processReport(id: $id, isPresignedUrl: true, idempotencyKey: $key)}"
)


def set_up_account(data_dir: Path, tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {"UVM_REPORTING_DATABASE_URL": database_url}
    account = run_cli(data_dir, "accounts", "create", "--name", "Acme Corp", **env)
    run_cli(data_dir, "data", "generate", "--account", account["id"], "--findings", "50", **env)
    definition = tmp_path / "report.json"
    definition.write_text(json.dumps(ALL_FINDINGS_REPORT))
    report = run_cli(data_dir, "reports", "create", "--account", account["id"], "--file", str(definition), **env)
    client = run_cli(data_dir, "clients", "create", "--account", account["id"], **env)
    return {
        "Account ID": account["id"],
        "Report ID": report["id"],
        "client ID": client["client_id"],
        "client secret": client["client_secret"],
    }


def raw_request(base_url: str, ids: dict[str, str], token: str, key: str) -> bytes:
    """processReport with ``key`` as the bytes of one HTTP/1.1 request."""
    body = json.dumps({"query": PROCESS_REPORT, "variables": {"id": ids["Report ID"], "key": key}}).encode()
    head = (
        "POST /api/graphql HTTP/1.1\r\n"
        f"Host: {urlsplit(base_url).netloc}\r\n"
        "Content-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"accountId: {ids['Account ID']}\r\n"
        "graphqlname: processReport\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


def process_report(base_url: str, ids: dict[str, str], token: str, key: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/api/graphql",
        data=json.dumps({"query": PROCESS_REPORT, "variables": {"id": ids["Report ID"], "key": key}}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "accountId": ids["Account ID"],
            "graphqlname": "processReport",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body: dict[str, Any] = json.loads(response.read())
    assert "errors" not in body, body
    answer: dict[str, Any] = body["data"]["processReport"]
    return answer


def test_idempotent_retries_after_a_dropped_connection(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "var"
    ids = set_up_account(data_dir, tmp_path, database_url)
    engine = open_database(database_url)

    def run_count() -> int:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(runs)).scalar_one())

    try:
        with running_server(data_dir, UVM_REPORTING_DATABASE_URL=database_url) as (base_url, _):
            token = get_token(base_url, ids)
            address = urlsplit(base_url)

            # 1. The request reaches the server and its run is queued, but the client's connection
            # is cut before it reads a byte of the answer.
            key = str(uuid.uuid4())
            with socket.create_connection((address.hostname, address.port), timeout=30) as lost:
                lost.sendall(raw_request(base_url, ids, token, key))
                wait_for(lambda: run_count() == 1, what="the lost request's run")
                lost.shutdown(socket.SHUT_RDWR)
            retried = process_report(base_url, ids, token, key)
            again = process_report(base_url, ids, token, key)
            assert retried["runId"] == again["runId"]
            assert retried["joined"] is False
            with engine.connect() as connection:
                assert connection.execute(select(runs.c.id)).scalars().all() == [retried["runId"]]
            assert poll_until_finished(base_url, ids, token, retried["runId"])["status"] == "Completed"

            # 2. Cut right after sending: whether or not the server got to queue the run, the
            # retries with the key end with exactly one more run, the one they answer.
            key = str(uuid.uuid4())
            with socket.create_connection((address.hostname, address.port), timeout=30) as dropped:
                dropped.sendall(raw_request(base_url, ids, token, key))
            answers = {process_report(base_url, ids, token, key)["runId"] for _ in range(3)}
            assert len(answers) == 1
            assert poll_until_finished(base_url, ids, token, answers.pop())["status"] == "Completed"
            # Holds whenever the dropped request is handled, if ever: after the retries it finds
            # their key and queues nothing.
            assert run_count() == 2
    finally:
        engine.dispose()
