"""The contract of our result storage (storage/result_storage.py), held by both implementations:
a local folder, and S3 through a moto server over HTTP.

A download link is fetched the way a client fetches it, through our ``/downloads`` route (which
finds the file by its run, so the run is a real one in a SQLite store, and checks the access of
the API client the link was issued to): the folder's file comes from the route, S3's from the
short-lived presigned GET the route redirects to.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient

from uvm_reporting.api.bearer_auth import ActiveClients
from uvm_reporting.api.download_routes import download_routes
from uvm_reporting.application.audit import AuditLog
from uvm_reporting.application.report_runs import ReportRuns, RunDownload
from uvm_reporting.application.reports import Reports
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.engine import open_database
from uvm_reporting.database.reports import Report, create_report
from uvm_reporting.database.runs import claim_next_run, complete_run, enqueue_run, get_run
from uvm_reporting.domain.runs import Delivery, RunResult
from uvm_reporting.errors import BadUserInput
from uvm_reporting.storage.download_links import DownloadLinkSigner
from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.storage.result_storage import Download, ResultStorage, WrittenObject
from uvm_reporting.storage.s3 import MIB, S3ClientFactory, S3ResultStorage
from uvm_reporting.storage.s3.customer_buckets import S3CustomerBuckets

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PART_SIZE = 5 * MIB
LARGE = 2 * PART_SIZE + 123  # several parts on S3: a multipart upload
UNFINISHED = "unfinished upload of "
REPORT = {"name": "Contract check", "entity": "findings", "columns": ["id"], "viewers": "public", "editors": "public"}


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class StorageBackend:
    storage: ResultStorage
    download_of: Callable[[str], Download]
    """A download of the file stored at a key, as the wiring would ask for its link."""
    fetch: Callable[[str], Fetched]
    """GET a download link."""
    leftovers: Callable[[], list[str]]
    """Everything the storage holds: files and partial files, or objects and unfinished uploads."""


@dataclass(frozen=True)
class RunStore:
    """A SQLite store with one report and one API client, for the runs whose files links lead to."""

    engine: Engine
    report: Report
    client_id: str


class _NoWakeup:
    def notify(self) -> None:
        pass


@pytest.fixture(scope="module")
def run_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunStore]:
    engine = open_database(f"sqlite:///{tmp_path_factory.mktemp('contract-store') / 'store.sqlite3'}")
    account_id = create_account(engine, "Contract Corp").id
    yield RunStore(engine, create_report(engine, account_id, REPORT), create_client(engine, account_id).client_id)
    engine.dispose()


def _backend(storage: ResultStorage, store: RunStore, leftovers: Callable[[], list[str]]) -> StorageBackend:
    """``storage`` behind our ``/downloads`` route, with runs of ``store`` whose files it holds."""
    report_runs = ReportRuns(
        engine=store.engine,
        signal=_NoWakeup(),
        links=storage,
        reports=Reports(store.engine, S3CustomerBuckets(S3ClientFactory(None))),
    )
    routes = download_routes(storage, ActiveClients.of(store.engine), report_runs, AuditLog(store.engine))
    http = TestClient(Starlette(routes=routes), follow_redirects=False)

    def download_of(key: str) -> Download:
        report = store.report
        run = enqueue_run(
            store.engine,
            account_id=report.account_id,
            report_id=report.id,
            delivery=Delivery.DOWNLOAD,
            format="csv",
            definition=REPORT,
            requested_by="test",
        )
        claimed = claim_next_run(store.engine, "contract-worker", lease_seconds=60, max_attempts=1)
        assert claimed is not None
        assert claimed.id == run.id
        assert complete_run(store.engine, run.id, "contract-worker", RunResult(0, 0, "", key))
        return RunDownload(get_run(store.engine, report.account_id, run.id), store.client_id)

    def fetch(url: str) -> Fetched:
        response = http.get(url)
        if response.status_code != 307:
            return Fetched(response.status_code, dict(response.headers), response.content)
        try:  # S3: the presigned GET the route redirects to
            with urllib.request.urlopen(response.headers["location"], timeout=10) as answer:
                return Fetched(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as error:
            return Fetched(error.code, dict(error.headers), error.read())

    return StorageBackend(storage, download_of, fetch, leftovers)


def _folder(tmp_path: Path, store: RunStore) -> StorageBackend:
    folder = LocalFolderStorage(tmp_path / "results", DownloadLinkSigner(b"k" * 32, "http://testserver", 600))

    def leftovers() -> list[str]:
        return sorted(str(path.relative_to(folder.root)) for path in folder.root.rglob("*") if path.is_file())

    return _backend(folder, store, leftovers)


def _s3(store: RunStore, moto_client_factory: S3ClientFactory, moto_s3: S3Client, moto_bucket: str) -> StorageBackend:
    links = DownloadLinkSigner(b"k" * 32, "http://testserver", 600)
    storage = S3ResultStorage(moto_client_factory, moto_bucket, "deployment/results", part_size=PART_SIZE, links=links)

    def leftovers() -> list[str]:
        objects = moto_s3.list_objects_v2(Bucket=moto_bucket).get("Contents", [])
        uploads = moto_s3.list_multipart_uploads(Bucket=moto_bucket).get("Uploads", [])
        return sorted([item["Key"] for item in objects] + [f"{UNFINISHED}{item['Key']}" for item in uploads])

    return _backend(storage, store, leftovers)


@pytest.fixture(params=["folder", "s3"])
def storage_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StorageBackend:
    store = request.getfixturevalue("run_store")
    if request.param == "folder":
        return _folder(tmp_path, store)
    return _s3(
        store,
        request.getfixturevalue("moto_client_factory"),
        request.getfixturevalue("moto_s3"),
        request.getfixturevalue("moto_bucket"),
    )


def _payload(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def _store(storage: ResultStorage, key: str, data: bytes, chunk: int = MIB) -> WrittenObject:
    with storage.open_for_write(key) as (writer, written):
        for start in range(0, len(data), chunk):
            writer.write(data[start : start + chunk])
    return written


def test_a_finished_write_is_published_whole_and_described(storage_backend: StorageBackend) -> None:
    data = _payload(LARGE)
    written = _store(storage_backend.storage, "results/acme/r-1.csv", data)
    assert (written.key, written.size_bytes, written.sha256) == (
        "results/acme/r-1.csv",
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert storage_backend.storage.exists("results/acme/r-1.csv")
    assert (
        storage_backend.fetch(
            storage_backend.storage.download_link(storage_backend.download_of("results/acme/r-1.csv")).url
        ).body
        == data
    )


def test_nothing_is_visible_under_the_key_before_the_write_completes(storage_backend: StorageBackend) -> None:
    data = _payload(LARGE, seed=1)
    with storage_backend.storage.open_for_write("results/acme/r-2.csv") as (writer, _):
        writer.write(data[: PART_SIZE + 1])  # on S3, a part is uploaded already
        assert not storage_backend.storage.exists("results/acme/r-2.csv")
        published = [entry for entry in storage_backend.leftovers() if not entry.startswith(UNFINISHED)]
        assert not any(entry.endswith("results/acme/r-2.csv") for entry in published)
        writer.write(data[PART_SIZE + 1 :])
        assert not storage_backend.storage.exists("results/acme/r-2.csv")
    assert storage_backend.storage.exists("results/acme/r-2.csv")


class Interrupted(Exception):
    pass


def _write_then_fail(storage: ResultStorage, key: str, data: bytes) -> None:
    with storage.open_for_write(key) as (writer, _):
        writer.write(data)
        raise Interrupted


def test_a_write_that_raises_leaves_nothing_behind(storage_backend: StorageBackend) -> None:
    with pytest.raises(Interrupted):
        _write_then_fail(storage_backend.storage, "results/acme/r-3.csv", _payload(LARGE, seed=2))
    assert not storage_backend.storage.exists("results/acme/r-3.csv")
    assert storage_backend.leftovers() == []


def test_a_write_that_raises_keeps_the_earlier_file_of_the_key(storage_backend: StorageBackend) -> None:
    earlier = _payload(1000, seed=3)
    _store(storage_backend.storage, "results/acme/r-4.csv", earlier)
    with pytest.raises(Interrupted):
        _write_then_fail(storage_backend.storage, "results/acme/r-4.csv", _payload(LARGE, seed=4))
    assert (
        storage_backend.fetch(
            storage_backend.storage.download_link(storage_backend.download_of("results/acme/r-4.csv")).url
        ).body
        == earlier
    )
    assert len(storage_backend.leftovers()) == 1


def test_delete_partial_removes_what_an_abandoned_write_left_and_keeps_the_published_file(
    storage_backend: StorageBackend,
) -> None:
    storage = storage_backend.storage
    _store(storage, "results/acme/r-7.csv", b"published")
    # A writer killed mid-write never leaves its block: here it is simply never closed.
    abandoned = storage.open_for_write("results/acme/r-7.csv")
    writer, _ = abandoned.__enter__()
    writer.write(_payload(PART_SIZE + 1, seed=7))  # on S3, a part is uploaded already
    assert any(entry.startswith(UNFINISHED) or entry.endswith(".partial") for entry in storage_backend.leftovers())
    storage.delete_partial("results/acme/r-7.csv")
    assert len(storage_backend.leftovers()) == 1
    assert storage.exists("results/acme/r-7.csv")
    storage.delete_partial("results/acme/r-8.csv")  # a key that never had a write is no error


def test_a_new_write_of_a_key_drops_an_abandoned_one(storage_backend: StorageBackend) -> None:
    storage = storage_backend.storage
    abandoned = storage.open_for_write("results/acme/r-9.csv")
    writer, _ = abandoned.__enter__()
    writer.write(_payload(PART_SIZE + 1, seed=9))
    _store(storage, "results/acme/r-9.csv", b"retried")
    assert len(storage_backend.leftovers()) == 1


def test_writing_a_key_again_replaces_its_file(storage_backend: StorageBackend) -> None:
    _store(storage_backend.storage, "results/acme/r-5.csv", _payload(LARGE, seed=5))
    later = _payload(2000, seed=6)
    written = _store(storage_backend.storage, "results/acme/r-5.csv", later)
    assert written.size_bytes == len(later)
    assert (
        storage_backend.fetch(
            storage_backend.storage.download_link(storage_backend.download_of("results/acme/r-5.csv")).url
        ).body
        == later
    )
    assert len(storage_backend.leftovers()) == 1


def test_exists_and_delete(storage_backend: StorageBackend) -> None:
    storage = storage_backend.storage
    assert not storage.exists("results/acme/r-6.csv")
    _store(storage, "results/acme/r-6.csv", b"id\n1\n")
    assert storage.exists("results/acme/r-6.csv")
    link = storage.download_link(storage_backend.download_of("results/acme/r-6.csv"))
    storage.delete("results/acme/r-6.csv")
    assert not storage.exists("results/acme/r-6.csv")
    # Our route answers 404; S3 answers 404, or 403 to a caller without s3:ListBucket (moto: 403).
    assert storage_backend.fetch(link.url).status in (403, 404)
    storage.delete("results/acme/r-6.csv")  # a key without a file is no error
    assert storage_backend.leftovers() == []


def test_an_empty_file_is_a_file(storage_backend: StorageBackend) -> None:
    written = _store(storage_backend.storage, "results/acme/r-7.csv", b"")
    assert written.size_bytes == 0
    assert storage_backend.storage.exists("results/acme/r-7.csv")
    assert (
        storage_backend.fetch(
            storage_backend.storage.download_link(storage_backend.download_of("results/acme/r-7.csv")).url
        ).body
        == b""
    )


def test_a_download_link_fetches_the_file_under_its_name_until_it_expires(storage_backend: StorageBackend) -> None:
    data = b"id,title\n1,Open port\n"
    _store(storage_backend.storage, "results/acme/r-8.csv", data)
    download = storage_backend.download_of("results/acme/r-8.csv")
    link = storage_backend.storage.download_link(download)
    fetched = storage_backend.fetch(link.url)
    assert (fetched.status, fetched.body) == (200, data)
    headers = {name.lower(): value for name, value in fetched.headers.items()}
    assert headers["content-type"].startswith(download.content_type)
    assert headers["content-disposition"].startswith("attachment")
    assert f'filename="{download.file_name}"' in headers["content-disposition"]
    lifetime = (link.expires_at - datetime.now(UTC)).total_seconds()
    assert 590 <= lifetime <= 600


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../outside.csv", "results/../../outside.csv"])
def test_a_key_cannot_leave_the_storage(storage_backend: StorageBackend, key: str) -> None:
    with pytest.raises(BadUserInput, match="invalid storage key"):
        _store(storage_backend.storage, key, b"x")
    with pytest.raises(BadUserInput, match="invalid storage key"):
        storage_backend.storage.exists(key)
    with pytest.raises(BadUserInput, match="invalid storage key"):
        storage_backend.storage.delete(key)
    assert storage_backend.leftovers() == []
