"""Failures talking to a customer's bucket become :class:`DeliveryError` with a stable
``reason`` (one of :data:`DELIVERY_REASONS`) and a message a person can act on.

The message goes to the customer (a run's ``errorMessage``, ``testReportDelivery``): it is made
of what they configured (bucket, path, region, role) and the service's own answer, never of
botocore's text, which names the operator's endpoint URL (``Could not connect to the endpoint
URL: "https://..."``). Any URL or IP address left in a service's answer is masked as well. The
operator log keeps the original error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from uvm_reporting.errors import RunErrorCode, UvmReportingError
from uvm_reporting.storage.s3.names import canaries_arn, objects_arn, partition_of

log = logging.getLogger(__name__)

# Stable reasons carried by DeliveryError.reason and DeliveryCheck.code.
ROLE_NOT_FOUND: Final = "ROLE_NOT_FOUND"
EXTERNAL_ID_MISMATCH: Final = "EXTERNAL_ID_MISMATCH"
ASSUME_ROLE_DENIED: Final = "ASSUME_ROLE_DENIED"
DEPLOYMENT_CREDENTIALS_INVALID: Final = "DEPLOYMENT_CREDENTIALS_INVALID"
PUT_DENIED: Final = "PUT_DENIED"
NO_SUCH_BUCKET: Final = "NO_SUCH_BUCKET"
ENDPOINT_UNREACHABLE: Final = "ENDPOINT_UNREACHABLE"
DELETE_DENIED: Final = "DELETE_DENIED"
ROLE_IN_OPERATOR_ACCOUNT: Final = "ROLE_IN_OPERATOR_ACCOUNT"
UNEXPECTED_ERROR: Final = "UNEXPECTED_ERROR"
DELIVERY_REASONS: Final = (
    ROLE_NOT_FOUND,
    EXTERNAL_ID_MISMATCH,
    ASSUME_ROLE_DENIED,
    DEPLOYMENT_CREDENTIALS_INVALID,
    PUT_DENIED,
    NO_SUCH_BUCKET,
    ENDPOINT_UNREACHABLE,
    DELETE_DENIED,
    ROLE_IN_OPERATOR_ACCOUNT,
    UNEXPECTED_ERROR,
)

_T = TypeVar("_T")
Stage = Literal["assume", "write", "delete"]
"""What a delivery was doing when it failed."""


class DeliveryError(UvmReportingError):
    """Delivering to the customer's bucket failed; ``reason`` says why (see ``DELIVERY_REASONS``)."""

    code = "DELIVERY_FAILED"
    run_error_code = RunErrorCode.DELIVERY_FAILED

    def __init__(self, reason: str, message: str, **details: Any) -> None:
        super().__init__(message, reason=reason, **details)
        self.reason = reason

    @property
    def run_failure_message(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass(frozen=True, slots=True)
class S3Target:
    """What a delivery talks to, for error messages."""

    bucket: str | None
    prefix: str
    region: str
    role_arn: str | None = None
    principal_arn: str | None = None

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.bucket else f"the role {self.role_arn}"

    @property
    def partition(self) -> str:
        return self.role_arn.split(":")[1] if self.role_arn else partition_of(self.region)


_CREDENTIAL_ERRORS = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "UnrecognizedClientException",
    }
)
_NETWORK_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)
_TIMEOUTS = (ConnectTimeoutError, ReadTimeoutError)
_MISSING_CREDENTIALS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)
# What could name the operator's endpoint in a service's answer: URLs, and IPv4 addresses (with a port).
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_IP_ADDRESS = re.compile(r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?::[0-9]+)?\b")
MASKED_ENDPOINT: Final = "<endpoint>"


def without_endpoints(text: str) -> str:
    """``text`` with every URL and IP address masked: a service's answer may name the endpoint."""
    return _IP_ADDRESS.sub(MASKED_ENDPOINT, _URL.sub(MASKED_ENDPOINT, text))


def error_code(error: ClientError) -> tuple[str, str, int]:
    details = error.response.get("Error", {})
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(details.get("Code", "")), str(details.get("Message", "")), int(status)


