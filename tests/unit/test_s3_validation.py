"""S3 delivery without a server: input validation, the customer's policy documents, error reasons."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
    SSLError,
)

from tests.support.moto_server import DUMMY_KEYS, isolated_session
from uvm_reporting.domain.s3_names import operator_account_role_problem, role_arn_account
from uvm_reporting.errors import BadUserInput
from uvm_reporting.storage.s3 import (
    ASSUME_ROLE_DENIED,
    DELETE_DENIED,
    DEPLOYMENT_CREDENTIALS_INVALID,
    ENDPOINT_UNREACHABLE,
    EXTERNAL_ID_MISMATCH,
    MAX_PRESIGNED_EXPIRY_SECONDS,
    NO_SUCH_BUCKET,
    PUT_DENIED,
    ROLE_NOT_FOUND,
    UNEXPECTED_ERROR,
    DeliveryError,
    S3ClientFactory,
    S3ObjectWriter,
    S3ResultStorage,
    content_disposition,
    join_key,
    role_permissions_policy,
    trust_policy,
    validate_bucket_name,
    validate_key_prefix,
    validate_region,
    validate_role_arn,
)
from uvm_reporting.storage.s3.delivery_errors import S3Target, classify_delivery_error

ROLE = "arn:aws:iam::123456789012:role/uvm-reporting-delivery"
DEPLOYMENT = "arn:aws:iam::210987654321:user/uvm-reporting"
EXTERNAL_ID = "5f1d3c0a9b8e7d6c5b4a39281706f5e4d3c2b1a098765432"


@pytest.mark.parametrize("name", ["abc", "my-bucket", "exports.example.com", "a" * 63, "1bucket9", "b-1.c-2"])
def test_valid_bucket_names_pass(name: str) -> None:
    assert validate_bucket_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ab", "3 to 63 characters"),
        ("a" * 64, "3 to 63 characters"),
        ("My-Bucket", "not M"),
        ("my_bucket", "not _"),
        ("-bucket", "begin and end"),
        ("bucket.", "begin and end"),
        ("my..bucket", "two adjacent dots"),
        ("192.168.5.4", "IP address"),
        ("999.1.1.1", "IP address"),
        ("xn--bucket", "'xn--'"),
        ("sthree-bucket", "'sthree-'"),
        ("bucket-s3alias", "'-s3alias'"),
        ("bucket--ol-s3", "'--ol-s3'"),
    ],
)
def test_invalid_bucket_names_say_why(name: str, reason: str) -> None:
    with pytest.raises(BadUserInput, match=r"^S3 bucket name ") as raised:
        validate_bucket_name(name)
    assert repr(name) in raised.value.message
    assert reason.strip("'").lower() in raised.value.message.lower().replace('"', "")


@pytest.mark.parametrize(
    "region",
    [
        "us-east-1",
        "eu-west-2",
        "ap-southeast-3",
        "us-gov-west-1",
        "cn-north-1",
        "me-central-1",
        "us-isob-east-1",
        "eusc-de-east-1",
    ],
)
def test_valid_regions_pass(region: str) -> None:
    assert validate_region(region) == region


@pytest.mark.parametrize(
    "region", ["", "us-east", "US-EAST-1", "useast1", "us-east-1a", "eu-middle-1", "us01", " us-east-1"]
)
def test_invalid_regions_are_refused(region: str) -> None:
    with pytest.raises(BadUserInput, match='region name such as "us-east-1"'):
        validate_region(region)


@pytest.mark.parametrize(
    "arn",
    [
        ROLE,
        "arn:aws-cn:iam::123456789012:role/delivery",
        "arn:aws-us-gov:iam::123456789012:role/team/exports/delivery",
        "arn:aws:iam::123456789012:role/with+=,.@_-chars",
    ],
)
def test_valid_role_arns_pass(arn: str) -> None:
    assert validate_role_arn(arn) == arn


@pytest.mark.parametrize(
    "arn",
    [
        "uvm-reporting-delivery",
        "arn:aws:iam::123456789012",
        "arn:azure:iam::123456789012:role/x",
        "arn:aws:s3:::bucket/x:y",
        "arn:aws:iam:us-east-1:123456789012:role/x",
        "arn:aws:iam::12345678901:role/x",
        "arn:aws:iam::123456789012:user/alice",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:role/" + "r" * 65,
        "arn:aws:iam::123456789012:role/bad name",
        "arn:aws:iam::123456789012:role//x",
    ],
)
def test_invalid_role_arns_are_refused_naming_them(arn: str) -> None:
    # The reasons themselves are the domain's (domain/s3_names.py, tested in test_schedule.py).
    with pytest.raises(BadUserInput, match=r"^Role ARN ") as raised:
        validate_role_arn(arn)
    assert repr(arn) in raised.value.message


@pytest.mark.parametrize("prefix", ["", "exports", "exports/uvm/", "a/b/c", "données/été", "x" * 900])
def test_valid_key_prefixes_pass(prefix: str) -> None:
    assert validate_key_prefix(prefix) == prefix


@pytest.mark.parametrize(
    "prefix",
    [
        "/exports",
        "exports/../other",
        "..",
        "exports\nuvm",
        "tab\there",
        "del\x7f",
        "x" * 901,
        "é" * 451,
    ],
)
def test_invalid_key_prefixes_are_refused_naming_them(prefix: str) -> None:
    with pytest.raises(BadUserInput, match=r"^Key prefix ") as raised:
        validate_key_prefix(prefix)
    assert repr(prefix) in raised.value.message


def test_join_key_puts_exactly_one_slash() -> None:
    assert join_key("", "a.csv") == "a.csv"
    assert join_key("exports", "a.csv") == "exports/a.csv"
    assert join_key("exports/", "a.csv") == "exports/a.csv"


def test_trust_policy_lets_only_our_principal_assume_with_the_external_id() -> None:
    policy = trust_policy(DEPLOYMENT, EXTERNAL_ID)
    assert json.loads(json.dumps(policy)) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowUvmReportingToAssumeThisRole",
                "Effect": "Allow",
                "Principal": {"AWS": DEPLOYMENT},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
            }
        ],
    }


@pytest.mark.parametrize("principal", ["arn:aws:sts::210987654321:assumed-role/uvm/i-0abc", "210987654321", "*"])
def test_trust_policy_refuses_principals_a_trust_policy_cannot_name(principal: str) -> None:
    with pytest.raises(BadUserInput, match="cannot be a trust-policy principal"):
        trust_policy(principal, EXTERNAL_ID)


def test_trust_policy_refuses_an_empty_external_id() -> None:
    with pytest.raises(BadUserInput, match="ExternalId"):
        trust_policy(DEPLOYMENT, "")


def test_permissions_policy_covers_only_the_prefix_and_the_canaries() -> None:
    policy = role_permissions_policy("customer-exports", "uvm/daily")
    assert policy["Version"] == "2012-10-17"
    write, cleanup = policy["Statement"]
    assert write["Effect"] == cleanup["Effect"] == "Allow"
    assert sorted(write["Action"]) == ["s3:AbortMultipartUpload", "s3:PutObject"]
    assert write["Resource"] == "arn:aws:s3:::customer-exports/uvm/daily/*"
    assert cleanup["Action"] == "s3:DeleteObject"
    assert cleanup["Resource"] == "arn:aws:s3:::customer-exports/uvm/daily/.uvm-reporting-canary-*"


def test_permissions_policy_for_the_bucket_root_and_another_partition() -> None:
    policy = role_permissions_policy("customer-exports", "", partition="aws-cn")
    assert policy["Statement"][0]["Resource"] == "arn:aws-cn:s3:::customer-exports/*"
    with pytest.raises(BadUserInput, match="bucket name"):
        role_permissions_policy("Customer", "")


def test_content_disposition_keeps_the_exact_name_and_an_ascii_fallback() -> None:
    assert content_disposition("report-2026.csv") == (
        "attachment; filename=\"report-2026.csv\"; filename*=UTF-8''report-2026.csv"
    )
    assert content_disposition('Rapport "été".csv') == (
        "attachment; filename=\"Rapport __t__.csv\"; filename*=UTF-8''Rapport%20%22%C3%A9t%C3%A9%22.csv"
    )
    for bad in ("", "a/b.csv", "a\\b.csv", "a\r\nb.csv"):
        with pytest.raises(BadUserInput, match="Download name"):
            content_disposition(bad)


def _client_error(code: str, message: str, status: int = 403, operation: str = "AssumeRole") -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


TARGET = S3Target(bucket="customer-exports", prefix="uvm", region="eu-west-1", role_arn=ROLE, principal_arn=DEPLOYMENT)
PLAIN_DENIAL = f"User: {DEPLOYMENT} is not authorized to perform: sts:AssumeRole on resource: {ROLE}"


def test_a_plain_assume_role_denial_points_at_the_external_id_first_and_names_the_other_causes() -> None:
    error = classify_delivery_error(_client_error("AccessDenied", PLAIN_DENIAL), "assume", TARGET)
    assert isinstance(error, DeliveryError)
    assert (error.code, error.reason) == ("DELIVERY_FAILED", EXTERNAL_ID_MISMATCH)
    assert "`uvm-reporting accounts show`" in error.message
    assert "no role exists at this ARN" in error.message
    assert f"Principal is not {DEPLOYMENT}" in error.message


@pytest.mark.parametrize(
    "message",
    [
        f"{PLAIN_DENIAL} with an explicit deny in a resource-based policy",
        f"{PLAIN_DENIAL} because no identity-based policy allows the sts:AssumeRole action",
    ],
)
def test_other_assume_role_denials_are_assume_role_denied(message: str) -> None:
    assert (
        classify_delivery_error(_client_error("AccessDenied", message), "assume", TARGET).reason == ASSUME_ROLE_DENIED
    )


@pytest.mark.parametrize(
    ("error", "stage", "reason"),
    [
        (_client_error("NoSuchEntity", "Role x not found", 404), "assume", ROLE_NOT_FOUND),
        (
            _client_error("InvalidClientTokenId", "The security token is invalid."),
            "assume",
            DEPLOYMENT_CREDENTIALS_INVALID,
        ),
        (NoCredentialsError(), "assume", DEPLOYMENT_CREDENTIALS_INVALID),
        (EndpointConnectionError(endpoint_url="https://sts.eu-west-1.amazonaws.com"), "assume", ENDPOINT_UNREACHABLE),
        (_client_error("AccessDenied", "Access Denied", operation="PutObject"), "write", PUT_DENIED),
        (
            _client_error("NoSuchBucket", "The specified bucket does not exist", 404, "PutObject"),
            "write",
            NO_SUCH_BUCKET,
        ),
        (_client_error("AccessDenied", "Access Denied", operation="DeleteObject"), "delete", DELETE_DENIED),
        (
            _client_error("InternalError", "We encountered an internal error.", 500, "PutObject"),
            "write",
            UNEXPECTED_ERROR,
        ),
        (_client_error("ThrottlingException", "Rate exceeded", 400), "assume", UNEXPECTED_ERROR),
    ],
)
def test_failures_get_stable_reasons(error: Exception, stage: Any, reason: str) -> None:
    assert classify_delivery_error(error, stage, TARGET).reason == reason


OPERATOR_ENDPOINT = "https://s3.storage.operator.internal:9000"


@pytest.mark.parametrize(
    ("error", "stage"),
    [
        (EndpointConnectionError(endpoint_url=OPERATOR_ENDPOINT), "write"),
        (EndpointConnectionError(endpoint_url=OPERATOR_ENDPOINT), "assume"),
        (ConnectTimeoutError(endpoint_url=OPERATOR_ENDPOINT), "write"),
        (ReadTimeoutError(endpoint_url=OPERATOR_ENDPOINT), "delete"),
        (ConnectionClosedError(endpoint_url=OPERATOR_ENDPOINT), "write"),
        (SSLError(endpoint_url=OPERATOR_ENDPOINT, error=OSError("certificate verify failed")), "write"),
        (ParamValidationError(report=f"Invalid bucket name for {OPERATOR_ENDPOINT}"), "write"),
        (CredentialRetrievalError(provider="assume-role", error_msg=f"{OPERATOR_ENDPOINT} said no"), "assume"),
        (_client_error("AccessDenied", f"Access Denied by {OPERATOR_ENDPOINT}/customer-exports", 403), "write"),
        (_client_error("InternalError", "Gateway 10.0.12.7:9000 went away", 500, "PutObject"), "write"),
        (_client_error("Weird", f"see {OPERATOR_ENDPOINT}/x", 400, "PutObject"), "write"),
    ],
)
def test_a_delivery_error_names_neither_the_endpoint_nor_botocores_text(error: Exception, stage: Any) -> None:
    """The run's errorMessage and testReportDelivery's message go to the customer."""
    message = classify_delivery_error(error, stage, TARGET).message
    assert "operator.internal" not in message
    assert "9000" not in message
    assert "10.0.12.7" not in message
    if not isinstance(error, ClientError):
        assert str(error) not in message
        assert "endpoint URL" not in message
    # What the customer configured, or whose the fault is.
    assert "customer-exports" in message or ROLE in message or "The operator must" in message


def test_an_unreachable_endpoint_says_what_the_customer_can_check() -> None:
    message = classify_delivery_error(EndpointConnectionError(endpoint_url=OPERATOR_ENDPOINT), "write", TARGET).message
    assert message.startswith("Could not reach S3 while writing to s3://customer-exports/uvm")
    assert "(eu-west-1)" in message


def test_a_role_of_the_operators_own_account_is_a_problem() -> None:
    assert role_arn_account(ROLE) == "123456789012"
    assert operator_account_role_problem(ROLE, frozenset({"210987654321"})) is None
    problem = operator_account_role_problem(ROLE, frozenset({"210987654321", "123456789012"}))
    assert problem is not None
    assert problem.startswith("names a role in this deployment's own AWS account (123456789012)")


def test_put_denied_names_the_resource_the_policy_needs() -> None:
    error = classify_delivery_error(
        _client_error("AccessDenied", "Access Denied", operation="PutObject"), "write", TARGET
    )
    assert "s3:PutObject" in error.message
    assert "arn:aws:s3:::customer-exports/uvm/*" in error.message


def test_put_denied_by_kms_says_which_permission_is_missing() -> None:
    message = "User is not authorized to perform: kms:GenerateDataKey on resource: arn:aws:kms:..."
    error = classify_delivery_error(_client_error("AccessDenied", message, operation="PutObject"), "write", TARGET)
    assert error.reason == PUT_DENIED
    assert "kms:GenerateDataKey" in error.message


def _offline_client_factory(region: str = "us-east-1") -> S3ClientFactory:
    """A client_factory whose clients are never used to send anything (port 9 is discard)."""
    return S3ClientFactory("http://127.0.0.1:9", region, session=isolated_session(DUMMY_KEYS))


def test_client_factory_and_writer_refuse_bad_settings() -> None:
    with pytest.raises(BadUserInput, match="region"):
        S3ClientFactory(None, "nowhere")
    client_factory = _offline_client_factory()
    with pytest.raises(ValueError, match="part_size"):
        S3ObjectWriter(client_factory.own_client(), "bucket", part_size=5 * 1024 * 1024 - 1)


def test_result_storage_url_and_keys() -> None:
    client_factory = _offline_client_factory("eu-west-2")
    storage = S3ResultStorage.from_url("s3://uvm-results/deployments/prod", client_factory)
    assert (storage.bucket, storage.prefix, storage.region) == ("uvm-results", "deployments/prod", "eu-west-2")
    assert storage.object_key("runs/abc.csv") == "deployments/prod/runs/abc.csv"
    assert S3ResultStorage.from_url("s3://uvm-results", client_factory).object_key("a.csv") == "a.csv"
    for bad_key in ("", "/abs.csv", "../up.csv", "a//b.csv", "a/./b.csv"):
        with pytest.raises(BadUserInput, match="invalid storage key"):
            storage.object_key(bad_key)
    for bad_url in ("https://uvm-results/x", "s3:///prefix", "s3://Bad_Bucket/x", "s3://uvm-results/x?region=y"):
        with pytest.raises(BadUserInput):
            S3ResultStorage.from_url(bad_url, client_factory)


def test_presigned_urls_expire_within_seven_days() -> None:
    storage = S3ResultStorage.from_url("s3://uvm-results/r", _offline_client_factory())
    for seconds in (0, MAX_PRESIGNED_EXPIRY_SECONDS + 1):
        with pytest.raises(BadUserInput, match="604800 seconds"):
            storage.presigned_url("a.csv", "a.csv", seconds)
