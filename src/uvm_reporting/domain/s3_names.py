"""Checks of the names an S3 delivery is configured with: bucket, region, role ARN, key prefix.

Pure, no I/O. Each check returns ``None`` when the value is acceptable, else one sentence that
says what is wrong, so a user fixes a typo when saving a schedule rather than learning of it
from a failed run at 6 a.m. The checks follow AWS's published rules (general purpose bucket
naming, IAM role ARNs, object key names); they do not ask AWS whether a bucket or role exists.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator

from uvm_reporting.domain.messages import quoted

BUCKET_MIN_LENGTH = 3
BUCKET_MAX_LENGTH = 63
# Prefixes and suffixes AWS reserves for its own names (access point aliases and the like).
RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# S3 keys are at most 1024 bytes; the rest is left for the file name.
KEY_PREFIX_MAX_BYTES = 900
ROLE_NAME_MAX_LENGTH = 64
ROLE_PATH_MAX_LENGTH = 512

_BUCKET_CHARACTERS = re.compile(r"[a-z0-9.-]+")
_IPV4_LIKE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_REGION = re.compile(
    # area, then an optional qualifier: -gov (GovCloud), -iso/-isob (isolated), or a sovereign
    # cloud's sub-area (eusc-de-east-1).
    r"(?P<area>[a-z]{2,4})(?P<gov>-gov|-iso[a-z]?|-[a-z]{2})?"
    r"-(?P<direction>central|north|south|east|west|northeast|northwest|southeast|southwest)"
    r"-(?P<number>[1-9][0-9]?)"
)
_ROLE_ARN = re.compile(
    r"arn:(?P<partition>[^:]*):(?P<service>[^:]*):(?P<region>[^:]*):(?P<account>[^:]*):(?P<resource>.*)",
    re.DOTALL,
)
_PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_ROLE_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]+")
# An IAM path segment: printable ASCII except "/" (IAM allows U+0021 to U+007E in paths).
_ROLE_PATH_SEGMENT = re.compile(r"[!-.0-~]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid S3 general purpose bucket name, or None."""
    return next(_bucket_name_problems(name), None)


def _bucket_name_problems(name: str) -> Iterator[str]:
    # The caller takes the first problem only, so each check may assume the earlier ones passed.
    if not BUCKET_MIN_LENGTH <= len(name) <= BUCKET_MAX_LENGTH:
        yield f"must be {BUCKET_MIN_LENGTH} to {BUCKET_MAX_LENGTH} characters long, not {len(name)}"
    if not _BUCKET_CHARACTERS.fullmatch(name):
        bad = next(c for c in name if not _BUCKET_CHARACTERS.fullmatch(c))
        hint = " (bucket names are lower case)" if bad.isupper() else ""
        yield f"may contain only lower-case letters, digits, dots and hyphens, not {quoted(bad)}{hint}"
    if not (name[0].isalnum() and name[-1].isalnum()):
        yield "must begin and end with a letter or a digit"
    if ".." in name:
        yield "must not contain two adjacent dots"
    if _IPV4_LIKE.fullmatch(name):
        yield "must not be formatted like an IP address"
    for prefix in RESERVED_BUCKET_PREFIXES:
        if name.startswith(prefix):
            yield f"must not begin with {quoted(prefix)}, which AWS reserves"
    for suffix in RESERVED_BUCKET_SUFFIXES:
        if name.endswith(suffix):
            yield f"must not end with {quoted(suffix)}, which AWS reserves"


def region_problem(region: str) -> str | None:
    """Why ``region`` is not an AWS region name (``eu-west-1``, ``us-gov-west-1``), or None."""
    if not _REGION.fullmatch(region):
        return 'must be an AWS region name such as "us-east-1", "eu-west-2" or "ap-southeast-1"'
    return None


