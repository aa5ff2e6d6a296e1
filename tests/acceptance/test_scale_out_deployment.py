"""The scale-out deployment of the README, driven with the seed's curl commands: two API processes
(``serve --no-workers``), two worker processes and one scheduler process on one PostgreSQL database,
sharing one data folder (keys, result storage), with a moto server enforcing IAM as the customer's
S3 bucket.

* a token of API #1 works on API #2; a run started on API #2 is followed on API #1; its download
  link verifies on either API process (they share the link key);
* a run without ``isPresignedUrl`` delivers NDJSON and its manifest to the customer's bucket;
* a backdated every-minute schedule is enqueued by the scheduler process and run by a worker, and
  getReportRunStatus with only the reportId shows that run with its ``scheduledFor``;
* every run is started exactly once across both workers.

And processes started together on a new, empty database all come up (the first one migrates it).
"""

from __future__ import annotations

import collections
import csv
import hashlib
import io
import json
import re
import subprocess
import time
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from tests.support.cli import (
    cli_process,
    running_server,
    stop_process,
    stop_processes,
    wait_for_log,
)
from tests.support.moto_server import AwsKeys, MotoIam, create_bucket, create_customer_role, unique_name
from tests.support.ports import free_port
from tests.support.postgres import cloned_database
from tests.support.s3_delivery import aws_env, manifest_key_of, s3_keys
from tests.support.seed_commands import (
    GET_REPORT_RUN_STATUS,
    PROCESS_REPORT,
    bash,
    bash_json,
    fill,
    get_token,
    poll_until_finished,
    process_without_link,
)
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.engine import open_database
from uvm_reporting.database.reports import create_report
from uvm_reporting.database.tables import runs
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.platform_data.generator import generate_platform_data

EXAMPLES = Path(__file__).parents[2] / "examples" / "reports"
PREFIX = "exports/uvm"
FINDINGS = 700
BURST = 20
STARTED = re.compile(r"run (\S+) of report \S+ started \(attempt (\d+)\)")


def delivery(bucket: str, role_arn: str) -> dict[str, str]:
    return {"method": "s3", "bucket": bucket, "path": PREFIX, "region": "us-east-1", "role_arn": role_arn}


def latest_run_response(base_url: str, ids: dict[str, str], token: str) -> dict[str, Any]:
    """The seed's getReportRunStatus with only the reportId: about the report's latest run."""
    template = GET_REPORT_RUN_STATUS.replace(', "runId":"<Run ID>"', "")
    return bash_json(
        fill(
            template,
            {
                "URL": f"{base_url}/api/graphql",
                "Account ID": ids["Account ID"],
                "Bearer Token": token,
                "report ID": ids["Report ID"],
            },
        )
    )


def wait_for_finished_latest_run(base_url: str, ids: dict[str, str], token: str) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while True:
        response = latest_run_response(base_url, ids, token)
        if "errors" not in response:  # NOT_FOUND until the scheduler enqueued the first run
            status: dict[str, Any] = response["data"]["getReportRunStatus"]
            if status["status"] != "Running":
                return status
        if time.monotonic() >= deadline:
            raise AssertionError(f"no finished scheduled run within 90s: {response}")
        time.sleep(0.2)


def curl_download(url: str, target: Path) -> bytes:
    bash(f"curl -sf -o '{target}' '{url}'")
    return target.read_bytes()


def http_status(url: str) -> str:
    return subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


