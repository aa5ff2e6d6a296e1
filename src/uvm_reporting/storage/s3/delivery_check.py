"""The delivery check: assume the customer's role, write a canary object, delete it again."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from uvm_reporting.storage.s3.client_factory import S3ClientFactory
from uvm_reporting.storage.s3.delivery_errors import (
    DELETE_DENIED,
    DeliveryError,
    S3Target,
    delete_denied_message,
    guarded,
)
from uvm_reporting.storage.s3.names import (
    CANARY_NAME_PREFIX,
    join_key,
    validate_bucket_name,
    validate_external_id,
    validate_key_prefix,
    validate_region,
    validate_role_arn,
)


@dataclass(frozen=True, slots=True)
class DeliveryCheck:
    """The outcome of :func:`check_delivery`.

    ``ok`` says whether deliveries will work. ``code`` is ``None`` when all went well, else one
    of ``DELIVERY_REASONS``; ``DELETE_DENIED`` comes with ``ok=True`` (delivery works, the canary
    stays). ``canary_key`` is the key of the test object when it was written.
    """

    ok: bool
    code: str | None
    message: str
    canary_key: str | None


def check_delivery(
    client_factory: S3ClientFactory, *, bucket: str, prefix: str, region: str, role_arn: str, external_id: str
) -> DeliveryCheck:
    """Assume the role, write a small canary object under ``prefix`` and delete it again.

    Invalid input raises BadUserInput; every failure AWS reports becomes a DeliveryCheck.

    Limits of the diagnosis:

    * AWS answers a refused sts:AssumeRole with the same AccessDenied whether the ExternalId in
      the trust policy differs, the trust policy names another principal, or no role exists at
      the ARN (it reveals nothing to a third party). We report that as ``EXTERNAL_ID_MISMATCH``,
      the most frequent cause, and the message names the other two. Only a message saying
      "explicit deny" or "no identity-based policy allows" is told apart (``ASSUME_ROLE_DENIED``).
    * ``ROLE_NOT_FOUND`` is reported only when the service says ``NoSuchEntity``; AWS never does
      for AssumeRole. moto issues credentials for a role that does not exist and then fails the
      first S3 call with an internal error, which is reported as ``UNEXPECTED_ERROR``.
    * moto also accepts an AssumeRole without ExternalId where AWS refuses it; we always send one.
    """
    validate_bucket_name(bucket)
    validate_key_prefix(prefix)
    validate_region(region)
    validate_role_arn(role_arn)
    validate_external_id(external_id)
    target = S3Target(bucket=bucket, prefix=prefix, region=region, role_arn=role_arn)
    try:
        client = client_factory.assume_role(role_arn, external_id, region, "uvm-reporting-delivery-check")
    except DeliveryError as error:
        return DeliveryCheck(ok=False, code=error.reason, message=error.message, canary_key=None)
    canary_key = join_key(prefix, f"{CANARY_NAME_PREFIX}{secrets.token_hex(8)}")
    body = b"uvm-reporting delivery check: this object is deleted right after it is written.\n"
    try:
        guarded(
            lambda: client.put_object(Bucket=bucket, Key=canary_key, Body=body, ContentType="text/plain"),
            "write",
            target,
            translate=True,
        )
    except DeliveryError as error:
        return DeliveryCheck(ok=False, code=error.reason, message=error.message, canary_key=None)
    try:
        guarded(lambda: client.delete_object(Bucket=bucket, Key=canary_key), "delete", target, translate=True)
    except DeliveryError as error:
        message = error.message if error.reason == DELETE_DENIED else delete_denied_message(target, error.message)
        return DeliveryCheck(ok=True, code=DELETE_DENIED, message=message, canary_key=canary_key)
    return DeliveryCheck(
        ok=True,
        code=None,
        message=f"Delivery to {target.location} works: the role {role_arn} "
        f"wrote and deleted the test object {canary_key}.",
        canary_key=canary_key,
    )