def region_partition(region: str) -> str:
    """The AWS partition of a (valid) region name: ``aws``, ``aws-cn`` or ``aws-us-gov``."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def role_arn_partition(arn: str) -> str:
    """The partition a (valid) role ARN names: its second field."""
    return arn.split(":", 2)[1]


def role_arn_account(arn: str) -> str:
    """The AWS account id a (valid) role ARN names: its fifth field."""
    return arn.split(":", 5)[4]


def operator_account_role_problem(arn: str, operator_account_ids: Collection[str]) -> str | None:
    """Why a delivery may not assume the (valid) role ``arn``: it is a role of this deployment's
    own AWS account, or None.

    The ExternalId protects only roles whose trust policy demands it. A role of the operator's
    own account may trust this deployment without one (or the whole account), so assuming it for
    a customer would lend them the operator's access: the confused deputy.
    """
    account = role_arn_account(arn)
    if account not in operator_account_ids:
        return None
    return (
        f"names a role in this deployment's own AWS account ({account}); deliveries assume only roles "
        "of the customer's AWS account: name a role in your account whose trust policy requires your ExternalId"
    )


def role_arn_problem(arn: str) -> str | None:
    """Why ``arn`` is not an IAM role ARN (``arn:aws:iam::123456789012:role/name``), or None."""
    return next(_role_arn_problems(arn), None)


def _role_arn_problems(arn: str) -> Iterator[str]:
    # The caller takes the first problem only, so each check may assume the earlier ones passed.
    example = 'such as "arn:aws:iam::123456789012:role/uvm-export"'
    match = _ROLE_ARN.fullmatch(arn)
    if match is None:
        yield f"must be an IAM role ARN {example}"
        return
    if match["partition"] not in _PARTITIONS:
        yield f"has partition {quoted(match['partition'])}; use one of {', '.join(_PARTITIONS)}"
    if match["service"] != "iam":
        yield f"names service {quoted(match['service'])}; a role ARN names iam ({example})"
    if match["region"]:
        yield "must have an empty region field: IAM is global (arn:aws:iam::<account>:role/<name>)"
    if not _ACCOUNT_ID.fullmatch(match["account"]):
        yield "must name the 12-digit AWS account id that owns the role"
    resource = match["resource"]
    if not resource.startswith("role/"):
        yield f"must name a role (role/<name>), not {quoted(resource.split('/')[0])}"
    *path, name = resource.removeprefix("role/").split("/")
    if not name:
        yield "must end with the role's name"
    if len(name) > ROLE_NAME_MAX_LENGTH or not _ROLE_NAME.fullmatch(name):
        yield (
            f"has role name {quoted(name)}; a role name is 1 to {ROLE_NAME_MAX_LENGTH} letters, "
            "digits and +=,.@_- characters"
        )
    if path:
        joined = "/" + "/".join(path) + "/"
        if len(joined) > ROLE_PATH_MAX_LENGTH or not all(_ROLE_PATH_SEGMENT.fullmatch(p) for p in path):
            yield f"has an invalid role path {quoted(joined)}"


def key_prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot begin the object keys of exports, or None; the empty prefix is fine.

    One trailing "/" is accepted (``reports/``); the caller drops it before joining.
    """
    return next(_key_prefix_problems(prefix), None)


def _key_prefix_problems(prefix: str) -> Iterator[str]:
    # The caller takes the first problem only, so each check may assume the earlier ones passed.
    if prefix == "":
        return
    if _CONTROL.search(prefix):
        yield "must not contain control characters"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in prefix):  # JSON can carry lone surrogates
        yield "must be valid Unicode text"
    size = len(prefix.encode("utf-8"))
    if size > KEY_PREFIX_MAX_BYTES:
        yield f"must be at most {KEY_PREFIX_MAX_BYTES} bytes (UTF-8), not {size}"
    if prefix.startswith("/"):
        yield 'must not begin with "/": it is relative to the bucket'
    segments = prefix.removesuffix("/").split("/")
    if "" in segments:
        yield 'must not contain "//" (an empty folder name)'
    if ".." in segments or "." in segments:
        yield 'must not contain "." or ".." as a folder name'
