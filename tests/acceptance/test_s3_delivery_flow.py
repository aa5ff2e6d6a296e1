"""The seed's processReport without isPresignedUrl, on a report that delivers Parquet to the
customer's bucket through an assumed role: the real server, curl, and a moto server with IAM."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tests.support.cli import running_server
from tests.support.expected_exports import expected_findings_rows
from tests.support.moto_server import AwsKeys, MotoIam
from tests.support.s3_delivery import PREFIX, manifest_key_of, s3_keys, set_up_customer_delivery
from tests.support.seed_commands import bash_json, get_token, poll_until_finished, process_without_link
from uvm_reporting.database.engine import create_database_engine
from uvm_reporting.settings import Settings


def set_up(
    tmp_path: Path, moto_iam: MotoIam, keys: AwsKeys, *, trusted_external_id: str | None = None
) -> tuple[Path, dict[str, str], dict[str, Any]]:
    customer = set_up_customer_delivery(
        tmp_path, moto_iam, keys, export_format="parquet", findings=400, trusted_external_id=trusted_external_id
    )
    statement = customer.shown["trust_policy"]["Statement"][0]
    assert statement["Principal"] == {"AWS": keys.arn}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": customer.shown["external_id"]}}
    return customer.data_dir, customer.ids, {"bucket": customer.bucket, "env": customer.env}


def check_delivery_with_curl(base_url: str, ids: dict[str, str], token: str) -> dict[str, Any]:
    """The testReportDelivery mutation, sent with curl like the spec's calls."""
    document = json.dumps(
        {"query": "mutation ($id: String!) { testReportDelivery(id: $id) }", "variables": {"id": ids["Report ID"]}}
    )
    response = bash_json(
        f"curl -s '{base_url}/api/graphql' -H 'Content-Type: application/json' "
        f"-H 'accountId: {ids['Account ID']}' -H 'graphqlname: testReportDelivery' "
        f"-H 'Authorization: Bearer {token}' --data '{document}'"
    )
    result: dict[str, Any] = response["data"]["testReportDelivery"]
    return result


def test_parquet_is_delivered_to_the_customers_bucket_with_a_manifest(
    tmp_path: Path, moto_iam: MotoIam, deployment_keys: AwsKeys
) -> None:
    data_dir, ids, customer = set_up(tmp_path, moto_iam, deployment_keys)
    with running_server(data_dir, **customer["env"]) as (base_url, _):
        token = get_token(base_url, ids)
        started = process_without_link(base_url, ids, token)["data"]["processReport"]
        status = poll_until_finished(base_url, ids, token, started["runId"])
        tested = check_delivery_with_curl(base_url, ids, token)
    assert status["status"] == "Completed", status
    assert status["format"] == "parquet"
    assert "presignedUrl" not in status
    bucket = customer["bucket"]
    path: str = status["resultFilePath"]
    assert path.startswith(f"s3://{bucket}/{PREFIX}/All-findings-")
    assert path.endswith(f"-{started['runId']}.parquet")
    assert tested == {**tested, "ok": True, "code": None}
    assert s3_keys(moto_iam, bucket) == sorted([path.removeprefix(f"s3://{bucket}/"), manifest_key_of(path, bucket)])

    s3 = moto_iam.s3()
    key = path.removeprefix(f"s3://{bucket}/")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    assert table.num_rows == status["rowCount"] == 400
    assert table.column_names[-1] == "asset.hostname"
    assert str(table.schema.field("first_seen").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("cvss_score").type) == "double"
    engine = create_database_engine(Settings(data_dir=data_dir).database_url)
    try:
        expected = expected_findings_rows(engine, ids["Account ID"])
    finally:
        engine.dispose()
    ids_in_file = table.column("id").to_pylist()
    assert ids_in_file == [row[0] for row in expected]
    assert table.column("title").to_pylist() == [
        row[2].removeprefix("'") if row[2].startswith("'=") else row[2] for row in expected
    ]

    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key_of(path, bucket))["Body"].read())
    assert manifest["rowCount"] == 400
    assert manifest["sizeBytes"] == len(body) == status["sizeBytes"]
    assert manifest["sha256"] == status["sha256"]
    assert manifest["format"] == "parquet"
    assert manifest["columns"][-1] == {"name": "asset.hostname", "type": "string"}


def test_a_role_trusting_another_external_id_fails_clearly(
    tmp_path: Path, moto_iam: MotoIam, deployment_keys: AwsKeys
) -> None:
    data_dir, ids, customer = set_up(tmp_path, moto_iam, deployment_keys, trusted_external_id="not-ours-" + "0" * 40)
    with running_server(data_dir, **customer["env"]) as (base_url, _):
        token = get_token(base_url, ids)
        tested = check_delivery_with_curl(base_url, ids, token)
        started = process_without_link(base_url, ids, token)["data"]["processReport"]
        status = poll_until_finished(base_url, ids, token, started["runId"])
    assert tested["ok"] is False
    assert tested["code"] == "EXTERNAL_ID_MISMATCH"
    assert status["status"] == "Failed"
    assert status["errorCode"] == "DELIVERY_FAILED"
    assert "EXTERNAL_ID_MISMATCH" in status["errorMessage"]
    assert moto_iam.s3().list_objects_v2(Bucket=customer["bucket"]).get("KeyCount", 0) == 0
