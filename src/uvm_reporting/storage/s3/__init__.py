"""S3: delivery of exports to a customer's bucket through a role they let us assume, and our own
result storage when ``UVM_REPORTING_STORAGE_URL`` is ``s3://bucket/prefix``.

``names`` checks bucket, region, role ARN and key prefix; ``iam_policies`` writes the trust and
permissions policies the customer attaches to their role; ``delivery_errors`` turns botocore
failures into a :class:`DeliveryError` with a stable reason; ``client_factory`` makes clients
for our own identity and for assumed roles; ``multipart`` streams a file into a bucket and
publishes it only when whole; ``result_storage`` is our own storage on S3; ``delivery_check``
tries a customer's configuration with a canary object. This package exports their public names.
"""

from uvm_reporting.storage.s3.client_factory import ASSUME_ROLE_DURATION_SECONDS, S3ClientFactory
from uvm_reporting.storage.s3.delivery_check import DeliveryCheck, check_delivery
from uvm_reporting.storage.s3.delivery_errors import (
    ASSUME_ROLE_DENIED,
    DELETE_DENIED,
    DELIVERY_REASONS,
    DEPLOYMENT_CREDENTIALS_INVALID,
    ENDPOINT_UNREACHABLE,
    EXTERNAL_ID_MISMATCH,
    NO_SUCH_BUCKET,
    PUT_DENIED,
    ROLE_IN_OPERATOR_ACCOUNT,
    ROLE_NOT_FOUND,
    UNEXPECTED_ERROR,
    DeliveryError,
)
from uvm_reporting.storage.s3.iam_policies import role_permissions_policy, trust_policy
from uvm_reporting.storage.s3.multipart import (
    DEFAULT_PART_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIB,
    MIN_PART_SIZE,
    S3ObjectWriter,
    S3UploadStream,
    put_json,
)
from uvm_reporting.storage.s3.names import (
    CANARY_NAME_PREFIX,
    join_key,
    validate_bucket_name,
    validate_key_prefix,
    validate_region,
    validate_role_arn,
)
from uvm_reporting.storage.s3.result_storage import MAX_PRESIGNED_EXPIRY_SECONDS, S3ResultStorage, content_disposition

__all__ = [
    "ASSUME_ROLE_DENIED",
    "ASSUME_ROLE_DURATION_SECONDS",
    "CANARY_NAME_PREFIX",
    "DEFAULT_PART_SIZE",
    "DELETE_DENIED",
    "DELIVERY_REASONS",
    "DEPLOYMENT_CREDENTIALS_INVALID",
    "ENDPOINT_UNREACHABLE",
    "EXTERNAL_ID_MISMATCH",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MAX_PRESIGNED_EXPIRY_SECONDS",
    "MIB",
    "MIN_PART_SIZE",
    "NO_SUCH_BUCKET",
    "PUT_DENIED",
    "ROLE_IN_OPERATOR_ACCOUNT",
    "ROLE_NOT_FOUND",
    "UNEXPECTED_ERROR",
    "DeliveryCheck",
    "DeliveryError",
    "S3ClientFactory",
    "S3ObjectWriter",
    "S3ResultStorage",
    "S3UploadStream",
    "check_delivery",
    "content_disposition",
    "join_key",
    "put_json",
    "role_permissions_policy",
    "trust_policy",
    "validate_bucket_name",
    "validate_key_prefix",
    "validate_region",
    "validate_role_arn",
]