@pytest.mark.backends("postgresql")  # the scale-out deployment runs on PostgreSQL
def test_two_apis_two_workers_and_a_scheduler_on_one_postgresql(
    tmp_path: Path, database_url: str, moto_iam: MotoIam, deployment_keys: AwsKeys
) -> None:
    data_dir = tmp_path / "var"  # shared by every process: keys and result storage

    # The customer: an account with data, a bucket and a role trusting our deployment.
    engine = open_database(database_url)
    try:
        account = create_account(engine, "Acme Corp")
        generate_platform_data(engine, account.id, findings=FINDINGS, seed=5)
        bucket = create_bucket(moto_iam.s3(), unique_name("customer"))
        role_arn = create_customer_role(
            moto_iam.iam(),
            name=unique_name("uvm-delivery"),
            trusted_principal_arn=deployment_keys.arn,
            external_id=account.external_id,
            bucket=bucket,
            prefix=PREFIX,
        )
        definition = json.loads((EXAMPLES / "all-findings.json").read_text())
        download_report = create_report(engine, account.id, definition)
        delivered_report = create_report(
            engine,
            account.id,
            {
                **definition,
                "name": "Delivered findings",
                "schedule": {
                    "format": "ndjson",
                    "frequency": "daily",
                    "time": "06:00",
                    "active": False,
                    "delivery": delivery(bucket, role_arn),
                },
            },
        )
        ten_minutes_ago = utc_now() - timedelta(minutes=10)
        scheduled_report = create_report(
            engine,
            account.id,
            {
                **definition,
                "name": "Scheduled findings",
                "schedule": {
                    "format": "parquet",
                    "frequency": "cron",
                    "cron": "* * * * *",
                    "active": True,
                    "delivery": delivery(bucket, role_arn),
                },
            },
            now=ten_minutes_ago,
        )
        assert scheduled_report.next_fire_at is not None
        assert scheduled_report.next_fire_at < utc_now() - timedelta(minutes=8)  # long due
        client = create_client(engine, account.id)
    finally:
        engine.dispose()
    ids = {
        "Account ID": account.id,
        "Report ID": download_report.id,
        "client ID": client.client_id,
        "client secret": client.client_secret,
    }

    port_1, port_2 = free_port(), free_port()
    while port_2 == port_1:
        port_2 = free_port()
    api_1, api_2 = f"http://127.0.0.1:{port_1}", f"http://127.0.0.1:{port_2}"
    # The same settings for every process; API #1's address stands for the load balancer's.
    env = {
        "UVM_REPORTING_DATABASE_URL": database_url,
        "UVM_REPORTING_PUBLIC_URL": api_1,
        "UVM_REPORTING_SCHEDULER_IN_SERVE": "false",
        **aws_env(moto_iam, deployment_keys),
    }
    worker_logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    scheduler_log = tmp_path / "scheduler.log"

    before_start = utc_now()
    with ExitStack() as stack:
        workers = [
            stack.enter_context(cli_process(data_dir, log, "worker", "--concurrency", "2", env=env))
            for log in worker_logs
        ]
        scheduler = stack.enter_context(cli_process(data_dir, scheduler_log, "scheduler", "--interval", "1", env=env))
        stack.enter_context(running_server(data_dir, "serve", "--no-workers", port=port_1, **env))
        stack.enter_context(running_server(data_dir, "serve", "--no-workers", port=port_2, **env))
        for log, worker in zip(worker_logs, workers, strict=True):
            wait_for_log(log, r"worker \S+ running 2 thread\(s\)", process=worker)

        # 1. Token from API #1, processReport through API #2, status through API #1.
        token = get_token(api_1, ids)
        started = bash_json(
            fill(
                PROCESS_REPORT,
                {
                    "URL": f"{api_2}/api/graphql",
                    "Account ID": ids["Account ID"],
                    "Bearer Token": token,
                    "Report ID": ids["Report ID"],
                },
            )
        )
        download_run = started["data"]["processReport"]["runId"]
        status = poll_until_finished(api_1, ids, token, download_run)
        assert status["status"] == "Completed", status
        assert status["rowCount"] == FINDINGS
        link_of_api_1: str = status["presignedUrl"]
        link_of_api_2: str = poll_until_finished(api_2, ids, token, download_run)["presignedUrl"]
        assert link_of_api_1.startswith(f"{api_1}/downloads/{download_run}?")
        assert link_of_api_2.startswith(f"{api_1}/downloads/{download_run}?")
        content = curl_download(link_of_api_1, tmp_path / "through-1.csv")
        # Either process verifies a link that either process signed.
        assert curl_download(link_of_api_1.replace(api_1, api_2), tmp_path / "1-on-2.csv") == content
        assert curl_download(link_of_api_2, tmp_path / "2-on-1.csv") == content
        assert curl_download(link_of_api_2.replace(api_1, api_2), tmp_path / "2-on-2.csv") == content
        tampered = link_of_api_1.replace("signature=", "signature=x").replace(api_1, api_2)
        assert http_status(tampered) == "403"

        # A burst of runs, started through both APIs: the two workers share them. forceNew: each
        # call queues a run of its own (an identical request would join a run still queued).
        burst = [
            bash_json(
                fill(
                    PROCESS_REPORT,
                    {
                        "URL": f"{api}/api/graphql",
                        "Account ID": ids["Account ID"],
                        "Bearer Token": token,
                        "Report ID": ids["Report ID"],
                    },
                ).replace("isPresignedUrl: true)", "isPresignedUrl: true, forceNew: true)")
            )["data"]["processReport"]["runId"]
            for api in [api_1, api_2] * (BURST // 2)
        ]
        burst_statuses = [poll_until_finished(api_2, ids, token, run_id) for run_id in burst]

        # 2. Without isPresignedUrl: NDJSON delivered to the customer's bucket.
        delivered_ids = {**ids, "Report ID": delivered_report.id}
        delivered = process_without_link(api_2, delivered_ids, token)["data"]["processReport"]
        delivered_status = poll_until_finished(api_1, delivered_ids, token, delivered["runId"])

        # 3. The backdated schedule: enqueued by the scheduler, run by a worker, seen as the latest run.
        scheduled_ids = {**ids, "Report ID": scheduled_report.id}
        scheduled_status = wait_for_finished_latest_run(api_1, scheduled_ids, token)
        latest_on_api_2 = latest_run_response(api_2, scheduled_ids, token)["data"]["getReportRunStatus"]

        # Stop the scheduler first, then the workers (they finish what they run): each exits 0.
        scheduler_stop = stop_process(scheduler, timeout=15)
        worker_stops = stop_processes(workers, timeout=60)

    engine = open_database(database_url)
    try:
        with engine.connect() as connection:
            all_runs = {row.id: row for row in connection.execute(select(runs))}
    finally:
        engine.dispose()

    # The download: the CSV has a header and one record per finding, as the run says.
    assert len(content) == status["sizeBytes"]
    assert hashlib.sha256(content).hexdigest() == status["sha256"]
    records = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    assert records[0][0] == "id"
    assert len(records) - 1 == status["rowCount"] == FINDINGS

    assert {(s["status"], s["rowCount"], s["sha256"]) for s in burst_statuses} == {
        ("Completed", FINDINGS, status["sha256"])
    }

    # The delivery: the object and its manifest in the bucket, one line per finding.
    assert delivered_status["status"] == "Completed", delivered_status
    assert delivered_status["format"] == "ndjson"
    assert "scheduledFor" not in delivered_status
    s3 = moto_iam.s3()
    path: str = delivered_status["resultFilePath"]
    assert path.startswith(f"s3://{bucket}/{PREFIX}/Delivered-findings-")
    assert path.endswith(f"-{delivered['runId']}.ndjson")
    key = path.removeprefix(f"s3://{bucket}/")
    keys = s3_keys(moto_iam, bucket)
    assert key in keys
    assert manifest_key_of(path, bucket) in keys
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    lines = body.decode("utf-8").removesuffix("\n").split("\n")  # JSON text has no raw LF inside
    assert len(lines) == FINDINGS == delivered_status["rowCount"]
    assert {json.loads(line)["id"] for line in lines} == {row[0] for row in records[1:]}
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key_of(path, bucket))["Body"].read())
    assert manifest["rowCount"] == FINDINGS
    assert manifest["sha256"] == delivered_status["sha256"] == hashlib.sha256(body).hexdigest()

    # The scheduled run: coalesced to one run for a whole minute, delivered as Parquet.
    assert scheduled_status["status"] == "Completed", scheduled_status
    assert scheduled_status["format"] == "parquet"
    assert scheduled_status["attempts"] == 1
    scheduled_for = datetime.fromisoformat(scheduled_status["scheduledFor"])
    assert scheduled_for.second == scheduled_for.microsecond == 0
    assert scheduled_for <= datetime.fromisoformat(scheduled_status["createdAt"])
    assert latest_on_api_2["reportId"] == scheduled_report.id
    assert "scheduledFor" in latest_on_api_2
    scheduled_path: str = scheduled_status["resultFilePath"]
    assert scheduled_path.endswith(f"-{scheduled_status['runId']}.parquet")
    assert f"-{scheduled_for.date().isoformat()}-" in scheduled_path
    parquet = s3.get_object(Bucket=bucket, Key=scheduled_path.removeprefix(f"s3://{bucket}/"))["Body"].read()
    assert pq.read_table(io.BytesIO(parquet)).num_rows == FINDINGS == scheduled_status["rowCount"]
    assert manifest_key_of(scheduled_path, bucket) in s3_keys(moto_iam, bucket)
    # The ten minutes missed before the scheduler started make one run, for the minute it started in
    # (or the next one, had its first check come after it); then one run per minute, without a gap.
    fire_times = sorted(row.scheduled_for for row in all_runs.values() if row.report_id == scheduled_report.id)
    start_minute = before_start.replace(second=0, microsecond=0)
    assert fire_times[0] in (start_minute, start_minute + timedelta(minutes=1)), (before_start, fire_times)
    assert fire_times == [fire_times[0] + timedelta(minutes=n) for n in range(len(fire_times))]
    assert scheduled_for in fire_times

    # Every process stopped cleanly.
    assert scheduler_stop[0] == 0, scheduler_log.read_text()
    for log, (code, _) in zip(worker_logs, worker_stops, strict=True):
        assert code == 0, log.read_text()

    # Every run that left the queue was started exactly once, on its first attempt, by one worker.
    started_lines = [match for log in worker_logs for match in STARTED.findall(log.read_text())]
    counts = collections.Counter(run_id for run_id, _ in started_lines)
    claimed = {run_id for run_id, row in all_runs.items() if row.state != "queued"}
    assert set(counts) == claimed
    assert max(counts.values()) == 1, counts
    assert {attempt for _, attempt in started_lines} == {"1"}
    assert {download_run, delivered["runId"], scheduled_status["runId"], *burst} <= claimed
    assert all(all_runs[run_id].state == "completed" for run_id in claimed)
    print("runs started per worker: " + ", ".join(str(len(STARTED.findall(log.read_text()))) for log in worker_logs))
    for log in [*worker_logs, scheduler_log]:
        assert "Traceback" not in log.read_text(), log.read_text()


