"""What the embedded default writes is private: folders 0700; keys, the database and results 0600."""

from __future__ import annotations

import stat
from pathlib import Path

from uvm_reporting.services import build_services
from uvm_reporting.settings import Settings
from uvm_reporting.storage.local_folder import LocalFolderStorage


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_first_start_creates_private_folders_and_files(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    services = build_services(settings)
    try:
        storage = services.storage
        assert isinstance(storage, LocalFolderStorage)
        with storage.open_for_write("account-1/run-1.csv") as (writer, _):
            writer.write(b"id\n1\n")
    finally:
        services.engine.dispose()

    var = tmp_path / "var"
    folders = [var, var / "keys", var / "keys" / "token-signing", var / "keys" / "download-links", var / "storage"]
    folders.append(var / "storage" / "account-1")
    assert {str(folder): mode(folder) for folder in folders} == {str(folder): 0o700 for folder in folders}
    files = [
        var / "uvm-reporting.sqlite3",
        var / "keys" / "token-signing" / "generated.pem",
        var / "keys" / "download-links" / "generated.key",
        var / "storage" / "account-1" / "run-1.csv",
    ]
    assert {str(file): mode(file) for file in files} == {str(file): 0o600 for file in files}
    # SQLite gives its WAL and shared-memory files the database file's mode.
    assert all(mode(file) == 0o600 for file in var.glob("uvm-reporting.sqlite3-*"))
