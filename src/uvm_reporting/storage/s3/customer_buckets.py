"""Customers' buckets, reached through the role each customer lets us assume: what the use
cases ask of them (application/ports.py, ``CustomerBuckets``)."""

from __future__ import annotations

from uvm_reporting.storage.s3.client_factory import S3ClientFactory
from uvm_reporting.storage.s3.delivery_check import DeliveryCheck, check_delivery


class S3CustomerBuckets:
    def __init__(self, clients: S3ClientFactory) -> None:
        self.clients = clients

    def check_delivery(
        self, *, bucket: str, prefix: str, region: str, role_arn: str, external_id: str
    ) -> DeliveryCheck:
        return check_delivery(
            self.clients, bucket=bucket, prefix=prefix, region=region, role_arn=role_arn, external_id=external_id
        )
