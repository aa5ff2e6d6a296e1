"""Our own result storage on S3, when ``UVM_REPORTING_STORAGE_URL`` is ``s3://bucket/prefix``."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import quote, urlsplit

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from uvm_reporting.errors import BadUserInput, StorageFailed
from uvm_reporting.storage.download_links import DownloadLinkSigner, SignedLink
from uvm_reporting.storage.result_storage import Download, WrittenObject
from uvm_reporting.storage.s3.client_factory import S3ClientFactory
from uvm_reporting.storage.s3.delivery_errors import error_code
from uvm_reporting.storage.s3.multipart import DEFAULT_PART_SIZE, S3ObjectWriter, S3UploadStream
from uvm_reporting.storage.s3.names import join_key, validate_bucket_name, validate_key_prefix, validate_region

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

MAX_PRESIGNED_EXPIRY_SECONDS: Final = 7 * 24 * 3600  # the SigV4 limit: 604800 s


def storage_failure_reason(error: ClientError | BotoCoreError) -> str:
    """A failed run's reason when our own S3 storage failed it (after botocore's retries)."""
    if isinstance(error, ClientError):
        code, _, status = error_code(error)
        what = f"refused the write ({status} {code})" if code and code != str(status) else f"answered {status}"
        return (
            f"Writing the result failed: the result storage (S3) {what}. "
            "Start the run again; if it persists, tell the operator."
        )
    if isinstance(error, (ConnectTimeoutError, ReadTimeoutError)):
        how = "the connection timed out"
    elif isinstance(error, ConnectionClosedError):
        how = "the connection was closed"
    elif isinstance(error, EndpointConnectionError):
        how = "no connection could be made"
    else:
        how = "the request failed"
    return (
        f"Writing the result failed: the result storage (S3) could not be reached ({how}). "
        "Start the run again; if it persists, tell the operator."
    )


def content_disposition(download_name: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact UTF-8 name in ``filename*``."""
    if not download_name or any(ord(char) < 0x20 or ord(char) == 0x7F or char in "/\\" for char in download_name):
        raise BadUserInput(
            f"Download name {download_name!r} must be a non-empty file name without '/', '\\' or control characters."
        )
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", download_name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(download_name, safe='')}"