# What AWS answers when it is busy or briefly unwell (botocore's standard retry mode retries
# these as well, inside one request): worth a later attempt of the whole run.
THROTTLING_CODES: Final = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "BandwidthLimitExceeded",
        "PriorRequestNotComplete",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "IDPCommunicationError",
    }
)


def is_transient_aws_error(error: BaseException) -> bool:
    """Whether a botocore failure may go away by itself: throttling, a 5xx answer, or no
    connection to S3 or STS. Refusals (access denied, no such bucket, a bad role) are not."""
    if isinstance(error, ClientError):
        code, _, status = error_code(error)
        return code in THROTTLING_CODES or status >= 500 or status == 429
    return isinstance(error, _NETWORK_ERRORS)


def classify_delivery_error(error: BaseException, stage: Stage, target: S3Target) -> DeliveryError:
    """Turn a botocore failure at ``stage`` into a DeliveryError with a reason and an actionable
    message; ``transient`` when it may go away by itself (``is_transient_aws_error``)."""
    if isinstance(error, DeliveryError):
        return error
    classified = _classify(error, stage, target)
    classified.transient = is_transient_aws_error(error)
    return classified


def _classify(error: BaseException, stage: Stage, target: S3Target) -> DeliveryError:
    if not isinstance(error, ClientError):
        return _classify_transport(error, stage, target)
    code, message, status = error_code(error)
    message = without_endpoints(message)
    if code == "NoSuchEntity":
        return DeliveryError(
            ROLE_NOT_FOUND,
            f"The role {target.role_arn} does not exist. Check the role ARN "
            "configured for this delivery against the role in your AWS account.",
        )
    if stage == "assume":
        return _classify_assume_role(code, message, target)
    return _classify_s3(code, message, status, stage, target)


def _classify_transport(error: BaseException, stage: Stage, target: S3Target) -> DeliveryError:
    """A failure before any answer from AWS: the network, or our own credentials. botocore's
    text of these names the endpoint's URL, so it goes to the operator log only."""
    log.warning("delivery to %s failed while %s: %s", target.location, stage, error)
    if isinstance(error, _NETWORK_ERRORS):
        service, doing = (
            ("AWS STS", f"assuming the role {target.role_arn}")
            if stage == "assume"
            else ("S3", f"writing to {target.location}")
        )
        if isinstance(error, _TIMEOUTS):
            how = "the connection timed out"
        elif isinstance(error, ConnectionClosedError):
            how = "the connection was closed"
        else:
            how = "no connection could be made"
        return DeliveryError(
            ENDPOINT_UNREACHABLE,
            f"Could not reach {service} while {doing} ({how}). Check that the region configured for this "
            f"delivery ({target.region}) is the bucket's region, then try again; if it persists, the operator "
            "must check this deployment's network access to AWS.",
        )
    if isinstance(error, _MISSING_CREDENTIALS):
        missing = "could not be retrieved" if isinstance(error, CredentialRetrievalError) else "were not found"
        return _own_credentials_error(f"they {missing}")
    return DeliveryError(
        UNEXPECTED_ERROR,
        f"Delivery to {target.location} failed unexpectedly. Try again; if it persists, tell the operator "
        "(their log has the details).",
    )


def _classify_s3(code: str, message: str, status: int, stage: Stage, target: S3Target) -> DeliveryError:
    if code == "NoSuchBucket":
        return DeliveryError(
            NO_SUCH_BUCKET,
            f"The bucket {target.bucket!r} does not exist (in region "
            f"{target.region}). Check the bucket name configured for this delivery.",
        )
    if code in ("AccessDenied", "AllAccessDisabled"):
        if stage == "delete":
            return DeliveryError(DELETE_DENIED, delete_denied_message(target, message))
        return _put_denied(message, target)
    if code in _CREDENTIAL_ERRORS:
        return DeliveryError(
            UNEXPECTED_ERROR,
            f"S3 refused the temporary credentials of {target.role_arn} "
            f"({code}: {message}) while writing to {target.location}. Try again; if it "
            "persists, check the role's maximum session duration and any SCP on it.",
        )
    if status >= 500 or code in THROTTLING_CODES:
        answer = f"{status} {code}" if code and code != str(status) else str(status)
        return DeliveryError(
            UNEXPECTED_ERROR,
            f"S3 answered {answer} while writing to {target.location}: "
            f"{message or 'no details'}. This is usually temporary: try again.",
        )
    return DeliveryError(
        UNEXPECTED_ERROR, f"Delivery to {target.location} failed with {code} ({status}): {message or 'no details'}."
    )


