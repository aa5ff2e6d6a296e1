"""What the acceptance tests need around S3 delivery: the CLI's AWS settings, a customer set up
for delivery by role, and the bucket's keys."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cli import run_cli
from tests.support.moto_server import (
    OPERATOR_ACCOUNT_IDS,
    AwsKeys,
    MotoIam,
    create_bucket,
    create_customer_role,
    unique_name,
)

EXAMPLES = Path(__file__).parents[2] / "examples" / "reports"
PREFIX = "exports/uvm"


def aws_env(moto_iam: MotoIam, keys: AwsKeys) -> dict[str, str]:
    """The environment that points the CLI and server at the moto server, as the deployment user."""
    return {
        "UVM_REPORTING_S3_ENDPOINT_URL": moto_iam.endpoint_url,
        "AWS_ACCESS_KEY_ID": keys.access_key_id,
        "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        # moto keeps the customers' roles in its one account: the operator's is said to be another.
        "UVM_REPORTING_OPERATOR_AWS_ACCOUNT_IDS": ",".join(OPERATOR_ACCOUNT_IDS),
    }


def manifest_key_of(path: str, bucket: str) -> str:
    folder, _, name = path.removeprefix(f"s3://{bucket}/").rpartition("/")
    return f"{folder}/{name.split('.')[0]}.manifest.json"


def s3_keys(moto_iam: MotoIam, bucket: str) -> list[str]:
    listing = moto_iam.s3().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


@dataclass(frozen=True)
class CustomerDelivery:
    """An account whose report delivers to its own bucket through a role that trusts us."""

    data_dir: Path
    ids: dict[str, str]  # the seed's names: Account ID, Report ID, client ID, client secret
    bucket: str
    env: dict[str, str]  # aws_env: the CLI and server pointed at moto
    shown: dict[str, Any]  # ``accounts show``: the ExternalId and the trust policy


def set_up_customer_delivery(
    tmp_path: Path,
    moto_iam: MotoIam,
    keys: AwsKeys,
    *,
    export_format: str,
    findings: int,
    trusted_external_id: str | None = None,
) -> CustomerDelivery:
    """Through the CLI: an account with ``findings`` findings, the all-findings report scheduled
    (inactive) to deliver ``export_format`` to a new bucket through a role trusting our deployment
    with the account's ExternalId (or ``trusted_external_id``), and an API client."""
    data_dir = tmp_path / "var"
    env = aws_env(moto_iam, keys)
    account = run_cli(data_dir, "accounts", "create", "--name", "Acme Corp")
    shown = run_cli(data_dir, "accounts", "show", account["id"], **env)
    bucket = create_bucket(moto_iam.s3(), unique_name("customer"))
    role_arn = create_customer_role(
        moto_iam.iam(),
        name=unique_name("uvm-delivery"),
        trusted_principal_arn=keys.arn,
        external_id=trusted_external_id or shown["external_id"],
        bucket=bucket,
        prefix=PREFIX,
    )
    definition = json.loads((EXAMPLES / "all-findings.json").read_text())
    definition["schedule"] = {
        "format": export_format,
        "frequency": "daily",
        "time": "06:00",
        "active": False,
        "delivery": {"method": "s3", "bucket": bucket, "path": PREFIX, "region": "us-east-1", "role_arn": role_arn},
    }
    report_file = tmp_path / "report.json"
    report_file.write_text(json.dumps(definition))
    run_cli(data_dir, "data", "generate", "--account", account["id"], "--findings", str(findings))
    report = run_cli(data_dir, "reports", "create", "--account", account["id"], "--file", str(report_file))
    client = run_cli(data_dir, "clients", "create", "--account", account["id"])
    ids = {
        "Account ID": account["id"],
        "Report ID": report["id"],
        "client ID": client["client_id"],
        "client secret": client["client_secret"],
    }
    return CustomerDelivery(data_dir, ids, bucket, env, shown)
