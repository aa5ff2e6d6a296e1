"""Our own storage on a local folder: results are written under a temporary name and
published with an atomic rename, so a half-written file is never visible under its key.
Download links are our own signed links to the ``/downloads`` route (api/download_routes.py),
which serves the file from here."""

from __future__ import annotations

import glob
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from uvm_reporting import fault_points
from uvm_reporting.errors import BadUserInput
from uvm_reporting.private_files import make_private_folder, open_private_for_write
from uvm_reporting.storage.download_links import DownloadLinkSigner, SignedLink
from uvm_reporting.storage.result_storage import Download, WrittenObject

PARTIAL_SUFFIX = ".partial"
"""The end of a temporary file's name: a result being written, published by a rename."""

WRITEBACK_BYTES = 64 << 20
"""How much a result file grows between two flushes to disk in the background."""


@dataclass
class _CountingHashingWriter:
    """A write-only binary stream that hashes and counts what passes through.

    Every ``WRITEBACK_BYTES`` it has the file flushed to disk by a thread of its own, while
    writing goes on: the fsync before publishing then has little left to do, instead of the
    whole file (about a tenth of a large export's time when it was all at the end)."""

    target: BinaryIO
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0
    _unsynced: int = 0
    _syncing: threading.Thread | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        fault_points.reached("write_batch")
        self.digest.update(data)
        self.size += len(data)
        written = self.target.write(data)
        self._unsynced += len(data)
        if self._unsynced >= WRITEBACK_BYTES and (self._syncing is None or not self._syncing.is_alive()):
            self._unsynced = 0
            self.target.flush()
            self._syncing = threading.Thread(
                target=os.fdatasync, args=(self.target.fileno(),), name="result-writeback", daemon=True
            )
            self._syncing.start()
        return written

    def sync(self) -> None:
        """Everything written is on disk when this returns."""
        self.target.flush()
        self.wait_for_writeback()
        os.fsync(self.target.fileno())

    def wait_for_writeback(self) -> None:
        if self._syncing is not None:
            self._syncing.join()


class LocalFolderStorage:
    """Our result storage in a folder (a :class:`~uvm_reporting.storage.result_storage.ResultStorage`).

    ``links`` signs the download links; a folder opened without it (a tool that only writes)
    makes none.
    """

    links_without_io = True

    def __init__(self, root: Path, links: DownloadLinkSigner | None = None) -> None:
        self.root = root.resolve()
        make_private_folder(self.root)  # results are customers' data: folders 0700, files 0600
        self.links = links

    def path_of(self, key: str) -> Path:
        """The file of ``key``; keys are relative POSIX paths that cannot leave the root."""
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise BadUserInput(f"invalid storage key {key!r}")
        return self.root.joinpath(*relative.parts)

    @contextmanager
    def open_for_write(self, key: str) -> Iterator[tuple[_CountingHashingWriter, WrittenObject]]:
        """Yield a binary writer; on normal exit the file appears at ``key`` whole, else never.

        Writing the same key again (a retried run) replaces the earlier file atomically.
        """
        final = self.path_of(key)
        make_private_folder(final.parent)
        # Partial files of this key belong to an earlier attempt whose worker died or lost
        # its lease: a retry starts clean instead of leaving them behind.
        self.delete_partial(key)
        temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}")
        written = WrittenObject(key=key)
        try:
            with os.fdopen(open_private_for_write(temporary), "wb") as handle:
                writer = _CountingHashingWriter(handle)
                try:
                    yield writer, written
                    writer.sync()
                finally:
                    writer.wait_for_writeback()  # the file closes after its last background flush
            temporary.replace(final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        written.size_bytes = writer.size
        written.sha256 = writer.digest.hexdigest()

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)

    def temporary_files(self, written_before: datetime) -> list[Path]:
        """The temporary files (``.<name>.<id>.partial``) last written before ``written_before``:
        left behind by a write whose process died. A write in progress keeps touching its file."""
        cutoff = written_before.timestamp()
        found = []
        for path in self.root.rglob(f"*{PARTIAL_SUFFIX}"):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    found.append(path)
            except FileNotFoundError:  # removed meanwhile (its write ended, or another cleanup)
                continue
        return found

    def remove_temporary_file(self, path: Path) -> bool:
        """Remove one of ``temporary_files``; False when it was gone already."""
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def check_writable(self) -> None:
        """Raise OSError unless a byte can be written to a new file in the folder and the file
        removed (as this process's user, whatever the mode bits say: the superuser ignores them).
        A byte, not just a name: a full disk still has inodes for empty files."""
        probe = self.root / f".readyz.{uuid.uuid4().hex}.probe"
        descriptor = open_private_for_write(probe)
        try:
            os.write(descriptor, b"\n")
        finally:
            os.close(descriptor)
            probe.unlink()

    def delete_partial(self, key: str) -> None:
        final = self.path_of(key)
        for stale in final.parent.glob(f".{glob.escape(final.name)}.*{PARTIAL_SUFFIX}"):
            stale.unlink(missing_ok=True)

    def download_link(self, download: Download) -> SignedLink:
        """Our signed link to ``/downloads/<run id>``, which serves the run's file from here."""
        if self.links is None:
            raise RuntimeError(f"the result folder {self.root} was opened without a download-link signer")
        return self.links.sign(download.run_id, download.issued_to)