ROUNDS = 3  # the start-up race is timing-dependent: a few fresh databases make it show
PROCESSES = 4


def test_processes_started_together_on_an_empty_database_all_come_up(tmp_path: Path, postgres_template: str) -> None:
    """The README's scale-out start: createdb, then several processes at once. Each must come up
    (migrating an empty database exactly once between them) instead of crashing on the migration.
    ``postgres_template`` only makes the test skip without PostgreSQL (fail in CI), as others do."""
    for round_number in range(ROUNDS):
        data_dir = tmp_path / f"round-{round_number}" / "var"
        logs = [data_dir.parent / f"worker-{n}.log" for n in range(PROCESSES)]
        data_dir.parent.mkdir(parents=True)
        with cloned_database("template0") as empty_url, ExitStack() as stack:
            env = {"UVM_REPORTING_DATABASE_URL": empty_url}
            workers = [stack.enter_context(cli_process(data_dir, log, "worker", env=env)) for log in logs]
            for log, worker in zip(logs, workers, strict=True):
                wait_for_log(log, r"worker \S+ running", process=worker)  # fails if the worker exited
            stops = stop_processes(workers, timeout=30)
        assert [code for code, _ in stops] == [0] * PROCESSES, [log.read_text() for log in logs]
        assert sum("Running upgrade  -> 0001" in log.read_text() for log in logs) == 1
