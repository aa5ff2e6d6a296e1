"""Our result storage, opened from ``UVM_REPORTING_STORAGE_URL``: a folder path, ``file://``,
or ``s3://bucket/prefix``."""

from __future__ import annotations

from pathlib import Path

from uvm_reporting.errors import BadUserInput
from uvm_reporting.storage.download_links import DownloadLinkSigner
from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.storage.result_storage import ResultStorage
from uvm_reporting.storage.s3 import S3ClientFactory, S3ResultStorage


def result_storage_from_url(
    storage_url: str, *, s3_clients: S3ClientFactory, links: DownloadLinkSigner | None
) -> ResultStorage:
    """Links to the files of either kind are signed with ``links`` (None: a storage that makes no
    links, for a process that only writes or deletes)."""
    if storage_url.startswith("s3://"):
        return S3ResultStorage.from_url(storage_url, s3_clients, links=links)
    if storage_url.startswith("file://"):
        return LocalFolderStorage(Path(storage_url.removeprefix("file://")), links)
    if "://" in storage_url:
        raise BadUserInput(f"UVM_REPORTING_STORAGE_URL {storage_url!r}: use a folder path, file:// or s3://.")
    return LocalFolderStorage(Path(storage_url), links)
