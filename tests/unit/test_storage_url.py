"""Opening our result storage from UVM_REPORTING_STORAGE_URL (no server: nothing is sent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.moto_server import DUMMY_KEYS, isolated_session
from uvm_reporting.errors import BadUserInput
from uvm_reporting.storage.download_links import DownloadLinkSigner
from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.storage.result_storage import ResultStorage
from uvm_reporting.storage.s3 import S3ClientFactory, S3ResultStorage
from uvm_reporting.storage.storage_url import result_storage_from_url

LINKS = DownloadLinkSigner(b"k" * 32, "https://reports.example.com", 900)


def open_storage(url: str) -> ResultStorage:
    s3_clients = S3ClientFactory("http://127.0.0.1:9", "eu-west-2", session=isolated_session(DUMMY_KEYS))
    return result_storage_from_url(url, s3_clients=s3_clients, links=LINKS)


@pytest.mark.parametrize("prefix", ["", "file://"])
def test_a_folder_signs_our_links_and_is_served_by_our_route(tmp_path: Path, prefix: str) -> None:
    storage = open_storage(f"{prefix}{tmp_path / 'results'}")
    assert isinstance(storage, LocalFolderStorage)
    assert storage.root == (tmp_path / "results").resolve()
    assert storage.links is LINKS
    assert storage.links_without_io


def test_s3_links_are_our_signed_links_too() -> None:
    storage = open_storage("s3://uvm-results/deployments/prod")
    assert isinstance(storage, S3ResultStorage)
    assert (storage.bucket, storage.prefix, storage.region) == ("uvm-results", "deployments/prod", "eu-west-2")
    assert storage.links is LINKS
    assert storage.links_without_io  # signing our link needs no credentials
    link = storage.download_link(_Download())
    assert link.url.startswith("https://reports.example.com/downloads/r?client=client-1&")


def test_another_scheme_is_refused() -> None:
    with pytest.raises(BadUserInput) as raised:
        open_storage("gs://bucket/x")
    assert raised.value.message == ("UVM_REPORTING_STORAGE_URL 'gs://bucket/x': use a folder path, file:// or s3://.")


def test_a_folder_opened_without_a_signer_makes_no_links(tmp_path: Path) -> None:
    folder = LocalFolderStorage(tmp_path)
    assert folder.links is None
    with pytest.raises(RuntimeError, match="without a download-link signer"):
        folder.download_link(_Download())


class _Download:
    key = "results/a/r.csv"
    run_id = "r"
    file_name = "r.csv"
    content_type = "text/csv"
    issued_to = "client-1"