class S3ResultStorage:
    """Our own result storage in ``s3://bucket/prefix`` (a
    :class:`~uvm_reporting.storage.result_storage.ResultStorage`).

    Download links are our own signed links (``links``), as for a folder: a presigned GET would
    bypass us and keep working for its whole lifetime after the access it was issued under
    ended. Our ``/downloads`` route checks that access, then redirects to a presigned GET that
    lives only seconds (:meth:`presigned_url`)."""

    links_without_io = True

    def __init__(
        self,
        client_factory: S3ClientFactory,
        bucket: str,
        prefix: str = "",
        *,
        region: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        links: DownloadLinkSigner | None = None,
    ) -> None:
        self.client_factory = client_factory
        self.bucket = validate_bucket_name(bucket)
        self.prefix = validate_key_prefix(prefix)
        self.region = validate_region(region or client_factory.default_region)
        self.part_size = part_size
        self.links = links
        self._client: S3Client | None = None

    @classmethod
    def from_url(
        cls, url: str, client_factory: S3ClientFactory, *, links: DownloadLinkSigner | None = None
    ) -> S3ResultStorage:
        """``s3://bucket`` or ``s3://bucket/some/prefix``; the region is the client factory's default."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise BadUserInput(f"Storage URL {url!r} must look like s3://bucket/prefix.")
        if parts.query or parts.fragment:
            raise BadUserInput(f"Storage URL {url!r} must not have a query or a fragment.")
        return cls(client_factory, parts.netloc, parts.path.lstrip("/"), links=links)

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = self.client_factory.own_client(self.region)
        return self._client

    def object_key(self, key: str) -> str:
        """The full object key of ``key``: a relative POSIX path that cannot climb out of the prefix."""
        segments = key.split("/")
        if not key or key.startswith("/") or any(segment in ("", ".", "..") for segment in segments):
            raise BadUserInput(f"invalid storage key {key!r}")
        return join_key(self.prefix, key)

    @contextmanager
    def open_for_write(
        self, key: str, *, content_type: str | None = None
    ) -> Iterator[tuple[S3UploadStream, WrittenObject]]:
        writer = S3ObjectWriter(
            self.client, self.bucket, part_size=self.part_size, delivery=False, region=self.region, prefix=self.prefix
        )
        try:
            # An earlier attempt whose worker was killed mid-upload left its parts: a retry drops them.
            self.delete_partial(key)
            with writer.open_for_write(self.object_key(key), content_type=content_type) as (stream, written):
                written.key = key
                yield stream, written
        except (ClientError, BotoCoreError) as error:
            # botocore's own text names our endpoint: the operator log has it, the run a reason.
            log.warning("writing %s to s3://%s failed: %s", key, self.bucket, error)
            raise StorageFailed(storage_failure_reason(error)) from error

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as error:
            code, _, status = error_code(error)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def unfinished_uploads(self, initiated_before: datetime) -> list[tuple[str, str]]:
        """The multipart uploads under our prefix begun before ``initiated_before`` and never
        completed nor aborted (their process died), as (object key, upload id). Only our prefix:
        whatever else the bucket holds is not ours to touch."""
        prefix = f"{self.prefix.rstrip('/')}/" if self.prefix else ""
        found = []
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                key, upload_id, initiated = upload.get("Key"), upload.get("UploadId"), upload.get("Initiated")
                # The prefix again: an S3-compatible server that ignored it must not lead us astray.
                if key and upload_id and initiated and key.startswith(prefix) and initiated < initiated_before:
                    found.append((key, upload_id))
        return found

    def abort_upload(self, object_key: str, upload_id: str) -> bool:
        """Abort one of ``unfinished_uploads``; False when it was gone already."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id)
        except ClientError as error:
            code, _, status = error_code(error)
            if status == 404 or code in ("404", "NoSuchUpload"):
                return False
            raise
        return True

    def check_reachable(self, timeout_seconds: float) -> None:
        """Raise unless the bucket answers a HEAD within about ``timeout_seconds`` (one attempt)."""
        probe = Config(connect_timeout=timeout_seconds, read_timeout=timeout_seconds, retries={"total_max_attempts": 1})
        self.client_factory.own_client(self.region, probe).head_bucket(Bucket=self.bucket)

    def delete_partial(self, key: str) -> None:
        """Abort the unfinished multipart uploads of ``key`` (one listing: a run's key has at
        most the uploads of its attempts)."""
        object_key = self.object_key(key)
        listed = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=object_key)
        for upload in listed.get("Uploads", []):
            if upload.get("Key") == object_key and "UploadId" in upload:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload["UploadId"])

    def download_link(self, download: Download) -> SignedLink:
        """Our signed link to ``/downloads/<run id>``, which redirects to a short presigned GET."""
        if self.links is None:
            raise RuntimeError(f"the result storage s3://{self.bucket} was opened without a download-link signer")
        return self.links.sign(download.run_id, download.issued_to)

    def presigned_url(
        self,
        key: str,
        download_name: str,
        expires_in_seconds: int,
        *,
        content_type: str | None = None,
        method: Literal["GET", "HEAD"] = "GET",
    ) -> str:
        """A presigned GET (or HEAD) of ``key`` that downloads as ``download_name``.

        The URL is signed with this deployment's credentials and stops working when they do:
        with temporary credentials (an instance role) that can be sooner than the expiry asked for.
        """
        if not 1 <= expires_in_seconds <= MAX_PRESIGNED_EXPIRY_SECONDS:
            raise BadUserInput(
                f"A presigned URL expires after 1 to {MAX_PRESIGNED_EXPIRY_SECONDS} seconds (7 days); "
                f"{expires_in_seconds} was asked for."
            )
        params: dict[str, str] = {
            "Bucket": self.bucket,
            "Key": self.object_key(key),
            "ResponseContentDisposition": content_disposition(download_name),
        }
        if content_type:
            params["ResponseContentType"] = content_type
        operation = "head_object" if method == "HEAD" else "get_object"
        return self.client.generate_presigned_url(operation, Params=params, ExpiresIn=expires_in_seconds)
