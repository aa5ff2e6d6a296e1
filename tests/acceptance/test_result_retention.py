"""Result retention against the real server and CLI: a result with a lifetime of a few seconds
expires visibly (Completed, ``expired: true``, no link; the old link answers 410), and the
server's cleanup job deletes the file and marks the run; ``uvm-reporting cleanup --dry-run``
lists what would go and removes nothing."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, update

from tests.support.cli import (
    cli_process,
    one_json_object,
    run_cli,
    run_command,
    running_server,
    stop_process,
    wait_for_log,
)
from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.runs import enqueue_download
from tests.support.seed_commands import GET_REPORT_RUN_STATUS, PROCESS_REPORT, bash_json, fill, get_token
from tests.support.waiting import wait_for
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.engine import open_database
from uvm_reporting.database.reports import create_report
from uvm_reporting.database.runs import claim_next_run, complete_run, find_run
from uvm_reporting.database.tables import runs
from uvm_reporting.domain.runs import RunResult
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.settings import Settings
from uvm_reporting.storage.local_folder import LocalFolderStorage

EXAMPLES = Path(__file__).parents[2] / "examples" / "reports"
LIFETIME_SECONDS = 6


def set_up_account(data_dir: Path) -> dict[str, str]:
    account = run_cli(data_dir, "accounts", "create", "--name", "Acme Corp")
    run_cli(data_dir, "data", "generate", "--account", account["id"], "--findings", "50")
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


def fetch(url: str) -> tuple[str, str]:
    """The HTTP status and body of a GET of ``url``."""
    completed = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", url], capture_output=True, text=True, timeout=30, check=True
    )
    body, _, status = completed.stdout.rpartition("\n")
    return status, body


def test_a_result_expires_visibly_and_the_server_removes_its_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    ids = set_up_account(data_dir)
    with running_server(
        data_dir,
        UVM_REPORTING_RESULT_RETENTION_SECONDS=str(LIFETIME_SECONDS),
        UVM_REPORTING_CLEANUP_INTERVAL_SECONDS="1",
    ) as (base_url, _):
        token = get_token(base_url, ids)
        values = {"URL": f"{base_url}/api/graphql", "Account ID": ids["Account ID"], "Bearer Token": token}
        run_id = bash_json(fill(PROCESS_REPORT, {**values, "Report ID": ids["Report ID"]}))["data"]["processReport"][
            "runId"
        ]
        poll = fill(GET_REPORT_RUN_STATUS, {**values, "report ID": ids["Report ID"], "Run ID": run_id})

        def status() -> dict[str, Any]:
            answer: dict[str, Any] = bash_json(poll)["data"]["getReportRunStatus"]
            return answer

        completed = wait_for(lambda: (answer := status())["status"] != "Running" and answer, what="the run")
        assert (completed["status"], completed["expired"], completed["expiredAt"]) == ("Completed", False, None)
        link = completed["presignedUrl"]
        assert fetch(link)[0] == "200"

        expired = wait_for(lambda: (answer := status())["expired"] and answer, timeout=60, what="the result to expire")
        assert expired["status"] == "Completed"
        assert expired["state"] == "completed"
        assert "presignedUrl" not in expired
        assert expired["expiredAt"] is not None
        code, body = fetch(link)
        assert code == "410", body
        refusal = json.loads(body)
        assert refusal["error"] == "result_expired"
        assert refusal["expiredAt"] == expired["expiredAt"]

        engine = open_database(Settings(data_dir=data_dir).database_url)
        try:
            marked = wait_for(
                lambda: (run := find_run(engine, run_id)) is not None and run.expired_at is not None and run,
                timeout=60,
                what="the cleanup job to mark the run expired",
            )
        finally:
            engine.dispose()
        assert marked.result_key is not None
        assert not (data_dir / "storage" / marked.result_key).exists()
        assert fetch(link)[0] == "410"  # and still, once the file is gone
        assert status()["expiredAt"] == expired["expiredAt"]
    log = (data_dir.parent / f"server-{base_url.rsplit(':', 1)[1]}.log").read_text()
    assert "cleanup: removed 1 result files past retention" in log


def test_cleanup_dry_run_lists_and_removes_nothing_then_cleanup_removes(tmp_path: Path, store: Engine) -> None:
    data_dir = tmp_path / "var"
    account = create_account(store, "Acme Corp")
    report = create_report(store, account.id, ALL_FINDINGS_REPORT)
    storage = LocalFolderStorage(data_dir / "storage")
    run = enqueue_download(store, report)
    assert claim_next_run(store, "w", lease_seconds=60, max_attempts=3) is not None
    with storage.open_for_write(run.storage_key) as (writer, _):
        writer.write(b"id\nf-1\n")
    assert complete_run(store, run.id, "w", RunResult(1, 7, "0" * 64, run.storage_key))
    with store.begin() as connection:  # finished eight days ago: past the default retention of 7
        connection.execute(update(runs).where(runs.c.id == run.id).values(finished_at=utc_now() - timedelta(days=8)))
    leftover = storage.root / "results" / account.id / ".dead.csv.0a1b.partial"
    leftover.write_bytes(b"half")
    two_days_ago = (utc_now() - timedelta(days=2)).timestamp()
    os.utime(leftover, (two_days_ago, two_days_ago))

    dry = run_command(data_dir, "cleanup", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    listed = {kind["kind"]: kind for kind in one_json_object(dry.stdout)["removed"]}
    assert listed["result files past retention"]["items"] == [f"run {run.id}: {run.storage_key}"]
    assert listed["temporary files older than a day"]["items"] == [str(leftover)]
    assert storage.exists(run.storage_key)
    assert leftover.exists()
    text = run_command(data_dir, "cleanup", "--dry-run")
    assert "would remove 1 result files past retention" in text.stdout, text.stdout + text.stderr
    assert run.id in text.stdout

    done = run_command(data_dir, "cleanup", "--json")
    assert done.returncode == 0, done.stderr
    result = one_json_object(done.stdout)
    assert result["dryRun"] is False
    counts = {kind["kind"]: kind["count"] for kind in result["removed"]}
    assert counts["result files past retention"] == 1
    assert counts["temporary files older than a day"] == 1
    assert counts["run records past the run history"] == 0
    assert not storage.exists(run.storage_key)
    assert not leftover.exists()
    stored = find_run(store, run.id)
    assert stored is not None
    assert stored.expired_at is not None


def test_the_scheduler_process_runs_the_cleanup_job_and_stops_cleanly(tmp_path: Path, store: Engine) -> None:
    data_dir = tmp_path / "var"
    leftover = LocalFolderStorage(data_dir / "storage").root / "results" / "some-account" / ".dead.csv.0a1b.partial"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")
    two_days_ago = (utc_now() - timedelta(days=2)).timestamp()
    os.utime(leftover, (two_days_ago, two_days_ago))
    log_path = tmp_path / "scheduler.log"
    with cli_process(data_dir, log_path, "scheduler", env={"UVM_REPORTING_CLEANUP_INTERVAL_SECONDS": "1"}) as scheduler:
        wait_for_log(log_path, r"cleanup: removed 1 temporary files older than a day", process=scheduler)
        assert not leftover.exists()
        code, seconds = stop_process(scheduler, timeout=30)
    assert code == 0, log_path.read_text()
    assert "cleanup job stopped" in log_path.read_text()
    assert seconds < 20