def role_in_operator_account(role_arn: str, problem: str) -> DeliveryError:
    """The refusal of a role of this deployment's own AWS account (domain/s3_names.py says why)."""
    return DeliveryError(ROLE_IN_OPERATOR_ACCOUNT, f"The role {role_arn} {problem}.")


def _own_credentials_error(detail: str) -> DeliveryError:
    return DeliveryError(
        DEPLOYMENT_CREDENTIALS_INVALID,
        f"This deployment's own AWS credentials are missing or "
        f"were refused ({detail}). The operator must configure them (environment, profile or "
        "instance role); they are needed to assume customer roles.",
    )


def _classify_assume_role(code: str, message: str, target: S3Target) -> DeliveryError:
    principal = target.principal_arn or "this deployment's AWS principal"
    if code in _CREDENTIAL_ERRORS:
        return _own_credentials_error(f"{code}: {message}")
    if code == "RegionDisabledException":
        return DeliveryError(
            ASSUME_ROLE_DENIED,
            f"AWS STS is not activated in the region used to assume "
            f"{target.role_arn}: {message}. The operator must activate it or use another "
            "region.",
        )
    if code != "AccessDenied":
        return DeliveryError(UNEXPECTED_ERROR, f"Assuming {target.role_arn} failed with {code}: {message}.")
    lowered = message.lower()
    if "explicit deny" in lowered:
        return DeliveryError(
            ASSUME_ROLE_DENIED,
            f"An explicit Deny stops {principal} from assuming "
            f"{target.role_arn} ({message}). Remove the Deny from the role's trust policy (or "
            "the SCP or permissions boundary that holds it).",
        )
    if "no identity-based policy allows" in lowered:
        return DeliveryError(
            ASSUME_ROLE_DENIED,
            f"{principal} itself may not call sts:AssumeRole ({message}). "
            "The operator must allow sts:AssumeRole on customer roles in this deployment's "
            "own IAM policy.",
        )
    return DeliveryError(
        EXTERNAL_ID_MISMATCH,
        f"The role {target.role_arn} refused to be assumed by {principal} with this account's ExternalId. "
        "Most often the sts:ExternalId in the role's trust policy differs from this account's ExternalId: "
        "copy it exactly as shown by `uvm-reporting accounts show`. AWS gives the same answer when no role "
        f"exists at this ARN or when the trust policy's Principal is not {principal}, so check those too.",
    )


def _put_denied(message: str, target: S3Target) -> DeliveryError:
    resource = objects_arn(target.partition, target.bucket or "", target.prefix)
    if "kms" in message.lower():
        return DeliveryError(
            PUT_DENIED,
            f"The role {target.role_arn} may not use the bucket's KMS key to "
            f"write to {target.location} ({message}). Grant it kms:GenerateDataKey on the "
            "bucket's default encryption key.",
        )
    return DeliveryError(
        PUT_DENIED,
        f"The role {target.role_arn} may not write to {target.location} "
        f"({message or 'Access Denied'}). Its permissions policy needs s3:PutObject and "
        f"s3:AbortMultipartUpload on {resource}, and no bucket policy may deny it.",
    )


def delete_denied_message(target: S3Target, detail: str) -> str:
    return (
        f"The test object was written to {target.location} but could not be deleted ({detail}). "
        "Delivery will work, but the test object stays in the bucket; grant the role s3:DeleteObject on "
        f"{canaries_arn(target.partition, target.bucket or '', target.prefix)} to let checks clean up after "
        "themselves."
    )


def guarded(call: Callable[[], _T], stage: Stage, target: S3Target, translate: bool) -> _T:
    """Run one S3 call; with ``translate`` turn its botocore failure into a DeliveryError."""
    try:
        return call()
    except (ClientError, BotoCoreError) as error:
        if translate:
            raise classify_delivery_error(error, stage, target) from error
        raise
