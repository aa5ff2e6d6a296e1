"""What our result storage does, wherever it keeps the files: a local folder
(storage/local_folder.py) or an S3 bucket (storage/s3/result_storage.py).

A run's file is written under its key and published atomically: nothing is visible under the
key until the write completes, and a write that raises leaves nothing behind. Writing a key
again replaces its file whole. A stored file is fetched through a download link that the
storage itself makes: our own signed link for a local folder, a presigned GET for S3.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from uvm_reporting.storage.download_links import DownloadLinkSigner, SignedLink


class ObjectWriter(Protocol):
    """The binary stream :meth:`ResultStorage.open_for_write` yields."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...


@dataclass
class WrittenObject:
    """What a finished write produced: filled in when the ``open_for_write`` block ends."""

    key: str
    size_bytes: int = 0
    sha256: str = ""


class Download(Protocol):
    """A stored file someone may fetch: what a download link leads to and how it is saved.

    A storage reads only what its links need (a local folder only ``run_id``), so the
    other attributes may be computed on first use."""

    @property
    def key(self) -> str: ...

    @property
    def run_id(self) -> str: ...

    @property
    def file_name(self) -> str: ...

    @property
    def content_type(self) -> str: ...

    @property
    def issued_to(self) -> str:
        """The API client the link is issued to: it works only while that client's access lasts."""
        ...


class ResultStorage(Protocol):
    """Where the results of download runs are kept."""

    @property
    def links_without_io(self) -> bool:
        """Whether :meth:`download_link` answers without any I/O (no credentials to fetch)."""
        ...

    @property
    def links(self) -> DownloadLinkSigner | None:
        """Signs the links to our ``/downloads`` route; ``None`` for a storage opened only to write."""
        ...

    def open_for_write(self, key: str) -> AbstractContextManager[tuple[ObjectWriter, WrittenObject]]:
        """Yield ``(writer, written)``; on normal exit the file appears at ``key`` whole, else never."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the file of ``key``; a key without a file is no error."""
        ...

    def delete_partial(self, key: str) -> None:
        """Remove what unfinished writes of ``key`` left (a writer killed mid-write); the
        published file, if any, stays."""
        ...

    def download_link(self, download: Download) -> SignedLink:
        """Our expiring signed link to ``/downloads/<run id>``, issued to ``download.issued_to``."""
        ...
