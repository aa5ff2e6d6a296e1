"""Cancelling a delivery to the customer's bucket mid-upload, against the real server and a moto
server with IAM: the multipart upload is aborted, and nothing appears in the bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.acceptance.test_run_cancel import Client
from tests.support.cli import running_server
from tests.support.moto_server import AwsKeys, MotoIam
from tests.support.s3_delivery import s3_keys, set_up_customer_delivery
from tests.support.seed_commands import get_token, process_without_link
from tests.support.waiting import wait_for

# About 13 MB of CSV in four batches of 10,000 rows, each read held 3 seconds: the upload of the
# first 8 MiB part starts with the third batch, seconds before the last, so the cancel comes while
# the upload is unfinished.
FINDINGS = 40_000


# It needs an export large enough to be cancelled mid-upload (about 30 s): in the slow step of CI.
@pytest.mark.slow
def test_a_cancelled_delivery_aborts_its_multipart_upload(
    tmp_path: Path, moto_iam: MotoIam, deployment_keys: AwsKeys
) -> None:
    customer = set_up_customer_delivery(tmp_path, moto_iam, deployment_keys, export_format="csv", findings=FINDINGS)
    data_dir, ids, bucket, env = customer.data_dir, customer.ids, customer.bucket, customer.env
    s3 = moto_iam.s3()
    server_env: dict[str, Any] = {
        **env,
        "UVM_REPORTING_SCHEDULER_IN_SERVE": "false",
        "UVM_REPORTING_FAULT_POINTS": "batch=delay:3",
        "UVM_REPORTING_EXPORT_PROCESS_MIN_ROWS": "0",
    }
    with running_server(data_dir, **server_env) as (base_url, _), httpx2.Client(base_url=base_url, timeout=30) as http:
        token = get_token(base_url, ids)
        caller = Client(http, ids["Account ID"], ids["Report ID"], token)
        run_id = process_without_link(base_url, ids, token)["data"]["processReport"]["runId"]
        wait_for(
            lambda: s3.list_multipart_uploads(Bucket=bucket).get("Uploads"),
            timeout=120,
            what="the delivery's multipart upload to start",
        )
        answer = caller.cancel(run_id)
        final = wait_for(
            lambda: (status := caller.status(run_id))["status"] != "Running" and status,
            timeout=30,
            what="the delivery to end",
        )
    assert answer["state"] == "started", answer
    assert final["status"] == "Cancelled", final
    assert "resultFilePath" not in final
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3_keys(moto_iam, bucket) == []
