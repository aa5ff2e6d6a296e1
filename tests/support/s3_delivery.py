"""What the acceptance tests need around S3 delivery: the CLI's AWS settings and the bucket's keys."""

from __future__ import annotations

from tests.support.moto_server import OPERATOR_ACCOUNT_IDS, AwsKeys, MotoIam


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
