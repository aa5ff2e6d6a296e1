"""Customers' buckets, reached through the role each customer lets us assume: what the use
cases ask of them (application/ports.py, ``CustomerBuckets``)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from uvm_reporting.storage.result_storage import WrittenObject
from uvm_reporting.storage.s3.client_factory import S3ClientFactory
from uvm_reporting.storage.s3.delivery_check import DeliveryCheck, check_delivery
from uvm_reporting.storage.s3.multipart import S3ObjectWriter, S3UploadStream, put_json


class S3CustomerBucket:
    """A customer's bucket through an assumed role: failures are DeliveryErrors with a reason."""

    def __init__(self, writer: S3ObjectWriter, role_arn: str) -> None:
        self._writer = writer
        self._role_arn = role_arn

    def open_for_write(
        self, key: str, *, content_type: str
    ) -> AbstractContextManager[tuple[S3UploadStream, WrittenObject]]:
        return self._writer.open_for_write(key, content_type=content_type)

    def put_json(self, key: str, document: dict[str, Any]) -> None:
        put_json(self._writer.client, self._writer.bucket, key, document, role_arn=self._role_arn)


class S3CustomerBuckets:
    def __init__(self, clients: S3ClientFactory) -> None:
        self.clients = clients

    def open_bucket(
        self, *, bucket: str, region: str, role_arn: str, external_id: str, session_name: str
    ) -> S3CustomerBucket:
        client = self.clients.assume_role(role_arn, external_id, region, session_name=session_name)
        return S3CustomerBucket(S3ObjectWriter(client, bucket, region=region, role_arn=role_arn), role_arn)

    def check_delivery(
        self, *, bucket: str, prefix: str, region: str, role_arn: str, external_id: str
    ) -> DeliveryCheck:
        return check_delivery(
            self.clients, bucket=bucket, prefix=prefix, region=region, role_arn=role_arn, external_id=external_id
        )

    def operator_account_role_problem(self, role_arn: str) -> str | None:
        return self.clients.operator_account_role_problem(role_arn)
