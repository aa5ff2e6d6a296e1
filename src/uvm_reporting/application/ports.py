"""What the use cases need from the processes and adapters around them, as protocols.

The worker's RunQueueSignal answers ``RunQueueWakeup`` (the use cases never import the
worker); any result storage answers ``DownloadLinks``; S3 answers ``CustomerBuckets``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from uvm_reporting.storage.download_links import SignedLink
from uvm_reporting.storage.result_storage import Download, ObjectWriter, WrittenObject


class RunQueueWakeup(Protocol):
    def notify(self) -> None:
        """A run was queued: wake an idle worker of this process, if there is one."""


class DownloadLinks(Protocol):
    @property
    def links_without_io(self) -> bool:
        """Whether a link is made without I/O: only then can a poll be answered from memory."""
        ...

    def download_link(self, download: Download) -> SignedLink: ...


class DeliveryCheckOutcome(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def code(self) -> str | None:
        """None when all went well, else a stable reason (storage/delivery reasons)."""
        ...

    @property
    def message(self) -> str: ...


class CustomerBucket(Protocol):
    """One customer's bucket, reached through their role."""

    def open_for_write(
        self, key: str, *, content_type: str
    ) -> AbstractContextManager[tuple[ObjectWriter, WrittenObject]]:
        """Stream a file to ``key``, published only when whole."""
        ...

    def put_json(self, key: str, document: dict[str, Any]) -> None: ...


class CustomerBuckets(Protocol):
    def open_bucket(
        self, *, bucket: str, region: str, role_arn: str, external_id: str, session_name: str
    ) -> CustomerBucket:
        """Assume the customer's role for writing into their bucket."""
        ...

    def check_delivery(
        self, *, bucket: str, prefix: str, region: str, role_arn: str, external_id: str
    ) -> DeliveryCheckOutcome:
        """Write and delete a canary object through the customer's role."""
        ...

    def operator_account_role_problem(self, role_arn: str) -> str | None:
        """Why no delivery may assume ``role_arn``, a role of this deployment's own AWS account;
        None otherwise, or when that account cannot be learned now (each delivery checks again)."""
        ...
