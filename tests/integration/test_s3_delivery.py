"""S3 delivery and S3 result storage against a real moto server over HTTP (127.0.0.1 only).

The delivery tests run on a moto server that enforces IAM: our deployment is an IAM user that
may only call sts:AssumeRole, and every write goes through the customer's role.
"""

from __future__ import annotations

import hashlib
import json
import random
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from tests.support.moto_server import (
    ACCOUNT_ID,
    DUMMY_KEYS,
    FAST_CLIENT_CONFIG,
    OPERATOR_ACCOUNT_IDS,
    AwsKeys,
    DeliveryTarget,
    MotoIam,
    client_factory_for,
    create_bucket,
    create_deployment_user,
    isolated_session,
    make_delivery_target,
    sts_client,
    unique_name,
)
from tests.support.ports import free_port
from uvm_reporting.database.accounts import new_external_id
from uvm_reporting.errors import BadUserInput, RunErrorCode, StorageFailed, run_failure
from uvm_reporting.storage.s3 import (
    ASSUME_ROLE_DURATION_SECONDS,
    CANARY_NAME_PREFIX,
    DELETE_DENIED,
    DEPLOYMENT_CREDENTIALS_INVALID,
    ENDPOINT_UNREACHABLE,
    EXTERNAL_ID_MISMATCH,
    MAX_PRESIGNED_EXPIRY_SECONDS,
    MIB,
    NO_SUCH_BUCKET,
    PUT_DENIED,
    ROLE_IN_OPERATOR_ACCOUNT,
    UNEXPECTED_ERROR,
    DeliveryError,
    S3ClientFactory,
    S3ObjectWriter,
    S3ResultStorage,
    check_delivery,
    put_json,
    role_permissions_policy,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PART = 5 * MIB
SESSION = "uvm-reporting-test"


def payload(size: int) -> bytes:
    """Deterministic bytes that differ from part to part (so a misordered part would show)."""
    return random.Random(size).randbytes(size)


def odd_chunks(data: bytes, size: int = 777_777) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def record_calls(client: S3Client) -> list[str]:
    """The names of the S3 operations ``client`` performs from now on."""
    calls: list[str] = []
    client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    return calls


def object_missing(s3: S3Client, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        return error.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    return False


@pytest.fixture
def role_client(deployment_client_factory: S3ClientFactory, delivery_target: DeliveryTarget) -> S3Client:
    """An S3 client acting as the customer's role, obtained with the right ExternalId."""
    return deployment_client_factory.assume_role(
        delivery_target.role_arn, delivery_target.external_id, delivery_target.region, SESSION
    )


# --- streaming multipart writes through the customer's role ------------------------------------


def test_a_multipart_upload_streams_parts_and_reads_back_identical(
    role_client: S3Client, delivery_target: DeliveryTarget, moto_iam: MotoIam
) -> None:
    data = payload(12 * MIB + 12_345)
    calls = record_calls(role_client)
    writer = S3ObjectWriter(role_client, delivery_target.bucket, part_size=PART, role_arn=delivery_target.role_arn)
    key = f"{delivery_target.prefix}/findings.csv"

    with writer.open_for_write(key, content_type="text/csv") as (stream, written):
        for chunk in odd_chunks(data):
            assert stream.write(chunk) == len(chunk)
            # Memory stays bounded by one part: full parts leave as soon as they are complete.
            assert stream.buffered < PART

    assert calls == ["CreateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload"]
    assert (written.key, written.size_bytes) == (key, len(data))
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    stored = moto_iam.s3().get_object(Bucket=delivery_target.bucket, Key=key)
    assert stored["Body"].read() == data
    assert stored["ContentType"] == "text/csv"
    assert stored["ETag"].endswith('-3"')  # S3's mark of an object assembled from 3 parts


def test_a_file_smaller_than_a_part_is_one_put_object(
    role_client: S3Client, delivery_target: DeliveryTarget, moto_iam: MotoIam
) -> None:
    calls = record_calls(role_client)
    writer = S3ObjectWriter(role_client, delivery_target.bucket, part_size=PART)
    key = f"{delivery_target.prefix}/small.csv"
    with writer.open_for_write(key) as (stream, written):
        stream.write(b"id,severity\n")
        stream.write(memoryview(b"1,high\n"))
    assert calls == ["PutObject"]
    assert written.size_bytes == 19
    assert moto_iam.s3().get_object(Bucket=delivery_target.bucket, Key=key)["Body"].read() == b"id,severity\n1,high\n"


def test_an_exception_mid_upload_leaves_no_object_and_no_pending_upload(
    role_client: S3Client, delivery_target: DeliveryTarget, moto_iam: MotoIam
) -> None:
    calls = record_calls(role_client)
    writer = S3ObjectWriter(role_client, delivery_target.bucket, part_size=PART)
    key = f"{delivery_target.prefix}/broken.csv"

    def export_that_fails() -> None:
        with writer.open_for_write(key) as (stream, _):
            stream.write(payload(PART + 1000))  # one part is uploaded, 1000 bytes wait for the next
            raise RuntimeError("query failed")

    with pytest.raises(RuntimeError, match="query failed"):
        export_that_fails()

    assert calls == ["CreateMultipartUpload", "UploadPart", "AbortMultipartUpload"]
    admin = moto_iam.s3()
    assert object_missing(admin, delivery_target.bucket, key)
    assert admin.list_multipart_uploads(Bucket=delivery_target.bucket).get("Uploads", []) == []


def test_writing_the_same_key_again_replaces_the_object(
    role_client: S3Client, delivery_target: DeliveryTarget, moto_iam: MotoIam
) -> None:
    writer = S3ObjectWriter(role_client, delivery_target.bucket, part_size=PART)
    key = f"{delivery_target.prefix}/retried.csv"
    for attempt in (b"first attempt\n" * 1000, b"second\n"):
        with writer.open_for_write(key) as (stream, _):
            stream.write(attempt)
    assert moto_iam.s3().get_object(Bucket=delivery_target.bucket, Key=key)["Body"].read() == b"second\n"


def test_a_write_outside_the_granted_prefix_is_put_denied_and_leaves_nothing(
    role_client: S3Client, delivery_target: DeliveryTarget, moto_iam: MotoIam
) -> None:
    writer = S3ObjectWriter(role_client, delivery_target.bucket, part_size=PART, role_arn=delivery_target.role_arn)
    with pytest.raises(DeliveryError) as raised, writer.open_for_write("elsewhere/findings.csv") as (stream, _):
        stream.write(payload(PART + 1))
    assert (raised.value.code, raised.value.reason) == ("DELIVERY_FAILED", PUT_DENIED)
    assert "s3:PutObject" in raised.value.message
    assert isinstance(raised.value.__cause__, ClientError)
    assert object_missing(moto_iam.s3(), delivery_target.bucket, "elsewhere/findings.csv")


def test_put_json_writes_the_manifest(
    role_client: S3Client, delivery_target: DeliveryTarget, moto_iam: MotoIam
) -> None:
    manifest = {"run": "r-1", "files": [{"key": "findings.csv", "rows": 2}], "name": "Überblick"}
    key = f"{delivery_target.prefix}/manifest.json"
    written = put_json(role_client, delivery_target.bucket, key, manifest)
    stored = moto_iam.s3().get_object(Bucket=delivery_target.bucket, Key=key)
    body = stored["Body"].read()
    assert json.loads(body) == manifest
    assert stored["ContentType"] == "application/json"
    assert (written.size_bytes, written.sha256) == (len(body), hashlib.sha256(body).hexdigest())


# --- assuming the customer's role ---------------------------------------------------------------


def test_assume_role_sends_the_external_id_for_fifteen_minutes(
    moto_iam: MotoIam, deployment_keys: AwsKeys, delivery_target: DeliveryTarget
) -> None:
    session = isolated_session(deployment_keys)
    sent: list[dict[str, Any]] = []
    session.events.register("before-parameter-build.sts.AssumeRole", lambda params, **_: sent.append(dict(params)))
    client_factory = client_factory_for(moto_iam.endpoint_url, deployment_keys)
    client_factory._session = session

    client_factory.assume_role(delivery_target.role_arn, delivery_target.external_id, delivery_target.region, SESSION)

    assert sent == [
        {
            "RoleArn": delivery_target.role_arn,
            "ExternalId": delivery_target.external_id,
            "RoleSessionName": SESSION,
            "DurationSeconds": ASSUME_ROLE_DURATION_SECONDS,
        }
    ]


def test_moto_checks_the_external_id_value_but_not_its_presence(
    moto_iam: MotoIam, deployment_keys: AwsKeys, delivery_target: DeliveryTarget
) -> None:
    """What this moto enforces, asked directly: a wrong ExternalId is refused, a missing one is not."""
    sts = sts_client(moto_iam.endpoint_url, deployment_keys)
    role = delivery_target.role_arn
    assert sts.assume_role(RoleArn=role, RoleSessionName=SESSION, ExternalId=delivery_target.external_id)
    with pytest.raises(ClientError) as refused:
        sts.assume_role(RoleArn=role, RoleSessionName=SESSION, ExternalId=new_external_id())
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # AWS would refuse this one too; moto skips a condition whose key the request lacks.
    assert sts.assume_role(RoleArn=role, RoleSessionName=SESSION)["Credentials"]["AccessKeyId"]


def test_the_deployment_principal_is_our_iam_user(
    deployment_client_factory: S3ClientFactory, deployment_keys: AwsKeys
) -> None:
    assert deployment_client_factory.deployment_principal_arn() == deployment_keys.arn


def test_credentials_are_renewed_by_assuming_the_role_again(
    moto_iam: MotoIam, deployment_keys: AwsKeys, delivery_target: DeliveryTarget
) -> None:
    class EagerClientFactory(S3ClientFactory):
        refresh_advisory_seconds = ASSUME_ROLE_DURATION_SECONDS + 60  # always "about to expire"

    session = isolated_session(deployment_keys)
    assumed: list[str] = []
    session.events.register("before-call.sts.AssumeRole", lambda **_: assumed.append("AssumeRole"))
    client_factory = EagerClientFactory(
        moto_iam.endpoint_url, session=session, operator_account_ids=OPERATOR_ACCOUNT_IDS
    )
    client = client_factory.assume_role(
        delivery_target.role_arn, delivery_target.external_id, delivery_target.region, SESSION
    )
    for index in range(2):
        client.put_object(Bucket=delivery_target.bucket, Key=f"{delivery_target.prefix}/{index}.txt", Body=b"x")
    assert assumed == ["AssumeRole"] * 3


# --- check_delivery -------------------------------------------------------------------------------


def test_check_delivery_writes_and_removes_a_canary(
    deployment_client_factory: S3ClientFactory, delivery_target: DeliveryTarget, moto_iam: MotoIam
) -> None:
    check = check_delivery(deployment_client_factory, **delivery_target.check_args())
    assert (check.ok, check.code) == (True, None)
    assert check.canary_key is not None
    assert check.canary_key.startswith(f"{delivery_target.prefix}/{CANARY_NAME_PREFIX}")
    assert object_missing(moto_iam.s3(), delivery_target.bucket, check.canary_key)
    assert "works" in check.message


def test_check_delivery_with_a_wrong_external_id(
    deployment_client_factory: S3ClientFactory, delivery_target: DeliveryTarget, deployment_keys: AwsKeys
) -> None:
    check = check_delivery(deployment_client_factory, **delivery_target.check_args(external_id=new_external_id()))
    assert (check.ok, check.code, check.canary_key) == (False, EXTERNAL_ID_MISMATCH, None)
    assert "`uvm-reporting accounts show`" in check.message
    assert deployment_keys.arn in check.message
    with pytest.raises(DeliveryError) as raised:
        deployment_client_factory.assume_role(
            delivery_target.role_arn, "wrong-external-id", delivery_target.region, SESSION
        )
    assert raised.value.reason == EXTERNAL_ID_MISMATCH


def test_check_delivery_by_a_principal_the_role_does_not_trust(
    moto_iam: MotoIam, delivery_target: DeliveryTarget
) -> None:
    """Same refusal as a wrong ExternalId (AWS and moto answer alike), so the same code."""
    stranger = create_deployment_user(moto_iam.iam(), unique_name("stranger"))
    check = check_delivery(client_factory_for(moto_iam.endpoint_url, stranger), **delivery_target.check_args())
    assert (check.ok, check.code) == (False, EXTERNAL_ID_MISMATCH)
    assert f"Principal is not {stranger.arn}" in check.message


def test_check_delivery_for_a_role_that_does_not_exist(
    deployment_client_factory: S3ClientFactory, delivery_target: DeliveryTarget
) -> None:
    """moto issues credentials for any role ARN, then fails the first S3 call with HTTP 500.

    AWS would refuse the AssumeRole instead (reported as EXTERNAL_ID_MISMATCH, whose message
    names a missing role as a cause); neither says "no such role" (ROLE_NOT_FOUND).
    """
    missing_role = f"{delivery_target.role_arn}-missing"
    assert deployment_client_factory.assume_role(
        missing_role, delivery_target.external_id, delivery_target.region, SESSION
    )
    check = check_delivery(deployment_client_factory, **delivery_target.check_args(role_arn=missing_role))
    assert (check.ok, check.code, check.canary_key) == (False, UNEXPECTED_ERROR, None)
    assert "S3 answered 500" in check.message


def test_check_delivery_when_the_role_may_not_write_to_the_bucket(
    deployment_client_factory: S3ClientFactory, moto_iam: MotoIam, deployment_keys: AwsKeys
) -> None:
    target = make_delivery_target(
        moto_iam, deployment_keys, permissions=lambda _, prefix: role_permissions_policy("some-other-bucket", prefix)
    )
    check = check_delivery(deployment_client_factory, **target.check_args())
    assert (check.ok, check.code, check.canary_key) == (False, PUT_DENIED, None)
    assert f"arn:aws:s3:::{target.bucket}/{target.prefix}/*" in check.message


def test_check_delivery_when_the_bucket_does_not_exist(
    deployment_client_factory: S3ClientFactory, moto_iam: MotoIam, deployment_keys: AwsKeys
) -> None:
    target = make_delivery_target(moto_iam, deployment_keys, create=False)
    check = check_delivery(deployment_client_factory, **target.check_args())
    assert (check.ok, check.code, check.canary_key) == (False, NO_SUCH_BUCKET, None)
    assert repr(target.bucket) in check.message


def test_check_delivery_when_the_canary_cannot_be_deleted(
    deployment_client_factory: S3ClientFactory, moto_iam: MotoIam, deployment_keys: AwsKeys
) -> None:
    def write_only(bucket: str, prefix: str) -> dict[str, Any]:
        policy = role_permissions_policy(bucket, prefix)
        return {
            **policy,
            "Statement": [statement for statement in policy["Statement"] if statement["Action"] != "s3:DeleteObject"],
        }

    target = make_delivery_target(moto_iam, deployment_keys, permissions=write_only)
    check = check_delivery(deployment_client_factory, **target.check_args())
    assert (check.ok, check.code) == (True, DELETE_DENIED)
    assert check.canary_key is not None
    assert "stays in the bucket" in check.message
    assert not object_missing(moto_iam.s3(), target.bucket, check.canary_key)


def test_check_delivery_when_the_endpoint_is_unreachable(
    deployment_keys: AwsKeys, delivery_target: DeliveryTarget
) -> None:
    port = free_port()
    nowhere = client_factory_for(f"http://127.0.0.1:{port}", deployment_keys)
    check = check_delivery(nowhere, **delivery_target.check_args())
    assert (check.ok, check.code) == (False, ENDPOINT_UNREACHABLE)
    # The operator's endpoint is not the customer's business, nor is botocore's wording.
    assert "127.0.0.1" not in check.message
    assert str(port) not in check.message
    assert "endpoint URL" not in check.message
    assert "Could not connect" not in check.message
    assert delivery_target.region in check.message  # what the customer can check


def test_a_role_of_the_operators_own_account_is_never_assumed(
    moto_iam: MotoIam, deployment_keys: AwsKeys, delivery_target: DeliveryTarget
) -> None:
    """moto keeps the customer's role in the deployment's own account: asked of STS, that account
    is the operator's, so the role is refused before any AssumeRole, though it trusts us."""
    session = isolated_session(deployment_keys)
    assumed: list[str] = []
    session.events.register("before-call.sts.AssumeRole", lambda **_: assumed.append("AssumeRole"))
    asking_sts = S3ClientFactory(moto_iam.endpoint_url, session=session)
    check = check_delivery(asking_sts, **delivery_target.check_args())
    assert (check.ok, check.code) == (False, ROLE_IN_OPERATOR_ACCOUNT)
    assert f"own AWS account ({ACCOUNT_ID})" in check.message
    assert delivery_target.role_arn in check.message
    with pytest.raises(DeliveryError) as raised:
        asking_sts.assume_role(delivery_target.role_arn, delivery_target.external_id, delivery_target.region, SESSION)
    assert raised.value.reason == ROLE_IN_OPERATOR_ACCOUNT
    assert assumed == []
    configured = client_factory_for(
        moto_iam.endpoint_url, deployment_keys, operator_account_ids=frozenset({ACCOUNT_ID})
    )
    assert check_delivery(configured, **delivery_target.check_args()).code == ROLE_IN_OPERATOR_ACCOUNT


def test_a_delivery_fails_closed_when_our_own_account_cannot_be_learned(delivery_target: DeliveryTarget) -> None:
    nowhere = S3ClientFactory(
        f"http://127.0.0.1:{free_port()}", session=isolated_session(DUMMY_KEYS), client_config=FAST_CLIENT_CONFIG
    )
    with pytest.raises(DeliveryError) as raised:
        nowhere.assume_role(delivery_target.role_arn, delivery_target.external_id, delivery_target.region, SESSION)
    assert raised.value.reason == ENDPOINT_UNREACHABLE
    assert "127.0.0.1" not in raised.value.message
    assert nowhere.operator_account_role_problem(delivery_target.role_arn) is None  # a save is not held up


def test_check_delivery_with_unknown_deployment_credentials(moto_iam: MotoIam, delivery_target: DeliveryTarget) -> None:
    unknown = AwsKeys("AKIAUNKNOWNKEY000000", "not-a-secret", "arn:aws:iam::123456789012:user/nobody")
    check = check_delivery(client_factory_for(moto_iam.endpoint_url, unknown), **delivery_target.check_args())
    assert (check.ok, check.code) == (False, DEPLOYMENT_CREDENTIALS_INVALID)


def test_check_delivery_refuses_invalid_input_before_calling_aws(
    deployment_client_factory: S3ClientFactory, delivery_target: DeliveryTarget
) -> None:
    for overrides in (
        {"bucket": "Bad_Bucket"},
        {"prefix": "/abs"},
        {"region": "mars-1"},
        {"role_arn": "arn:aws:iam::123456789012:user/x"},
        {"external_id": ""},
    ):
        with pytest.raises(BadUserInput):
            check_delivery(deployment_client_factory, **delivery_target.check_args(**overrides))


# --- our own result storage on S3 (moto without IAM enforcement) -------------------------------


@pytest.fixture
def result_storage(moto_endpoint: str, moto_s3: S3Client) -> S3ResultStorage:
    bucket = create_bucket(moto_s3, unique_name("uvm-results"))
    return S3ResultStorage.from_url(f"s3://{bucket}/deployment-a", client_factory_for(moto_endpoint, DUMMY_KEYS))


def test_result_storage_writes_under_its_prefix(result_storage: S3ResultStorage, moto_s3: S3Client) -> None:
    with result_storage.open_for_write("runs/r-1.csv", content_type="text/csv") as (stream, written):
        stream.write(b"id\n1\n")
    assert (written.key, written.size_bytes) == ("runs/r-1.csv", 5)
    assert result_storage.exists("runs/r-1.csv")
    assert not result_storage.exists("runs/r-2.csv")
    stored = moto_s3.get_object(Bucket=result_storage.bucket, Key="deployment-a/runs/r-1.csv")
    assert stored["Body"].read() == b"id\n1\n"


def test_result_storage_presigned_url_downloads_with_the_file_name(result_storage: S3ResultStorage) -> None:
    data = payload(PART + 3)  # a multipart object
    with result_storage.open_for_write("runs/r-3.csv") as (stream, _):
        for chunk in odd_chunks(data):
            stream.write(chunk)

    url = result_storage.presigned_url("runs/r-3.csv", "Findings été.csv", 600, content_type="text/csv")

    assert url.startswith(f"{result_storage.client_factory.endpoint_url}/{result_storage.bucket}/deployment-a/runs/")
    assert "X-Amz-Expires=600" in url
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        assert response.read() == data
        assert response.headers["Content-Type"] == "text/csv"
        assert response.headers["Content-Disposition"] == (
            "attachment; filename=\"Findings _t_.csv\"; filename*=UTF-8''Findings%20%C3%A9t%C3%A9.csv"
        )


def test_result_storage_presigned_url_expiry_is_capped_at_seven_days(result_storage: S3ResultStorage) -> None:
    assert "X-Amz-Expires=604800" in result_storage.presigned_url("a.csv", "a.csv", MAX_PRESIGNED_EXPIRY_SECONDS)
    with pytest.raises(BadUserInput, match="7 days"):
        result_storage.presigned_url("a.csv", "a.csv", MAX_PRESIGNED_EXPIRY_SECONDS + 1)


def test_result_storage_failures_fail_the_run_as_storage_failed_without_naming_the_endpoint(
    moto_endpoint: str,
) -> None:
    storage = S3ResultStorage.from_url(f"s3://{unique_name('absent')}/x", client_factory_for(moto_endpoint, DUMMY_KEYS))
    with pytest.raises(StorageFailed) as raised, storage.open_for_write("a.csv") as (stream, _):
        stream.write(b"a")
    assert isinstance(raised.value.__cause__, ClientError)
    assert raised.value.__cause__.response["Error"]["Code"] == "NoSuchBucket"
    assert raised.value.message == (
        "Writing the result failed: the result storage (S3) refused the write (404 NoSuchBucket). "
        "Start the run again; if it persists, tell the operator."
    )
    assert run_failure(raised.value).code is RunErrorCode.STORAGE_FAILED
