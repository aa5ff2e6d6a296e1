"""The names we use in a bucket and check at the S3 boundary: bucket, region, role ARN,
key prefix, ExternalId, role session; object keys and the ARNs that cover them."""

from __future__ import annotations

import re
from typing import Final

from uvm_reporting.domain.s3_names import bucket_name_problem, key_prefix_problem, region_problem, role_arn_problem
from uvm_reporting.errors import BadUserInput

CANARY_NAME_PREFIX: Final = ".uvm-reporting-canary-"
PARTITIONS: Final = ("aws", "aws-cn", "aws-us-gov")

_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)


# The naming rules live in the domain (report definitions check them when a report is saved);
# these raise them at the S3 boundary as well.
def validate_bucket_name(name: str) -> str:
    """Return ``name`` if it is a valid S3 general-purpose bucket name, else raise BadUserInput."""
    return _checked("S3 bucket name", bucket_name_problem(name), name)


def validate_region(region: str) -> str:
    """Return ``region`` if it reads like an AWS region code (``us-east-1``), else raise BadUserInput."""
    return _checked("AWS region", region_problem(region), region)


def validate_role_arn(arn: str) -> str:
    """Return ``arn`` if it is an IAM role ARN (``arn:aws:iam::<account>:role/<path/>name``)."""
    return _checked("Role ARN", role_arn_problem(arn), arn)


def validate_key_prefix(path: str) -> str:
    """Return ``path`` if it can prefix our object keys in a bucket (``""`` means the bucket's root)."""
    return _checked("Key prefix", key_prefix_problem(path), path)


def _checked(what: str, problem: str | None, value: str) -> str:
    if problem is not None:
        raise BadUserInput(f"{what} {value!r} {problem}.")
    return value


def validate_external_id(external_id: str) -> str:
    if not _EXTERNAL_ID.fullmatch(external_id):
        raise BadUserInput("The ExternalId must be 2 to 1224 characters of letters, digits or '+=,.@:/-_'.")
    return external_id


def validate_session_name(session_name: str) -> str:
    if not _SESSION_NAME.fullmatch(session_name):
        raise BadUserInput(f"Role session name {session_name!r} must be 2 to 64 letters, digits or '+=,.@_-'.")
    return session_name


def join_key(prefix: str, name: str) -> str:
    """``prefix/name`` with exactly one '/' between them (``name`` alone for an empty prefix)."""
    if not prefix:
        return name
    return f"{prefix.rstrip('/')}/{name}"


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def objects_arn(partition: str, bucket: str, prefix: str) -> str:
    """The resource ARN covering every key we write under ``prefix`` (``bucket/prefix/*``)."""
    return f"arn:{partition}:s3:::{bucket}/{join_key(prefix, '*')}"


def canaries_arn(partition: str, bucket: str, prefix: str) -> str:
    """The resource ARN covering the delivery check's canary objects under ``prefix``."""
    return f"arn:{partition}:s3:::{bucket}/{join_key(prefix, CANARY_NAME_PREFIX + '*')}"
