"""The two documents a customer attaches to the role they let us assume: its trust policy
(only our principal, only with the account's ExternalId) and its permissions policy."""

from __future__ import annotations

import re
from typing import Any

from uvm_reporting.errors import BadUserInput
from uvm_reporting.storage.s3.names import (
    PARTITIONS,
    canaries_arn,
    objects_arn,
    validate_bucket_name,
    validate_external_id,
    validate_key_prefix,
)


def trust_policy(deployment_principal_arn: str, external_id: str) -> dict[str, Any]:
    """The trust policy for the customer's role: only our principal, only with this ExternalId."""
    if not re.fullmatch(r"arn:aws(?:-cn|-us-gov)?:iam::\d{12}:(?:root|user/.+|role/.+)", deployment_principal_arn):
        raise BadUserInput(
            f"{deployment_principal_arn!r} cannot be a trust-policy principal: use an IAM user or role ARN "
            "(an assumed-role session ARN arn:aws:sts::...:assumed-role/NAME/... stands for "
            "arn:aws:iam::...:role/NAME)."
        )
    validate_external_id(external_id)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowUvmReportingToAssumeThisRole",
                "Effect": "Allow",
                "Principal": {"AWS": deployment_principal_arn},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


def role_permissions_policy(bucket: str, prefix: str, *, partition: str = "aws") -> dict[str, Any]:
    """The permissions policy for the customer's role: write exports under ``prefix`` and nothing else.

    ``s3:DeleteObject`` is granted only on the delivery check's canary objects.
    """
    validate_bucket_name(bucket)
    validate_key_prefix(prefix)
    if partition not in PARTITIONS:
        raise BadUserInput(f"Partition {partition!r} is not one of {', '.join(PARTITIONS)}.")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "UvmReportingWriteExports",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": objects_arn(partition, bucket, prefix),
            },
            {
                "Sid": "UvmReportingRemoveDeliveryCheckCanary",
                "Effect": "Allow",
                "Action": "s3:DeleteObject",
                "Resource": canaries_arn(partition, bucket, prefix),
            },
        ],
    }
