"""Streaming writes to a bucket.

:class:`S3ObjectWriter` streams a file as a multipart upload, one part in memory at a time, and
completes it only when the ``with`` block ends normally; on any exception the upload is aborted
and nothing appears under the key. Writing the same key again simply replaces the object. An
upload cut short by a killed process leaves its parts behind until a lifecycle rule
(``AbortIncompleteMultipartUpload``) removes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from uvm_reporting import fault_points
from uvm_reporting.errors import StorageFailed, UvmReportingError
from uvm_reporting.storage.result_storage import WrittenObject
from uvm_reporting.storage.s3.delivery_errors import S3Target, Stage, guarded
from uvm_reporting.storage.s3.names import validate_bucket_name

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

MIB: Final = 1024 * 1024
DEFAULT_PART_SIZE: Final = 8 * MIB
MIN_PART_SIZE: Final = 5 * MIB  # S3's floor for every part but the last
MAX_PART_SIZE: Final = 5 * 1024 * MIB
MAX_PARTS: Final = 10_000

_T = TypeVar("_T")


@dataclass(eq=False)
class S3UploadStream:
    """The binary writer of :meth:`S3ObjectWriter.open_for_write`: counts, hashes, uploads parts."""

    _owner: S3ObjectWriter
    _key: str
    _content_type: str | None
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0
    _buffer: bytearray = field(default_factory=bytearray)
    _upload_id: str | None = None
    _parts: list[CompletedPartTypeDef] = field(default_factory=list)

    @property
    def buffered(self) -> int:
        """Bytes held in memory, waiting for their part to fill up: always less than one part."""
        return len(self._buffer)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        count = len(view)
        self.digest.update(view)
        self.size += count
        part_size = self._owner.part_size
        while view:
            room = part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) >= part_size:
                self._upload_part()
        return count

    def _extra(self) -> dict[str, Any]:
        return {"ContentType": self._content_type} if self._content_type else {}

    def _upload_part(self) -> None:
        owner = self._owner
        if self._upload_id is None:
            extra = self._extra()
            if owner.checksum_algorithm:
                extra["ChecksumAlgorithm"] = owner.checksum_algorithm
            response = owner.call(
                lambda: owner.client.create_multipart_upload(Bucket=owner.bucket, Key=self._key, **extra)
            )
            self._upload_id = response["UploadId"]
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageFailed(
                f"{self._key} would need more than {MAX_PARTS} parts of {owner.part_size} bytes; raise the part size."
            )
        body = bytes(self._buffer)
        self._buffer.clear()
        upload_id = self._upload_id
        part_extra: dict[str, Any] = {"ChecksumAlgorithm": owner.checksum_algorithm} if owner.checksum_algorithm else {}
        uploaded = owner.call(
            lambda: owner.client.upload_part(
                Bucket=owner.bucket, Key=self._key, Body=body, UploadId=upload_id, PartNumber=number, **part_extra
            )
        )
        part: CompletedPartTypeDef = {"ETag": uploaded["ETag"], "PartNumber": number}
        if owner.checksum_algorithm == "CRC32" and "ChecksumCRC32" in uploaded:
            part["ChecksumCRC32"] = uploaded["ChecksumCRC32"]
        self._parts.append(part)
        fault_points.reached("upload")

    def finish(self) -> None:
        owner = self._owner
        if self._upload_id is None:
            body = bytes(self._buffer)
            self._buffer.clear()
            owner.call(lambda: owner.client.put_object(Bucket=owner.bucket, Key=self._key, Body=body, **self._extra()))
            return
        if self._buffer:
            self._upload_part()
        upload_id = self._upload_id
        owner.call(
            lambda: owner.client.complete_multipart_upload(
                Bucket=owner.bucket, Key=self._key, UploadId=upload_id, MultipartUpload={"Parts": self._parts}
            )
        )
        self._upload_id = None

    def abort(self) -> None:
        """Best effort: drop the unfinished upload; a failure here is logged, never raised."""
        self._buffer.clear()
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        owner = self._owner
        try:
            owner.client.abort_multipart_upload(Bucket=owner.bucket, Key=self._key, UploadId=upload_id)
        except (ClientError, BotoCoreError, UvmReportingError):
            log.warning(
                "could not abort multipart upload %s of s3://%s/%s", upload_id, owner.bucket, self._key, exc_info=True
            )


class S3ObjectWriter:
    """Writes objects to one bucket as streamed multipart uploads (see the module docstring).

    ``delivery=True`` (a customer's bucket) turns S3 failures into DeliveryError; with
    ``delivery=False`` (our own storage) they propagate as botocore errors.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        delivery: bool = True,
        region: str | None = None,
        role_arn: str | None = None,
        prefix: str = "",
    ) -> None:
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes")
        self.client = client
        self.bucket = validate_bucket_name(bucket)
        self.part_size = part_size
        self.delivery = delivery
        calculation = getattr(client.meta.config, "request_checksum_calculation", None)
        # As boto3's own transfers do: with the default "when_supported", every part carries a CRC32.
        self.checksum_algorithm = "CRC32" if calculation in (None, "when_supported") else None
        self._target = S3Target(
            bucket=bucket, prefix=prefix, region=region or client.meta.region_name, role_arn=role_arn
        )

    def call(self, call: Callable[[], _T], stage: Stage = "write") -> _T:
        return guarded(call, stage, self._target, self.delivery)

    @contextmanager
    def open_for_write(
        self, key: str, *, content_type: str | None = None
    ) -> Iterator[tuple[S3UploadStream, WrittenObject]]:
        """Yield ``(writer, written)``; on normal exit the object appears at ``key`` whole, else never."""
        stream = S3UploadStream(self, key, content_type)
        written = WrittenObject(key=key)
        try:
            yield stream, written
            stream.finish()
        except BaseException:
            stream.abort()
            raise
        written.size_bytes = stream.size
        written.sha256 = stream.digest.hexdigest()


def put_json(
    client: S3Client, bucket: str, key: str, obj: Any, *, delivery: bool = True, role_arn: str | None = None
) -> WrittenObject:
    """Write ``obj`` as one JSON object (e.g. a delivery's manifest); return what was written."""
    body = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"
    target = S3Target(bucket=bucket, prefix=key.rpartition("/")[0], region=client.meta.region_name, role_arn=role_arn)
    guarded(
        lambda: client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json"),
        "write",
        target,
        delivery,
    )
    return WrittenObject(key=key, size_bytes=len(body), sha256=hashlib.sha256(body).hexdigest())
