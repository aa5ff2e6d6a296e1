"""Cancelling runs, and the progress of a started run, against the real server on SQLite and
PostgreSQL: cancelReportRun of a queued run (at once), of a started run whose export process is
held mid-export (Cancelled within 2 seconds, the process gone, no ``.partial`` left), of a run
held between publishing its file and recording it (the cancel loses: exactly one outcome), of
another account's run (NOT_FOUND), the operator's ``runs cancel``; and rowsWritten/bytesWritten
moving during an export slowed down at the ``batch`` fault point (uvm_reporting.fault_points)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from tests.support.cli import cli_process, run_cli, running_server, wait_for_log
from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.waiting import wait_for
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.audit import EventFilter, list_events
from uvm_reporting.database.engine import open_database
from uvm_reporting.database.reports import create_report
from uvm_reporting.platform_data.generator import generate_platform_data

PROCESS_REPORT = "mutation ($id: String!) { processReport(id: $id, isPresignedUrl: true) }"
CANCEL = "mutation ($runId: String!) { cancelReportRun(runId: $runId) }"
STATUS = "query ($runId: String) { getReportRunStatus(runId: $runId) }"
CANCEL_DEADLINE_SECONDS = 2.0


@dataclass
class Client:
    """An API client of one account, calling the server over HTTP."""

    http: httpx2.Client
    account_id: str
    report_id: str
    token: str

    def graphql(self, query: str, **variables: str) -> dict[str, Any]:
        answer = self.http.post(
            "/api/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.token}", "accountId": self.account_id, "graphqlname": "x"},
        )
        body: dict[str, Any] = answer.json()
        return body

    def start(self) -> str:
        run_id: str = self.graphql(PROCESS_REPORT, id=self.report_id)["data"]["processReport"]["runId"]
        return run_id

    def cancel(self, run_id: str) -> dict[str, Any]:
        body = self.graphql(CANCEL, runId=run_id)
        assert "errors" not in body, body
        document: dict[str, Any] = body["data"]["cancelReportRun"]
        return document

    def status(self, run_id: str) -> dict[str, Any]:
        document: dict[str, Any] = self.graphql(STATUS, runId=run_id)["data"]["getReportRunStatus"]
        return document


@dataclass
class Tenant:
    account_id: str
    report_id: str
    client_id: str
    client_secret: str


def tenant(database_url: str, name: str, findings: int) -> Tenant:
    engine = open_database(database_url)
    try:
        account = create_account(engine, name)
        if findings:
            generate_platform_data(engine, account.id, findings=findings, seed=5)
        report = create_report(engine, account.id, ALL_FINDINGS_REPORT)
        client = create_client(engine, account.id)
    finally:
        engine.dispose()
    return Tenant(account.id, report.id, client.client_id, client.client_secret)


@contextmanager
def client_of(base_url: str, of: Tenant) -> Iterator[Client]:
    with httpx2.Client(base_url=base_url, timeout=30) as http:
        answer = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": of.client_id, "client_secret": of.client_secret},
        )
        yield Client(http, of.account_id, of.report_id, answer.json()["access_token"])


def server_env(database_url: str, **extra: str) -> dict[str, Any]:
    return {"UVM_REPORTING_DATABASE_URL": database_url, "UVM_REPORTING_SCHEDULER_IN_SERVE": "false", **extra}


def partial_files(folder: Path) -> list[Path]:
    return list(folder.glob(".*.partial")) if folder.exists() else []


def reached(gate: Path) -> bool:
    return gate.with_name(gate.name + ".reached").exists()


def held_by(gate: Path) -> int | None:
    """The process held at ``gate``, once it has written its pid there whole."""
    text = gate.with_name(gate.name + ".reached").read_text() if reached(gate) else ""
    return int(text) if text.endswith("\n") else None


def release(gate: Path) -> None:
    gate.with_name(gate.name + ".release").touch()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose but its entry: only its parent's wait removes it.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


def test_a_queued_run_is_cancelled_at_once_and_a_second_cancel_changes_nothing(
    tmp_path: Path, database_url: str
) -> None:
    acme = tenant(database_url, "Acme Corp", findings=20)
    with (
        running_server(tmp_path / "var", "serve", "--no-workers", **server_env(database_url)) as (base_url, _),
        client_of(base_url, acme) as client,
    ):
        run_id = client.start()
        assert client.status(run_id)["state"] == "queued"
        cancelled = client.cancel(run_id)
        polled = client.status(run_id)
        again = client.cancel(run_id)
    assert cancelled["status"] == "Cancelled", cancelled
    assert cancelled["state"] == "cancelled"
    assert cancelled["errorCode"] is None
    assert cancelled["errorMessage"] == f"Cancelled by API client {acme.client_id}."
    assert cancelled["finishedAt"] is not None
    assert "queuePosition" not in cancelled
    assert polled == cancelled
    assert again == cancelled  # idempotent: a final run is answered unchanged
    engine = open_database(database_url)
    try:
        events = list_events(engine, acme.account_id, limit=10, event_filter=EventFilter(actions=("run.cancelled",)))
    finally:
        engine.dispose()
    assert [(e.target_id, e.actor.kind.value, e.actor.id) for e in events] == [(run_id, "api_client", acme.client_id)]


@contextmanager
def deployment(data_dir: Path, shape: str, env: dict[str, Any]) -> Iterator[str]:
    """The API and workers: ``embedded``, one ``serve`` with its worker threads (a cancel reaches
    them from the API at once); ``scale-out``, ``serve --no-workers`` and a ``worker`` process
    (the worker's heartbeat reads the cancel from the database). Yields the API's base URL."""
    if shape == "embedded":
        with running_server(data_dir, **env) as (base_url, _):
            yield base_url
        return
    with (
        running_server(data_dir, "serve", "--no-workers", **env) as (base_url, _),
        cli_process(data_dir, data_dir.parent / "worker.log", "worker", "--concurrency", "1", env=env),
    ):
        yield base_url


@pytest.mark.parametrize("shape", ["embedded", "scale-out"])
def test_a_started_run_is_cancelled_within_two_seconds_its_export_process_killed_and_nothing_left(
    tmp_path: Path, database_url: str, shape: str
) -> None:
    data_dir = tmp_path / "var"
    acme = tenant(database_url, "Acme Corp", findings=200)
    gate = tmp_path / "batch-gate"  # the export process holds its first batch until released
    env = server_env(
        database_url,
        UVM_REPORTING_FAULT_POINTS=f"batch=pause:{gate}",
        UVM_REPORTING_EXPORT_PROCESS_MIN_ROWS="0",
    )
    folder = data_dir / "storage" / "results" / acme.account_id
    try:
        with deployment(data_dir, shape, env) as base_url, client_of(base_url, acme) as client:
            run_id = client.start()
            export_pid = wait_for(
                lambda: partial_files(folder) and held_by(gate), timeout=60, what="the export to be under way"
            )
            assert alive(export_pid)
            running = client.status(run_id)
            asked_at = time.monotonic()
            answer = client.cancel(run_id)
            final = wait_for(
                lambda: (status := client.status(run_id))["status"] != "Running" and status,
                timeout=CANCEL_DEADLINE_SECONDS,
                what="the started run to end Cancelled",
            )
            took = time.monotonic() - asked_at
            export_gone = wait_for(lambda: not alive(export_pid), timeout=5, what="the export process to end")
            later = client.status(run_id)
    finally:
        release(gate)  # whatever happened, nothing waits on it any more
    assert running["state"] == "started", running
    assert answer["state"] == "started", answer  # its worker stops it
    assert answer["cancelRequested"] is True
    assert final["status"] == "Cancelled", final
    assert final["state"] == "cancelled"
    assert final["errorMessage"] == f"Cancelled by API client {acme.client_id}."
    assert final["rowCount"] is None
    assert final.get("presignedUrl") is None
    assert took <= CANCEL_DEADLINE_SECONDS
    assert export_gone
    assert later == final  # never claimed again
    assert partial_files(folder) == []
    assert not any(folder.iterdir())


def test_a_cancel_racing_completion_leaves_exactly_one_outcome(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "var"
    acme = tenant(database_url, "Acme Corp", findings=50)
    gate = tmp_path / "complete-gate"  # the file is published; the outcome is not recorded yet
    env = server_env(database_url, UVM_REPORTING_FAULT_POINTS=f"complete=pause:{gate}")
    folder = data_dir / "storage" / "results" / acme.account_id
    try:
        with running_server(data_dir, **env) as (base_url, server), client_of(base_url, acme) as client:
            run_id = client.start()
            wait_for(lambda: reached(gate), timeout=60, what="the run to reach its completion")
            answer = client.cancel(run_id)
            # The worker's heartbeat has read the request while the run is held: both outcomes are
            # on the table when it goes on.
            log = data_dir.parent / f"server-{urlsplit(base_url).port}.log"
            wait_for_log(log, f"run {run_id}: cancel requested", process=server)
            release(gate)
            final = wait_for(
                lambda: (status := client.status(run_id))["status"] != "Running" and status,
                timeout=30,
                what="the run to end",
            )
            again = client.cancel(run_id)
            later = client.status(run_id)
    finally:
        release(gate)
    assert answer["state"] == "started", answer
    assert answer["cancelRequested"] is True
    # The file was published before the cancel came: completion wins, and stays the outcome.
    assert final["status"] == "Completed", final
    assert final["rowCount"] == 50
    assert (folder / f"{run_id}.csv").stat().st_size == final["sizeBytes"]
    assert partial_files(folder) == []
    assert {k: v for k, v in again.items() if not k.startswith("presignedUrl")} == {
        k: v for k, v in final.items() if not k.startswith("presignedUrl")
    }
    assert later["status"] == "Completed"


def test_another_accounts_run_is_not_found_and_stays_as_it_was(tmp_path: Path, database_url: str) -> None:
    acme = tenant(database_url, "Acme Corp", findings=5)
    globex = tenant(database_url, "Globex", findings=5)
    with (
        running_server(tmp_path / "var", "serve", "--no-workers", **server_env(database_url)) as (base_url, _),
        client_of(base_url, acme) as attacker,
        client_of(base_url, globex) as owner,
    ):
        theirs = owner.start()
        body = attacker.graphql(CANCEL, runId=theirs)
        unknown = attacker.graphql(CANCEL, runId="00000000-0000-4000-8000-000000000000")
        after = owner.status(theirs)
    assert body["data"]["cancelReportRun"] is None
    assert [error["extensions"]["code"] for error in body["errors"]] == ["NOT_FOUND"]
    assert [error["extensions"]["code"] for error in unknown["errors"]] == ["NOT_FOUND"]
    assert after["state"] == "queued", after


def test_the_operator_cancels_any_accounts_run_from_the_cli(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "var"
    acme = tenant(database_url, "Acme Corp", findings=5)
    env = server_env(database_url)
    with (
        running_server(data_dir, "serve", "--no-workers", **env) as (base_url, _),
        client_of(base_url, acme) as client,
    ):
        run_id = client.start()
        shown = run_cli(data_dir, "runs", "cancel", run_id, "--json", **env)
        status = client.status(run_id)
        again = run_cli(data_dir, "runs", "cancel", run_id, "--json", **env)
    assert shown == {
        "runId": run_id,
        "accountId": acme.account_id,
        "reportId": acme.report_id,
        "status": "Cancelled",
        "state": "cancelled",
        "cancelRequested": False,
    }
    assert again == shown
    assert status["status"] == "Cancelled"
    assert status["errorMessage"].startswith("Cancelled by the operator")
    engine = open_database(database_url)
    try:
        events = list_events(engine, acme.account_id, limit=10, event_filter=EventFilter(actions=("run.cancelled",)))
    finally:
        engine.dispose()
    assert [(e.target_id, e.actor.kind.value) for e in events] == [
        (run_id, "operator")
    ]  # once: the second changed nothing


def test_a_started_runs_progress_moves_while_it_exports(tmp_path: Path, database_url: str) -> None:
    findings = 40_000  # four batches of 10,000 rows, each read held 0.6 s: about 2.5 s of export
    acme = tenant(database_url, "Acme Corp", findings=findings)
    env = server_env(
        database_url,
        UVM_REPORTING_FAULT_POINTS="batch=delay:0.6",
        UVM_REPORTING_EXPORT_PROCESS_MIN_ROWS="0",
    )
    seen: list[tuple[int, int]] = []
    with running_server(tmp_path / "var", **env) as (base_url, _), client_of(base_url, acme) as client:
        run_id = client.start()

        def finished() -> dict[str, Any] | None:
            status = client.status(run_id)
            if status["state"] == "started":
                progress = (status["rowsWritten"], status["bytesWritten"])
                if not seen or seen[-1] != progress:
                    seen.append(progress)
            time.sleep(0.1)
            return status if status["status"] != "Running" else None

        final = wait_for(finished, timeout=120, what="the run to finish")
    assert final["status"] == "Completed", final
    assert "rowsWritten" not in final
    assert "bytesWritten" not in final
    moving = [(rows, size) for rows, size in seen if rows or size]
    assert len(moving) >= 2, seen  # more than one reading between the first batch and the end
    assert moving == sorted(moving)
    assert all(0 < rows <= findings for rows, _ in moving)
    assert moving[-1][1] <= final["sizeBytes"]
